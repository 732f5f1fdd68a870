// FinetuneLoader: (B, T) batches of fine-tuning examples with masked targets.
//
// The data is what gpt-prepare --task sft|classify writes: token shards with a mask shard beside
// each (data/finetune.h). An example of n tokens x[0..n) is a sequence of (input, target) pairs:
//   language model:  n - 1 pairs (x[t], loss[t+1] ? x[t+1] : -1)
//   class head:      n pairs (x[t], -1), except the last, whose target is the class id
// Two layouts:
//   kPadded  each example in its own row: its pairs, then padding (pad token, target -1). An
//   example
//            with more than T pairs is an error naming it, or, with LongExamples::kTruncate, cut to
//            its first T pairs (class head: the first T-1 plus the last, so the class is still read
//            at the final <|endoftext|>).
//   kPacked  the pairs of consecutive examples are concatenated and cut into rows of T pairs (no
//            padding but at the end of an epoch; attention sees earlier examples of the row).
//            Language-model examples only (a class head needs one target per row).
// Trimming (kPadded, trim = true): a batch's rows are only as long as its longest example, so a
// batch of short examples costs little. next_batch then writes B rows of last_batch_T() <= T pairs
// each (row b at tokens + b * last_batch_T()). A causal model's outputs at the kept positions do
// not depend on the trailing padding, so trimming changes no loss and no prediction.
// Grouping by length (kPadded, group_by_length = true): the rank's epoch order is cut into
// megabatches of kLengthGroupBatches * B examples, each sorted by length and cut into batches, and
// the batches of a megabatch are shuffled; with trimming this removes most padding.
// An epoch visits every example once: in file order, or in a permutation drawn from (seed, epoch).
// Example j of the epoch's order belongs to rank j % world_size, so ranks see disjoint examples
// and together all of them. A batch holds B rows; the last batch of an epoch is filled with padding
// rows (every target -1), and the next batch starts the next epoch. LoaderState (epoch, position)
// resumes exactly: position is the next example (padded) or the next row (packed) of the rank's
// epoch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/loader.h"
#include "data/shard.h"

namespace gpt {

enum class FinetuneLayout { kPadded, kPacked };
enum class LongExamples { kError, kTruncate };

struct FinetuneLoaderOptions {
  int B = 1, T = 1;
  int vocab_size = 0;     // > 0: every token is checked
  int32_t pad_token = 0;  // input token of padding (meta.json's eot_token is the natural choice)
  FinetuneLayout layout = FinetuneLayout::kPadded;
  LongExamples long_examples = LongExamples::kError;
  bool shuffle = false;
  bool trim = false;             // kPadded: rows only as long as the batch's longest example
  bool group_by_length = false;  // kPadded: batches of examples of similar length (see above)
  uint64_t seed = 0;
  int rank = 0, world_size = 1;
};

class FinetuneLoader {
 public:
  // pattern: a glob of token shards ("dir/train_*.bin"); each needs its NAME.mask. Throws naming
  // the file for bad or missing data, naming the example (its index, shard and token range) when it
  // is too long for kPadded with kError, and when a rank would get no example.
  FinetuneLoader(const std::string& pattern, const FinetuneLoaderOptions& options);

  static constexpr int kLengthGroupBatches = 50;

  // Fills tokens and targets (B, T), or (B, last_batch_T()) with trim. Returns the number of
  // targets >= 0.
  int64_t next_batch(int32_t* tokens, int32_t* targets);
  // Row length of the last batch: T, or with trim its longest row (at least 1).
  int last_batch_T() const { return last_T_; }

  LoaderState state() const { return state_; }
  void set_state(const LoaderState& s);

  int64_t num_examples() const { return static_cast<int64_t>(examples_.size()); }
  int num_classes() const { return num_classes_; }
  // Batches in this rank's current epoch (the last one may be partly padding).
  int64_t batches_per_epoch() const;
  // Index (in file order over all shards) of the example in row b of the last batch; -1 for a
  // padding row or in the packed layout.
  const std::vector<int64_t>& last_batch_examples() const { return last_rows_; }

 private:
  struct Example {
    int32_t shard;
    int64_t begin;
    int64_t length;  // tokens
    int32_t label;   // class id, or -1
  };
  void build_order();
  void group_order_by_length();              // reorders order_ (see group_by_length)
  int64_t pairs_of(const Example& e) const;  // pairs the example contributes (after truncation)
  // Writes pairs [from, from + count) of example e into tokens/targets; returns targets >= 0.
  int64_t write_pairs(const Example& e, int64_t from, int64_t count, int32_t* tokens,
                      int32_t* targets);
  int64_t units_in_epoch() const;  // examples (padded) or rows (packed) of the rank's epoch

  FinetuneLoaderOptions o_;
  std::vector<TokenShard> shards_;
  std::vector<std::vector<uint8_t>> masks_;
  std::vector<Example> examples_;
  int num_classes_ = 0;
  std::vector<int64_t> order_;        // this rank's examples in the current epoch
  std::vector<int64_t> pair_starts_;  // packed: prefix sums of pairs over order_
  std::vector<int32_t> buffer_;
  std::vector<int64_t> last_rows_;
  int last_T_ = 0;
  LoaderState state_;
};

}  // namespace gpt
