#include "models/peft_io.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <set>
#include <stdexcept>

#include "engine/errors.h"
#include "engine/files.h"
#include "models/finetune_io.h"
#include "models/llama_interop.h"

namespace gpt {

namespace fs = std::filesystem;

std::vector<PeftModule> peft_modules(const GptConfig& c, int target) {
  const std::string name = lora_target_name(target);
  const std::vector<int64_t> w = gpt_param_shape(c, lora_target_param(target));
  const int64_t out = w[1];
  if (!c.llama()) {  // GPT-2: one Conv1D each; c_proj is in both the attention and the MLP
    if (name == "qkv") return {{"attn.c_attn", "c_attn", 0, out}};
    if (name == "attproj") return {{"attn.c_proj", "attn.c_proj", 0, out}};
    if (name == "fc") return {{"mlp.c_fc", "c_fc", 0, out}};
    return {{"mlp.c_proj", "mlp.c_proj", 0, out}};
  }
  if (name == "qkv") {
    const int64_t Q = static_cast<int64_t>(c.n_head) * c.head_size(),
                  KV = static_cast<int64_t>(c.kv_heads()) * c.head_size();
    return {{"self_attn.q_proj", "q_proj", 0, Q},
            {"self_attn.k_proj", "k_proj", Q, KV},
            {"self_attn.v_proj", "v_proj", Q + KV, KV}};
  }
  if (name == "attproj") return {{"self_attn.o_proj", "o_proj", 0, out}};
  if (name == "fc")
    return {{"mlp.gate_proj", "gate_proj", 0, c.mlp_hidden},
            {"mlp.up_proj", "up_proj", c.mlp_hidden, c.mlp_hidden}};
  return {{"mlp.down_proj", "down_proj", 0, out}};
}

std::string peft_layer_prefix(const GptConfig& c, int layer) {
  return std::string(c.llama() ? "base_model.model.model.layers."
                               : "base_model.model.transformer.h.") +
         std::to_string(layer) + ".";
}

nlohmann::json peft_adapter_config(const GptConfig& c, const LoraConfig& lc,
                                   const std::string& base_model) {
  if (c.llama()) llama_hf_config_json(c);  // throws for a model with no Hugging Face architecture
  nlohmann::json targets = nlohmann::json::array();
  for (int t = 0; t < kNumLoraTargets; ++t)
    if (lc.target(t))
      for (const PeftModule& m : peft_modules(c, t)) targets.push_back(m.target);
  nlohmann::ordered_json j;
  j["peft_type"] = "LORA";
  j["task_type"] = "CAUSAL_LM";
  j["base_model_name_or_path"] =
      base_model.empty() ? nlohmann::json(nullptr) : nlohmann::json(base_model);
  j["r"] = lc.rank;
  // An integral alpha is written as an integer, as PEFT's own files have it.
  if (std::floor(lc.alpha) == lc.alpha && std::abs(lc.alpha) < 1e9f)
    j["lora_alpha"] = static_cast<int64_t>(lc.alpha);
  else
    j["lora_alpha"] = lc.alpha;
  j["target_modules"] = targets;
  j["lora_dropout"] = 0.0;
  j["bias"] = "none";
  j["fan_in_fan_out"] = !c.llama();  // GPT-2's Conv1D
  j["use_rslora"] = false;
  j["use_dora"] = false;
  j["init_lora_weights"] = true;
  j["inference_mode"] = true;
  j["modules_to_save"] = nullptr;
  j["layers_to_transform"] = nullptr;
  j["rank_pattern"] = nlohmann::json::object();
  j["alpha_pattern"] = nlohmann::json::object();
  return nlohmann::json(j);
}

SafeTensorsFile peft_adapter_tensors(const GptConfig& c, const SafeTensorsFile& adapter,
                                     const std::string& path) {
  const LoraConfig lc = lora_config_from_safetensors(adapter, path);
  for (const char* key : {"n_layer", "n_embd"}) {
    const auto it = adapter.metadata.find(key);
    const int want = std::string(key) == "n_layer" ? c.n_layer : c.n_embd;
    if (it == adapter.metadata.end() || it->second != std::to_string(want))
      fail(path, std::string("metadata field '") + key + "' is " +
                     (it == adapter.metadata.end() ? "missing" : "'" + it->second + "'") +
                     ", but the model has " + std::to_string(want) +
                     " (an adapter for another model?)");
  }
  const int64_t L = c.n_layer, r = lc.rank;
  std::set<std::string> expected;
  SafeTensorsFile out;
  out.metadata["format"] = "pt";
  for (int t = 0; t < kNumLoraTargets; ++t) {
    if (!lc.target(t)) continue;
    const std::string name = lora_target_name(t);
    const std::vector<int64_t> w = gpt_param_shape(c, lora_target_param(t));
    const int64_t rows = w[1], in = w[2];
    auto read = [&](const std::string& tensor, const std::vector<int64_t>& shape) {
      expected.insert(tensor);
      const SafeTensor* st = adapter.find(tensor);
      if (!st) fail(path, "missing tensor '" + tensor + "'");
      if (st->shape != shape)
        fail(path, "tensor '" + tensor + "' has shape " + nlohmann::json(st->shape).dump() +
                       ", but this model needs " + nlohmann::json(shape).dump());
      return tensor_as_f32(*st, path + ": tensor '" + tensor + "'");
    };
    const std::vector<float> A = read("lora." + name + ".A", {L, r, in});
    const std::vector<float> B = read("lora." + name + ".B", {L, rows, r});
    for (int64_t l = 0; l < L; ++l) {
      const float* a = A.data() + l * r * in;
      const float* b = B.data() + l * rows * r;
      for (const PeftModule& m : peft_modules(c, t)) {
        const std::string at = peft_layer_prefix(c, static_cast<int>(l)) + m.module;
        out.tensors.emplace_back(at + ".lora_A.weight", make_f32_tensor({r, in}, a));
        out.tensors.emplace_back(at + ".lora_B.weight",
                                 make_f32_tensor({m.rows, r}, b + m.row0 * r));
      }
    }
  }
  for (const auto& [name, t] : adapter.tensors)
    if (!expected.count(name))
      fail(path, "unexpected tensor '" + name + "' (not an adapter of the targets " +
                     lora_targets_text(lc) + ")");
  return out;
}

void write_peft_adapter(const std::string& dir, const GptConfig& c, const SafeTensorsFile& adapter,
                        const std::string& path, const std::string& base_model, ExportDType dtype) {
  const nlohmann::json config =
      peft_adapter_config(c, lora_config_from_safetensors(adapter, path), base_model);
  SafeTensorsFile tensors = peft_adapter_tensors(c, adapter, path);
  convert_tensors(tensors, dtype);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail(dir, "cannot create the directory: " + ec.message());
  write_safetensors(dir + "/adapter_model.safetensors", tensors);
  write_file_atomic(dir + "/adapter_config.json", config.dump(2) + "\n");
}

}  // namespace gpt
