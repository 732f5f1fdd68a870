#include "models/generation.h"

#include <algorithm>

namespace gpt {

Generated generate_tokens(LanguageModel& model, Sampler& sampler,
                          const std::vector<int32_t>& prompt, int budget,
                          const std::vector<int32_t>& stop) {
  const int P = static_cast<int>(prompt.size());
  const int vocab_size = model.shape().vocab_size;
  std::vector<float> logits = model.prefill(prompt.data(), 1, P);
  Generated g;
  for (int k = 0; k < budget; ++k) {
    const int32_t next = sampler.sample(logits.data(), vocab_size);
    if (std::find(stop.begin(), stop.end(), next) != stop.end()) {
      g.stopped = true;
      break;
    }
    g.tokens.push_back(next);
    if (k + 1 < budget) logits = model.decode(&next, 1, P + k);
  }
  return g;
}

}  // namespace gpt
