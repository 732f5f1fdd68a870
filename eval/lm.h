// The pieces of the lm task (eval/tasks.h): the loss of a model over a validation set, and the
// UTF-8 bytes per token that turn it into bits per byte.
#pragma once

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/loader.h"
#include "eval/console.h"
#include "models/gpt.h"

namespace gpt {

struct LmScore {
  double loss_sum = 0.0;  // nats, summed over every scored target
  int64_t targets = 0;
  int64_t windows = 0;  // rows of T scored
  double loss() const {
    return targets > 0 ? loss_sum / static_cast<double>(targets)
                       : std::numeric_limits<double>::quiet_NaN();
  }
};

// Every window of the validation set (at most max_windows of them when > 0) through the model;
// the loss is the sum over every target, so the mean is over tokens, not over batches.
LmScore score_lm(LanguageModel& model, const ValidationSet& set, int B, int T, int64_t max_windows,
                 const EvalConsole& console, const std::string& label);

// UTF-8 bytes per token of the evaluated split, from meta.json: val_bytes / val_tokens when every
// shard is a val_ shard (train_bytes / train_tokens for train_ shards), as gpt-pretrain computes
// validation bits per byte. 0 when unknown.
double bytes_per_token_of(const nlohmann::json& meta, const std::vector<std::string>& files);

}  // namespace gpt
