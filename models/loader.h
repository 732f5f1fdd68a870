// The one model loader: weights from a checkpoint (directory, `latest` pointer or run directory), a
// Hugging Face directory or an llm.c .bin, allocated for (max_batch, max_seq), with what a
// fine-tuned checkpoint adds beside them (models/finetune_io.h): its class head
// (head.safetensors) and LoRA adapter (adapter.safetensors), or an adapter file given instead.
// Training, evaluation and generation all load through it.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "engine/backend.h"
#include "models/gpt.h"
#include "models/gpt_interop.h"
#include "models/model.h"

namespace gpt {

// What the caller needs from the model: the language-model head (lm, generate, choice, and
// classification by label words), or the class head when the checkpoint has one (classify,
// fine-tuning).
enum class HeadUse { kLanguageModel, kClassHeadIfPresent };

struct LoadOptions {
  int max_batch = 1;
  int max_seq = 0;      // 0: the model's context
  std::string adapter;  // an adapter file, applied instead of the checkpoint's ("": none)
  bool checkpoint_adapter =
      true;  // apply the checkpoint's adapter.safetensors (when `adapter` is "")
  HeadUse head = HeadUse::kClassHeadIfPresent;
  bool freeze = false;  // evaluated or sampled only: no gradients, one layer of activations
};

struct LoadedModel {
  std::unique_ptr<LanguageModel> model;
  std::string path;
  std::string format;  // weights_format_name: checkpoint, Hugging Face, llm.c
  bool has_adapter = false;
  bool has_class_head = false;
  bool class_head_ignored = false;  // the checkpoint has one, but HeadUse::kLanguageModel
  // path, format, the model's shape, adapter, class head (as gpt-eval reports them).
  nlohmann::ordered_json describe() const;
};

// Reads the weights (load_weights: fully validated) and builds the model from them.
LoadedModel load_model(const std::string& path, Backend& backend, const LoadOptions& options);
// The same from weights already read from `path` (by load_weights, e.g. to check the config first).
LoadedModel load_model(GptWeights weights, const std::string& path, Backend& backend,
                       const LoadOptions& options);

}  // namespace gpt
