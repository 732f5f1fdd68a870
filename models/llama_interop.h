// Hugging Face models of the Llama family in and out of the engine: LlamaForCausalLM (Llama 2/3,
// SmolLM2), Qwen2ForCausalLM and Qwen3ForCausalLM directories, as config.json and
// model.safetensors (or shards listed by model.safetensors.index.json), weights in f32, bf16 or
// f16. docs/models.md lists the fields read and the ones refused.
//
// The engine fuses what Hugging Face keeps apart (models/gpt_params.h): q_proj, k_proj and v_proj
// are the row blocks [q | k | v] of qkv_w (their biases of qkv_b), gate_proj and up_proj the row
// blocks [gate | up] of fc_w. Both lay out rows as (out, in), so nothing is transposed; RoPE
// runs in Hugging Face's rotate-half layout, so q and k need no permutation either. A config the
// engine cannot run exactly (another architecture or activation, sliding-window attention,
// another rope type, biases on o_proj or the MLP, partial rotary) is refused naming the field.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "engine/safetensors.h"
#include "models/gpt.h"
#include "models/gpt_interop.h"

namespace gpt {

// Whether config.json describes a model of the Llama family (by architectures or model_type).
bool is_llama_hf_config(const nlohmann::json& j);
// config.json -> GptConfig (family "llama"); transformers 4.x (rope_theta, rope_scaling) and 5.x
// (rope_parameters) spellings. Throws naming `source` and the field.
GptConfig llama_config_from_hf_json(const nlohmann::json& j, const std::string& source);
// The weights of a Hugging Face directory, fully validated (every tensor present once with the
// shape config.json implies, nothing unknown). Throws naming the file and the tensor.
GptWeights read_hf_llama(const std::string& dir);

// The other way, for gpt-export: config.json (LlamaForCausalLM, or Qwen2ForCausalLM with q/k/v
// biases, Qwen3ForCausalLM with QK-norm) and the tensors in Hugging Face naming.
nlohmann::json llama_hf_config_json(const GptConfig& c);
SafeTensorsFile llama_hf_tensors_from_weights(const GptWeights& w);
// Writes dir/config.json and dir/model.safetensors (dir is created; files replaced atomically),
// the tensors in `dtype` (config.json's torch_dtype says which).
void write_hf_llama(const std::string& dir, const GptWeights& w,
                    ExportDType dtype = ExportDType::f32);

}  // namespace gpt
