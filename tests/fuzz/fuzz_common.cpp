#include "tests/fuzz/fuzz_common.h"

#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace fs = std::filesystem;

namespace gpt::fuzz {

const std::string& scratch_dir() {
  static const std::string dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::string base = tmp && *tmp ? tmp : "/tmp";
    std::string d = base + "/gpt-fuzz-" + std::to_string(::getpid());
    fs::create_directories(d);
    return d;
  }();
  return dir;
}

void clear_scratch() {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(scratch_dir(), ec))
    fs::remove_all(entry.path(), ec);
}

std::string write_scratch(const std::string& name, std::string_view bytes) {
  const fs::path p = fs::path(scratch_dir()) / name;
  std::error_code ec;
  fs::create_directories(p.parent_path(), ec);
  if (ec || fs::is_directory(p, ec)) return "";  // a file and a folder of one name: not written
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) {
    std::fprintf(stderr, "fuzz harness: cannot write %s\n", p.c_str());
    std::abort();
  }
  return p.string();
}

namespace {

bool good_name(std::string_view name) {
  if (name.empty() || name.size() > 100 || name.front() == '/' || name.back() == '/') return false;
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find('/', start);
    if (end == std::string_view::npos) end = name.size();
    const std::string_view part = name.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") return false;
    for (char c : part)
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-'))
        return false;
    start = end + 1;
  }
  return true;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> unpack(std::string_view input) {
  std::vector<std::pair<std::string, std::string>> files;
  constexpr std::string_view kMark = "=== ";
  size_t pos = input.rfind(kMark, 0) == 0 ? 0 : input.find(std::string("\n") + std::string(kMark));
  if (pos != 0 && pos != std::string_view::npos) ++pos;
  while (pos != std::string_view::npos && pos < input.size()) {
    const size_t name_begin = pos + kMark.size();
    const size_t line_end = input.find('\n', name_begin);
    if (line_end == std::string_view::npos) break;
    const std::string_view name = input.substr(name_begin, line_end - name_begin);
    size_t next = input.find(std::string("\n") + std::string(kMark), line_end);
    std::string_view body;
    if (next == std::string_view::npos) {
      body = input.substr(line_end + 1);
      if (!body.empty() && body.back() == '\n') body.remove_suffix(1);
    } else {
      // The body ends before the newline that introduces the next header; line_end itself may be
      // that newline when the body is empty.
      body = next >= line_end + 1 ? input.substr(line_end + 1, next - line_end - 1)
                                  : std::string_view();
    }
    if (good_name(name)) files.emplace_back(std::string(name), std::string(body));
    pos = next == std::string_view::npos ? next : next + 1;
  }
  return files;
}

void check_error(const char* target, const std::string& what, const std::string& must_name) {
  if (what.find(must_name) != std::string::npos) return;
  std::fprintf(stderr, "\n%s: FINDING: an error that does not name its input (%s):\n  %s\n", target,
               must_name.c_str(), what.c_str());
  std::abort();
}

}  // namespace gpt::fuzz
