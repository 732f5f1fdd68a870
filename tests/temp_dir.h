// What several test files share: a temporary directory removed when the test ends, and the message
// of the exception that a call throws.
#pragma once

#include <stdlib.h>

#include <exception>
#include <filesystem>
#include <functional>
#include <string>

namespace gpt {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/gpt_test_XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The what() of the exception fn throws; "" when it throws none.
inline std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace gpt
