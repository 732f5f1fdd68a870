// gpt-prepare's library: text -> token shards for pretraining (this header) and fine-tuning
// (data/finetune.h). apps/prepare.cpp is only the command line around these functions.
//
// Pretraining data, step by step (docs/data.md has the long version):
//   1. Inputs: text files (one document per file, or documents cut at blank lines) or JSONL (one
//      document per line, the string field --field). Every input is read and checked first.
//   2. Split: the validation set is the last --val-docs documents, or the last --val-fraction of
//      the text's bytes, cut at a line start. The split is made on text, not tokens, so every
//      tokenizer is validated on exactly the same bytes and bits per byte compare across
//      tokenizers.
//   3. Tokenizer: bytes (256 byte tokens + <|endoftext|>), a BPE directory, gpt2, or a BPE trained
//      here on the training split only (no validation text leaks into the vocabulary).
//   4. Encode on OpenMP threads. Long documents are cut into chunks at places where the
//      pre-tokenizer splits anyway, so the ids are the same as encoding each document whole, and
//      the output is identical for any thread count.
//   5. Streams: <|endoftext|> before every document (llm.c's convention), train and val apart.
//   6. Output: shards, meta.json and tokenizer/ are written into a staging folder inside OUT and
//      only then moved into place; a failure before that leaves OUT untouched.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "data/bpe_tokenizer.h"
#include "data/text_input.h"
#include "engine/progress.h"

namespace gpt {

// ---- the tokenizer ------------------------------------------------------------------------------

// The tokenizer prepare encodes with: the built-in byte tokenizer (id = byte value, 256 =
// <|endoftext|>, vocabulary 257) or a byte-level BPE. Text that spells a special token is encoded
// as ordinary text: the only <|endoftext|> ids in the output are the ones prepare puts between
// documents.
class PrepareTokenizer {
 public:
  static PrepareTokenizer bytes();
  // kind: "gpt2", "trained" or "path" (a directory given by the user); source: where it came from.
  PrepareTokenizer(BpeTokenizer bpe, std::string kind, std::string source);

  void encode_append(std::string_view text, std::vector<int32_t>* out) const;
  std::vector<int32_t> encode(std::string_view text) const;
  std::string decode(const std::vector<int32_t>& ids) const;
  // Bytes that the token stands for (0 for <|endoftext|>).
  size_t token_text_bytes(int32_t id) const;
  int vocab_size() const;
  int eot_token() const;
  const BpeTokenizer* bpe() const { return bpe_.get(); }
  const std::string& kind() const { return kind_; }
  const std::string& source() const { return source_; }

 private:
  PrepareTokenizer() = default;
  std::shared_ptr<const BpeTokenizer> bpe_;  // null: bytes
  std::string kind_ = "bytes";
  std::string source_;
};

struct TokenizerSpec {
  std::string name = "bytes";  // bytes | gpt2 | a directory (OpenAI or Hugging Face files)
  bool train = false;          // train a new BPE (name must be "bytes", the default)
  int vocab_size = 0;          // with train: the vocabulary size (>= 257)
};

// Checks a spec without doing work (so flag errors come before reading any input): throws
// std::invalid_argument naming the flag.
void check_tokenizer_spec(const TokenizerSpec& spec);

// Builds the tokenizer. With spec.train, a BPE is trained on the texts (with <|endoftext|>
// reserved as its last id). A BPE without <|endoftext|> is an error (prepare needs it between
// documents). Throws std::runtime_error naming the directory or the problem.
PrepareTokenizer make_tokenizer(const TokenizerSpec& spec,
                                const std::vector<std::string_view>& training_texts);

// ---- encoding -----------------------------------------------------------------------------------

// Progress of long work on stderr: "tokenizing  43.1%  12.0/27.9 MB  5.2 MB/s  ETA 3s". In line
// mode one line redrawn in place (engine/progress.h), in plain mode a line every 10 s and the final
// one when the work took over 2 s; none: nothing. Only OpenMP's thread 0 draws.
class Progress {
 public:
  Progress(std::string label, int64_t total_bytes, ProgressMode mode);
  ~Progress();
  void add(int64_t bytes);  // thread-safe
  void finish();

 private:
  std::string text(bool final_line) const;
  std::string label_;
  int64_t total_;
  ProgressMode mode_;
  bool finished_ = false;
  std::atomic<int64_t> done_{0};
  std::chrono::steady_clock::time_point start_, last_draw_;
  ProgressLine line_;
};

// Offsets where a text may be cut into chunks that encode independently to the same ids as the
// whole: just before a '\n' whose previous byte is printable ASCII other than a space (GPT-2's
// pre-tokenizer, alone or after Digits), or an ASCII letter or digit (Llama 3's and Qwen2's Split,
// whose punctuation pieces take the line ends that follow). Every pre-tokenizer piece that holds
// that byte ends there, the pre-tokenizer has no look-behind, and NFC never joins a '\n' to what
// precedes it, so a fresh scan from the '\n' sees what the whole-text scan sees. Returns the cut
// offsets, about chunk_bytes apart, ascending, excluding 0 and text.size().
std::vector<size_t> chunk_cut_points(std::string_view text, size_t chunk_bytes,
                                     PreTokenizer kind = PreTokenizer::kGpt2);

// Encodes every text (as ordinary text) on `threads` OpenMP threads (0: OpenMP's default); long
// texts are cut at chunk_cut_points. result[i] holds the ids of texts[i]; identical for any thread
// count. progress may be null.
std::vector<std::vector<int32_t>> encode_texts(const PrepareTokenizer& tokenizer,
                                               const std::vector<std::string_view>& texts,
                                               int threads, Progress* progress,
                                               size_t chunk_bytes = 1 << 16);

// ---- output -------------------------------------------------------------------------------------

// Writes a prepared data set into OUT all at once: files are written into a staging folder
// OUT/.prepare-staging-<pid> and commit() moves them into OUT, after deleting what an earlier
// prepare left there (train_*/val_* shards and masks, meta.json, tokenizer/). OUT itself is created
// by the constructor (nothing else is written before commit). Destroyed without commit: the
// staging folder is removed; the staging folders of killed prepares are removed by the next one.
// kill -9 at any moment leaves either the previous data set whole (before commit) or, during the
// moves, OUT/.prepare-incomplete, which makes every shard reader refuse the folder (data/shard.h).
class OutputStage {
 public:
  explicit OutputStage(const std::string& out_dir);
  ~OutputStage();
  OutputStage(const OutputStage&) = delete;
  OutputStage& operator=(const OutputStage&) = delete;
  // Path of a file to write in the staging folder.
  std::string path(const std::string& name) const;
  // Writes text under a temporary name and renames it (into the staging folder).
  void write_text(const std::string& name, const std::string& text) const;
  void commit();

 private:
  std::string out_, staging_;
  bool committed_ = false;
};

// Writes tokens as shards PREFIX_000000.bin, PREFIX_000001.bin, ... of at most shard_tokens tokens
// into the stage; returns the file names.
std::vector<std::string> write_token_shards(const OutputStage& stage, const std::string& prefix,
                                            const std::vector<int32_t>& tokens,
                                            int64_t shard_tokens);

// Saves a BPE tokenizer into the stage's tokenizer/ (vocab.json, merges.txt, tokenizer.json,
// tokenizer_config.json; a Hugging Face model directory's own tokenizer files replace those of the
// same name, copy_hub_tokenizer_files) and fills the tokenizer fields of meta.json: tokenizer
// (kind), tokenizer_dir ("tokenizer", relative to meta.json; BPE only), tokenizer_source,
// vocab_size, eot_token.
void stage_tokenizer(const OutputStage& stage, const PrepareTokenizer& tokenizer,
                     nlohmann::ordered_json* meta);

// ---- pretraining --------------------------------------------------------------------------------

enum class InputFormat { kText, kJsonl };

struct PrepareOptions {
  std::vector<std::string> inputs;  // files or globs
  std::string out;
  InputFormat format = InputFormat::kText;
  DocumentSplit split = DocumentSplit::kWholeFile;  // text inputs
  std::string field = "text";                       // JSONL inputs
  TokenizerSpec tokenizer;
  double val_fraction = 0.1;  // used when val_docs == 0
  int64_t val_docs = 0;
  int64_t shard_tokens = 100'000'000;
  int threads = 0;                             // 0: OpenMP's default
  ProgressMode progress = ProgressMode::none;  // how the tokenizing progress is shown
};

struct PrepareResult {
  int64_t documents = 0, val_documents = 0;
  int64_t input_bytes = 0, val_bytes = 0;
  int64_t train_tokens = 0, val_tokens = 0;
  int vocab_size = 0;
  double tokenize_seconds = 0.0;    // encoding only
  double tokenizer_seconds = 0.0;   // loading or training the tokenizer
  std::vector<std::string> shards;  // file names written into OUT
};

// Reads, splits, tokenizes and writes a pretraining data set (see the top of this file). Throws
// InputError (file:line) for bad input and std::invalid_argument for bad options, before anything
// is written.
PrepareResult prepare_pretraining(const PrepareOptions& options);

}  // namespace gpt
