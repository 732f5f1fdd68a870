#include "data/pretokenizer.h"

#include <array>
#include <cstdint>

#include "data/unicode_classes.h"

namespace gpt {
namespace {

// Class of each ASCII byte: the common case never touches the Unicode table.
constexpr std::array<CharClass, 128> make_ascii_classes() {
  std::array<CharClass, 128> t{};
  for (int c = 0; c < 128; ++c) {
    CharClass k = CharClass::kOther;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) k = CharClass::kLetter;
    if (c >= '0' && c <= '9') k = CharClass::kNumber;
    if (c == ' ' || (c >= 0x09 && c <= 0x0D)) k = CharClass::kSpace;
    t[c] = k;
  }
  return t;
}
constexpr std::array<CharClass, 128> kAsciiClass = make_ascii_classes();

struct CharInfo {
  CharClass cls;
  int len;  // bytes
};

// The character at s[0 .. avail): its class and length. Invalid UTF-8: one "other" byte.
inline CharInfo char_at(const unsigned char* s, size_t avail, const UnicodeClassTable& table) {
  if (s[0] < 0x80) return {kAsciiClass[s[0]], 1};
  uint32_t cp = 0;
  const int len = decode_utf8(s, avail, &cp);
  if (len == 0) return {CharClass::kOther, 1};
  return {table.of(cp), len};
}

// End of the maximal run of characters of class cls starting at p (p itself is not checked).
inline size_t run_end(const unsigned char* s, size_t p, size_t n, CharClass cls,
                      const UnicodeClassTable& table) {
  while (p < n) {
    if (s[p] < 0x80) {
      if (kAsciiClass[s[p]] != cls) break;
      ++p;
      continue;
    }
    const CharInfo c = char_at(s + p, n - p, table);
    if (c.cls != cls) break;
    p += c.len;
  }
  return p;
}

}  // namespace

size_t gpt2_piece_end(std::string_view text, size_t pos) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  const UnicodeClassTable& table = UnicodeClassTable::get();
  size_t p = pos;

  // 1. Contractions: 's 't 'm 'd 're 've 'll.
  if (s[p] == '\'' && p + 1 < n) {
    const unsigned char a = s[p + 1];
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return p + 2;
    if (p + 2 < n) {
      const unsigned char b = s[p + 2];
      if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return p + 3;
    }
  }

  // 2. " ?" followed by a run of letters, numbers or others.
  if (s[p] == ' ' && p + 1 < n) {
    const CharInfo next = char_at(s + p + 1, n - p - 1, table);
    if (next.cls != CharClass::kSpace) return run_end(s, p + 1 + next.len, n, next.cls, table);
  }
  const CharInfo first = char_at(s + p, n - p, table);
  if (first.cls != CharClass::kSpace) return run_end(s, p + first.len, n, first.cls, table);

  // 3. White space: \s+(?!\S) gives back the run's last character when a non-space follows; \s+
  //    takes a lone white-space character.
  size_t last_start = p;  // start of the run's last character
  size_t q = p + first.len;
  while (q < n) {
    const CharInfo c = char_at(s + q, n - q, table);
    if (c.cls != CharClass::kSpace) break;
    last_start = q;
    q += c.len;
  }
  if (q == n) return n;
  return last_start > p ? last_start : q;
}

const char* pre_tokenizer_name(PreTokenizer kind) {
  switch (kind) {
    case PreTokenizer::kGpt2:
      return "GPT-2 ByteLevel regex";
    case PreTokenizer::kLlama3:
      return "Llama 3 Split regex";
    case PreTokenizer::kQwen2:
      return "Qwen2 Split regex";
    case PreTokenizer::kDigitsGpt2:
      return "Digits + GPT-2 ByteLevel regex";
  }
  return "?";
}

size_t number_char_end(std::string_view text, size_t pos) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const CharInfo c = char_at(s + pos, text.size() - pos, UnicodeClassTable::get());
  return c.cls == CharClass::kNumber ? pos + c.len : pos;
}

size_t split_piece_end(std::string_view text, size_t pos, int max_digits) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  const UnicodeClassTable& table = UnicodeClassTable::get();
  const size_t p = pos;
  auto is_crlf = [&](size_t q) { return s[q] == '\r' || s[q] == '\n'; };

  // 1. (?i:'s|'t|'re|'ve|'m|'ll|'d); U+017F (long s, UTF-8 C5 BF) case-folds to s.
  if (s[p] == '\'' && p + 1 < n) {
    const unsigned char a = s[p + 1] | 0x20;  // ASCII lower case (only letters are compared)
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return p + 2;
    if (p + 2 < n) {
      const unsigned char b = s[p + 2] | 0x20;
      if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return p + 3;
      if (s[p + 1] == 0xC5 && s[p + 2] == 0xBF) return p + 3;
    }
  }

  // 2. [^\r\n\p{L}\p{N}]?\p{L}+
  const CharInfo first = char_at(s + p, n - p, table);
  if (first.cls == CharClass::kLetter) return run_end(s, p + first.len, n, first.cls, table);
  const bool prefix_ok =
      first.cls == CharClass::kOther || (first.cls == CharClass::kSpace && !is_crlf(p));
  if (prefix_ok && p + first.len < n) {
    const CharInfo next = char_at(s + p + first.len, n - p - first.len, table);
    if (next.cls == CharClass::kLetter)
      return run_end(s, p + first.len + next.len, n, CharClass::kLetter, table);
  }

  // 3. \p{N}{1,max_digits}
  if (first.cls == CharClass::kNumber) {
    size_t q = p + first.len;
    for (int count = 1; count < max_digits && q < n; ++count) {
      const CharInfo c = char_at(s + q, n - q, table);
      if (c.cls != CharClass::kNumber) break;
      q += c.len;
    }
    return q;
  }

  // 4. " ?[^\s\p{L}\p{N}]+[\r\n]*"
  size_t others = n;  // start of the run of others, n: none
  if (first.cls == CharClass::kOther) {
    others = p;
  } else if (s[p] == ' ' && p + 1 < n &&
             char_at(s + p + 1, n - p - 1, table).cls == CharClass::kOther) {
    others = p + 1;
  }
  if (others < n) {
    size_t q = run_end(s, others + char_at(s + others, n - others, table).len, n, CharClass::kOther,
                       table);
    while (q < n && is_crlf(q)) ++q;
    return q;
  }

  // 5. \s*[\r\n]+: we are at white space; the run up to its last CR or LF, if it has one.
  size_t last_start = p;  // start of the run's last character
  size_t after_crlf = 0;  // end of the run's last CR or LF, 0: none
  size_t q = p;
  while (q < n) {
    const CharInfo c = char_at(s + q, n - q, table);
    if (c.cls != CharClass::kSpace) break;
    if (is_crlf(q)) after_crlf = q + 1;
    last_start = q;
    q += c.len;
  }
  if (after_crlf > 0) return after_crlf;

  // 6. \s+(?!\S) then \s+, as in GPT-2's rule 3.
  if (q == n) return n;
  return last_start > p ? last_start : q;
}

}  // namespace gpt
