// Byte-level BPE tokenizer, compatible with GPT-2 (OpenAI's encoder.json + vocab.bpe, Hugging
// Face's vocab.json + merges.txt or tokenizer.json).
//
// How text becomes ids (docs/tokenizer.md has the long version):
//   1. Special tokens such as <|endoftext|> are cut out first when allowed: one id each.
//   2. The text in between is split into pieces by GPT-2's regex (data/pretokenizer.h), so no
//      token ever crosses e.g. a letter/punctuation boundary.
//   3. Each piece is encoded on its own by byte-pair merging: start from one token per byte, then
//      repeatedly merge the adjacent pair with the lowest merge rank (the order in which training
//      learned the merges) until no adjacent pair has a merge. This is the reference algorithm of
//      GPT-2's encoder.py and Hugging Face's BPE model; tiktoken's rank-based byte_pair_merge gives
//      the same ids on GPT-2's vocabulary (tests/reference/check_tokenizer.py checks it).
//   Fast paths: pieces that are themselves a token whose own BPE is that token (most English words
//   on GPT-2) are answered by one hash lookup; the rest go through a per-thread cache (piece ->
//   ids) so a repeated word is merged once; pieces over 64 bytes use a heap instead of a linear
//   scan, so a megabyte-long word costs O(n log n), not O(n^2).
//
// Token ids: the vocabulary is ids 0 .. vocab_size()-1, each with its bytes (token_bytes). Special
// tokens (GPT-2: <|endoftext|> = 50256) are never produced by BPE; they are matched as whole
// strings in the text (their bytes are their literal text). Every one of the 256 bytes has a token,
// so any input encodes. docs/tokenizer.md says which tokens of a file count as special.
//
// Thread safety: a tokenizer is immutable after construction; encode may run concurrently on many
// threads (each thread keeps its own merge cache).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "data/bpe_tables.h"
#include "data/pretokenizer.h"

namespace gpt {

// Whether text that spells a special token (e.g. "<|endoftext|>") becomes that special token's id
// (kAllowed) or is encoded as ordinary text (kAsText, like tiktoken's encode_ordinary).
enum class SpecialTokens { kAllowed, kAsText };

// Text normalization applied before pre-tokenization (tokenizer.json's "normalizer").
enum class Normalizer { kNone, kNfc };

// What a tokenizer.json adds to byte-level BPE (GPT-2's files need none of it).
struct BpeOptions {
  bool ignore_merges = false;  // a piece that is a whole token is that token (model.ignore_merges)
  PreTokenizer pre_tokenizer = PreTokenizer::kGpt2;
  Normalizer normalizer = Normalizer::kNone;
  // Added tokens that are not special ("special": false): always matched in the text, like HF.
  std::vector<int32_t> added_ids;
  // Ids the post-processor puts before and after a text when asked for (HF's
  // add_special_tokens=True; Llama 3's TemplateProcessing puts <|begin_of_text|> before).
  std::vector<int32_t> prefix_ids, suffix_ids;
};

class BpeTokenizer {
 public:
  // Loads a tokenizer from a directory holding one of, checked in this order:
  //   tokenizer.json            Hugging Face tokenizers (BPE model, ByteLevel pre-tokenizer)
  //   vocab.json + merges.txt   Hugging Face GPT2Tokenizer
  //   encoder.json + vocab.bpe  OpenAI GPT-2
  // or from a path to a tokenizer.json file. Throws std::runtime_error naming the file and problem.
  static BpeTokenizer load(const std::string& path);

  // Builds a tokenizer from its parts. token_bytes[id] is each token's byte string (a special
  // token's literal text); merges are (left id, right id) in rank order, each merged token must be
  // in token_bytes; special_ids lists the special tokens. When ignore_merges is true, a piece that
  // is a whole token is that token even if merging would not reach it (tokenizer.json's
  // ignore_merges). Throws std::invalid_argument describing the first inconsistency.
  BpeTokenizer(std::vector<std::string> token_bytes,
               const std::vector<std::pair<int32_t, int32_t>>& merges,
               const std::vector<int32_t>& special_ids, bool ignore_merges = false);
  // The same with a tokenizer.json's options. Added tokens (options.added_ids) are ordinary tokens
  // whose bytes are also matched as whole strings in the text, whatever SpecialTokens says.
  BpeTokenizer(std::vector<std::string> token_bytes,
               const std::vector<std::pair<int32_t, int32_t>>& merges,
               const std::vector<int32_t>& special_ids, BpeOptions options);

  std::vector<int32_t> encode(std::string_view text,
                              SpecialTokens special = SpecialTokens::kAllowed) const;
  // Appends the ids of text to *out (no allocation once the vector and the cache are warm).
  void encode_append(std::string_view text, SpecialTokens special, std::vector<int32_t>* out) const;
  // encode() between the post-processor's prefix and suffix ids (HF's add_special_tokens=True).
  std::vector<int32_t> encode_with_template(std::string_view text,
                                            SpecialTokens special = SpecialTokens::kAsText) const;
  // Encodes many documents, spread over `threads` OpenMP threads (0: OpenMP's default).
  std::vector<std::vector<int32_t>> encode_batch(const std::vector<std::string_view>& texts,
                                                 SpecialTokens special, int threads = 0) const;
  std::vector<std::vector<int32_t>> encode_batch(const std::vector<std::string>& texts,
                                                 SpecialTokens special, int threads = 0) const;

  // The bytes of the ids, concatenated. Throws std::out_of_range for an id outside the vocabulary.
  std::string decode(const std::vector<int32_t>& ids) const;
  std::string decode(const int32_t* ids, size_t count) const;

  int vocab_size() const { return static_cast<int>(tokens_.size()); }
  int num_merges() const { return static_cast<int>(merges_.size()); }
  // Id of <|endoftext|> when it is a special token of this vocabulary, else -1.
  int eot_token() const { return eot_; }
  // Id of the special token with this text, or -1.
  int special_token_id(std::string_view text) const;
  const std::vector<int32_t>& special_ids() const { return special_ids_; }
  bool is_special(int id) const;
  // Bytes of one token. Throws std::out_of_range for an id outside the vocabulary.
  const std::string& token_bytes(int id) const;
  PreTokenizer pre_tokenizer() const { return options_.pre_tokenizer; }
  Normalizer normalizer() const { return options_.normalizer; }
  // The post-processor's ids around a text (empty for GPT-2, <|begin_of_text|> first for Llama 3).
  const std::vector<int32_t>& prefix_ids() const { return options_.prefix_ids; }
  const std::vector<int32_t>& suffix_ids() const { return options_.suffix_ids; }
  // Added tokens that are not special, ascending.
  const std::vector<int32_t>& added_ids() const { return options_.added_ids; }
  // Merges in rank order, as (left id, right id).
  const std::vector<std::pair<int32_t, int32_t>>& merges() const { return merges_; }

  // Writes vocab.json, merges.txt (GPT2Tokenizer), tokenizer.json (tokenizers.Tokenizer.from_file,
  // GPT2TokenizerFast) and tokenizer_config.json into dir (created if needed). Each file is written
  // under a temporary name and renamed, so no half-written file is left behind.
  void save_hf(const std::string& dir) const;

  // Empties the calling thread's merge cache (benchmarks use it to time a cold tokenizer).
  void clear_cache() const;

 private:
  // Text without special or added tokens: normalized, pre-tokenized, each piece merged.
  void encode_ordinary(std::string_view text, std::vector<int32_t>* out) const;
  void encode_pieces(std::string_view text, std::vector<int32_t>* out) const;
  void encode_piece(std::string_view piece, std::vector<int32_t>* out) const;
  // BPE of one piece from its bytes: appends the ids to *out.
  void merge_piece(std::string_view piece, std::vector<int32_t>* out) const;
  void merge_piece_long(std::string_view piece, std::vector<int32_t>* out) const;

  std::vector<std::string> tokens_;                  // id -> bytes
  std::vector<std::pair<int32_t, int32_t>> merges_;  // rank -> (left, right)
  std::vector<int32_t> special_ids_;                 // ascending
  std::vector<uint8_t> special_flag_;                // id -> 1 when special
  int32_t byte_ids_[256];                            // byte value -> its token
  bpe_detail::PairRankMap pair_ranks_;               // (left, right) -> (rank, merged)
  bpe_detail::PieceTable whole_tokens_;  // bytes -> id, for tokens BPE maps to themselves
  int eot_ = -1;
  BpeOptions options_;
  // Strings cut out of the text before BPE, and their ids: with SpecialTokens::kAllowed the special
  // and added tokens, with kAsText the added tokens only.
  std::vector<std::string_view> match_allowed_, match_as_text_;
  std::vector<int32_t> match_allowed_ids_, match_as_text_ids_;
  uint64_t uid_ = 0;  // identifies this vocabulary to the per-thread caches
};

// GPT-2's reversible byte <-> Unicode mapping, used to store byte strings as printable JSON text in
// vocab.json/merges.txt: the 188 printable Latin-1 bytes map to themselves, the other 68 bytes to
// U+0100 onwards. Token ids 0..255 of GPT-2 are the bytes in this order: gpt2_byte_order()[id].
const std::vector<uint8_t>& gpt2_byte_order();
std::string bytes_to_gpt2_unicode(std::string_view bytes);
// Inverse mapping; returns false when text holds a character outside the 256 of the mapping.
bool gpt2_unicode_to_bytes(std::string_view text, std::string* bytes);

// Finds the real GPT-2 tokenizer files (encoder.json + vocab.bpe): $GPT_TOKENIZER_DIR, else
// ../shared/data/gpt2 or .deps/gpt2 (where scripts/fetch_gpt2_tokenizer.sh puts them) relative to
// the project root, searched upwards from the running executable and from the current directory.
// Returns "" when none is found.
std::string find_gpt2_tokenizer_dir();

// Resolves a --tokenizer argument: "gpt2" -> find_gpt2_tokenizer_dir() (throws std::runtime_error
// explaining how to get the files when they are not found); anything else is returned unchanged.
std::string resolve_tokenizer_path(const std::string& name_or_path);

}  // namespace gpt
