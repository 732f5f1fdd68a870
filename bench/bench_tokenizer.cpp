// bench_tokenizer: byte-level BPE throughput and training time.
//
//   bench_tokenizer [--tokenizer gpt2] [--input FILE]... [--train-input FILE] [--repeats N]
//
// Reports, on the concatenated input files:
//   - encode MB/s on one thread, merge cache cold (cleared before each repeat) or warm;
//   - encode MB/s over documents (the text split at blank lines) on all OpenMP threads;
//   - decode MB/s;
//   - BPE training time, vocabulary 4096, on --train-input (default tinyshakespeare).
// bench/bench_tokenizer.py measures tiktoken (and Hugging Face tokenizers) the same way on the same
// files; compare ratios measured on the same machine in the same session, never absolute numbers.
#include <omp.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "data/bpe_tokenizer.h"
#include "data/bpe_trainer.h"

namespace {

namespace fs = std::filesystem;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Median wall time in seconds of `repeats` calls of fn (after one untimed warm-up call).
template <typename Fn>
double median_seconds(int repeats, Fn&& fn, bool warm_up = true) {
  if (warm_up) fn();
  std::vector<double> t;
  for (int r = 0; r < repeats; ++r) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Same splitting as Python's text.split("\n\n").
std::vector<std::string> split_documents(const std::string& text) {
  std::vector<std::string> docs;
  size_t pos = 0;
  while (true) {
    const size_t end = text.find("\n\n", pos);
    if (end == std::string::npos) {
      docs.push_back(text.substr(pos));
      break;
    }
    docs.push_back(text.substr(pos, end - pos));
    pos = end + 2;
  }
  return docs;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Byte-level BPE tokenizer benchmark (compare with bench/bench_tokenizer.py)"};
  std::string tokenizer_arg = "gpt2", train_input;
  std::vector<std::string> inputs;
  int repeats = 5, train_vocab = 4096;
  app.add_option("--tokenizer", tokenizer_arg, "Tokenizer directory, or 'gpt2'");
  app.add_option(
      "--input", inputs,
      "Text files to encode (default: tinyshakespeare and tinystories from ../shared/data)");
  app.add_option("--train-input", train_input,
                 "Text file for the training benchmark (default: tinyshakespeare)");
  app.add_option("--train-vocab", train_vocab, "Vocabulary size for the training benchmark");
  app.add_option("--repeats", repeats, "Timed repeats (the median is reported)")
      ->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);

  try {
    const std::string tok_dir = gpt::resolve_tokenizer_path(tokenizer_arg);
    const fs::path shared = fs::path(gpt::find_gpt2_tokenizer_dir()).parent_path();
    if (inputs.empty()) {
      inputs = {(shared / "tinyshakespeare" / "input.txt").string(),
                (shared / "tinystories" / "tinystories_val.txt").string()};
    }
    if (train_input.empty()) train_input = (shared / "tinyshakespeare" / "input.txt").string();

    const gpt::BpeTokenizer tok = gpt::BpeTokenizer::load(tok_dir);
    std::string text;
    for (const std::string& f : inputs) text += read_file(f);
    const double mb = text.size() / 1e6;
    const std::vector<std::string> docs = split_documents(text);
    const int threads = omp_get_max_threads();
    std::printf("tokenizer %s (vocab %d); input %.2f MB in %zu documents; %d OpenMP threads\n",
                tok_dir.c_str(), tok.vocab_size(), mb, docs.size(), threads);

    std::vector<int32_t> ids;
    const double cold = median_seconds(repeats, [&] {
      tok.clear_cache();
      ids = tok.encode(text, gpt::SpecialTokens::kAsText);
    });
    const double warm =
        median_seconds(repeats, [&] { ids = tok.encode(text, gpt::SpecialTokens::kAsText); });
    std::printf("encode, 1 thread, cold cache : %8.2f MB/s  (%zu tokens, %.3f bytes/token)\n",
                mb / cold, ids.size(), static_cast<double>(text.size()) / ids.size());
    std::printf("encode, 1 thread, warm cache : %8.2f MB/s\n", mb / warm);
    const double batch = median_seconds(repeats, [&] {
#pragma omp parallel
      tok.clear_cache();
      const auto out = tok.encode_batch(docs, gpt::SpecialTokens::kAsText, threads);
    });
    std::printf("encode_batch, %d threads, cold: %8.2f MB/s\n", threads, mb / batch);
    std::string decoded;
    const double dec = median_seconds(repeats, [&] { decoded = tok.decode(ids); });
    if (decoded != text) throw std::runtime_error("decode(encode(text)) != text");
    std::printf("decode, 1 thread             : %8.2f MB/s\n", mb / dec);

    gpt::BpeTrainerOptions options;
    options.vocab_size = train_vocab;
    const std::string corpus = read_file(train_input);
    gpt::BpeTrainer trainer(options);
    const double count_s = median_seconds(
        1, [&] { trainer.add_text(corpus); }, false);
    int vocab = 0;
    const double train_s = median_seconds(
        3, [&] { vocab = trainer.train().vocab_size(); }, false);
    std::printf(
        "train vocab %d on %s (%.2f MB): %.3f s (pre-tokenize and count %.3f s, merges %.3f s; "
        "%zu distinct words)\n",
        vocab, fs::path(train_input).filename().c_str(), corpus.size() / 1e6, count_s + train_s,
        count_s, train_s, trainer.distinct_words());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_tokenizer: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
