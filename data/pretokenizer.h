// GPT-2's pre-tokenizer: splits text into the pieces that BPE then encodes one by one.
//
// GPT-2 (and tiktoken's "gpt2" encoding, and Hugging Face's ByteLevel pre-tokenizer) split text:
//
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// where alternatives are tried in order at each position (leftmost-first, like PCRE). This file is
// a hand-written scanner that gives exactly the regex's matches, without a regex engine:
//   1. an ASCII apostrophe followed by s, t, m, d, re, ve or ll (case-sensitive) is a piece;
//   2. otherwise an optional single space (U+0020) plus a maximal run of letters, or of numbers,
//      or of "other" characters (neither letter, number nor white space) is a piece;
//   3. otherwise we are at white space: a run that reaches the end of the text is one piece; a run
//      followed by a non-space character gives back its last character (so that " word" keeps its
//      space), unless the run is a single character, which is then a piece on its own.
// The regex never skips a character, so the pieces always tile the whole input.
//
// Invalid UTF-8 (tiktoken only ever sees valid text, a Python str) is handled byte by byte: each
// byte that does not start a valid, complete UTF-8 sequence counts as one "other" character. Such
// bytes therefore join neighbouring punctuation runs, and every input still splits into pieces
// whose concatenation is the input, so decode(encode(x)) == x for arbitrary bytes.
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

namespace gpt {

// Returns the end (exclusive byte offset) of the piece starting at byte offset pos < text.size().
size_t gpt2_piece_end(std::string_view text, size_t pos);

// Calls fn(std::string_view piece) for each piece of text, in order.
template <typename Fn>
void for_each_gpt2_piece(std::string_view text, Fn&& fn) {
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t end = gpt2_piece_end(text, pos);
    fn(text.substr(pos, end - pos));
    pos = end;
  }
}

// Cuts special tokens (e.g. "<|endoftext|>") out of text before pre-tokenization: calls
// on_text(segment) for the text between occurrences (possibly empty) and on_special(k) for each
// occurrence of specials[k], in order. Where several specials start at the same byte the longest
// wins. Each special's next occurrence is remembered, so a text with many occurrences of one
// special is still scanned once per special, not once per occurrence.
template <typename OnText, typename OnSpecial>
void split_on_specials(std::string_view text, const std::vector<std::string_view>& specials,
                       OnText&& on_text, OnSpecial&& on_special) {
  constexpr size_t kNone = std::string_view::npos;
  std::vector<size_t> next(specials.size(), 0);
  std::vector<bool> stale(specials.size(), true);
  size_t pos = 0;
  while (true) {
    size_t best_at = kNone;
    size_t best = 0;
    for (size_t k = 0; k < specials.size(); ++k) {
      if (specials[k].empty()) continue;
      if (stale[k] || (next[k] != kNone && next[k] < pos)) {
        next[k] = text.find(specials[k], pos);
        stale[k] = false;
      }
      if (next[k] == kNone) continue;
      if (next[k] < best_at || (next[k] == best_at && specials[k].size() > specials[best].size())) {
        best_at = next[k];
        best = k;
      }
    }
    if (best_at == kNone) break;
    on_text(text.substr(pos, best_at - pos));
    on_special(best);
    pos = best_at + specials[best].size();
  }
  on_text(text.substr(pos));
}

}  // namespace gpt
