#include "models/trainability.h"

#include <stdexcept>

#include "models/gpt.h"  // the LoRA target names

namespace gpt {

LoraConfig parse_lora_settings(int rank, float alpha, const std::string& targets) {
  LoraConfig lc;
  lc.rank = rank;
  lc.alpha = alpha;
  const LoraTargetsParse parsed = set_lora_targets(lc, targets);
  if (!parsed.ok && !parsed.why.empty())
    throw std::invalid_argument("--lora-targets: " + parsed.why);
  if (!parsed.ok) {
    std::string expected;
    for (int t = 0; t < kNumLoraTargets; ++t)
      expected += (t ? ", " : "") + std::string(lora_target_name(t));
    throw std::invalid_argument("--lora-targets: unknown target '" + parsed.unknown +
                                "' (expected " + expected +
                                ", or Hugging Face's q_proj, k_proj, v_proj, o_proj, gate_proj, "
                                "up_proj, down_proj)");
  }
  if (lc.rank <= 0) throw std::invalid_argument("--lora-rank must be positive");
  return lc;
}

void apply_trainable(LanguageModel& model, const FinetuneMethod& m) {
  const int L = model.shape().n_layer;
  if (m.method == "full") return;
  if (m.method == "lora") {
    const bool head = m.train_head;
    model.set_trainable([head](const std::string& name, int) {
      return name == "lora" || (head && (name == "cls_w" || name == "cls_b"));
    });
    return;
  }
  if (m.method != "freeze")
    throw std::invalid_argument("--method '" + m.method + "': expected full, lora or freeze");
  if (m.train_top < 0 || m.train_top > L)
    throw std::invalid_argument("--train-top must be in [0, n_layer]");
  model.set_trainable([&m, &model, L](const std::string& name, int layer) {
    if (name == "cls_w" || name == "cls_b") return m.train_head;
    if (name == "lora") return true;
    if (layer >= 0 && layer >= L - m.train_top) return true;
    ParamKind kind;
    bool bias = false;
    if (!model.param_kind(name, &kind, &bias)) return false;
    if (kind == ParamKind::final_norm && m.train_top > 0) return true;
    if (m.train_layernorm && (kind == ParamKind::norm || kind == ParamKind::final_norm))
      return true;
    if (m.train_biases && bias) return true;
    if (m.train_embeddings && kind == ParamKind::embedding) return true;
    return false;
  });
}

}  // namespace gpt
