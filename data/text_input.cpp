#include "data/text_input.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "data/shard.h"

#ifdef GPT_HAVE_ZLIB
#include <zlib.h>
#endif

namespace gpt {

InputError::InputError(const std::string& file, int64_t line, const std::string& what)
    : std::runtime_error(line > 0 ? file + ":" + std::to_string(line) + ": " + what
                                  : file + ": " + what) {}

std::vector<std::string> expand_inputs(const std::vector<std::string>& patterns) {
  std::vector<std::string> files;
  for (const std::string& p : patterns) {
    if (p.find_first_of("*?[") != std::string::npos) {
      std::vector<std::string> matches;
      try {
        matches = expand_glob(p);
      } catch (const std::exception&) {
        throw InputError(p, 0, "no files match this pattern");
      }
      files.insert(files.end(), matches.begin(), matches.end());
    } else {
      struct stat st;
      if (::stat(p.c_str(), &st) != 0)
        throw InputError(p, 0, "cannot open input file: " + std::string(std::strerror(errno)));
      if (S_ISDIR(st.st_mode))
        throw InputError(p, 0, "is a directory, expected a file (or a glob)");
      files.push_back(p);
    }
  }
  if (files.empty()) throw std::invalid_argument("no input files given (--input)");
  return files;
}

namespace {

std::string read_gzip(const std::string& path) {
#ifdef GPT_HAVE_ZLIB
  gzFile gz = gzopen(path.c_str(), "rb");
  if (!gz) throw InputError(path, 0, "cannot open gzip file");
  gzbuffer(gz, 1 << 17);
  std::string out;
  std::vector<char> buf(1 << 17);
  for (;;) {
    const int n = gzread(gz, buf.data(), static_cast<unsigned>(buf.size()));
    if (n < 0) {
      int code = 0;
      const std::string msg = gzerror(gz, &code);
      gzclose_r(gz);
      throw InputError(path, 0, "corrupt gzip data: " + msg);
    }
    if (n == 0) break;
    out.append(buf.data(), static_cast<size_t>(n));
  }
  int code = 0;
  std::string msg = gzerror(gz, &code);
  if (msg.compare(0, path.size() + 2, path + ": ") == 0) msg = msg.substr(path.size() + 2);
  const int close_rc = gzclose_r(gz);
  // A stream cut short reads as a clean end of file with Z_BUF_ERROR set.
  if (code != Z_OK || close_rc != Z_OK)
    throw InputError(
        path, 0,
        "gzip stream is truncated or corrupt" + (msg.empty() ? std::string() : ": " + msg));
  return out;
#else
  throw InputError(
      path, 0, "is gzip-compressed, but this build has no zlib (install zlib1g-dev and rebuild)");
#endif
}

}  // namespace

bool gzip_supported() {
#ifdef GPT_HAVE_ZLIB
  return true;
#else
  return false;
#endif
}

std::string read_input_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw InputError(path, 0, "cannot open input file: " + std::string(std::strerror(errno)));
  char magic[2] = {0, 0};
  in.read(magic, 2);
  const bool gzip = in.gcount() == 2 && static_cast<unsigned char>(magic[0]) == 0x1f &&
                    static_cast<unsigned char>(magic[1]) == 0x8b;
  if (gzip) return read_gzip(path);
  in.clear();
  in.seekg(0);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw InputError(path, 0, "read error");
  return ss.str();
}

std::string quote_for_error(std::string_view text, size_t max_chars) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (out.size() >= max_chars) {
      out += "...";
      break;
    }
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "\\x%02X", c);
      out += hex;
    }
  }
  return out;
}

void for_each_line(std::string_view text,
                   const std::function<void(std::string_view, int64_t)>& fn) {
  size_t pos = 0;
  if (text.size() >= 3 && text.compare(0, 3, "\xEF\xBB\xBF") == 0) pos = 3;
  int64_t number = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    fn(line, ++number);
    pos = end + 1;
  }
}

bool is_blank_line(std::string_view line) {
  for (char c : line)
    if (c != ' ' && c != '\t' && c != '\r') return false;
  return true;
}

std::string_view trim_blanks(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t' || text.front() == '\r'))
    text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r'))
    text.remove_suffix(1);
  return text;
}

std::vector<std::string> split_commas(std::string_view text) {
  std::vector<std::string> out;
  size_t pos = 0;
  for (;;) {
    const size_t comma = text.find(',', pos);
    const size_t end = comma == std::string_view::npos ? text.size() : comma;
    out.emplace_back(trim_blanks(text.substr(pos, end - pos)));
    if (comma == std::string_view::npos) return out;
    pos = comma + 1;
  }
}

std::vector<DocumentView> split_documents(std::string_view file_text, DocumentSplit split) {
  if (split == DocumentSplit::kWholeFile) return {DocumentView{file_text, 1}};
  std::vector<DocumentView> docs;
  size_t pos = 0, doc_begin = 0, doc_end = 0;
  int64_t number = 0, doc_line = 0;
  bool in_doc = false;
  while (pos < file_text.size()) {
    size_t end = file_text.find('\n', pos);
    if (end == std::string_view::npos) end = file_text.size();
    ++number;
    if (is_blank_line(file_text.substr(pos, end - pos))) {
      if (in_doc) docs.push_back({file_text.substr(doc_begin, doc_end - doc_begin), doc_line});
      in_doc = false;
    } else {
      if (!in_doc) {
        in_doc = true;
        doc_begin = pos;
        doc_line = number;
      }
      doc_end = end;
    }
    pos = end + 1;
  }
  if (in_doc) docs.push_back({file_text.substr(doc_begin, doc_end - doc_begin), doc_line});
  return docs;
}

const char* json_type_name(const nlohmann::json& v) {
  switch (v.type()) {
    case nlohmann::json::value_t::null:
      return "null";
    case nlohmann::json::value_t::boolean:
      return "a boolean";
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
      return "an integer";
    case nlohmann::json::value_t::number_float:
      return "a number";
    case nlohmann::json::value_t::string:
      return "a string";
    case nlohmann::json::value_t::array:
      return "an array";
    case nlohmann::json::value_t::object:
      return "an object";
    default:
      return "an unsupported value";
  }
}

namespace {

// nlohmann's message "[json.exception.parse_error.101] parse error at line 1, column 7: syntax
// error while parsing value - invalid literal; last read: 'tru'" becomes "column 7: syntax error
// while parsing value - invalid literal" (the echo of the input is dropped: it may hold any byte).
std::string short_parse_error(const std::string& what) {
  std::string s = what;
  const size_t col = s.find("column ");
  if (col != std::string::npos) s = s.substr(col);
  const size_t last = s.find("; last read");
  if (last != std::string::npos) s = s.substr(0, last);
  return quote_for_error(s, 160);
}

}  // namespace

nlohmann::json parse_jsonl_object(std::string_view line, const std::string& file,
                                  int64_t line_number) {
  nlohmann::json v;
  try {
    v = nlohmann::json::parse(line.begin(), line.end());
  } catch (const nlohmann::json::exception& e) {
    throw InputError(file, line_number, "malformed JSON at " + short_parse_error(e.what()));
  }
  if (!v.is_object())
    throw InputError(file, line_number,
                     std::string("expected a JSON object, got ") + json_type_name(v));
  return v;
}

std::string json_string_field(const nlohmann::json& object, const std::string& key,
                              const std::string& file, int64_t line_number, bool optional) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) {
    if (optional) return "";
    throw InputError(file, line_number, "missing field '" + quote_for_error(key) + "'");
  }
  if (!it->is_string()) {
    throw InputError(
        file, line_number,
        "field '" + quote_for_error(key) + "': expected a string, got " + json_type_name(*it));
  }
  return it->get<std::string>();
}

std::vector<std::string_view> split_tabs(std::string_view line) {
  std::vector<std::string_view> fields;
  size_t pos = 0;
  for (;;) {
    const size_t tab = line.find('\t', pos);
    if (tab == std::string_view::npos) {
      fields.push_back(line.substr(pos));
      return fields;
    }
    fields.push_back(line.substr(pos, tab - pos));
    pos = tab + 1;
  }
}

}  // namespace gpt
