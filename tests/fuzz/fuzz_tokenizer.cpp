// Tokenizer files: tokenizer.json (Hugging Face tokenizers), vocab.json + merges.txt
// (GPT2Tokenizer) and encoder.json + vocab.bpe (OpenAI), as BpeTokenizer::load finds them in a
// folder. The input is a multi-file archive (fuzz_common.h). A tokenizer that loads must give back
// the bytes it encoded (the same up to NFC when its tokenizer.json normalizes to NFC: decode gives
// the normalized text between special tokens), for a fixed text and for the input's own bytes.
#include <cstdio>
#include <cstdlib>

#include "data/bpe_tokenizer.h"
#include "data/unicode_normalize.h"
#include "tests/fuzz/fuzz_common.h"

namespace {

void check_round_trip(const gpt::BpeTokenizer& tok, std::string_view text) {
  const bool nfc = tok.normalizer() == gpt::Normalizer::kNfc;
  std::string buffer, decoded_buffer;
  const std::string_view expected = nfc ? gpt::nfc_normalize(text, &buffer) : text;
  for (gpt::SpecialTokens mode : {gpt::SpecialTokens::kAllowed, gpt::SpecialTokens::kAsText}) {
    const std::vector<int32_t> ids = tok.encode(text, mode);
    for (int32_t id : ids)
      if (id < 0 || id >= tok.vocab_size()) {
        std::fprintf(stderr, "fuzz_tokenizer: FINDING: id %d outside the vocabulary of %d\n", id,
                     tok.vocab_size());
        std::abort();
      }
    const std::string decoded = tok.decode(ids);
    if ((nfc ? gpt::nfc_normalize(decoded, &decoded_buffer) : decoded) != expected) {
      std::fprintf(stderr, "fuzz_tokenizer: FINDING: decode(encode(text)) differs from text\n");
      std::abort();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  gpt::fuzz::clear_scratch();
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto files = gpt::fuzz::unpack(input);
  bool only_tokenizer_json = !files.empty();
  for (const auto& [name, bytes] : files) {
    gpt::fuzz::write_scratch("tok/" + name, bytes);
    only_tokenizer_json = only_tokenizer_json && name == "tokenizer.json";
  }
  const std::string dir = gpt::fuzz::scratch_dir() + "/tok";
  // Both ways a user names a tokenizer: its folder, or the tokenizer.json file itself.
  const std::string path = only_tokenizer_json ? dir + "/tokenizer.json" : dir;
  GPT_FUZZ_EXPECT_CLEAN("fuzz_tokenizer", dir, {
    const gpt::BpeTokenizer tok = gpt::BpeTokenizer::load(path);
    check_round_trip(tok, "Hello world! It's 2026: naïve café, 東京 <|endoftext|> \n\n  end");
    check_round_trip(tok, input.substr(0, 4096));
  });
  return 0;
}
