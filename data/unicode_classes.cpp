#include "data/unicode_classes.h"

#include <algorithm>
#include <map>

namespace gpt {
namespace {

struct UnicodeRange {
  uint32_t first, last;
  CharClass cls;
};
constexpr CharClass kL = CharClass::kLetter;
constexpr CharClass kN = CharClass::kNumber;
constexpr CharClass kS = CharClass::kSpace;

#include "data/unicode_table.inc"

constexpr uint32_t kCodePoints = 0x110000;

}  // namespace

UnicodeClassTable::UnicodeClassTable() {
  // Expand the ranges into blocks of 256 classes, one block at a time; keep each distinct one once.
  stage1_.resize(kCodePoints >> 8);
  std::map<std::vector<uint8_t>, uint16_t> seen;
  std::vector<uint8_t> block(256);
  int r = 0;  // first range that may still overlap the current block
  for (uint32_t hi = 0; hi < (kCodePoints >> 8); ++hi) {
    const uint32_t base = hi << 8;
    std::fill(block.begin(), block.end(), static_cast<uint8_t>(CharClass::kOther));
    while (r < kUnicodeRangeCount && kUnicodeRanges[r].last < base) ++r;
    for (int k = r; k < kUnicodeRangeCount && kUnicodeRanges[k].first < base + 256; ++k) {
      const uint32_t lo = std::max(kUnicodeRanges[k].first, base);
      const uint32_t up = std::min(kUnicodeRanges[k].last, base + 255);
      for (uint32_t cp = lo; cp <= up; ++cp)
        block[cp - base] = static_cast<uint8_t>(kUnicodeRanges[k].cls);
    }
    auto it = seen.find(block);
    if (it == seen.end()) {
      it = seen.emplace(block, static_cast<uint16_t>(blocks_.size() / 256)).first;
      blocks_.insert(blocks_.end(), block.begin(), block.end());
    }
    stage1_[hi] = it->second;
  }
}

const UnicodeClassTable& UnicodeClassTable::get() {
  static const UnicodeClassTable table;
  return table;
}

const char* UnicodeClassTable::unicode_version() {
  return GPT_UNICODE_VERSION;
}

}  // namespace gpt
