#include "data/token_text.h"

#include <algorithm>
#include <charconv>
#include <stdexcept>

namespace gpt {

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

namespace {

void append_ids(const std::vector<int32_t>& ids, std::string* out) {
  char buf[16];
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) *out += ' ';
    const auto r = std::to_chars(buf, buf + sizeof(buf), ids[i]);
    out->append(buf, r.ptr);
  }
  *out += '\n';
}

}  // namespace

void encode_records(const BpeTokenizer& tok, std::string_view text, Records mode,
                    SpecialTokens special, bool add_special_tokens, int threads,
                    const std::function<void(std::string_view)>& write) {
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
    write(out);
  }
}

void decode_records(const BpeTokenizer& tok, std::string_view text, Records mode,
                    const std::function<void(std::string_view)>& write) {
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
    write(bytes);
    pos = end + 1;
  }
}

}  // namespace gpt
