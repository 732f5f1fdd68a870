// GPT-2 weights in and out of the engine: our checkpoints, Hugging Face GPT2LMHeadModel directories
// and llm.c's gpt2_*.bin files, all through one host-side form, GptWeights (the 16 tensors of
// models/gpt.h in Param order, f32, our shapes).
//
// Hugging Face (config.json + model.safetensors, GPT2LMHeadModel naming): each parameter's HF name
// is in the parameter table (models/gpt_params.h), e.g. transformer.h.{l}.attn.c_attn.weight for
// layer l of qkv_w. HF's Conv1D weights (c_attn, c_proj, c_fc) store (in, out), the transpose of
// ours (y = x·W + b against our y = x·Wᵀ + b); wte has V rows there, Vp here (rows V..Vp-1 zero);
// lm_head.weight is tied to wte: usually absent, else equal to it.
// Files written by GPT2Model (no "transformer." prefix, as on the Hub's gpt2) are read too; the
// attention buffers attn.bias / attn.masked_bias (older transformers) are not weights and are
// skipped. F32, F16, BF16 and F64 tensors are read; export writes F32 or BF16 with config.json.
//
// llm.c (.bin): a header of 256 int32 {20240326, version, maxT, V, L, NH, C, Vp, 0...}, then the 16
// tensors in the table's order and our shapes, fp32 (version 3) or bf16 (version 5). Export writes
// version 3.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/safetensors.h"
#include "models/gpt.h"

namespace gpt {

struct GptWeights {
  GptConfig config;
  std::vector<std::vector<float>> params;  // kNumParams tensors, Param order, our shapes
};

// Device <-> host. upload_weights throws std::invalid_argument when the configs differ.
GptWeights download_weights(GptModel& model);
GptWeights download_grads(GptModel& model);  // the gradients, in the same form (for tests)
void upload_weights(GptModel& model, const GptWeights& w);

// A JSON file, parsed; throws naming the path.
nlohmann::json read_json_file(const std::string& path);

// The fields of a Hugging Face config.json: absent and null both give the fallback; a value of
// the wrong type throws naming `source` and the field.
class HfConfigFields {
 public:
  HfConfigFields(const nlohmann::json& j, std::string source);  // throws unless j is an object
  const nlohmann::json* field(const char* key) const;           // null when absent or null
  int integer(const char* key, int fallback) const;
  bool flag(const char* key, bool fallback) const;

 private:
  const nlohmann::json& j_;
  std::string source_;
};

// The dtype an export writes its tensors in. bf16 rounds each f32 to the nearest bf16, ties to even
// (as torch's .to(torch.bfloat16)); a NaN stays a NaN.
enum class ExportDType { f32, bf16 };
// "f32" or "bf16"; throws std::invalid_argument naming `what` and the value otherwise.
ExportDType export_dtype_from_name(const std::string& name, const std::string& what);
const char* export_dtype_torch_name(ExportDType d);  // "float32", "bfloat16"
uint16_t float_to_bf16_rne(float x);
// Every F32 tensor of `file` in `d` (f32: unchanged).
void convert_tensors(SafeTensorsFile& file, ExportDType d);

// ---- where weights come from
// ---------------------------------------------------------------------
enum class WeightsFormat { checkpoint, hf, llmc };
const char* weights_format_name(WeightsFormat f);
// A checkpoint (directory, `latest` pointer or run directory), a Hugging Face directory
// (config.json + model.safetensors) or an llm.c .bin. Throws naming the path when it is none.
WeightsFormat detect_weights_format(const std::string& path);
// Detects the format and reads the weights, fully validated (checksums, every tensor present with
// the shape the config implies). Throws std::runtime_error naming the file and the tensor or field.
GptWeights load_weights(const std::string& path);

// ---- our naming (model.safetensors in checkpoints)
// ------------------------------------------------
SafeTensorsFile gpt_weights_to_safetensors(const GptWeights& w);
GptWeights gpt_weights_from_safetensors(const SafeTensorsFile& file, const GptConfig& config,
                                        const std::string& path);
// model.safetensors of a checkpoint, with the model shape from its trainer_state.json.
GptWeights read_checkpoint_weights(const std::string& path);

// ---- Hugging Face
// --------------------------------------------------------------------------------- config.json ->
// GptConfig; rejects what our model cannot represent (untied head, another activation,
// layer_norm_epsilon other than 1e-5, n_inner other than 4·n_embd, ...), naming the field.
GptConfig gpt_config_from_hf_json(const nlohmann::json& j, const std::string& source);
nlohmann::json hf_config_json(const GptConfig& c);
// Our weights in HF naming and layout (V rows of wte, Conv1D weights transposed), without lm_head.
SafeTensorsFile hf_tensors_from_weights(const GptWeights& w);
GptWeights weights_from_hf_tensors(const SafeTensorsFile& file, const GptConfig& config,
                                   const std::string& path);
GptWeights read_hf_gpt2(const std::string& dir);
// Writes dir/config.json and dir/model.safetensors (dir is created; files are replaced atomically),
// the tensors in `dtype` (config.json's torch_dtype says which).
void write_hf_gpt2(const std::string& dir, const GptWeights& w,
                   ExportDType dtype = ExportDType::f32);

// ---- llm.c
// ----------------------------------------------------------------------------------------
constexpr int32_t kLlmcMagic = 20240326;
GptWeights read_llmc_gpt2(const std::string& path);
// Writes version 3 (fp32), atomically.
void write_llmc_gpt2(const std::string& path, const GptWeights& w);

}  // namespace gpt
