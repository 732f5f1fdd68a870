#include "data/finetune_loader.h"

#include <algorithm>
#include <stdexcept>

#include "data/finetune.h"
#include "engine/rng.h"

namespace gpt {

FinetuneLoader::FinetuneLoader(const std::string& pattern, const FinetuneLoaderOptions& options)
    : o_(options) {
  if (o_.B <= 0 || o_.T <= 0)
    throw std::invalid_argument("FinetuneLoader: B and T must be positive");
  if (o_.world_size <= 0 || o_.rank < 0 || o_.rank >= o_.world_size)
    throw std::invalid_argument("FinetuneLoader: rank must be in [0, world_size)");
  if (o_.pad_token < 0 || (o_.vocab_size > 0 && o_.pad_token >= o_.vocab_size))
    throw std::invalid_argument("FinetuneLoader: pad token " + std::to_string(o_.pad_token) +
                                " is outside the vocabulary");
  const std::vector<std::string> files = expand_glob(pattern);
  for (size_t s = 0; s < files.size(); ++s) {
    shards_.emplace_back(files[s], o_.vocab_size);
    const std::string mask_path = mask_path_for(files[s]);
    MaskShard mask = read_mask_shard(mask_path, shards_.back().size());
    if (s == 0) num_classes_ = mask.num_classes;
    if (mask.num_classes != num_classes_)
      throw std::runtime_error(mask_path + ": " + std::to_string(mask.num_classes) +
                               " classes, but " + mask_path_for(files[0]) + " has " +
                               std::to_string(num_classes_));
    const int64_t n = shards_.back().size();
    int64_t k = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (!(mask.flags[static_cast<size_t>(i)] & kMaskExampleStart)) continue;
      int64_t end = i + 1;
      while (end < n && !(mask.flags[static_cast<size_t>(end)] & kMaskExampleStart)) ++end;
      const int32_t label = num_classes_ > 0 ? mask.labels[static_cast<size_t>(k)] : -1;
      examples_.push_back(Example{static_cast<int32_t>(s), i, end - i, label});
      ++k;
    }
    masks_.push_back(std::move(mask.flags));
  }
  if ((o_.trim || o_.group_by_length) && o_.layout == FinetuneLayout::kPacked)
    throw std::invalid_argument("FinetuneLoader: trim and group_by_length need the padded layout");
  if (num_classes_ > 0 && o_.layout == FinetuneLayout::kPacked)
    throw std::invalid_argument("FinetuneLoader: '" + pattern +
                                "' is class-head data (one target per row): use the padded layout");
  if (o_.layout == FinetuneLayout::kPadded && o_.long_examples == LongExamples::kError) {
    for (size_t i = 0; i < examples_.size(); ++i) {
      const Example& e = examples_[i];
      const int64_t pairs = num_classes_ > 0 ? e.length : e.length - 1;
      if (pairs > o_.T) {
        throw std::runtime_error(
            files[static_cast<size_t>(e.shard)] + ": example " + std::to_string(i) + " (tokens [" +
            std::to_string(e.begin) + ", " + std::to_string(e.begin + e.length) + ")) has " +
            std::to_string(e.length) + " tokens, more than a row of T = " + std::to_string(o_.T) +
            " holds: truncate it (gpt-prepare --seq-len --truncate, or LongExamples::kTruncate) or "
            "pack");
      }
    }
  }
  if (static_cast<int64_t>(examples_.size()) < o_.world_size)
    throw std::runtime_error("fine-tuning data '" + pattern + "' has " +
                             std::to_string(examples_.size()) + " examples, fewer than the " +
                             std::to_string(o_.world_size) + " ranks");
  last_rows_.assign(static_cast<size_t>(o_.B), -1);
  last_T_ = o_.T;
  build_order();
}

void FinetuneLoader::build_order() {
  std::vector<int64_t> all(examples_.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int64_t>(i);
  if (o_.shuffle) {
    Rng rng(o_.seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(state_.epoch) + 1);
    for (size_t i = all.size(); i > 1; --i) std::swap(all[i - 1], all[rng.below(i)]);
  }
  order_.clear();
  for (size_t j = static_cast<size_t>(o_.rank); j < all.size();
       j += static_cast<size_t>(o_.world_size))
    order_.push_back(all[j]);
  if (o_.group_by_length) group_order_by_length();
  pair_starts_.assign(1, 0);
  if (o_.layout == FinetuneLayout::kPacked)
    for (int64_t e : order_)
      pair_starts_.push_back(pair_starts_.back() + pairs_of(examples_[static_cast<size_t>(e)]));
}

void FinetuneLoader::group_order_by_length() {
  Rng rng(o_.seed * 0xC2B2AE3D27D4EB4Full + static_cast<uint64_t>(state_.epoch) + 7);
  const size_t B = static_cast<size_t>(o_.B);
  const size_t mega = B * kLengthGroupBatches;
  std::vector<int64_t> grouped;
  grouped.reserve(order_.size());
  for (size_t begin = 0; begin < order_.size(); begin += mega) {
    const size_t end = std::min(order_.size(), begin + mega);
    std::vector<int64_t> chunk(order_.begin() + static_cast<std::ptrdiff_t>(begin),
                               order_.begin() + static_cast<std::ptrdiff_t>(end));
    std::stable_sort(chunk.begin(), chunk.end(), [&](int64_t a, int64_t b) {
      return pairs_of(examples_[static_cast<size_t>(a)]) >
             pairs_of(examples_[static_cast<size_t>(b)]);
    });
    // Shuffle whole batches of the chunk; a short last batch stays last (only the epoch's final
    // chunk can have one, and the epoch's last batch is the one that may be partly padding).
    const size_t full = chunk.size() / B;
    std::vector<size_t> batches(full);
    for (size_t i = 0; i < full; ++i) batches[i] = i;
    for (size_t i = full; i > 1; --i) std::swap(batches[i - 1], batches[rng.below(i)]);
    for (size_t i : batches)
      grouped.insert(grouped.end(), chunk.begin() + static_cast<std::ptrdiff_t>(i * B),
                     chunk.begin() + static_cast<std::ptrdiff_t>((i + 1) * B));
    grouped.insert(grouped.end(), chunk.begin() + static_cast<std::ptrdiff_t>(full * B),
                   chunk.end());
  }
  order_ = std::move(grouped);
}

int64_t FinetuneLoader::pairs_of(const Example& e) const {
  const int64_t pairs = num_classes_ > 0 ? e.length : e.length - 1;
  return o_.layout == FinetuneLayout::kPadded ? std::min<int64_t>(pairs, o_.T) : pairs;
}

int64_t FinetuneLoader::units_in_epoch() const {
  if (o_.layout == FinetuneLayout::kPadded) return static_cast<int64_t>(order_.size());
  return (pair_starts_.back() + o_.T - 1) / o_.T;
}

int64_t FinetuneLoader::batches_per_epoch() const {
  return (units_in_epoch() + o_.B - 1) / o_.B;
}

void FinetuneLoader::set_state(const LoaderState& s) {
  if (s.epoch < 0) throw std::invalid_argument("FinetuneLoader: negative epoch");
  state_ = s;
  build_order();
  if (state_.position < 0 || state_.position > units_in_epoch())
    throw std::invalid_argument("FinetuneLoader: loader position out of range");
}

int64_t FinetuneLoader::write_pairs(const Example& e, int64_t from, int64_t count, int32_t* tokens,
                                    int32_t* targets) {
  buffer_.resize(static_cast<size_t>(e.length));
  shards_[static_cast<size_t>(e.shard)].read(e.begin, e.length, buffer_.data());
  const std::vector<uint8_t>& mask = masks_[static_cast<size_t>(e.shard)];
  int64_t unmasked = 0;
  if (num_classes_ > 0) {
    const int64_t m = pairs_of(e);
    for (int64_t k = from; k < from + count; ++k) {
      const bool last = k == m - 1;
      tokens[k - from] = last ? buffer_.back() : buffer_[static_cast<size_t>(k)];
      targets[k - from] = last ? e.label : -1;
      unmasked += last;
    }
    return unmasked;
  }
  for (int64_t k = from; k < from + count; ++k) {
    tokens[k - from] = buffer_[static_cast<size_t>(k)];
    const bool loss = mask[static_cast<size_t>(e.begin + k + 1)] & kMaskLoss;
    targets[k - from] = loss ? buffer_[static_cast<size_t>(k + 1)] : -1;
    unmasked += loss;
  }
  return unmasked;
}

int64_t FinetuneLoader::next_batch(int32_t* tokens, int32_t* targets) {
  if (state_.position >= units_in_epoch()) {
    ++state_.epoch;
    state_.position = 0;
    build_order();
  }
  const int B = o_.B;
  const int64_t units = units_in_epoch();
  int T = o_.T;
  if (o_.trim) {  // the longest row of this batch
    int64_t longest = 1;
    for (int64_t p = state_.position; p < std::min<int64_t>(units, state_.position + B); ++p)
      longest = std::max(longest,
                         pairs_of(examples_[static_cast<size_t>(order_[static_cast<size_t>(p)])]));
    T = static_cast<int>(longest);
  }
  last_T_ = T;
  std::fill(tokens, tokens + static_cast<size_t>(B) * T, o_.pad_token);
  std::fill(targets, targets + static_cast<size_t>(B) * T, -1);
  std::fill(last_rows_.begin(), last_rows_.end(), -1);
  int64_t unmasked = 0;
  for (int b = 0; b < B && state_.position < units; ++b, ++state_.position) {
    int32_t* row_tokens = tokens + static_cast<size_t>(b) * T;
    int32_t* row_targets = targets + static_cast<size_t>(b) * T;
    if (o_.layout == FinetuneLayout::kPadded) {
      const int64_t index = order_[static_cast<size_t>(state_.position)];
      const Example& e = examples_[static_cast<size_t>(index)];
      unmasked += write_pairs(e, 0, pairs_of(e), row_tokens, row_targets);
      last_rows_[static_cast<size_t>(b)] = index;
      continue;
    }
    // Packed: pairs [start, end) of the rank's stream, which may span several examples.
    const int64_t start = state_.position * T;
    const int64_t end = std::min<int64_t>(start + T, pair_starts_.back());
    size_t j =
        static_cast<size_t>(std::upper_bound(pair_starts_.begin(), pair_starts_.end(), start) -
                            pair_starts_.begin() - 1);
    for (int64_t at = start; at < end; ++j) {
      const Example& e = examples_[static_cast<size_t>(order_[j])];
      const int64_t from = at - pair_starts_[j];
      const int64_t count = std::min(pair_starts_[j + 1], end) - at;
      unmasked +=
          write_pairs(e, from, count, row_tokens + (at - start), row_targets + (at - start));
      at += count;
    }
  }
  return unmasked;
}

}  // namespace gpt
