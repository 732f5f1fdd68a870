// Data loaders over token shards.
//
// TrainLoader cuts every shard into samples of T+1 tokens starting at multiples of T (consecutive
// samples overlap by one token, so every token but a shard's first is a target exactly once per
// epoch). An epoch visits every sample once, in shard order or, with shuffling, in a permutation
// drawn from (seed, epoch). Sample j of an epoch's order belongs to rank j % world_size: ranks get
// disjoint slices with no gap. A batch is the rank's next B samples; an epoch ends when fewer than
// B samples are left for the rank, and the next epoch starts. The state (epoch, position) is a pair
// of integers, so resuming is exact.
//
// ValidationSet walks a validation set in order, each shard in full: windows of T+1 tokens
// starting at multiples of T, the last window padded with ignored targets (-1), so every token but
// a shard's first is scored exactly once.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/shard.h"

namespace gpt {

struct LoaderState {
  int64_t epoch = 0;
  int64_t position = 0;  // index into the epoch's sample order of the next sample to read
};

class TrainLoader {
 public:
  // pattern: a glob; vocab_size > 0 checks every token. Throws naming the file on bad data, or
  // when the shards hold fewer than B samples of T+1 tokens for this rank.
  TrainLoader(const std::string& pattern, int B, int T, int vocab_size, bool shuffle, uint64_t seed,
              int rank = 0, int world_size = 1);
  // Fills tokens and targets (B, T).
  void next_batch(int32_t* tokens, int32_t* targets);
  LoaderState state() const { return state_; }
  void set_state(const LoaderState& s);
  int64_t num_samples() const { return static_cast<int64_t>(samples_.size()); }
  int64_t total_tokens() const { return total_tokens_; }
  const std::vector<std::string>& files() const { return files_; }

 private:
  void build_order();
  struct Sample {
    int32_t shard;
    int64_t begin;
  };
  std::vector<std::string> files_;
  std::vector<TokenShard> shards_;
  std::vector<Sample> samples_;
  std::vector<int64_t> order_;  // sample indices of this rank for the current epoch
  int B_, T_;
  bool shuffle_;
  uint64_t seed_;
  int rank_, world_size_;
  int64_t total_tokens_ = 0;
  int64_t order_epoch_ = -1;
  LoaderState state_;
};

class ValidationSet {
 public:
  ValidationSet(const std::string& pattern, int B, int T, int vocab_size);
  int64_t num_batches() const { return (static_cast<int64_t>(windows_.size()) + B_ - 1) / B_; }
  // Fills batch i (B, T); rows past the end are padding (tokens 0, targets -1). Returns the number
  // of unmasked targets in the batch.
  int64_t batch(int64_t i, int32_t* tokens, int32_t* targets) const;
  int64_t num_targets() const { return num_targets_; }
  int64_t total_tokens() const { return total_tokens_; }

 private:
  struct Window {
    int32_t shard;
    int64_t begin;
    int32_t len;  // tokens read, <= T+1
  };
  std::vector<TokenShard> shards_;
  std::vector<Window> windows_;
  int B_, T_;
  int64_t num_targets_ = 0;
  int64_t total_tokens_ = 0;
};

}  // namespace gpt
