// Pre-tokenizers: split text into the pieces that BPE then encodes one by one. Four are known
// (PreTokenizer below), each a hand-written scanner that gives exactly the matches of the regex its
// tokenizer.json states, without a regex engine. GPT-2's comes first; the Split pattern of Llama 3
// and Qwen2 and SmolLM2's digit splitting follow after for_each_gpt2_piece.
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

// Which pre-tokenizer a tokenizer.json asks for (docs/tokenizer.md lists the exact JSON of each):
//   kGpt2        ByteLevel with use_regex: GPT-2's regex above.
//   kLlama3      Split(Regex below with \p{N}{1,3}, Isolated) then ByteLevel without regex.
//   kQwen2       the same Split regex with single digits (\p{N}): Qwen2, Qwen2.5, Qwen3.
//   kDigitsGpt2  Digits(individual_digits) then ByteLevel with use_regex (SmolLM2): every number
//                character (\p{N}) is a piece of its own, GPT-2's regex splits the text between.
enum class PreTokenizer { kGpt2, kLlama3, kQwen2, kDigitsGpt2 };
const char* pre_tokenizer_name(PreTokenizer kind);

// Llama 3's and Qwen2's Split regex (max_digits 3 and 1):
//
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
//   \s*[\r\n]+|\s+(?!\S)|\s+
//
// leftmost-first at each position, as the scanner takes it:
//   1. an apostrophe and a contraction, any case ('S, 'LL; 'ſ too, U+017F folds to s);
//   2. letters, with one optional leading character that is neither CR, LF, letter nor number
//      (a space, a tab, punctuation: "(word" and " word" are one piece each);
//   3. one to max_digits number characters;
//   4. an optional space, a run of "other" characters, then any CR and LF that follow;
//   5. at white space: if the run of white space holds a CR or LF, the run up to and including
//      its last CR or LF ("  \n\n" of "  \n\n  x");
//   6. otherwise as GPT-2's rule 3: the run, less its last character when a non-space follows.
// Invalid UTF-8 bytes count as "other" characters, as in GPT-2's scanner.
size_t split_piece_end(std::string_view text, size_t pos, int max_digits);

// End of the number character (\p{N}) at pos, or pos when the character there is not one.
size_t number_char_end(std::string_view text, size_t pos);

// Calls fn(std::string_view piece) for each piece of text under the given pre-tokenizer.
template <typename Fn>
void for_each_piece(PreTokenizer kind, std::string_view text, Fn&& fn) {
  if (kind == PreTokenizer::kGpt2) {
    for_each_gpt2_piece(text, fn);
    return;
  }
  size_t pos = 0;
  if (kind == PreTokenizer::kDigitsGpt2) {
    while (pos < text.size()) {
      size_t end = number_char_end(text, pos);
      if (end > pos) {
        fn(text.substr(pos, end - pos));
        pos = end;
        continue;
      }
      while (end < text.size()) {  // to the next number character; ASCII without a lookup
        const unsigned char c = static_cast<unsigned char>(text[end]);
        if (c < 0x80 ? (c >= '0' && c <= '9') : number_char_end(text, end) > end) break;
        ++end;
      }
      for_each_gpt2_piece(text.substr(pos, end - pos), fn);
      pos = end;
    }
    return;
  }
  const int max_digits = kind == PreTokenizer::kLlama3 ? 3 : 1;
  while (pos < text.size()) {
    const size_t end = split_piece_end(text, pos, max_digits);
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
