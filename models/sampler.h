// Next-token sampling from logits: temperature, top-k, top-p (nucleus), greedy at temperature 0.
// Deterministic for a seed (our own Rng). Only the first vocab_size logits are candidates (the
// padded columns never are).
#pragma once

#include <cstdint>
#include <vector>

#include "engine/rng.h"

namespace gpt {

struct SamplingConfig {
  float temperature = 1.0f;  // 0: greedy (argmax)
  int top_k = 0;             // 0: off
  float top_p = 1.0f;        // 1: off
};

class Sampler {
 public:
  Sampler(const SamplingConfig& config, uint64_t seed);
  // logits: at least vocab_size values. Throws std::invalid_argument for a
  // bad config or NaN logits.
  int32_t sample(const float* logits, int vocab_size);

 private:
  SamplingConfig config_;
  Rng rng_;
  std::vector<std::pair<float, int32_t>> candidates_;
};

}  // namespace gpt
