// Writing a file so that a reader, or a crash at any moment, finds the previous file whole or the
// new one whole, never a part of one: write_file_atomic, which every writer of the project uses
// (shards, safetensors, checkpoints, configs, tokenizer files, exports).
//
// The bytes go to a temporary file in the target's own directory, DIR/.NAME.tmp-PID (a dot-name, so
// no glob over the directory sees it; the process id keeps two processes that write one name
// apart). It is fsynced, closed and renamed over the target, and then the directory is fsynced so
// that the rename itself survives a power cut. On any failure before the rename (a write error, a
// full disk, a callback that throws, a directory that cannot be written) the temporary file is
// removed, the target is left as it was, and a std::runtime_error names the target and says what
// failed with the system's errno text.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace gpt {

class AtomicFileWriter;

// Writes path atomically with what `fill` writes to the temporary file (for large files written
// piece by piece: no copy of the whole file in memory).
void write_file_atomic(const std::string& path, const std::function<void(AtomicFileWriter&)>& fill);
// Writes path atomically with these bytes (text or binary).
void write_file_atomic(const std::string& path, std::string_view bytes);

// The open temporary file that write_file_atomic's callback writes through.
class AtomicFileWriter {
 public:
  // Appends bytes; throws naming the target ("write failed (disk full?): ..." when out of space).
  void write(const void* data, size_t bytes);
  void write(std::string_view bytes) { write(bytes.data(), bytes.size()); }

 private:
  friend void write_file_atomic(const std::string&, const std::function<void(AtomicFileWriter&)>&);
  AtomicFileWriter(int fd, const std::string& path) : fd_(fd), path_(path) {}
  int fd_;
  const std::string& path_;
};

// The temporary file write_file_atomic uses for path in this process.
std::string atomic_temp_path(const std::string& path);

// fsyncs a directory, so that the names created, renamed or removed in it survive a power cut.
// Throws naming the directory.
void fsync_directory(const std::string& dir);

}  // namespace gpt
