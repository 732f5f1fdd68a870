// LoRA merge-and-save: the best adapters (and class head) of a run folded into the base weights
// and written as a full checkpoint of their own (gpt-finetune --merge-lora).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "models/model.h"

namespace gpt {

struct LoraMerge {
  std::string out;      // the run's directory: OUT/best is read, OUT/merged written
  long best_step = -1;  // < 0: no validation, the adapters as they are now are merged
  long steps = 0;       // the checkpoint's step without a best
  std::vector<std::string> tokenizer_files;
  std::string task;
  int num_classes = 0;
  nlohmann::json config;  // the run's resolved settings
};

// Loads the best checkpoint's adapters (and class head) into the model when there is a best,
// merges them into the base and saves OUT/merged/ckpt_<step>. Returns its directory.
std::string merge_lora_and_save(LanguageModel& model, const LoraMerge& m);

}  // namespace gpt
