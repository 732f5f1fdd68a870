// Unicode character classes for GPT-2's pre-tokenizer, and a strict UTF-8 decoder.
//
// GPT-2's regex only ever asks whether a character is a letter (\p{L}), a number (\p{N}), white
// space (\s, the White_Space property) or something else. The answer for every code point comes
// from data/unicode_table.inc, generated from the Unicode Character Database by
// scripts/gen_unicode_table.py (the same Unicode version as the reference tokenizer, tiktoken).
// At first use the ranges are expanded into a two-level table: stage 1 maps the high bits of a code
// point (cp >> 8) to one of a few hundred distinct 256-entry blocks (stage 2), so a lookup is two
// loads and the whole table is ~100 KB instead of 1.1 MB.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace gpt {

enum class CharClass : uint8_t { kOther = 0, kLetter = 1, kNumber = 2, kSpace = 3 };

// Code-point class lookup; the table is built once (thread-safe) on the first call to get().
class UnicodeClassTable {
 public:
  static const UnicodeClassTable& get();
  // cp must be < 0x110000.
  CharClass of(uint32_t cp) const {
    return static_cast<CharClass>(
        blocks_[(static_cast<size_t>(stage1_[cp >> 8]) << 8) | (cp & 255)]);
  }
  size_t distinct_blocks() const { return blocks_.size() / 256; }
  static const char* unicode_version();

 private:
  UnicodeClassTable();
  std::vector<uint16_t> stage1_;  // (0x1100) block index per 256 code points
  std::vector<uint8_t> blocks_;   // (distinct_blocks, 256) CharClass values
};

// Decodes one UTF-8 character from s[0 .. avail). Returns its length in bytes (1..4) and stores the
// code point in *cp, or returns 0 when the bytes there are not a valid, complete, shortest-form
// encoding of a Unicode scalar value (stray continuation byte, overlong form, surrogate, >
// U+10FFFF, truncated sequence). avail must be >= 1.
inline int decode_utf8(const unsigned char* s, size_t avail, uint32_t* cp) {
  const unsigned b0 = s[0];
  if (b0 < 0x80) {
    *cp = b0;
    return 1;
  }
  auto cont = [](unsigned b) { return (b & 0xC0) == 0x80; };
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    if (avail < 2 || !cont(s[1])) return 0;
    *cp = ((b0 & 0x1F) << 6) | (s[1] & 0x3F);
    return 2;
  }
  if (b0 >= 0xE0 && b0 <= 0xEF) {
    if (avail < 3 || !cont(s[1]) || !cont(s[2])) return 0;
    if (b0 == 0xE0 && s[1] < 0xA0) return 0;   // overlong
    if (b0 == 0xED && s[1] >= 0xA0) return 0;  // UTF-16 surrogate
    *cp = ((b0 & 0x0F) << 12) | ((s[1] & 0x3F) << 6) | (s[2] & 0x3F);
    return 3;
  }
  if (b0 >= 0xF0 && b0 <= 0xF4) {
    if (avail < 4 || !cont(s[1]) || !cont(s[2]) || !cont(s[3])) return 0;
    if (b0 == 0xF0 && s[1] < 0x90) return 0;   // overlong
    if (b0 == 0xF4 && s[1] >= 0x90) return 0;  // above U+10FFFF
    *cp = ((b0 & 0x07) << 18) | ((s[1] & 0x3F) << 12) | ((s[2] & 0x3F) << 6) | (s[3] & 0x3F);
    return 4;
  }
  return 0;
}

}  // namespace gpt
