// engine/files.h: the one atomic-write helper. The target is replaced whole, and on any failure the
// previous file stays as it was and no temporary file is left behind.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/errors.h"
#include "engine/files.h"
#include "tests/temp_dir.h"

namespace gpt {
namespace {

namespace fs = std::filesystem;

// Every name in the directory, dot-names included.
std::vector<std::string> names_in(const TempDir& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir.path()))
    out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(WriteFileAtomic, CreatesAndReplacesTheTarget) {
  TempDir dir;
  const std::string path = dir.file("a.txt");
  write_file_atomic(path, "first\n");
  EXPECT_EQ(read_all(path), "first\n");
  write_file_atomic(path, std::string("second, longer\n"));
  EXPECT_EQ(read_all(path), "second, longer\n");
  EXPECT_EQ(names_in(dir), std::vector<std::string>{"a.txt"});  // no temporary file left
}

TEST(WriteFileAtomic, StreamsPiecesAndBinaryBytes) {
  TempDir dir;
  const std::string path = dir.file("b.bin");
  const std::vector<uint32_t> words{1, 0, 0xffffffffu, 42};
  write_file_atomic(path, [&](AtomicFileWriter& out) {
    out.write("head", 4);
    out.write(words.data(), words.size() * sizeof(uint32_t));
    out.write(std::string_view("\0tail", 5));
  });
  const std::string bytes = read_all(path);
  ASSERT_EQ(bytes.size(), 4 + 16 + 5u);
  EXPECT_EQ(bytes.substr(0, 4), "head");
  EXPECT_EQ(std::memcmp(bytes.data() + 4, words.data(), 16), 0);
  EXPECT_EQ(bytes.substr(20), std::string("\0tail", 5));
}

TEST(WriteFileAtomic, APathWithoutADirectoryIsWrittenInTheWorkingDirectory) {
  TempDir dir;
  const fs::path before = fs::current_path();
  fs::current_path(dir.file(""));
  write_file_atomic("plain.txt", "x");
  fs::current_path(before);
  EXPECT_EQ(read_all(dir.file("plain.txt")), "x");
  EXPECT_EQ(names_in(dir), std::vector<std::string>{"plain.txt"});
}

TEST(WriteFileAtomic, ACallbackThatThrowsLeavesThePreviousFileAndNoTemporary) {
  TempDir dir;
  const std::string path = dir.file("c.json");
  write_file_atomic(path, "old");
  EXPECT_THROW(write_file_atomic(path,
                                 [](AtomicFileWriter& out) {
                                   out.write("new, half written");
                                   throw std::logic_error("the writer gave up");
                                 }),
               std::logic_error);
  EXPECT_EQ(read_all(path), "old");
  EXPECT_EQ(names_in(dir), std::vector<std::string>{"c.json"});
}

TEST(WriteFileAtomic, AMissingDirectoryIsAnErrorNamingTheFile) {
  TempDir dir;
  const std::string path = dir.file("no/such/dir/d.txt");
  const std::string err = error_of([&] { write_file_atomic(path, "x"); });
  EXPECT_NE(err.find(path + ": "), std::string::npos) << err;
  EXPECT_NE(err.find("No such file or directory"), std::string::npos) << err;
  EXPECT_TRUE(names_in(dir).empty());
}

TEST(WriteFileAtomic, AFailedRenameRemovesTheTemporary) {
  TempDir dir;
  // A file cannot be renamed over a directory that holds something.
  const std::string path = dir.file("e");
  fs::create_directories(path + "/inside");
  const std::string err = error_of([&] { write_file_atomic(path, "x"); });
  EXPECT_NE(err.find(path + ": rename failed: "), std::string::npos) << err;
  EXPECT_TRUE(fs::is_directory(path + "/inside"));
  EXPECT_EQ(names_in(dir), std::vector<std::string>{"e"});
}

// A write that fails half-way (here the file-size limit, as a full disk would): the error names the
// target and the system's reason, the previous file is intact and the temporary file is gone.
TEST(WriteFileAtomic, AWriteThatFailsHalfWayLeavesThePreviousFile) {
  TempDir dir;
  const std::string path = dir.file("f.bin");
  write_file_atomic(path, "previous");
  const std::string big(1 << 16, 'x');
  rlimit saved;
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  auto* old_handler = ::signal(SIGXFSZ, SIG_IGN);  // EFBIG instead of the signal
  rlimit small = saved;
  small.rlim_cur = 4096;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  const std::string err = error_of([&] { write_file_atomic(path, big); });
  ::setrlimit(RLIMIT_FSIZE, &saved);
  ::signal(SIGXFSZ, old_handler);
  EXPECT_NE(err.find(path + ": write failed: File too large"), std::string::npos) << err;
  EXPECT_EQ(read_all(path), "previous");
  EXPECT_EQ(names_in(dir), std::vector<std::string>{"f.bin"});
}

TEST(WriteFileAtomic, TheTemporaryIsADotNameBesideTheTarget) {
  const std::string tmp = atomic_temp_path("out/run/latest");
  EXPECT_EQ(tmp, "out/run/.latest.tmp-" + std::to_string(::getpid()));
}

TEST(FsyncDirectory, AMissingDirectoryIsAnErrorNamingIt) {
  const std::string err = error_of([] { fsync_directory("/no/such/directory"); });
  EXPECT_EQ(err.rfind("/no/such/directory: cannot open for fsync: ", 0), 0u) << err;
}

TEST(Fail, ThrowsWhereColonWhat) {
  const std::string err = error_of([] { fail("data/train.bin", "truncated"); });
  EXPECT_EQ(err, "data/train.bin: truncated");
}

}  // namespace
}  // namespace gpt
