// gpt-tokenize: text -> token ids, and back, with a byte-level BPE tokenizer.
//
//   gpt-tokenize --tokenizer gpt2 --input notes.txt            # one line of ids per input line
//   echo "Hello world" | gpt-tokenize --tokenizer gpt2         # 15496 995
//   gpt-tokenize --tokenizer gpt2 --input ids.txt --decode     # ids back to text
//   gpt-tokenize --tokenizer DIR --records whole --input f.txt # the whole file as one text
//   gpt-tokenize --tokenizer MODEL_DIR --add-special-tokens    # a Hugging Face model's, with its
//                                                              # post-processor's tokens
//
// Input is split into records (lines, NUL-separated strings, or the whole input); each record is
// encoded independently and its ids are printed space-separated on one output line. --decode reads
// one record of ids per line and writes each record's text followed by the record separator
// (data/token_text.h).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <string_view>

#include "data/bpe_tokenizer.h"
#include "data/token_text.h"

namespace {

std::string read_all(const std::string& path) {
  if (path.empty() || path == "-") {
    std::ostringstream ss;
    ss << std::cin.rdbuf();
    return ss.str();
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open input file " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Standard output, piece by piece.
void write_stdout(std::string_view bytes) {
  std::fwrite(bytes.data(), 1, bytes.size(), stdout);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "gpt-tokenize: text to byte-level BPE token ids (one output line per input record), "
      "or ids back to text with --decode"};
  std::string tokenizer_arg, input;
  bool decode = false, add_special_tokens = false;
  gpt::Records records = gpt::Records::kLines;
  gpt::SpecialTokens special = gpt::SpecialTokens::kAsText;
  int threads = 1;
  app.add_option("--tokenizer", tokenizer_arg,
                 "Tokenizer directory (tokenizer.json, vocab.json + merges.txt, or encoder.json + "
                 "vocab.bpe; a Hugging Face model directory), a tokenizer.json file, or 'gpt2' for "
                 "the real GPT-2 files "
                 "($GPT_TOKENIZER_DIR, ../shared/data/gpt2, or .deps/gpt2 from "
                 "scripts/fetch_gpt2_tokenizer.sh)")
      ->required();
  app.add_option("--input", input, "Input file (default: standard input)");
  app.add_flag("--decode", decode, "Read lines of space-separated ids and write their text");
  const std::map<std::string, gpt::Records> record_names{{"lines", gpt::Records::kLines},
                                                         {"nul", gpt::Records::kNul},
                                                         {"whole", gpt::Records::kWhole}};
  app.add_option("--records", records,
                 "How the text is split into records: 'lines' (default; the newline is not part "
                 "of the record), 'nul' (NUL-separated strings), 'whole' (all input is one record)")
      ->transform(CLI::CheckedTransformer(record_names, CLI::ignore_case));
  const std::map<std::string, gpt::SpecialTokens> special_names{
      {"allowed", gpt::SpecialTokens::kAllowed}, {"text", gpt::SpecialTokens::kAsText}};
  app.add_option("--special", special,
                 "'text' (default): text that spells a special token such as <|endoftext|> is "
                 "encoded as ordinary text; 'allowed': it becomes its special token")
      ->transform(CLI::CheckedTransformer(special_names, CLI::ignore_case));
  app.add_flag("--add-special-tokens", add_special_tokens,
               "Put the tokenizer.json post-processor's special tokens around each record, as "
               "Hugging Face's add_special_tokens=True does (Llama 3: <|begin_of_text|> first; "
               "GPT-2, Qwen2: none)");
  app.add_option("--threads", threads, "Threads that encode records in parallel (0: all cores)")
      ->check(CLI::NonNegativeNumber);
  CLI11_PARSE(app, argc, argv);

  try {
    const gpt::BpeTokenizer tok =
        gpt::BpeTokenizer::load(gpt::resolve_tokenizer_path(tokenizer_arg));
    const std::string text = read_all(input);
    if (decode) {
      gpt::decode_records(tok, text, records, write_stdout);
    } else {
      gpt::encode_records(tok, text, records, special, add_special_tokens, threads, write_stdout);
    }
    std::fflush(stdout);
    if (std::ferror(stdout)) throw std::runtime_error("write error on standard output");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gpt-tokenize: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
