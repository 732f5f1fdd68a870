#include "train/lora_merge.h"

#include "engine/checkpoint.h"
#include "models/finetune_io.h"

namespace gpt {

std::string merge_lora_and_save(LanguageModel& model, const LoraMerge& m) {
  if (m.best_step >= 0) {
    const std::string best = resolve_checkpoint(m.out + "/best");
    const Checkpoint ckpt = Checkpoint::open(best);
    load_lora(model, ckpt.read_tensors("adapter.safetensors"), ckpt.path("adapter.safetensors"));
    if (model.num_classes() > 0)
      load_class_head(model, ckpt.read_tensors("head.safetensors"), ckpt.path("head.safetensors"));
  }
  model.merge_lora();
  CheckpointContents c;
  c.tensor_files.emplace_back("model.safetensors", model.weights_to_safetensors());
  if (model.num_classes() > 0)
    c.tensor_files.emplace_back("head.safetensors", class_head_to_safetensors(model));
  c.copy_files = m.tokenizer_files;
  c.state["model_config"] = model.config_json();
  c.state["finetune"] = {
      {"task", m.task}, {"method", "lora (merged)"}, {"num_classes", m.num_classes}};
  c.state["config"] = m.config;
  return save_checkpoint(m.out + "/merged", m.best_step >= 0 ? m.best_step : m.steps, c, {});
}

}  // namespace gpt
