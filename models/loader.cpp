#include "models/loader.h"

#include <filesystem>
#include <stdexcept>

#include "engine/checkpoint.h"
#include "models/finetune_io.h"

namespace fs = std::filesystem;

namespace gpt {

nlohmann::ordered_json LoadedModel::describe() const {
  const ModelShape c = model->shape();
  nlohmann::ordered_json j;
  j["path"] = path;
  j["format"] = format;
  j["n_layer"] = c.n_layer;
  j["n_head"] = c.n_head;
  j["n_embd"] = c.n_embd;
  j["context"] = c.context;
  j["vocab_size"] = c.vocab_size;
  j["adapter"] = has_adapter;
  j["class_head"] =
      has_class_head ? nlohmann::ordered_json(model->num_classes()) : nlohmann::ordered_json(false);
  if (class_head_ignored) j["class_head_ignored"] = true;
  return j;
}

LoadedModel load_model(const std::string& path, Backend& backend, const LoadOptions& options) {
  return load_model(load_weights(path), path, backend, options);
}

LoadedModel load_model(GptWeights weights, const std::string& path, Backend& backend,
                       const LoadOptions& options) {
  LoadedModel m;
  m.path = path;
  m.format = weights_format_name(detect_weights_format(path));
  const int max_seq = options.max_seq > 0 ? options.max_seq : weights.config.max_seq_len;
  auto gpt = std::make_unique<GptModel>(weights.config, backend, options.max_batch, max_seq);
  upload_weights(*gpt, weights);
  m.model = std::move(gpt);
  weights = GptWeights();  // the host copy is no longer needed
  const std::string& adapter = options.adapter;
  if (m.format == std::string(weights_format_name(WeightsFormat::checkpoint))) {
    const fs::path dir = resolve_checkpoint(path);
    std::error_code ec;
    const bool head_file = fs::is_regular_file(dir / "head.safetensors", ec);
    const bool adapter_file = options.checkpoint_adapter && adapter.empty() &&
                              fs::is_regular_file(dir / "adapter.safetensors", ec);
    if (head_file && options.head == HeadUse::kLanguageModel) m.class_head_ignored = true;
    if ((head_file && options.head == HeadUse::kClassHeadIfPresent) || adapter_file) {
      const Checkpoint ckpt = Checkpoint::open(dir.string());  // verifies the checksums
      if (options.head == HeadUse::kClassHeadIfPresent && ckpt.has_file("head.safetensors")) {
        const std::string where = ckpt.path("head.safetensors");
        const SafeTensorsFile head = ckpt.read_tensors("head.safetensors");
        m.model->enable_class_head(class_head_classes(head, where), 0);
        load_class_head(*m.model, head, where);
        m.has_class_head = true;
      }
      if (adapter_file && ckpt.has_file("adapter.safetensors")) {
        const std::string where = ckpt.path("adapter.safetensors");
        const SafeTensorsFile a = ckpt.read_tensors("adapter.safetensors");
        m.model->enable_lora(lora_config_from_safetensors(a, where), 0);
        load_lora(*m.model, a, where);
        m.has_adapter = true;
      }
    }
  }
  if (!adapter.empty()) {
    std::error_code ec;
    if (!fs::is_regular_file(adapter, ec))
      throw std::runtime_error(adapter + ": no such adapter file (--adapter)");
    const SafeTensorsFile a = read_safetensors(adapter);
    m.model->enable_lora(lora_config_from_safetensors(a, adapter), 0);
    load_lora(*m.model, a, adapter);
    m.has_adapter = true;
  }
  if (options.freeze) m.model->freeze();
  return m;
}

}  // namespace gpt
