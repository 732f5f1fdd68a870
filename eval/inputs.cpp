// What the evaluation tasks load (eval/inputs.h): the model with a fine-tuned checkpoint's adapter
// and class head, its tokenizer, and the meta.json that gpt-prepare writes beside the shards.
#include "eval/inputs.h"

#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "engine/checkpoint.h"
#include "engine/safetensors.h"
#include "models/finetune_io.h"

namespace fs = std::filesystem;

namespace gpt {

nlohmann::ordered_json EvalModel::describe() const {
  const GptConfig& c = model->config();
  nlohmann::ordered_json j;
  j["path"] = path;
  j["format"] = format;
  j["n_layer"] = c.n_layer;
  j["n_head"] = c.n_head;
  j["n_embd"] = c.n_embd;
  j["context"] = c.max_seq_len;
  j["vocab_size"] = c.vocab_size;
  j["adapter"] = has_adapter;
  j["class_head"] =
      has_class_head ? nlohmann::ordered_json(model->num_classes()) : nlohmann::ordered_json(false);
  if (class_head_ignored) j["class_head_ignored"] = true;
  return j;
}

bool checkpoint_has_class_head(const std::string& path) {
  std::error_code ec;
  if (!looks_like_checkpoint(path)) return false;
  return fs::is_regular_file(fs::path(resolve_checkpoint(path)) / "head.safetensors", ec);
}

EvalModel build_eval_model(GptWeights weights, const std::string& path, const std::string& adapter,
                           Backend& backend, int max_batch, int max_seq, HeadUse use) {
  EvalModel m;
  m.path = path;
  m.format = weights_format_name(detect_weights_format(path));
  m.model = std::make_unique<GptModel>(weights.config, backend, max_batch, max_seq);
  upload_weights(*m.model, weights);
  weights = GptWeights();  // the host copy is no longer needed
  if (m.format == std::string("checkpoint")) {
    const fs::path dir = resolve_checkpoint(path);
    std::error_code ec;
    const bool head_file = fs::is_regular_file(dir / "head.safetensors", ec);
    const bool adapter_file =
        adapter.empty() && fs::is_regular_file(dir / "adapter.safetensors", ec);
    if (head_file || adapter_file) {
      const Checkpoint ckpt = Checkpoint::open(dir.string());  // verifies the checksums
      if (ckpt.has_file("head.safetensors")) {
        if (use == HeadUse::kClassHeadIfPresent) {
          const std::string where = ckpt.path("head.safetensors");
          const SafeTensorsFile head = ckpt.read_tensors("head.safetensors");
          m.model->enable_class_head(class_head_classes(head, where), 0);
          load_class_head(*m.model, head, where);
          m.has_class_head = true;
        } else {
          m.class_head_ignored = true;
        }
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
  m.model->freeze();  // evaluation only: no gradients, one layer of activations
  return m;
}

PrepareTokenizer load_eval_tokenizer(const TokenizerLoader& load, const std::string& spec,
                                     const std::string& near_first,
                                     const std::string& near_second) {
  if (!spec.empty()) return load(spec, "");
  if (!near_first.empty()) {
    try {
      return load("", near_first);
    } catch (const std::exception&) {
      // not beside the data: try the model
    }
  }
  try {
    return load("", near_second);
  } catch (const std::exception&) {
    throw std::runtime_error("no tokenizer found beside " +
                             (near_first.empty() ? "" : "the data (" + near_first + ") or ") +
                             "the model (" + near_second + "): pass --tokenizer bytes|gpt2|DIR");
  }
}

void check_tokenizer_fits(const PrepareTokenizer& tok, const GptConfig& config,
                          const std::string& model_path) {
  if (tok.vocab_size() > config.vocab_size)
    throw std::invalid_argument("the tokenizer has " + std::to_string(tok.vocab_size()) +
                                " tokens, more than the vocabulary of " + model_path + " (" +
                                std::to_string(config.vocab_size) +
                                "): pass the model's tokenizer with --tokenizer");
}

std::string data_meta_path(const std::string& pattern) {
  const fs::path dir = fs::path(pattern).parent_path();
  return (dir.empty() ? fs::path("meta.json") : dir / "meta.json").string();
}

nlohmann::json read_data_meta(const std::string& pattern) {
  const std::string path = data_meta_path(pattern);
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return nlohmann::json();
  std::ifstream in(path);
  try {
    nlohmann::json meta = nlohmann::json::parse(in);
    if (!meta.is_object()) throw std::runtime_error("expected a JSON object");
    return meta;
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": malformed JSON: " + e.what());
  }
}

void check_data_vocab(const nlohmann::json& meta, const std::string& pattern,
                      const GptConfig& config, const std::string& model_path) {
  if (!meta.is_object() || !meta.contains("vocab_size")) return;
  const nlohmann::json& v = meta["vocab_size"];
  if (!v.is_number_integer())
    throw std::runtime_error(data_meta_path(pattern) + ": field 'vocab_size': expected an integer");
  if (v.get<int64_t>() != config.vocab_size)
    throw std::runtime_error(data_meta_path(pattern) + ": the data's vocab_size " + v.dump() +
                             " does not match the model's vocab_size " +
                             std::to_string(config.vocab_size) + " in " + model_path);
}

}  // namespace gpt
