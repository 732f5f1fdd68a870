// The trainability policy: what --method full|lora|freeze means for a model, LoRA's settings and
// which parameters train. Shared by gpt-finetune (which applies it to the loaded model) and
// gpt-plan (which applies it to a model on the sizing backend to count its memory), so that both
// set up the same trainable parameters. The rules pick parameters by their kind in the family's
// parameter table (embedding, norm, final norm, bias), never by a family's names.
#pragma once

#include <functional>
#include <string>

#include "models/model.h"

namespace gpt {

struct FinetuneMethod {
  std::string method = "full";  // full, lora or freeze
  LoraConfig lora;
  int train_top = 1;  // freeze: the top N blocks train (and the final LayerNorm when N > 0)
  bool train_layernorm = false;
  bool train_biases = false;
  bool train_embeddings = false;
  bool train_head = true;  // freeze/lora: the class head trains
};

// --lora-rank, --lora-alpha, --lora-targets (comma-separated: qkv, attproj, fc, fcproj). Throws
// std::invalid_argument naming the flag.
LoraConfig parse_lora_settings(int rank, float alpha, const std::string& targets);

// Sets which parameters of `model` train for m.method (lora: the adapters, which must be enabled
// already, and the head; freeze: the top blocks and the extras asked for; full: everything).
// Throws std::invalid_argument for --train-top outside [0, n_layer] or an unknown method.
void apply_trainable(LanguageModel& model, const FinetuneMethod& m);

}  // namespace gpt
