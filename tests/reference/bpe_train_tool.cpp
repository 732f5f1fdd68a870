// bpe_train_tool: trains a byte-level BPE tokenizer on text files, or converts a tokenizer, and
// saves it in Hugging Face's formats. Used by tests/reference/check_tokenizer.py to check that
// `tokenizers` loads what we write and gives the same ids. (Users train through gpt-prepare.)
//
//   bpe_train_tool VOCAB_SIZE OUT_DIR FILE...     train on the files
//   bpe_train_tool --convert TOKENIZER OUT_DIR    load (any supported format, or 'gpt2') and save
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>

#include "data/bpe_trainer.h"

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s VOCAB_SIZE OUT_DIR FILE... | --convert TOKENIZER OUT_DIR\n",
                 argv[0]);
    return 2;
  }
  try {
    if (std::strcmp(argv[1], "--convert") == 0) {
      const gpt::BpeTokenizer tok = gpt::BpeTokenizer::load(gpt::resolve_tokenizer_path(argv[2]));
      tok.save_hf(argv[3]);
      std::printf("saved vocab %d (%d merges) -> %s\n", tok.vocab_size(), tok.num_merges(),
                  argv[3]);
      return 0;
    }
    gpt::BpeTrainerOptions options;
    options.vocab_size = std::atoi(argv[1]);
    gpt::BpeTrainer trainer(options);
    for (int i = 3; i < argc; ++i) trainer.add_file(argv[i]);
    const auto start = std::chrono::steady_clock::now();
    const gpt::BpeTokenizer tok = trainer.train();
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    tok.save_hf(argv[2]);
    std::printf("trained vocab %d (%d merges) on %lld bytes, %zu distinct words in %.2f s -> %s\n",
                tok.vocab_size(), tok.num_merges(), static_cast<long long>(trainer.corpus_bytes()),
                trainer.distinct_words(), seconds, argv[2]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bpe_train_tool: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
