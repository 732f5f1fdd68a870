#include "models/gpt_params.h"

#include <stdexcept>

#include "models/gpt.h"

namespace gpt {

namespace {

using D = const ParamDims&;
using S = std::vector<int64_t>;

// clang-format off
const ParamSpec kGptParams[kNumParams] = {
  // id              name         llm.c        Hugging Face (GPT-2)  T^     stack  decay  init
  //  kind, bias, LoRA target, shape
  {Param::wte,       "wte",       "wte",       "wte.weight",         false, false, true,  ParamInit::embedding,
   ParamKind::embedding, false, nullptr,   [](D d) { return S{d.Vp, d.C}; }},
  {Param::wpe,       "wpe",       "wpe",       "wpe.weight",         false, false, false, ParamInit::normal,
   ParamKind::embedding, false, nullptr,   [](D d) { return S{d.T, d.C}; }},
  {Param::ln1_w,     "ln1_w",     "ln1w",      "ln_1.weight",        false, true,  false, ParamInit::ones,
   ParamKind::norm, false, nullptr,   [](D d) { return S{d.L, d.C}; }},
  {Param::ln1_b,     "ln1_b",     "ln1b",      "ln_1.bias",          false, true,  false, ParamInit::zeros,
   ParamKind::norm, true, nullptr,   [](D d) { return S{d.L, d.norm_bias}; }},
  {Param::qkv_w,     "qkv_w",     "qkvw",      "attn.c_attn.weight", true,  true,  true,  ParamInit::normal,
   ParamKind::linear, false, "qkv",     [](D d) { return S{d.L, d.W, d.C}; }},
  {Param::qkv_b,     "qkv_b",     "qkvb",      "attn.c_attn.bias",   false, true,  false, ParamInit::zeros,
   ParamKind::linear, true, nullptr,   [](D d) { return S{d.L, d.qkv_bias}; }},
  {Param::q_norm_w,  "q_norm_w",  nullptr,     nullptr,              false, true,  false, ParamInit::ones,
   ParamKind::norm, false, nullptr,   [](D d) { return S{d.L, d.qk_norm}; }},
  {Param::k_norm_w,  "k_norm_w",  nullptr,     nullptr,              false, true,  false, ParamInit::ones,
   ParamKind::norm, false, nullptr,   [](D d) { return S{d.L, d.qk_norm}; }},
  {Param::attproj_w, "attproj_w", "attprojw",  "attn.c_proj.weight", true,  true,  true,  ParamInit::residual,
   ParamKind::linear, false, "attproj", [](D d) { return S{d.L, d.C, d.A}; }},
  {Param::attproj_b, "attproj_b", "attprojb",  "attn.c_proj.bias",   false, true,  false, ParamInit::zeros,
   ParamKind::linear, true, nullptr,   [](D d) { return S{d.L, d.bias}; }},
  {Param::ln2_w,     "ln2_w",     "ln2w",      "ln_2.weight",        false, true,  false, ParamInit::ones,
   ParamKind::norm, false, nullptr,   [](D d) { return S{d.L, d.C}; }},
  {Param::ln2_b,     "ln2_b",     "ln2b",      "ln_2.bias",          false, true,  false, ParamInit::zeros,
   ParamKind::norm, true, nullptr,   [](D d) { return S{d.L, d.norm_bias}; }},
  {Param::fc_w,      "fc_w",      "fcw",       "mlp.c_fc.weight",    true,  true,  true,  ParamInit::normal,
   ParamKind::linear, false, "fc",      [](D d) { return S{d.L, d.F, d.C}; }},
  {Param::fc_b,      "fc_b",      "fcb",       "mlp.c_fc.bias",      false, true,  false, ParamInit::zeros,
   ParamKind::linear, true, nullptr,   [](D d) { return S{d.L, d.bias ? d.F : 0}; }},
  {Param::fcproj_w,  "fcproj_w",  "fcprojw",   "mlp.c_proj.weight",  true,  true,  true,  ParamInit::residual,
   ParamKind::linear, false, "fcproj",  [](D d) { return S{d.L, d.C, d.H}; }},
  {Param::fcproj_b,  "fcproj_b",  "fcprojb",   "mlp.c_proj.bias",    false, true,  false, ParamInit::zeros,
   ParamKind::linear, true, nullptr,   [](D d) { return S{d.L, d.bias}; }},
  {Param::lnf_w,     "lnf_w",     "lnfw",      "ln_f.weight",        false, false, false, ParamInit::ones,
   ParamKind::final_norm, false, nullptr,   [](D d) { return S{d.C}; }},
  {Param::lnf_b,     "lnf_b",     "lnfb",      "ln_f.bias",          false, false, false, ParamInit::zeros,
   ParamKind::final_norm, true, nullptr,   [](D d) { return S{d.norm_bias}; }},
  {Param::lm_head,   "lm_head",   nullptr,     nullptr,              false, false, true,  ParamInit::embedding,
   ParamKind::embedding, false, nullptr,   [](D d) { return S{d.head, d.C}; }},
};
// clang-format on

// The table's LoRA-adaptable weights, in order.
struct LoraTargets {
  Param param[kNumLoraTargets];
  LoraTargets() {
    int n = 0;
    for (const ParamSpec& s : kGptParams)
      if (s.lora_target) param[n++] = s.id;
    if (n != kNumLoraTargets) throw std::logic_error("gpt_params: kNumLoraTargets is stale");
  }
};

const LoraTargets& lora_targets() {
  static const LoraTargets targets;
  return targets;
}

}  // namespace

const ParamSpec* gpt_params() {
  return kGptParams;
}

const ParamSpec* find_param(const std::string& name) {
  for (const ParamSpec& s : kGptParams)
    if (name == s.name) return &s;
  return nullptr;
}

std::vector<int64_t> gpt_param_shape(const GptConfig& c, Param p) {
  if (static_cast<int>(p) < 0 || p >= Param::count)
    throw std::invalid_argument("gpt_param_shape: bad parameter");
  const bool gpt2 = !c.llama();
  ParamDims d;
  d.L = c.n_layer;
  d.C = c.n_embd;
  d.Vp = c.padded_vocab_size();
  d.T = gpt2 ? c.max_seq_len : 0;
  d.W = c.qkv_width();
  d.A = c.attn_width();
  d.HS = c.head_size();
  d.F = c.fc_width();
  d.H = c.mlp_width();
  d.bias = gpt2 ? c.n_embd : 0;
  d.qkv_bias = gpt2 || c.qkv_bias ? c.qkv_width() : 0;
  d.qk_norm = c.qk_norm ? c.head_size() : 0;
  d.norm_bias = gpt2 ? c.n_embd : 0;
  d.head = c.tied_head ? 0 : c.padded_vocab_size();
  return param_spec(p).shape(d);
}

bool param_present(const GptConfig& c, Param p) {
  for (int64_t d : gpt_param_shape(c, p))
    if (d == 0) return false;
  return true;
}

const char* lora_target_name(int target) {
  return param_spec(lora_target_param(target)).lora_target;
}
Param lora_target_param(int target) {
  return lora_targets().param[target];
}

int lora_target_index(const std::string& name) {
  for (int t = 0; t < kNumLoraTargets; ++t)
    if (name == lora_target_name(t)) return t;
  return -1;
}

}  // namespace gpt
