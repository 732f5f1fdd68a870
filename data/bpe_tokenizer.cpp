// Byte-level BPE: construction, encode and decode. File formats live in bpe_tokenizer_io.cpp.
#include "data/bpe_tokenizer.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdio>
#include <queue>
#include <stdexcept>

#include "data/pretokenizer.h"
#include "data/unicode_normalize.h"

namespace gpt {
namespace {

using bpe_detail::hash_bytes;
using bpe_detail::PairRankMap;
using bpe_detail::PieceTable;

constexpr int32_t kNoRank = INT32_MAX;
// Pieces up to this many bytes merge with a linear scan over a small array (cache-friendly and
// fastest for the short pieces of real text); longer ones use a heap over a linked list.
constexpr size_t kShortPiece = 64;
// The per-thread cache is emptied when it grows past this many bytes.
constexpr size_t kCacheBytesLimit = size_t{64} << 20;

std::atomic<uint64_t> g_next_uid{1};

// Each thread caches piece -> ids for the tokenizer it used last.
struct ThreadCache {
  uint64_t owner = 0;
  PieceTable table;
};
ThreadCache& thread_cache(uint64_t owner) {
  thread_local ThreadCache cache;
  if (cache.owner != owner || cache.table.bytes_used() > kCacheBytesLimit) {
    cache.table.clear();
    cache.owner = owner;
  }
  return cache;
}

std::string printable(std::string_view bytes) {
  std::string out;
  for (unsigned char c : bytes) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

}  // namespace

BpeTokenizer::BpeTokenizer(std::vector<std::string> token_bytes,
                           const std::vector<std::pair<int32_t, int32_t>>& merges,
                           const std::vector<int32_t>& special_ids, bool ignore_merges)
    : BpeTokenizer(std::move(token_bytes), merges, special_ids, [&] {
        BpeOptions options;
        options.ignore_merges = ignore_merges;
        return options;
      }()) {}

BpeTokenizer::BpeTokenizer(std::vector<std::string> token_bytes,
                           const std::vector<std::pair<int32_t, int32_t>>& merges,
                           const std::vector<int32_t>& special_ids, BpeOptions options)
    : tokens_(std::move(token_bytes)), options_(std::move(options)) {
  const int32_t n = static_cast<int32_t>(tokens_.size());
  if (tokens_.empty()) throw std::invalid_argument("empty vocabulary");
  special_flag_.assign(n, 0);
  for (int32_t id : special_ids) {
    if (id < 0 || id >= n)
      throw std::invalid_argument("special token id " + std::to_string(id) + " out of range");
    if (tokens_[id].empty())
      throw std::invalid_argument("special token " + std::to_string(id) + " is empty");
    if (special_flag_[id]) continue;
    special_flag_[id] = 1;
    special_ids_.push_back(id);
    if (tokens_[id] == "<|endoftext|>") eot_ = id;
  }
  std::sort(special_ids_.begin(), special_ids_.end());

  // Byte string -> id for the ordinary tokens (specials are matched separately).
  PieceTable by_bytes;
  std::fill(std::begin(byte_ids_), std::end(byte_ids_), -1);
  for (int32_t id = 0; id < n; ++id) {
    if (special_flag_[id]) continue;
    const std::string& b = tokens_[id];
    if (b.empty()) throw std::invalid_argument("token " + std::to_string(id) + " is empty");
    uint32_t count = 0;
    const uint64_t h = hash_bytes(b);
    if (by_bytes.find(b, h, &count)) {
      throw std::invalid_argument("tokens " + std::to_string(id) +
                                  " and another id share the bytes '" + printable(b) + "'");
    }
    by_bytes.insert(b, h, &id, 1);
    if (b.size() == 1) byte_ids_[static_cast<unsigned char>(b[0])] = id;
  }
  for (int b = 0; b < 256; ++b) {
    if (byte_ids_[b] < 0) {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "0x%02X", b);
      throw std::invalid_argument(std::string("no token for the byte ") + hex +
                                  " (a byte-level vocabulary needs all 256)");
    }
  }

  merges_.reserve(merges.size());
  pair_ranks_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto [left, right] = merges[rank];
    const std::string where = "merge " + std::to_string(rank) + " (" + std::to_string(left) + ", " +
                              std::to_string(right) + ")";
    if (left < 0 || left >= n || right < 0 || right >= n)
      throw std::invalid_argument(where + ": id out of range");
    if (special_flag_[left] || special_flag_[right])
      throw std::invalid_argument(where + ": uses a special token");
    const std::string joined = tokens_[left] + tokens_[right];
    uint32_t count = 0;
    const int32_t* merged = by_bytes.find(joined, hash_bytes(joined), &count);
    if (!merged)
      throw std::invalid_argument(where + ": merged token '" + printable(joined) +
                                  "' is not in the vocabulary");
    merges_.push_back(merges[rank]);
  }
  // A pair listed twice keeps its last rank, as GPT-2's encoder.py and Hugging Face's loader do
  // (both build a dictionary in file order): insert from the end, the first insert of a pair wins.
  for (size_t rank = merges_.size(); rank-- > 0;) {
    const auto [left, right] = merges_[rank];
    uint32_t count = 0;
    const std::string joined = tokens_[left] + tokens_[right];
    const int32_t merged = *by_bytes.find(joined, hash_bytes(joined), &count);
    pair_ranks_.insert(left, right, {static_cast<int32_t>(rank), merged});
  }

  // Fast path: a piece that equals a token whose own BPE gives back that token.
  std::vector<int32_t> ids;
  for (int32_t id = 0; id < n; ++id) {
    if (special_flag_[id]) continue;
    const std::string& b = tokens_[id];
    bool whole = options_.ignore_merges || b.size() == 1;
    if (!whole) {
      ids.clear();
      merge_piece(b, &ids);
      whole = ids.size() == 1 && ids[0] == id;
    }
    if (whole) whole_tokens_.insert(b, hash_bytes(b), &id, 1);
  }

  auto check_ids = [&](const std::vector<int32_t>& ids, const char* what, bool special) {
    for (int32_t id : ids) {
      if (id < 0 || id >= n)
        throw std::invalid_argument(std::string(what) + " id " + std::to_string(id) +
                                    " out of range");
      if ((special_flag_[id] != 0) != special)
        throw std::invalid_argument(std::string(what) + " id " + std::to_string(id) +
                                    (special ? " is not special" : " is a special token"));
    }
  };
  check_ids(options_.added_ids, "added token", false);
  check_ids(options_.prefix_ids, "post-processor", true);
  check_ids(options_.suffix_ids, "post-processor", true);
  std::sort(options_.added_ids.begin(), options_.added_ids.end());
  options_.added_ids.erase(std::unique(options_.added_ids.begin(), options_.added_ids.end()),
                           options_.added_ids.end());
  for (int32_t id : special_ids_) {
    match_allowed_.emplace_back(tokens_[id]);
    match_allowed_ids_.push_back(id);
  }
  for (int32_t id : options_.added_ids) {
    for (auto* list : {&match_allowed_, &match_as_text_}) list->emplace_back(tokens_[id]);
    match_allowed_ids_.push_back(id);
    match_as_text_ids_.push_back(id);
  }
  uid_ = g_next_uid.fetch_add(1);
}

int BpeTokenizer::special_token_id(std::string_view text) const {
  for (int32_t id : special_ids_) {
    if (tokens_[id] == text) return id;
  }
  return -1;
}

bool BpeTokenizer::is_special(int id) const {
  return id >= 0 && id < vocab_size() && special_flag_[id] != 0;
}

const std::string& BpeTokenizer::token_bytes(int id) const {
  if (id < 0 || id >= vocab_size()) {
    throw std::out_of_range("token id " + std::to_string(id) + " outside the vocabulary [0, " +
                            std::to_string(vocab_size()) + ")");
  }
  return tokens_[id];
}

void BpeTokenizer::clear_cache() const {
  thread_cache(uid_).table.clear();
}

// ---------------------------------------------------------------------------------------------
// Encode
// ---------------------------------------------------------------------------------------------

std::vector<int32_t> BpeTokenizer::encode(std::string_view text, SpecialTokens special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 8);
  encode_append(text, special, &out);
  return out;
}

std::vector<int32_t> BpeTokenizer::encode_with_template(std::string_view text,
                                                        SpecialTokens special) const {
  std::vector<int32_t> out = options_.prefix_ids;
  encode_append(text, special, &out);
  out.insert(out.end(), options_.suffix_ids.begin(), options_.suffix_ids.end());
  return out;
}

// Hugging Face cuts the added tokens out of the raw text, then normalizes what lies between them.
void BpeTokenizer::encode_append(std::string_view text, SpecialTokens special,
                                 std::vector<int32_t>* out) const {
  const bool allowed = special == SpecialTokens::kAllowed;
  const std::vector<std::string_view>& match = allowed ? match_allowed_ : match_as_text_;
  const std::vector<int32_t>& ids = allowed ? match_allowed_ids_ : match_as_text_ids_;
  if (match.empty()) {
    encode_ordinary(text, out);
    return;
  }
  split_on_specials(
      text, match, [&](std::string_view segment) { encode_ordinary(segment, out); },
      [&](size_t k) { out->push_back(ids[k]); });
}

void BpeTokenizer::encode_ordinary(std::string_view text, std::vector<int32_t>* out) const {
  if (options_.normalizer == Normalizer::kNfc) {
    thread_local std::string buffer;
    encode_pieces(nfc_normalize(text, &buffer), out);
    return;
  }
  encode_pieces(text, out);
}

void BpeTokenizer::encode_pieces(std::string_view text, std::vector<int32_t>* out) const {
  if (options_.pre_tokenizer == PreTokenizer::kGpt2) {  // the common case, inlined
    for_each_gpt2_piece(text, [&](std::string_view piece) { encode_piece(piece, out); });
    return;
  }
  for_each_piece(options_.pre_tokenizer, text,
                 [&](std::string_view piece) { encode_piece(piece, out); });
}

void BpeTokenizer::encode_piece(std::string_view piece, std::vector<int32_t>* out) const {
  if (piece.size() == 1) {
    out->push_back(byte_ids_[static_cast<unsigned char>(piece[0])]);
    return;
  }
  const uint64_t h = hash_bytes(piece);
  uint32_t count = 0;
  if (const int32_t* id = whole_tokens_.find(piece, h, &count)) {
    out->push_back(*id);
    return;
  }
  ThreadCache& cache = thread_cache(uid_);
  if (const int32_t* ids = cache.table.find(piece, h, &count)) {
    out->insert(out->end(), ids, ids + count);
    return;
  }
  const size_t before = out->size();
  merge_piece(piece, out);
  cache.table.insert(piece, h, out->data() + before, static_cast<uint32_t>(out->size() - before));
}

// Linear-scan BPE for short pieces: ids[i] are the current symbols, next[i] the merge available
// between symbols i and i+1. Each round merges the pair of lowest rank (leftmost on ties), then
// refreshes the two pairs that touch the new symbol. O(n^2) in the worst case, but n <= 64.
void BpeTokenizer::merge_piece(std::string_view piece, std::vector<int32_t>* out) const {
  const size_t n0 = piece.size();
  if (n0 > kShortPiece) {
    merge_piece_long(piece, out);
    return;
  }
  int32_t ids[kShortPiece];
  PairRankMap::Entry next[kShortPiece];
  for (size_t i = 0; i < n0; ++i) ids[i] = byte_ids_[static_cast<unsigned char>(piece[i])];
  size_t n = n0;
  for (size_t i = 0; i + 1 < n; ++i) next[i] = pair_ranks_.find(ids[i], ids[i + 1]);
  while (n > 1) {
    int32_t best_rank = kNoRank;
    size_t best = 0;
    for (size_t i = 0; i + 1 < n; ++i) {
      if (next[i].rank >= 0 && next[i].rank < best_rank) {
        best_rank = next[i].rank;
        best = i;
      }
    }
    if (best_rank == kNoRank) break;
    ids[best] = next[best].merged;
    for (size_t i = best + 1; i + 1 < n; ++i) {
      ids[i] = ids[i + 1];
      next[i] = next[i + 1];
    }
    --n;
    if (best > 0) next[best - 1] = pair_ranks_.find(ids[best - 1], ids[best]);
    if (best + 1 < n) next[best] = pair_ranks_.find(ids[best], ids[best + 1]);
  }
  out->insert(out->end(), ids, ids + n);
}

// Heap BPE for long pieces: symbols form a doubly linked list over byte positions; the heap holds
// candidate merges (rank, position of the left symbol), smallest first, so ties go to the leftmost
// pair as in the linear scan. Entries go stale when a neighbour merges; a popped entry is used only
// if its left symbol is still alive and the pair there still has that rank. O(n log n).
void BpeTokenizer::merge_piece_long(std::string_view piece, std::vector<int32_t>* out) const {
  const int32_t n = static_cast<int32_t>(piece.size());
  std::vector<int32_t> ids(n), prev(n), next(n);
  for (int32_t i = 0; i < n; ++i) {
    ids[i] = byte_ids_[static_cast<unsigned char>(piece[i])];
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  using Candidate = std::pair<int32_t, int32_t>;  // (rank, left position)
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
  auto push_pair = [&](int32_t left) {
    if (left < 0 || next[left] < 0) return;
    const PairRankMap::Entry e = pair_ranks_.find(ids[left], ids[next[left]]);
    if (e.rank >= 0) heap.push({e.rank, left});
  };
  for (int32_t i = 0; i + 1 < n; ++i) push_pair(i);
  std::vector<uint8_t> alive(n, 1);
  while (!heap.empty()) {
    const auto [rank, left] = heap.top();
    heap.pop();
    if (!alive[left] || next[left] < 0) continue;
    const int32_t right = next[left];
    const PairRankMap::Entry e = pair_ranks_.find(ids[left], ids[right]);
    if (e.rank != rank) continue;  // stale: one of the two symbols changed since the push
    ids[left] = e.merged;
    alive[right] = 0;
    next[left] = next[right];
    if (next[right] >= 0) prev[next[right]] = left;
    push_pair(prev[left]);
    push_pair(left);
  }
  for (int32_t i = 0; i >= 0; i = next[i]) out->push_back(ids[i]);
}

std::vector<std::vector<int32_t>> BpeTokenizer::encode_batch(const std::vector<std::string>& texts,
                                                             SpecialTokens special,
                                                             int threads) const {
  return encode_batch(std::vector<std::string_view>(texts.begin(), texts.end()), special, threads);
}

std::vector<std::vector<int32_t>> BpeTokenizer::encode_batch(
    const std::vector<std::string_view>& texts, SpecialTokens special, int threads) const {
  std::vector<std::vector<int32_t>> out(texts.size());
  const int nthreads = threads > 0 ? threads : omp_get_max_threads();
  const int64_t count = static_cast<int64_t>(texts.size());
#pragma omp parallel for schedule(dynamic, 16) num_threads(nthreads)
  for (int64_t i = 0; i < count; ++i) {
    out[i].reserve(texts[i].size() / 3 + 8);
    encode_append(texts[i], special, &out[i]);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Decode
// ---------------------------------------------------------------------------------------------

std::string BpeTokenizer::decode(const int32_t* ids, size_t count) const {
  std::string out;
  out.reserve(count * 4);
  for (size_t i = 0; i < count; ++i) out += token_bytes(ids[i]);
  return out;
}

std::string BpeTokenizer::decode(const std::vector<int32_t>& ids) const {
  return decode(ids.data(), ids.size());
}

}  // namespace gpt
