#include "data/bpe_trainer.h"

#include <algorithm>
#include <fstream>
#include <queue>
#include <stdexcept>

#include "data/pretokenizer.h"

namespace gpt {
namespace {

using PairKey = uint64_t;  // (left id << 32) | right id
inline PairKey pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}
inline int32_t pair_left(PairKey k) {
  return static_cast<int32_t>(k >> 32);
}
inline int32_t pair_right(PairKey k) {
  return static_cast<int32_t>(k & 0xffffffffu);
}

struct Word {
  std::vector<int32_t> symbols;
  int64_t count;
};

// Heap entry: the most frequent pair first, then the smallest pair key.
struct Candidate {
  int64_t count;
  PairKey pair;
  bool operator<(const Candidate& o) const {
    return count != o.count ? count < o.count : pair > o.pair;
  }
};

struct PairStats {
  std::unordered_map<PairKey, int64_t> counts;
  std::unordered_map<PairKey, std::vector<int32_t>> words;  // may repeat a word or list stale ones
};

}  // namespace

BpeTrainer::BpeTrainer(BpeTrainerOptions options) : options_(std::move(options)) {
  for (const std::string& s : options_.special_tokens) {
    if (s.empty()) throw std::invalid_argument("BpeTrainer: empty special token");
  }
}

void BpeTrainer::add_text(std::string_view text) {
  corpus_bytes_ += static_cast<int64_t>(text.size());
  auto count_pieces = [&](std::string_view part) {
    for_each_gpt2_piece(part, [&](std::string_view piece) { ++word_counts_[std::string(piece)]; });
  };
  const std::vector<std::string_view> specials(options_.special_tokens.begin(),
                                               options_.special_tokens.end());
  split_on_specials(text, specials, count_pieces, [](size_t) {});
}

void BpeTrainer::add_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open training file " + path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw std::runtime_error("read error in training file " + path);
  add_text(text);
}

BpeTokenizer BpeTrainer::train() const {
  const int num_special = static_cast<int>(options_.special_tokens.size());
  const int wanted_merges = options_.vocab_size - 256 - num_special;
  if (wanted_merges < 0) {
    throw std::invalid_argument("BpeTrainer: vocab_size " + std::to_string(options_.vocab_size) +
                                " cannot hold 256 byte tokens and " + std::to_string(num_special) +
                                " special tokens");
  }
  // Vocabulary so far: the bytes in GPT-2's order.
  std::vector<std::string> tokens;
  int32_t byte_id[256];
  const std::vector<uint8_t>& order = gpt2_byte_order();
  for (int id = 0; id < 256; ++id) {
    tokens.emplace_back(1, static_cast<char>(order[id]));
    byte_id[order[id]] = id;
  }

  // Words in a fixed order (sorted by text), so nothing depends on hash-map iteration order.
  std::vector<const std::pair<const std::string, int64_t>*> sorted;
  sorted.reserve(word_counts_.size());
  for (const auto& wc : word_counts_) sorted.push_back(&wc);
  std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->first < b->first; });
  std::vector<Word> words;
  words.reserve(sorted.size());
  for (const auto* wc : sorted) {
    if (wc->first.size() < 2) continue;  // no pair inside
    Word w{{}, wc->second};
    for (unsigned char c : wc->first) w.symbols.push_back(byte_id[c]);
    words.push_back(std::move(w));
  }

  PairStats stats;
  for (int32_t wi = 0; wi < static_cast<int32_t>(words.size()); ++wi) {
    const Word& w = words[wi];
    for (size_t i = 0; i + 1 < w.symbols.size(); ++i) {
      const PairKey k = pair_key(w.symbols[i], w.symbols[i + 1]);
      stats.counts[k] += w.count;
      stats.words[k].push_back(wi);
    }
  }
  std::priority_queue<Candidate> heap;
  {
    std::vector<Candidate> initial;
    initial.reserve(stats.counts.size());
    for (const auto& [k, c] : stats.counts) initial.push_back({c, k});
    heap = std::priority_queue<Candidate>(std::less<Candidate>(), std::move(initial));
  }

  // Two different merges can spell the same bytes ("ab"+"c" and "a"+"bc"): the second one then
  // reuses the first one's id (as Hugging Face's trainer does), so every token's bytes are unique.
  std::unordered_map<std::string, int32_t> id_of_bytes;
  for (int32_t id = 0; id < 256; ++id) id_of_bytes[tokens[id]] = id;
  const size_t wanted_tokens = 256 + static_cast<size_t>(wanted_merges);
  std::vector<std::pair<int32_t, int32_t>> merges;
  std::vector<std::pair<PairKey, int64_t>> deltas;  // pair count changes of one merge step
  std::vector<int32_t> rewritten;
  while (tokens.size() < wanted_tokens && !heap.empty()) {
    const Candidate top = heap.top();
    heap.pop();
    const auto it = stats.counts.find(top.pair);
    const int64_t current = it == stats.counts.end() ? 0 : it->second;
    if (current != top.count) {  // stale entry
      if (current > 0) heap.push({current, top.pair});
      continue;
    }
    if (current < std::max<int64_t>(options_.min_pair_count, 1)) break;

    const int32_t left = pair_left(top.pair), right = pair_right(top.pair);
    std::string merged_bytes = tokens[left] + tokens[right];
    const auto [known, is_new] =
        id_of_bytes.emplace(merged_bytes, static_cast<int32_t>(tokens.size()));
    const int32_t merged = known->second;
    if (is_new) tokens.push_back(std::move(merged_bytes));
    merges.emplace_back(left, right);

    // Rewrite each word that contains the pair; record how every pair's count changes.
    std::vector<int32_t> touched = std::move(stats.words[top.pair]);
    stats.words.erase(top.pair);
    std::sort(touched.begin(), touched.end());
    touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
    deltas.clear();
    for (int32_t wi : touched) {
      Word& w = words[wi];
      const std::vector<int32_t>& s = w.symbols;
      rewritten.clear();
      bool changed = false;
      for (size_t i = 0; i < s.size();) {
        if (i + 1 < s.size() && s[i] == left && s[i + 1] == right) {
          rewritten.push_back(merged);
          i += 2;
          changed = true;
        } else {
          rewritten.push_back(s[i]);
          i += 1;
        }
      }
      if (!changed) continue;  // stale entry in the word list
      for (size_t i = 0; i + 1 < s.size(); ++i)
        deltas.push_back({pair_key(s[i], s[i + 1]), -w.count});
      for (size_t i = 0; i + 1 < rewritten.size(); ++i) {
        const PairKey k = pair_key(rewritten[i], rewritten[i + 1]);
        deltas.push_back({k, w.count});
        if (rewritten[i] == merged || rewritten[i + 1] == merged) stats.words[k].push_back(wi);
      }
      w.symbols.swap(rewritten);
    }
    // Apply the net changes; pairs that gained count go back on the heap with their new count.
    std::sort(deltas.begin(), deltas.end());
    for (size_t i = 0; i < deltas.size();) {
      const PairKey k = deltas[i].first;
      int64_t d = 0;
      for (; i < deltas.size() && deltas[i].first == k; ++i) d += deltas[i].second;
      if (d == 0) continue;
      int64_t& c = stats.counts[k];
      c += d;
      if (d > 0) heap.push({c, k});
      if (c == 0) stats.counts.erase(k);
    }
    const int learned = static_cast<int>(tokens.size()) - 256;
    if (is_new && options_.progress && options_.progress_every > 0 &&
        learned % options_.progress_every == 0) {
      options_.progress(learned, wanted_merges);
    }
  }

  std::vector<int32_t> special_ids;
  for (const std::string& s : options_.special_tokens) {
    special_ids.push_back(static_cast<int32_t>(tokens.size()));
    tokens.push_back(s);
  }
  return BpeTokenizer(std::move(tokens), merges, special_ids);
}

BpeTokenizer train_bpe(const std::vector<std::string>& texts, const BpeTrainerOptions& options) {
  BpeTrainer trainer(options);
  for (const std::string& t : texts) trainer.add_text(t);
  return trainer.train();
}

}  // namespace gpt
