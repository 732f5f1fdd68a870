// LoRA adapters in PEFT's format, for gpt-export --format peft: a directory with
// adapter_config.json and adapter_model.safetensors that peft.PeftModel.from_pretrained applies to
// the Hugging Face model gpt-export --format hf writes (or the hub model the run started from).
//
// Our adapter (models/finetune_io.h) has one A (L, r, in) and one B (L, out, r) per target matrix,
// and our matrices fuse what Hugging Face keeps apart: qkv_w is [q | k | v] by rows (Llama family:
// q_proj, k_proj, v_proj; GPT-2: one Conv1D c_attn), fc_w is [gate | up] (gate_proj, up_proj).
// The update of the fused matrix, (alpha/r)·B·A, is exactly the update of each part when each part
// gets the same A and its own rows of B: (alpha/r)·B[rows]·A. So a PEFT module of a fused matrix
// takes lora_A = our A (repeated) and lora_B = its row block of our B, with the same r and
// lora_alpha (PEFT scales by lora_alpha/r too; no rslora). GPT-2's Conv1D modules store their
// weight as (in, out), but PEFT's lora_A/lora_B are (r, in)/(out, r) for them as well, with
// fan_in_fan_out true; so nothing is transposed in either family.
//
// PEFT's names: base_model.model.<module>.lora_A.weight, where <module> is Hugging Face's path
// (model.layers.3.self_attn.q_proj; transformer.h.3.attn.c_attn). target_modules names the
// modules by suffix: q_proj, k_proj, ... (Llama family); c_attn, attn.c_proj, c_fc, mlp.c_proj
// (GPT-2, where c_proj alone would match both projections).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/safetensors.h"
#include "models/gpt.h"
#include "models/gpt_interop.h"

namespace gpt {

// One PEFT module a target of ours becomes: its path inside a block and the rows of our B it takes.
struct PeftModule {
  std::string module;  // below the block: "self_attn.q_proj", "attn.c_attn"
  std::string target;  // target_modules' entry: "q_proj", "attn.c_proj"
  int64_t row0 = 0;
  int64_t rows = 0;
};
// The modules of LoRA target t (models/gpt_params.h: qkv, attproj, fc, fcproj) for the model c.
std::vector<PeftModule> peft_modules(const GptConfig& c, int target);
// "base_model.model.model.layers.<l>." (Llama family) or "base_model.model.transformer.h.<l>.".
std::string peft_layer_prefix(const GptConfig& c, int layer);

// adapter_config.json: peft_type LORA, task_type CAUSAL_LM, r, lora_alpha, target_modules, bias
// none, fan_in_fan_out (GPT-2), base_model_name_or_path (null when base_model is "").
nlohmann::json peft_adapter_config(const GptConfig& c, const LoraConfig& lc,
                                   const std::string& base_model);
// Our adapter file's tensors (lora_to_safetensors) in PEFT's naming, f32. Checks the file against
// the model (layers, width, every tensor present with the shape the config implies, nothing else)
// and throws std::runtime_error naming `path` and the tensor.
SafeTensorsFile peft_adapter_tensors(const GptConfig& c, const SafeTensorsFile& adapter,
                                     const std::string& path);
// Writes dir/adapter_config.json and dir/adapter_model.safetensors (dir is created), the tensors
// in `dtype`.
void write_peft_adapter(const std::string& dir, const GptConfig& c, const SafeTensorsFile& adapter,
                        const std::string& path, const std::string& base_model, ExportDType dtype);

}  // namespace gpt
