// Token shards in llm.c's formats, so data prepared by llm.c's scripts loads as is:
//
//   header: 256 int32 (1024 bytes): [0] magic, [1] version, [2] number of tokens, rest zero
//   magic 20240520, version 1: uint16 tokens (vocabularies up to 65,536)
//   magic 20240801, version 7: uint32 tokens
//
// TokenShard maps a shard read-only (mmap), validates the header against the file size, and
// optionally checks every token against a vocabulary size; every error names the file and what was
// wrong. write_token_shard writes a shard atomically (temporary file, fsync, rename).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gpt {

constexpr int32_t kShardMagicU16 = 20240520;
constexpr int32_t kShardVersionU16 = 1;
constexpr int32_t kShardMagicU32 = 20240801;
constexpr int32_t kShardVersionU32 = 7;
constexpr size_t kShardHeaderInts = 256;

class TokenShard {
 public:
  // Throws std::runtime_error naming `path` for a missing file, a bad magic, version or size, or
  // (when vocab_size > 0) a token >= vocab_size with its position.
  explicit TokenShard(const std::string& path, int vocab_size = 0);
  ~TokenShard();
  TokenShard(TokenShard&& other) noexcept;
  TokenShard& operator=(TokenShard&&) = delete;
  TokenShard(const TokenShard&) = delete;

  const std::string& path() const { return path_; }
  int64_t size() const { return num_tokens_; }
  int bytes_per_token() const { return token_bytes_; }
  int32_t operator[](int64_t i) const {
    return token_bytes_ == 2 ? static_cast<int32_t>(u16_[i]) : static_cast<int32_t>(u32_[i]);
  }
  // Copies tokens [begin, begin + n) into out.
  void read(int64_t begin, int64_t n, int32_t* out) const;
  int32_t max_token() const;

 private:
  std::string path_;
  void* map_ = nullptr;
  size_t map_bytes_ = 0;
  int64_t num_tokens_ = 0;
  int token_bytes_ = 2;
  const uint16_t* u16_ = nullptr;
  const uint32_t* u32_ = nullptr;
};

// Writes tokens as a shard; uint16 (version 1) when every token fits, else uint32 (version 7),
// unless force_u32. Atomic (engine/files.h: temporary file, fsync, rename). Throws naming the file.
void write_token_shard(const std::string& path, const std::vector<int32_t>& tokens,
                       bool force_u32 = false);

// Expands a glob pattern (or a plain path) into a sorted list of files; throws naming the pattern
// when nothing matches, and naming the folder when a matched file lies beside the marker of a
// gpt-prepare that did not finish moving its shards in (kPrepareIncompleteMarker: the folder may
// hold a mix of two data sets).
std::vector<std::string> expand_glob(const std::string& pattern);
inline constexpr const char* kPrepareIncompleteMarker = ".prepare-incomplete";

}  // namespace gpt
