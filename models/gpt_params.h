// The parameter table: the one place that states each parameter tensor, its shape as a function of
// the config, whether AdamW decays it, how it is initialised, its Hugging Face (GPT-2) and llm.c
// names, and whether LoRA can adapt it. The model's arenas, its optimizer groups, the checkpoint,
// Hugging Face and llm.c readers and writers, and the LoRA targets all walk this table.
//
// It covers both families (models/gpt.h): a tensor a config does not have (GPT-2's q/k norms and
// untied head, the Llama family's position embeddings and most biases) has a shape with a zero
// in it and is absent everywhere: no memory, no optimizer group, not in checkpoints.
// The table's order is the arena order and llm.c's order (gpt2_*.bin holds the GPT-2 tensors in
// it). The Llama family's Hugging Face names are in models/llama_interop.cpp.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "models/model.h"  // ParamKind

namespace gpt {

struct GptConfig;

// Names of the parameter tensors, in table order (see kGptParams in gpt_params.cpp for shapes).
enum class Param : int {
  wte = 0,
  wpe,
  ln1_w,
  ln1_b,
  qkv_w,
  qkv_b,
  q_norm_w,
  k_norm_w,
  attproj_w,
  attproj_b,
  ln2_w,
  ln2_b,
  fc_w,
  fc_b,
  fcproj_w,
  fcproj_b,
  lnf_w,
  lnf_b,
  lm_head,
  count
};
constexpr int kNumParams = static_cast<int>(Param::count);

// The sizes a parameter's shape is written in: L layers, width C, padded vocabulary Vp, context T
// (0 without position embeddings), the q/k/v row width W, the attention output width A = NH·HS,
// head size HS, the fc output F (GPT-2 4C, SwiGLU 2·hidden) and the MLP width H (GPT-2 4C);
// the widths of the optional tensors are 0 when a config has none (bias: GPT-2's biases; qkv_bias;
// qk_norm: HS or 0; norm_bias: LayerNorm's; head: Vp when untied).
struct ParamDims {
  int64_t L, C, Vp, T;
  int64_t W, A, HS, F, H;
  int64_t bias, qkv_bias, qk_norm, norm_bias, head;
};

enum class ParamInit {
  zeros,      // biases
  ones,       // norm weights
  normal,     // normal(0, 0.02)
  residual,   // normal(0, 0.02 / sqrt(2·L)): the projections into the residual stream
  embedding,  // normal(0, 0.02) on the V real rows; the padded rows stay zero
};

struct ParamSpec {
  Param id;
  const char* name;       // ours: checkpoints' model.safetensors, optimizer groups, set_trainable
  const char* llmc_name;  // llm.c's name (its files hold no names: the table's order is theirs)
  // Hugging Face GPT2LMHeadModel's name without "transformer."; a stacked parameter's layer l is
  // "h.<l>." + hf_name.
  const char* hf_name;
  bool hf_transposed;  // HF's Conv1D stores (in, out): the transpose of our (out, in)
  bool stacked;        // (L, ...): one slice per layer
  bool decayed;        // AdamW weight decay
  ParamInit init;
  ParamKind kind;
  bool bias;                // an additive bias (--train-biases)
  const char* lora_target;  // the LoRA target adapting this weight ("qkv", ...), or nullptr
  std::vector<int64_t> (*shape)(const ParamDims& d);  // ours; HF's wte has V rows, not Vp
};

// The table, in order: gpt_params()[i].id == Param(i).
const ParamSpec* gpt_params();
inline const ParamSpec& param_spec(Param p) {
  return gpt_params()[static_cast<int>(p)];
}
inline const char* param_name(Param p) {
  return param_spec(p).name;
}

// Our shape of parameter p, e.g. qkv_w: {L, 3C, C}; wte has the padded Vp rows. A shape with a
// zero: the config has no such tensor (param_present).
std::vector<int64_t> gpt_param_shape(const GptConfig& c, Param p);
bool param_present(const GptConfig& c, Param p);

// The entry named `name`, or nullptr.
const ParamSpec* find_param(const std::string& name);

// The LoRA targets, in table order ("qkv", "attproj", "fc", "fcproj"), and the weight each adapts.
constexpr int kNumLoraTargets = 4;
const char* lora_target_name(int target);
Param lora_target_param(int target);
// The target's index for a name, -1 when the model has no such target.
int lora_target_index(const std::string& name);

}  // namespace gpt
