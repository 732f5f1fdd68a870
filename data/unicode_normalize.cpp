#include "data/unicode_normalize.h"

#include <algorithm>
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "data/unicode_classes.h"

namespace gpt {
namespace {

struct CccRange {
  uint32_t first, last;
  uint8_t ccc;
};
struct Decomposition {
  uint32_t cp, first, second;  // second 0: a singleton
  bool composes;
};
struct CodePointRange {
  uint32_t first, last;
};

#include "data/unicode_nfc.inc"

constexpr uint32_t kCodePoints = 0x110000;
// Invalid UTF-8 bytes travel through the algorithm as these values: class 0, no composition.
constexpr uint32_t kRawByte = 0x110000;

// Hangul syllables (Unicode chapter 3.12).
constexpr uint32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr uint32_t kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount,
                   kSCount = kLCount * kNCount;

struct NfcData {
  std::vector<uint64_t> unsafe_bits;  // bit per code point: may change under NFC
  std::vector<uint8_t> ccc;           // code point -> canonical combining class
  std::unordered_map<uint32_t, std::pair<uint32_t, uint32_t>> decomposition;
  std::unordered_map<uint64_t, uint32_t> composition;  // (first << 21 | second) -> composite

  NfcData() : unsafe_bits(kCodePoints / 64, 0), ccc(kCodePoints, 0) {
    for (const CodePointRange& r : kNfcUnsafe)
      for (uint32_t cp = r.first; cp <= r.last; ++cp)
        unsafe_bits[cp >> 6] |= uint64_t{1} << (cp & 63);
    for (const CccRange& r : kCccRanges)
      for (uint32_t cp = r.first; cp <= r.last; ++cp) ccc[cp] = r.ccc;
    decomposition.reserve(kDecompositionCount);
    for (const Decomposition& d : kDecompositions) {
      decomposition.emplace(d.cp, std::make_pair(d.first, d.second));
      if (d.composes) composition.emplace((uint64_t{d.first} << 21) | d.second, d.cp);
    }
  }
  bool unsafe(uint32_t cp) const { return (unsafe_bits[cp >> 6] >> (cp & 63)) & 1; }
  uint8_t class_of(uint32_t cp) const { return cp < kCodePoints ? ccc[cp] : 0; }
};

const NfcData& nfc_data() {
  static const NfcData data;
  return data;
}

void decompose(const NfcData& data, uint32_t cp, std::vector<uint32_t>* out) {
  if (cp >= kSBase && cp < kSBase + kSCount) {
    const uint32_t s = cp - kSBase;
    out->push_back(kLBase + s / kNCount);
    out->push_back(kVBase + (s % kNCount) / kTCount);
    if (s % kTCount != 0) out->push_back(kTBase + s % kTCount);
    return;
  }
  if (cp < kCodePoints) {
    const auto it = data.decomposition.find(cp);
    if (it != data.decomposition.end()) {
      decompose(data, it->second.first, out);
      if (it->second.second != 0) decompose(data, it->second.second, out);
      return;
    }
  }
  out->push_back(cp);
}

// The primary composite of (first, second), or 0.
uint32_t compose_pair(const NfcData& data, uint32_t first, uint32_t second) {
  if (first >= kLBase && first < kLBase + kLCount && second >= kVBase && second < kVBase + kVCount)
    return kSBase + ((first - kLBase) * kVCount + (second - kVBase)) * kTCount;
  if (first >= kSBase && first < kSBase + kSCount && (first - kSBase) % kTCount == 0 &&
      second > kTBase && second < kTBase + kTCount)
    return first + (second - kTBase);
  if (first >= kCodePoints || second >= kCodePoints) return 0;
  const auto it = data.composition.find((uint64_t{first} << 21) | second);
  return it == data.composition.end() ? 0 : it->second;
}

void append_utf8(uint32_t cp, std::string* out) {
  if (cp >= kRawByte) {
    *out += static_cast<char>(cp - kRawByte);
  } else if (cp < 0x80) {
    *out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    *out += static_cast<char>(0xC0 | (cp >> 6));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    *out += static_cast<char>(0xE0 | (cp >> 12));
    *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    *out += static_cast<char>(0xF0 | (cp >> 18));
    *out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// The code point at s[0 .. avail) (kRawByte + byte for invalid UTF-8) and its length.
inline int next_code_point(const unsigned char* s, size_t avail, uint32_t* cp) {
  const int len = decode_utf8(s, avail, cp);
  if (len > 0) return len;
  *cp = kRawByte + s[0];
  return 1;
}

// Appends the NFC of text (a stretch that starts at a starter) to *out.
void normalize_stretch(const NfcData& data, std::string_view text, std::string* out) {
  thread_local std::vector<uint32_t> cps;
  cps.clear();
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  for (size_t i = 0; i < text.size();) {
    uint32_t cp = 0;
    i += next_code_point(s + i, text.size() - i, &cp);
    decompose(data, cp, &cps);
  }
  // Canonical ordering: stable sort of each run of non-starters by class.
  for (size_t i = 0; i < cps.size();) {
    if (data.class_of(cps[i]) == 0) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < cps.size() && data.class_of(cps[j]) != 0) ++j;
    std::stable_sort(cps.begin() + i, cps.begin() + j,
                     [&](uint32_t a, uint32_t b) { return data.class_of(a) < data.class_of(b); });
    i = j;
  }
  // Canonical composition.
  size_t starter = SIZE_MAX;  // index (in the output so far) of the last starter
  size_t kept = 0;
  int last_class = -1;  // class of the last character kept after the starter; -1: none
  for (size_t i = 0; i < cps.size(); ++i) {
    const uint32_t cp = cps[i];
    const int cls = data.class_of(cp);
    if (starter != SIZE_MAX && (last_class < cls || (last_class == -1 && cls == 0))) {
      // Not blocked: nothing between, or everything between has a lower class (and cp is a mark).
      if (const uint32_t c = compose_pair(data, cps[starter], cp)) {
        cps[starter] = c;
        continue;
      }
    }
    if (cls == 0) {
      starter = kept;
      last_class = -1;
    } else {
      last_class = cls;
    }
    cps[kept++] = cp;
  }
  for (size_t i = 0; i < kept; ++i) append_utf8(cps[i], out);
}

}  // namespace

std::string_view nfc_normalize(std::string_view text, std::string* buffer) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  // Fast path: ASCII and the code points below U+0300 are all safe.
  while (i < n && s[i] < 0xCC) ++i;
  if (i == n) return text;
  const NfcData& data = nfc_data();
  buffer->clear();
  size_t copied = 0;     // text[0, copied) is in *buffer already (or needs no change)
  size_t last_safe = 0;  // start of the last safe character seen, where a stretch may begin
  bool changed = false;
  i = 0;
  while (i < n) {
    if (s[i] < 0x80) {
      last_safe = i++;
      continue;
    }
    uint32_t cp = 0;
    const int len = next_code_point(s + i, n - i, &cp);
    if (cp >= kRawByte || !data.unsafe(cp)) {
      last_safe = i;
      i += len;
      continue;
    }
    // A stretch from the last safe character up to the next one.
    const size_t begin = i > 0 ? std::max(last_safe, copied) : 0;
    size_t end = i + len;
    while (end < n) {
      uint32_t next = 0;
      const int next_len = next_code_point(s + end, n - end, &next);
      if (next < kRawByte && data.unsafe(next)) {
        end += next_len;
      } else {
        break;
      }
    }
    if (!changed) {
      buffer->reserve(n + 16);
      changed = true;
    }
    buffer->append(text.data() + copied, begin - copied);
    normalize_stretch(data, text.substr(begin, end - begin), buffer);
    copied = end;
    i = end;
    last_safe = end;
  }
  if (!changed) return text;
  buffer->append(text.data() + copied, n - copied);
  return *buffer;
}

const char* nfc_unicode_version() {
  return GPT_NFC_UNICODE_VERSION;
}

}  // namespace gpt
