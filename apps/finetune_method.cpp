#include "apps/finetune_method.h"

#include <stdexcept>

namespace gpt {

LoraConfig parse_lora_settings(int rank, float alpha, const std::string& targets) {
  LoraConfig lc;
  lc.rank = rank;
  lc.alpha = alpha;
  lc.qkv = lc.attproj = lc.fc = lc.fcproj = false;
  std::string rest = targets;
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    const std::string t = rest.substr(0, comma);
    rest = comma == std::string::npos ? "" : rest.substr(comma + 1);
    if (t == "qkv") lc.qkv = true;
    else if (t == "attproj") lc.attproj = true;
    else if (t == "fc") lc.fc = true;
    else if (t == "fcproj") lc.fcproj = true;
    else throw std::invalid_argument("--lora-targets: unknown target '" + t + "' (expected qkv, attproj, fc, fcproj)");
  }
  if (lc.rank <= 0) throw std::invalid_argument("--lora-rank must be positive");
  return lc;
}

void apply_trainable(GptModel& model, const FinetuneMethod& m) {
  const int L = model.config().n_layer;
  if (m.method == "full") return;
  if (m.method == "lora") {
    const bool head = m.train_head;
    model.set_trainable([head](const std::string& name, int) {
      return name == "lora" || (head && (name == "cls_w" || name == "cls_b"));
    });
    return;
  }
  if (m.method != "freeze") throw std::invalid_argument("--method '" + m.method + "': expected full, lora or freeze");
  if (m.train_top < 0 || m.train_top > L) throw std::invalid_argument("--train-top must be in [0, n_layer]");
  model.set_trainable([&m, L](const std::string& name, int layer) {
    if (name == "cls_w" || name == "cls_b") return m.train_head;
    if (name == "lora") return true;
    if (layer >= 0 && layer >= L - m.train_top) return true;
    if ((name == "lnf_w" || name == "lnf_b") && m.train_top > 0) return true;
    if (m.train_layernorm && name.find("ln") == 0) return true;
    if (m.train_biases && name.size() > 2 && name.compare(name.size() - 2, 2, "_b") == 0) return true;
    if (m.train_embeddings && (name == "wte" || name == "wpe")) return true;
    return false;
  });
}

}  // namespace gpt
