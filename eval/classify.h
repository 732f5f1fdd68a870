// The pieces of the classify task (eval/tasks.h): how label words are told apart, and how a
// batch's logits become (label, prediction) pairs, with a class head or with label words.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/prepare.h"

namespace gpt {

// How label words are told apart. A row of label-word data reads
//   ... "\nLabel:" | w_1 w_2 ... <|endoftext|>      (targets from the first label-word token on)
// and seqs[k] = tokens(" " + word_k) + <|endoftext|>. The sequences share a prefix of `prefix`
// tokens (none for GPT-2's " negative"/" positive"; the space for the byte tokenizer) and differ
// at the next one: the prediction is the class whose token there has the largest logit, read at
// the position that predicts it (the prefix is the same for every class, so teacher-forcing it
// from the true label changes nothing).
struct LabelWordScorer {
  std::vector<std::string> words;
  std::vector<std::vector<int32_t>> seqs;
  int prefix = 0;
  std::vector<int32_t> deciding;  // seqs[k][prefix]

  // Throws when two words have the same token after their common prefix.
  LabelWordScorer(std::vector<std::string> words, const PrepareTokenizer& tok);
};

// The rows of one batch (B rows of T tokens) that are scored: first[b] and last[b] are the first
// and last target positions of row b (-1: not scored), row_length the shortest length that holds
// every target (the positions after it cannot change the logits before it: attention is causal).
struct ScoredRows {
  std::vector<int> first, last;
  std::vector<int64_t> examples;  // example index of each row
  int row_length = 0;
};

// What classification has gathered so far: one entry per scored example, and the loss.
struct ClassifyTally {
  std::vector<int> labels, predictions;
  std::vector<int64_t> example_ids;
  double loss_sum = 0.0;
  int64_t loss_count = 0;  // examples (class head) or target tokens (label words)
};

// Class head: logits (B, K); row b's label is its target at first[b], its prediction the argmax.
// `targets` is (B, rows.row_length).
void tally_class_head(const std::vector<float>& logits, int K, const int32_t* targets,
                      const ScoredRows& rows, ClassifyTally& tally);

// Label words: logits (B, rows.row_length, Vp); row b's label is the class whose tokens its
// targets begin with, its prediction the class whose deciding token has the largest logit. `data`
// and `T` name the data and the row length in the errors (a row cut inside its label word, targets
// that begin with no label word).
void tally_label_words(const std::vector<float>& logits, int Vp, const int32_t* targets,
                       const ScoredRows& rows, const LabelWordScorer& scorer,
                       const std::string& data, int T, ClassifyTally& tally);

}  // namespace gpt
