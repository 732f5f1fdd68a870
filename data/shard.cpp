#include "data/shard.h"

#include <fcntl.h>
#include <glob.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "engine/errors.h"
#include "engine/files.h"

namespace gpt {

TokenShard::TokenShard(const std::string& path, int vocab_size) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) fail(path, std::string("cannot open token shard: ") + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    fail(path, "cannot stat");
  }
  const size_t file_bytes = static_cast<size_t>(st.st_size);
  const size_t header_bytes = kShardHeaderInts * sizeof(int32_t);
  if (file_bytes < header_bytes) {
    ::close(fd);
    fail(path, "not a token shard: " + std::to_string(file_bytes) +
                   " bytes, shorter than the 1024-byte header");
  }
  map_ = ::mmap(nullptr, file_bytes, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    fail(path, "mmap failed");
  }
  map_bytes_ = file_bytes;
  // A rejected shard is unmapped here: the destructor does not run for a constructor that throws
  // (found by fuzz_shard: every bad shard leaked its mapping).
  try {
    const int32_t* header = static_cast<const int32_t*>(map_);
    const int32_t magic = header[0], version = header[1];
    if (magic == kShardMagicU16) {
      if (version != kShardVersionU16)
        fail(path,
             "unsupported version " + std::to_string(version) + " for magic 20240520 (expected 1)");
      token_bytes_ = 2;
    } else if (magic == kShardMagicU32) {
      if (version != kShardVersionU32)
        fail(path,
             "unsupported version " + std::to_string(version) + " for magic 20240801 (expected 7)");
      token_bytes_ = 4;
    } else {
      fail(path, "bad magic " + std::to_string(magic) +
                     " (expected 20240520 for uint16 or 20240801 for uint32 token shards)");
    }
    num_tokens_ = static_cast<uint32_t>(header[2]);
    const size_t expected = header_bytes + static_cast<size_t>(num_tokens_) * token_bytes_;
    if (num_tokens_ == 0) fail(path, "header says the shard holds 0 tokens");
    if (file_bytes != expected) {
      fail(path, "size mismatch: header says " + std::to_string(num_tokens_) + " tokens (" +
                     std::to_string(expected) + " bytes) but the file has " +
                     std::to_string(file_bytes) + " bytes");
    }
    const char* body = static_cast<const char*>(map_) + header_bytes;
    if (token_bytes_ == 2)
      u16_ = reinterpret_cast<const uint16_t*>(body);
    else
      u32_ = reinterpret_cast<const uint32_t*>(body);
    if (vocab_size > 0) {
      for (int64_t i = 0; i < num_tokens_; ++i) {
        const int64_t t = token_bytes_ == 2 ? u16_[i] : u32_[i];
        if (t >= vocab_size) {
          fail(path, "token " + std::to_string(t) + " at position " + std::to_string(i) +
                         " is out of range for vocab_size " + std::to_string(vocab_size));
        }
      }
    }
  } catch (...) {
    ::munmap(map_, map_bytes_);
    map_ = nullptr;
    throw;
  }
}

TokenShard::~TokenShard() {
  if (map_) ::munmap(map_, map_bytes_);
}

TokenShard::TokenShard(TokenShard&& o) noexcept
    : path_(std::move(o.path_)),
      map_(o.map_),
      map_bytes_(o.map_bytes_),
      num_tokens_(o.num_tokens_),
      token_bytes_(o.token_bytes_),
      u16_(o.u16_),
      u32_(o.u32_) {
  o.map_ = nullptr;
  o.u16_ = nullptr;
  o.u32_ = nullptr;
}

void TokenShard::read(int64_t begin, int64_t n, int32_t* out) const {
  if (begin < 0 || n < 0 || begin + n > num_tokens_) {
    fail(path_, "read of [" + std::to_string(begin) + ", " + std::to_string(begin + n) +
                    ") past the end (" + std::to_string(num_tokens_) + " tokens)");
  }
  if (token_bytes_ == 2)
    for (int64_t i = 0; i < n; ++i) out[i] = u16_[begin + i];
  else
    for (int64_t i = 0; i < n; ++i) out[i] = static_cast<int32_t>(u32_[begin + i]);
}

int32_t TokenShard::max_token() const {
  int64_t m = 0;
  for (int64_t i = 0; i < num_tokens_; ++i) m = std::max<int64_t>(m, (*this)[i]);
  return static_cast<int32_t>(m);
}

void write_token_shard(const std::string& path, const std::vector<int32_t>& tokens,
                       bool force_u32) {
  if (tokens.empty()) fail(path, "refusing to write an empty shard");
  if (tokens.size() > static_cast<size_t>(INT32_MAX)) fail(path, "too many tokens for one shard");
  bool fits16 = !force_u32;
  for (int32_t t : tokens) {
    if (t < 0) fail(path, "negative token id " + std::to_string(t));
    if (t > 65535) fits16 = false;
  }
  std::vector<int32_t> header(kShardHeaderInts, 0);
  header[0] = fits16 ? kShardMagicU16 : kShardMagicU32;
  header[1] = fits16 ? kShardVersionU16 : kShardVersionU32;
  header[2] = static_cast<int32_t>(tokens.size());

  write_file_atomic(path, [&](AtomicFileWriter& out) {
    out.write(header.data(), header.size() * sizeof(int32_t));
    if (fits16) {
      std::vector<uint16_t> body(tokens.begin(), tokens.end());
      out.write(body.data(), body.size() * sizeof(uint16_t));
    } else {
      out.write(tokens.data(), tokens.size() * sizeof(int32_t));
    }
  });
}

std::vector<std::string> expand_glob(const std::string& pattern) {
  glob_t g;
  std::memset(&g, 0, sizeof(g));
  const int rc = ::glob(pattern.c_str(), 0, nullptr, &g);
  std::vector<std::string> files;
  if (rc == 0) {
    for (size_t i = 0; i < g.gl_pathc; ++i) files.emplace_back(g.gl_pathv[i]);
  }
  globfree(&g);
  auto folder_of = [](const std::string& path) {
    const size_t slash = path.rfind('/');
    return slash == std::string::npos ? std::string(".") : path.substr(0, slash == 0 ? 1 : slash);
  };
  auto refuse_unfinished = [](const std::string& dir) {
    struct stat st;
    if (::stat((dir + "/" + kPrepareIncompleteMarker).c_str(), &st) == 0)
      throw std::runtime_error(
          dir +
          ": a gpt-prepare into this folder did not finish (killed while "
          "moving its shards in; " +
          kPrepareIncompleteMarker +
          " is there): its shards may mix two data sets; run gpt-prepare again");
  };
  if (files.empty()) {
    refuse_unfinished(folder_of(pattern));  // killed before any new shard was moved in
    throw std::runtime_error("no files match '" + pattern + "'");
  }
  std::sort(files.begin(), files.end());
  std::string checked;  // the last folder checked (the files are sorted: folders come in runs)
  for (const std::string& f : files) {
    const std::string dir = folder_of(f);
    if (dir == checked) continue;
    checked = dir;
    refuse_unfinished(dir);
  }
  return files;
}

}  // namespace gpt
