#include "engine/files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "engine/errors.h"

namespace gpt {

namespace fs = std::filesystem;

namespace {

// "WHAT: errno text", with a hint when the file system is out of space.
std::string failed(const char* what, int err) {
  const bool full = err == ENOSPC || err == EDQUOT;
  return std::string(what) + (full ? " (disk full?)" : "") + ": " + std::strerror(err);
}

}  // namespace

std::string atomic_temp_path(const std::string& path) {
  const fs::path p(path);
  return (p.parent_path() / ("." + p.filename().string() + ".tmp-" + std::to_string(::getpid())))
      .string();
}

void fsync_directory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail(dir, failed("cannot open for fsync", errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) fail(dir, failed("fsync failed", err));
}

void AtomicFileWriter::write(const void* data, size_t bytes) {
  const char* p = static_cast<const char*>(data);
  while (bytes > 0) {
    const ssize_t w = ::write(fd_, p, bytes);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) fail(path_, failed("write failed", errno));
    p += w;
    bytes -= static_cast<size_t>(w);
  }
}

void write_file_atomic(const std::string& path,
                       const std::function<void(AtomicFileWriter&)>& fill) {
  const std::string tmp = atomic_temp_path(path);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) fail(path, failed("cannot create a temporary file", errno));
  try {
    AtomicFileWriter writer(fd, path);
    fill(writer);
    if (::fsync(fd) != 0) fail(path, failed("fsync failed", errno));
    const int rc = ::close(fd);
    fd = -1;
    if (rc != 0) fail(path, failed("close failed", errno));
    if (::rename(tmp.c_str(), path.c_str()) != 0) fail(path, failed("rename failed", errno));
  } catch (...) {
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  const std::string dir = fs::path(path).parent_path().string();
  fsync_directory(dir.empty() ? "." : dir);
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  write_file_atomic(path, [&](AtomicFileWriter& out) { out.write(bytes); });
}

}  // namespace gpt
