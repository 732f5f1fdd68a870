// gpt-prepare: turn text into token shards for gpt-pretrain.
//
//   gpt-prepare --tokenizer bytes --input input.txt --out data/shakespeare
//
// Writes OUT/train_000000.bin, ..., OUT/val_000000.bin, ... in llm.c's shard format and
// OUT/meta.json (tokenizer, vocab_size, token and byte counts, used for bits per byte).
// Each input file is one document; an end-of-text token precedes every document. The validation
// split is the last --val-fraction of the token stream.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "data/shard.h"

namespace fs = std::filesystem;

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open input file");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_shards(const std::string& out, const std::string& prefix, const std::vector<int32_t>& tokens,
                  int64_t shard_tokens, std::vector<std::string>& written) {
  for (int64_t begin = 0, index = 0; begin < static_cast<int64_t>(tokens.size()); begin += shard_tokens, ++index) {
    const int64_t end = std::min<int64_t>(begin + shard_tokens, static_cast<int64_t>(tokens.size()));
    char name[64];
    std::snprintf(name, sizeof(name), "%s_%06lld.bin", prefix.c_str(), static_cast<long long>(index));
    std::vector<int32_t> part(tokens.begin() + begin, tokens.begin() + end);
    gpt::write_token_shard(out + "/" + name, part);
    written.push_back(name);
  }
}

int run(int argc, char** argv) {
  CLI::App app{"Tokenize text into token shards (llm.c format) for gpt-pretrain."};
  std::string tokenizer = "bytes";
  std::vector<std::string> inputs;
  std::string out;
  double val_fraction = 0.1;
  int64_t shard_tokens = 100'000'000;
  app.add_option("--tokenizer", tokenizer,
                 "bytes: one token per byte (256) plus <|endoftext|> = 256, vocabulary 257")
      ->capture_default_str();
  app.add_option("--input", inputs, "text files; each is one document")->required()->expected(1, -1);
  app.add_option("--out", out, "output directory")->required();
  app.add_option("--val-fraction", val_fraction, "last fraction of the tokens held out for validation")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 0.9));
  app.add_option("--shard-tokens", shard_tokens, "tokens per shard")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (tokenizer != "bytes") {
    throw std::invalid_argument("--tokenizer '" + tokenizer + "' is not supported (expected bytes)");
  }
  constexpr int32_t kEot = 256;
  constexpr int kVocab = 257;

  std::vector<int32_t> tokens;
  int64_t total_bytes = 0;
  for (const std::string& path : inputs) {
    const std::string text = read_file(path);
    tokens.push_back(kEot);
    for (unsigned char c : text) tokens.push_back(c);
    total_bytes += static_cast<int64_t>(text.size());
  }
  const int64_t n = static_cast<int64_t>(tokens.size());
  const int64_t n_val = static_cast<int64_t>(static_cast<double>(n) * val_fraction);
  const int64_t n_train = n - n_val;
  if (n_train < 2) throw std::runtime_error("input too small: " + std::to_string(n) + " tokens");

  fs::create_directories(out);
  std::vector<int32_t> train(tokens.begin(), tokens.begin() + n_train);
  std::vector<int32_t> val(tokens.begin() + n_train, tokens.end());
  std::vector<std::string> written;
  write_shards(out, "train", train, shard_tokens, written);
  if (!val.empty()) write_shards(out, "val", val, shard_tokens, written);

  int64_t val_bytes = 0;
  for (int32_t t : val) val_bytes += t < 256;
  nlohmann::ordered_json meta;
  meta["tokenizer"] = tokenizer;
  meta["vocab_size"] = kVocab;
  meta["eot_token"] = kEot;
  meta["train_tokens"] = n_train;
  meta["val_tokens"] = static_cast<int64_t>(val.size());
  meta["val_bytes"] = val_bytes;
  meta["input_bytes"] = total_bytes;
  meta["shards"] = written;
  std::ofstream(out + "/meta.json") << meta.dump(2) << "\n";
  std::fprintf(stderr, "gpt-prepare: %lld bytes -> %lld train + %lld val tokens (vocab %d) in %zu shard(s) under %s\n",
               static_cast<long long>(total_bytes), static_cast<long long>(n_train),
               static_cast<long long>(val.size()), kVocab, written.size(), out.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gpt-prepare: error: %s\n", e.what());
    return 1;
  }
}
