// Two small open-addressing hash tables used by the BPE tokenizer (internal header).
//
// PairRankMap: (left id, right id) -> (merge rank, merged id). The inner loop of BPE asks it for
//              every adjacent pair, so a key is one 64-bit integer and probing is linear.
// PieceTable:  byte string -> short list of token ids. Keys and values live in two flat arrays
//              (no allocation per entry); lookups take a std::string_view without copying it.
// Both are append-only (PieceTable can be cleared), never shrink, and keep a load factor <= 1/2.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace gpt {
namespace bpe_detail {

inline uint64_t mix64(uint64_t x) {
  x ^= x >> 32;
  x *= 0xd6e8feb86659fd93ull;
  x ^= x >> 32;
  x *= 0xd6e8feb86659fd93ull;
  x ^= x >> 32;
  return x;
}

// Hash of a byte string: 8 bytes at a time, each folded in with a multiply-xorshift step.
inline uint64_t hash_bytes(std::string_view s) {
  const char* p = s.data();
  size_t n = s.size();
  uint64_t h = 0x9e3779b97f4a7c15ull ^ n;
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = mix64(h ^ w) + 0x632be59bd9b4e019ull;
    p += 8;
    n -= 8;
  }
  if (n > 0) {
    uint64_t w = 0;
    std::memcpy(&w, p, n);
    h = mix64(h ^ w ^ (static_cast<uint64_t>(n) << 59));
  }
  return h;
}

inline size_t round_up_pow2(size_t n) {
  size_t c = 16;
  while (c < n) c <<= 1;
  return c;
}

class PairRankMap {
 public:
  struct Entry {
    int32_t rank = -1;    // merge priority: lower merges first; -1: no such merge
    int32_t merged = -1;  // id of the merged token
  };

  void reserve(size_t count) { rehash(round_up_pow2(count * 2)); }

  Entry find(int32_t left, int32_t right) const {
    if (slots_.empty()) return {};
    const uint64_t key = make_key(left, right);
    for (size_t i = mix64(key) & mask_;; i = (i + 1) & mask_) {
      if (slots_[i].key == key) return slots_[i].entry;
      if (slots_[i].key == kEmpty) return {};
    }
  }

  // Returns false (and changes nothing) when the pair is already present.
  bool insert(int32_t left, int32_t right, Entry entry) {
    if ((size_ + 1) * 2 > slots_.size()) rehash(round_up_pow2((size_ + 1) * 2));
    const uint64_t key = make_key(left, right);
    for (size_t i = mix64(key) & mask_;; i = (i + 1) & mask_) {
      if (slots_[i].key == key) return false;
      if (slots_[i].key == kEmpty) {
        slots_[i] = {key, entry};
        ++size_;
        return true;
      }
    }
  }

  size_t size() const { return size_; }

 private:
  static constexpr uint64_t kEmpty = ~0ull;
  struct Slot {
    uint64_t key = kEmpty;
    Entry entry;
  };
  static uint64_t make_key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) |
           static_cast<uint32_t>(right);
  }
  void rehash(size_t capacity) {
    std::vector<Slot> old;
    old.swap(slots_);
    slots_.assign(capacity, Slot{});
    mask_ = capacity - 1;
    for (const Slot& s : old) {
      if (s.key == kEmpty) continue;
      size_t i = mix64(s.key) & mask_;
      while (slots_[i].key != kEmpty) i = (i + 1) & mask_;
      slots_[i] = s;
    }
  }
  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

class PieceTable {
 public:
  // Pointer to the ids stored for key (and their number in *count), or nullptr when absent.
  const int32_t* find(std::string_view key, uint64_t hash, uint32_t* count) const {
    if (slots_.empty()) return nullptr;
    for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.key_len == 0) return nullptr;
      if (s.hash == hash && s.key_len == key.size() &&
          std::memcmp(keys_.data() + s.key_offset, key.data(), key.size()) == 0) {
        *count = s.value_len;
        return values_.data() + s.value_offset;
      }
    }
  }

  // key must be non-empty and not yet present.
  void insert(std::string_view key, uint64_t hash, const int32_t* ids, uint32_t count) {
    if ((size_ + 1) * 2 > slots_.size()) rehash(round_up_pow2((size_ + 1) * 2));
    size_t i = hash & mask_;
    while (slots_[i].key_len != 0) i = (i + 1) & mask_;
    slots_[i] = {hash, static_cast<uint32_t>(keys_.size()), static_cast<uint32_t>(key.size()),
                 static_cast<uint32_t>(values_.size()), count};
    keys_.append(key.data(), key.size());
    values_.insert(values_.end(), ids, ids + count);
    ++size_;
  }

  size_t size() const { return size_; }
  size_t bytes_used() const {
    return keys_.size() + values_.size() * 4 + slots_.size() * sizeof(Slot);
  }
  void clear() {
    slots_.clear();
    keys_.clear();
    values_.clear();
    mask_ = 0;
    size_ = 0;
  }

 private:
  struct Slot {
    uint64_t hash = 0;
    uint32_t key_offset = 0, key_len = 0;  // key_len 0: empty slot
    uint32_t value_offset = 0, value_len = 0;
  };
  void rehash(size_t capacity) {
    std::vector<Slot> old;
    old.swap(slots_);
    slots_.assign(capacity, Slot{});
    mask_ = capacity - 1;
    for (const Slot& s : old) {
      if (s.key_len == 0) continue;
      size_t i = s.hash & mask_;
      while (slots_[i].key_len != 0) i = (i + 1) & mask_;
      slots_[i] = s;
    }
  }
  std::vector<Slot> slots_;
  std::string keys_;
  std::vector<int32_t> values_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

}  // namespace bpe_detail
}  // namespace gpt
