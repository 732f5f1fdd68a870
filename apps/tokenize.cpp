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
// one record of ids per line and writes each record's text followed by the record separator.
#include <CLI/CLI.hpp>
#include <charconv>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "data/bpe_tokenizer.h"

namespace {

enum class Records { kLines, kNul, kWhole };

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

// Splits text into records. With a separator, a trailing separator does not start an empty record.
std::vector<std::string_view> split_records(std::string_view text, Records mode) {
  std::vector<std::string_view> out;
  if (mode == Records::kWhole) {
    out.push_back(text);
    return out;
  }
  const char sep = mode == Records::kLines ? '\n' : '\0';
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find(sep, pos);
    if (end == std::string_view::npos) end = text.size();
    out.push_back(text.substr(pos, end - pos));
    pos = end + 1;
  }
  return out;
}

void append_ids(const std::vector<int32_t>& ids, std::string* out) {
  char buf[16];
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) *out += ' ';
    const auto r = std::to_chars(buf, buf + sizeof(buf), ids[i]);
    out->append(buf, r.ptr);
  }
  *out += '\n';
}

void encode_stream(const gpt::BpeTokenizer& tok, const std::string& text, Records mode,
                   gpt::SpecialTokens special, bool add_special_tokens, int threads) {
  const std::vector<std::string_view> records = split_records(text, mode);
  constexpr size_t kChunk = 8192;  // records encoded in parallel, then printed in order
  std::string out;
  for (size_t begin = 0; begin < records.size(); begin += kChunk) {
    const size_t end = std::min(records.size(), begin + kChunk);
    const std::vector<std::string_view> chunk(records.begin() + begin, records.begin() + end);
    const auto ids = tok.encode_batch(chunk, special, threads);
    out.clear();
    for (const auto& r : ids) {
      if (add_special_tokens) {  // the post-processor's tokens around each record
        std::vector<int32_t> around = tok.prefix_ids();
        around.insert(around.end(), r.begin(), r.end());
        around.insert(around.end(), tok.suffix_ids().begin(), tok.suffix_ids().end());
        append_ids(around, &out);
      } else {
        append_ids(r, &out);
      }
    }
    std::fwrite(out.data(), 1, out.size(), stdout);
  }
}

void decode_stream(const gpt::BpeTokenizer& tok, const std::string& text, Records mode) {
  const std::string sep = mode == Records::kLines ? "\n"
                          : mode == Records::kNul ? std::string(1, '\0')
                                                  : "";
  std::vector<int32_t> ids;
  size_t pos = 0;
  int line_no = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    ++line_no;
    ids.clear();
    const char* p = text.data() + pos;
    const char* e = text.data() + end;
    while (p < e) {
      if (*p == ' ' || *p == '\t' || *p == '\r') {
        ++p;
        continue;
      }
      int32_t id = 0;
      const auto r = std::from_chars(p, e, id);
      if (r.ec != std::errc() || (r.ptr < e && *r.ptr != ' ' && *r.ptr != '\t' && *r.ptr != '\r')) {
        throw std::runtime_error("input line " + std::to_string(line_no) + ": '" +
                                 std::string(p, std::min<size_t>(e - p, 20)) +
                                 "' is not a token id");
      }
      if (id < 0 || id >= tok.vocab_size()) {
        throw std::runtime_error("input line " + std::to_string(line_no) + ": token id " +
                                 std::to_string(id) + " outside the vocabulary [0, " +
                                 std::to_string(tok.vocab_size()) + ")");
      }
      ids.push_back(id);
      p = r.ptr;
    }
    const std::string bytes = tok.decode(ids) + sep;
    std::fwrite(bytes.data(), 1, bytes.size(), stdout);
    pos = end + 1;
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "gpt-tokenize: text to byte-level BPE token ids (one output line per input record), "
      "or ids back to text with --decode"};
  std::string tokenizer_arg, input;
  bool decode = false, add_special_tokens = false;
  Records records = Records::kLines;
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
  const std::map<std::string, Records> record_names{
      {"lines", Records::kLines}, {"nul", Records::kNul}, {"whole", Records::kWhole}};
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
      decode_stream(tok, text, records);
    } else {
      encode_stream(tok, text, records, special, add_special_tokens, threads);
    }
    std::fflush(stdout);
    if (std::ferror(stdout)) throw std::runtime_error("write error on standard output");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gpt-tokenize: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
