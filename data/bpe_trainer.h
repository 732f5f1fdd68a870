// Byte-level BPE training: learns merges from a corpus, GPT-2 style.
//
// The vocabulary it builds: ids 0..255 are the 256 bytes in GPT-2's order (gpt2_byte_order()), then
// one token per learned merge, then the special tokens (e.g. <|endoftext|>) at the end.
//
// Algorithm (the classic one of Sennrich et al., made incremental as in Hugging Face's trainer):
//   1. Pre-tokenize the corpus with GPT-2's splitter (special tokens cut out first) and count each
//      distinct piece ("word"). BPE never merges across pieces, so a word and its count is all that
//      matters: 1 MB of text is a few tens of thousands of distinct words.
//   2. Count every adjacent symbol pair over all words (weighted by word count), and remember which
//      words contain each pair.
//   3. Repeat until the vocabulary is full: take the most frequent pair (ties: the smaller
//      (left id, right id), so training is deterministic), give it a new id, and rewrite only the
//      words that contain it, adjusting the counts of the pairs those rewrites create and destroy.
//      A max-heap holds (count, pair) entries; entries whose count changed since they were pushed
//      are skipped or re-pushed when popped ("lazy deletion"), so each step costs O(words touched).
// Within a word, occurrences of the pair are merged left to right without overlap, exactly what the
// tokenizer's encoder does, so the trained tokenizer reproduces the training segmentation.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "data/bpe_tokenizer.h"

namespace gpt {

struct BpeTrainerOptions {
  // Total vocabulary: 256 byte tokens + merges + special tokens. Training stops early (a smaller
  // vocabulary) when no pair occurs at least min_pair_count times any more.
  int vocab_size = 4096;
  std::vector<std::string> special_tokens = {"<|endoftext|>"};
  int64_t min_pair_count = 1;
  // Called every progress_every merges with (merges done, merges wanted); empty: silent.
  std::function<void(int, int)> progress;
  int progress_every = 1000;
};

class BpeTrainer {
 public:
  explicit BpeTrainer(BpeTrainerOptions options);

  // Adds text to the corpus (pre-tokenized and counted now; the text itself is not kept).
  // Occurrences of the special tokens are cut out and not learned from.
  void add_text(std::string_view text);
  // Adds a whole file; throws std::runtime_error naming it when it cannot be read.
  void add_file(const std::string& path);

  size_t distinct_words() const { return word_counts_.size(); }
  int64_t corpus_bytes() const { return corpus_bytes_; }

  // Learns the merges and returns the tokenizer. Throws std::invalid_argument when vocab_size
  // cannot hold the 256 bytes and the special tokens.
  BpeTokenizer train() const;

 private:
  BpeTrainerOptions options_;
  std::unordered_map<std::string, int64_t> word_counts_;
  int64_t corpus_bytes_ = 0;
};

// One-call form: trains on the given texts.
BpeTokenizer train_bpe(const std::vector<std::string>& texts, const BpeTrainerOptions& options);

}  // namespace gpt
