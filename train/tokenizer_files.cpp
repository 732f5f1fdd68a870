#include "train/tokenizer_files.h"

#include <filesystem>
#include <system_error>

namespace fs = std::filesystem;

namespace gpt {

std::vector<std::string> tokenizer_files_in(const std::string& dir_name) {
  static const char* const kNames[] = {"meta.json",      "vocab.json",   "merges.txt",
                                       "tokenizer.json", "encoder.json", "vocab.bpe"};
  const fs::path dir(dir_name);
  std::vector<std::string> found;
  std::error_code ec;
  for (const char* name : kNames) {
    if (fs::is_regular_file(dir / name, ec))
      found.push_back((dir / name).string());
    else if (fs::is_regular_file(dir / "tokenizer" / name, ec))  // gpt-prepare's tokenizer/
      found.push_back((dir / "tokenizer" / name).string());
  }
  return found;
}

std::vector<std::string> pretrain_tokenizer_files(const std::string& train_glob,
                                                  const std::string& fallback) {
  std::vector<std::string> files = tokenizer_files_in(fs::path(train_glob).parent_path().string());
  std::error_code ec;
  if (files.empty() && !fallback.empty() && fs::is_directory(fallback, ec))
    files = tokenizer_files_in(fallback);
  return files;
}

std::vector<std::string> finetune_tokenizer_files(const std::string& train_glob) {
  std::vector<std::string> files;
  const fs::path data_dir = fs::path(train_glob).parent_path();
  for (const fs::path& dir : {data_dir, data_dir / "tokenizer"}) {
    for (const char* name : {"meta.json", "vocab.json", "merges.txt", "tokenizer.json"}) {
      std::error_code ec;
      bool dup = false;
      for (const auto& f : files) dup |= fs::path(f).filename() == name;
      if (!dup && fs::is_regular_file(dir / name, ec)) files.push_back((dir / name).string());
    }
  }
  return files;
}

}  // namespace gpt
