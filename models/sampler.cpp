#include "models/sampler.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace gpt {

Sampler::Sampler(const SamplingConfig& config, uint64_t seed) : config_(config), rng_(seed) {
  if (config.temperature < 0) throw std::invalid_argument("temperature must be >= 0");
  if (config.top_k < 0) throw std::invalid_argument("top_k must be >= 0");
  if (!(config.top_p > 0 && config.top_p <= 1))
    throw std::invalid_argument("top_p must be in (0, 1]");
}

int32_t Sampler::sample(const float* logits, int vocab_size) {
  int32_t best = 0;
  for (int i = 0; i < vocab_size; ++i) {
    if (std::isnan(logits[i]))
      throw std::invalid_argument("NaN logit at token " + std::to_string(i));
    if (logits[i] > logits[best]) best = i;
  }
  if (config_.temperature == 0.0f) return best;
  // Candidates sorted by logit (ties by token id, so the order is fully determined).
  candidates_.clear();
  for (int i = 0; i < vocab_size; ++i) candidates_.emplace_back(logits[i], i);
  std::sort(candidates_.begin(), candidates_.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  size_t keep = candidates_.size();
  if (config_.top_k > 0) keep = std::min(keep, static_cast<size_t>(config_.top_k));
  const double max_logit = candidates_[0].first;
  std::vector<double> p(keep);
  double total = 0.0;
  for (size_t i = 0; i < keep; ++i)
    total += (p[i] = std::exp((candidates_[i].first - max_logit) / config_.temperature));
  if (config_.top_p < 1.0f) {  // smallest prefix whose probability reaches top_p
    double cum = 0.0;
    size_t n = 0;
    while (n < keep) {
      cum += p[n++] / total;
      if (cum >= config_.top_p) break;
    }
    keep = n;
    total = 0.0;
    for (size_t i = 0; i < keep; ++i) total += p[i];
  }
  double u = rng_.uniform() * total;
  for (size_t i = 0; i < keep; ++i) {
    u -= p[i];
    if (u < 0) return candidates_[i].second;
  }
  return candidates_[keep - 1].second;
}

}  // namespace gpt
