// Generating tokens with the KV cache: the prompt runs through the model once (prefill), then each
// new token is sampled from the last logits and fed back one position at a time (decode), so each
// costs O(T) instead of a forward over the whole sequence. gpt-generate and gpt-eval --task
// generate both sample through it.
#pragma once

#include <cstdint>
#include <vector>

#include "models/model.h"
#include "models/sampler.h"

namespace gpt {

struct Generated {
  std::vector<int32_t> tokens;  // the new tokens, without the stop token
  bool stopped = false;         // ended at a stop token (not at the budget)
};

// Up to `budget` tokens after `prompt` (one row; prompt.size() + budget must fit the model's
// context); stops at the first sampled token that is in `stop` (empty: never). The last token is
// not decoded, so the cache holds prompt.size() + budget - 1 positions at most.
Generated generate_tokens(LanguageModel& model, Sampler& sampler,
                          const std::vector<int32_t>& prompt, int budget,
                          const std::vector<int32_t>& stop);

}  // namespace gpt
