#include "data/tokenizer_finder.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "engine/checkpoint.h"

namespace fs = std::filesystem;

namespace gpt {

namespace {

bool has_bpe_files(const fs::path& dir) {
  std::error_code ec;
  return fs::is_regular_file(dir / "tokenizer.json", ec) ||
         (fs::is_regular_file(dir / "vocab.json", ec) &&
          fs::is_regular_file(dir / "merges.txt", ec)) ||
         (fs::is_regular_file(dir / "encoder.json", ec) &&
          fs::is_regular_file(dir / "vocab.bpe", ec));
}

PrepareTokenizer bpe_from(const fs::path& dir, const std::string& kind) {
  return PrepareTokenizer(BpeTokenizer::load(dir.string()), kind, dir.string());
}

}  // namespace

PrepareTokenizer find_tokenizer(const std::string& spec, const std::string& near) {
  if (spec == "bytes") return PrepareTokenizer::bytes();
  if (spec == "gpt2") return bpe_from(resolve_tokenizer_path("gpt2"), "gpt2");
  if (!spec.empty()) return bpe_from(spec, "path");
  if (near.empty())
    throw std::invalid_argument("no tokenizer given: pass --tokenizer bytes|gpt2|DIR");
  fs::path dir = near;
  std::error_code ec;
  if (looks_like_checkpoint(near))
    dir = resolve_checkpoint(near);
  else if (fs::is_regular_file(dir, ec))
    dir = dir.parent_path();  // an llm.c .bin or a shard
  for (const fs::path& d : {dir, dir / "tokenizer"}) {
    if (has_bpe_files(d)) return bpe_from(d, "path");
  }
  if (fs::is_regular_file(dir / "meta.json", ec)) {
    std::ifstream in(dir / "meta.json");
    nlohmann::json meta;
    try {
      meta = nlohmann::json::parse(in);
    } catch (const std::exception& e) {
      throw std::runtime_error((dir / "meta.json").string() + ": malformed JSON: " + e.what());
    }
    if (meta.value("tokenizer", std::string()) == "bytes") return PrepareTokenizer::bytes();
    if (meta.value("tokenizer", std::string()) == "gpt2")
      return bpe_from(resolve_tokenizer_path("gpt2"), "gpt2");
  }
  throw std::runtime_error(
      dir.string() +
      ": no tokenizer files (tokenizer/, vocab.json + merges.txt, "
      "tokenizer.json) or meta.json naming one: pass --tokenizer bytes|gpt2|DIR");
}

}  // namespace gpt
