// BPE encoding of arbitrary bytes (invalid UTF-8, special-token look-alikes, long runs) with the
// real GPT-2 vocabulary when ../shared/data/gpt2 is there, else with a small vocabulary trained at
// start-up. The ids must decode to the input, with special tokens allowed or not, and the batch
// encoder must agree with the one-text encoder.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>

#include "data/bpe_tokenizer.h"
#include "data/bpe_trainer.h"

namespace {

const gpt::BpeTokenizer& tokenizer() {
  static const std::unique_ptr<gpt::BpeTokenizer> tok = [] {
    const std::string gpt2 = std::string(GPT_SHARED_DATA) + "/gpt2";
    std::error_code ec;
    if (std::filesystem::exists(gpt2 + "/encoder.json", ec))
      return std::make_unique<gpt::BpeTokenizer>(gpt::BpeTokenizer::load(gpt2));
    gpt::BpeTrainerOptions o;
    o.vocab_size = 600;
    std::string text;
    for (int i = 0; i < 200; ++i)
      text += "The quick brown fox jumps over the lazy dog " + std::to_string(i * 7919) +
              " times; naïve café, Ærøskøbing, 東京, ПРИВЕТ мир!\n";
    return std::make_unique<gpt::BpeTokenizer>(gpt::train_bpe({text}, o));
  }();
  return *tok;
}

void finding(const char* what) {
  std::fprintf(stderr, "fuzz_bpe_encode: FINDING: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const gpt::BpeTokenizer& tok = tokenizer();
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  for (gpt::SpecialTokens mode : {gpt::SpecialTokens::kAllowed, gpt::SpecialTokens::kAsText}) {
    const std::vector<int32_t> ids = tok.encode(text, mode);
    for (int32_t id : ids)
      if (id < 0 || id >= tok.vocab_size()) finding("an id outside the vocabulary");
    if (tok.decode(ids) != text) finding("decode(encode(bytes)) differs from the bytes");
    if (mode == gpt::SpecialTokens::kAsText)
      for (int32_t id : ids)
        if (tok.is_special(id)) finding("a special token from encode_ordinary");
    const auto batch =
        tok.encode_batch(std::vector<std::string_view>{text, text.substr(size / 2)}, mode, 1);
    if (batch.size() != 2 || batch[0] != ids) finding("encode_batch differs from encode");
    if (batch[1] != tok.encode(text.substr(size / 2), mode))
      finding("encode_batch differs from encode");
  }
  return 0;
}
