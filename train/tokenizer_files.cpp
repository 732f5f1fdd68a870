#include "train/tokenizer_files.h"

#include <filesystem>
#include <system_error>

#include "data/bpe_tokenizer.h"

namespace fs = std::filesystem;

namespace gpt {

std::vector<std::string> tokenizer_files_in(const std::string& dir_name) {
  static const char* const kNames[] = {"meta.json",
                                       "vocab.json",
                                       "merges.txt",
                                       "tokenizer.json",
                                       "encoder.json",
                                       "vocab.bpe",
                                       "tokenizer_config.json",
                                       "special_tokens_map.json",
                                       "generation_config.json"};
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

std::vector<std::string> finetune_tokenizer_files(const std::string& train_glob,
                                                  const std::string& init) {
  std::vector<std::string> files;
  auto add_from = [&](const fs::path& dir, const std::vector<std::string>& names) {
    for (const std::string& name : names) {
      std::error_code ec;
      bool dup = false;
      for (const auto& f : files) dup |= fs::path(f).filename() == name;
      if (!dup && fs::is_regular_file(dir / name, ec)) files.push_back((dir / name).string());
    }
  };
  std::vector<std::string> names = {"meta.json", "vocab.json", "merges.txt"};
  for (const std::string& name : hub_tokenizer_file_names()) names.push_back(name);
  const fs::path data_dir = fs::path(train_glob).parent_path();
  add_from(data_dir, names);
  add_from(data_dir / "tokenizer", names);
  // A Hugging Face model directory given as --init: its tokenizer, chat and generation settings.
  std::error_code ec;
  if (!init.empty() && fs::is_regular_file(fs::path(init) / "tokenizer.json", ec))
    add_from(init, hub_tokenizer_file_names());
  return files;
}

}  // namespace gpt
