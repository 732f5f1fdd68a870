#include "data/loader.h"

#include <algorithm>
#include <stdexcept>

#include "engine/rng.h"

namespace gpt {

TrainLoader::TrainLoader(const std::string& pattern, int B, int T, int vocab_size, bool shuffle,
                         uint64_t seed, int rank, int world_size)
    : B_(B), T_(T), shuffle_(shuffle), seed_(seed), rank_(rank), world_size_(world_size) {
  if (B <= 0 || T <= 0) throw std::invalid_argument("TrainLoader: B and T must be positive");
  if (world_size <= 0 || rank < 0 || rank >= world_size)
    throw std::invalid_argument("TrainLoader: rank must be in [0, world_size)");
  files_ = expand_glob(pattern);
  for (const std::string& f : files_) shards_.emplace_back(f, vocab_size);
  for (size_t s = 0; s < shards_.size(); ++s) {
    const int64_t n = shards_[s].size();
    total_tokens_ += n;
    for (int64_t begin = 0; begin + T + 1 <= n; begin += T)
      samples_.push_back(Sample{static_cast<int32_t>(s), begin});
  }
  const int64_t per_rank = static_cast<int64_t>(samples_.size()) / world_size;
  if (per_rank < B) {
    throw std::runtime_error(
        "training data '" + pattern + "' has " + std::to_string(total_tokens_) +
        " tokens: " + std::to_string(samples_.size()) + " samples of T+1=" + std::to_string(T + 1) +
        " tokens, fewer than one batch of B=" + std::to_string(B) + " per rank");
  }
  build_order();
}

void TrainLoader::build_order() {
  std::vector<int64_t> all(samples_.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int64_t>(i);
  if (shuffle_) {
    Rng rng(seed_ * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(state_.epoch) + 1);
    for (size_t i = all.size(); i > 1; --i) std::swap(all[i - 1], all[rng.below(i)]);
  }
  order_.clear();
  for (size_t j = static_cast<size_t>(rank_); j < all.size(); j += static_cast<size_t>(world_size_))
    order_.push_back(all[j]);
  order_epoch_ = state_.epoch;
}

void TrainLoader::set_state(const LoaderState& s) {
  state_ = s;
  build_order();
  if (state_.position < 0 || state_.position > static_cast<int64_t>(order_.size()))
    throw std::invalid_argument("TrainLoader: loader position out of range");
}

void TrainLoader::next_batch(int32_t* tokens, int32_t* targets) {
  if (state_.position + B_ > static_cast<int64_t>(order_.size())) {
    ++state_.epoch;
    state_.position = 0;
    build_order();
  }
  std::vector<int32_t> window(static_cast<size_t>(T_) + 1);
  for (int b = 0; b < B_; ++b) {
    const Sample& s = samples_[order_[state_.position++]];
    shards_[s.shard].read(s.begin, T_ + 1, window.data());
    std::copy(window.begin(), window.begin() + T_, tokens + static_cast<size_t>(b) * T_);
    std::copy(window.begin() + 1, window.end(), targets + static_cast<size_t>(b) * T_);
  }
}

ValidationSet::ValidationSet(const std::string& pattern, int B, int T, int vocab_size)
    : B_(B), T_(T) {
  if (B <= 0 || T <= 0) throw std::invalid_argument("ValidationSet: B and T must be positive");
  for (const std::string& f : expand_glob(pattern)) shards_.emplace_back(f, vocab_size);
  for (size_t s = 0; s < shards_.size(); ++s) {
    const int64_t n = shards_[s].size();
    total_tokens_ += n;
    for (int64_t begin = 0; begin + 1 < n; begin += T) {
      const int64_t len = std::min<int64_t>(T + 1, n - begin);
      windows_.push_back(Window{static_cast<int32_t>(s), begin, static_cast<int32_t>(len)});
      num_targets_ += len - 1;
    }
  }
  if (windows_.empty())
    throw std::runtime_error("validation data '" + pattern + "' has no targets");
}

int64_t ValidationSet::batch(int64_t i, int32_t* tokens, int32_t* targets) const {
  if (i < 0 || i >= num_batches())
    throw std::out_of_range("ValidationSet: batch index out of range");
  std::fill(tokens, tokens + static_cast<size_t>(B_) * T_, 0);
  std::fill(targets, targets + static_cast<size_t>(B_) * T_, -1);
  std::vector<int32_t> window(static_cast<size_t>(T_) + 1);
  int64_t count = 0;
  for (int b = 0; b < B_; ++b) {
    const int64_t w = i * B_ + b;
    if (w >= static_cast<int64_t>(windows_.size())) break;
    const Window& win = windows_[w];
    shards_[win.shard].read(win.begin, win.len, window.data());
    int32_t* tok = tokens + static_cast<size_t>(b) * T_;
    int32_t* tgt = targets + static_cast<size_t>(b) * T_;
    for (int t = 0; t + 1 < win.len; ++t) {
      tok[t] = window[t];
      tgt[t] = window[t + 1];
    }
    count += win.len - 1;
  }
  return count;
}

}  // namespace gpt
