// Byte-level BPE: the file formats (OpenAI's and Hugging Face's), GPT-2's byte <-> Unicode mapping,
// and where the real GPT-2 files are found.

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <unordered_map>

#include "data/bpe_tokenizer.h"
#include "engine/errors.h"
#include "engine/files.h"

namespace gpt {
namespace fs = std::filesystem;
using nlohmann::json;

// ---------------------------------------------------------------------------------------------
// GPT-2's byte <-> Unicode mapping
// ---------------------------------------------------------------------------------------------

namespace {

struct ByteUnicodeMap {
  std::vector<uint8_t> order;  // token id 0..255 -> byte
  uint32_t byte_to_cp[256];    // byte -> code point of its printable stand-in
  std::unordered_map<uint32_t, uint8_t> cp_to_byte;
  ByteUnicodeMap() {
    // Printable Latin-1 bytes stand for themselves, in byte order; the rest follow, mapped to
    // U+0100, U+0101, ... (GPT-2's bytes_to_unicode()).
    auto printable = [](int b) {
      return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    };
    for (int b = 0; b < 256; ++b) {
      if (printable(b)) {
        order.push_back(static_cast<uint8_t>(b));
        byte_to_cp[b] = static_cast<uint32_t>(b);
      }
    }
    uint32_t extra = 0;
    for (int b = 0; b < 256; ++b) {
      if (!printable(b)) {
        order.push_back(static_cast<uint8_t>(b));
        byte_to_cp[b] = 256 + extra++;
      }
    }
    for (int b = 0; b < 256; ++b) cp_to_byte[byte_to_cp[b]] = static_cast<uint8_t>(b);
  }
};

const ByteUnicodeMap& byte_unicode_map() {
  static const ByteUnicodeMap map;
  return map;
}

void append_utf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    *out += static_cast<char>(cp);
  } else {  // the mapping only uses code points below U+0800
    *out += static_cast<char>(0xC0 | (cp >> 6));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

}  // namespace

const std::vector<uint8_t>& gpt2_byte_order() {
  return byte_unicode_map().order;
}

std::string bytes_to_gpt2_unicode(std::string_view bytes) {
  const ByteUnicodeMap& map = byte_unicode_map();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) append_utf8(map.byte_to_cp[b], &out);
  return out;
}

bool gpt2_unicode_to_bytes(std::string_view text, std::string* bytes) {
  const ByteUnicodeMap& map = byte_unicode_map();
  bytes->clear();
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  size_t i = 0;
  while (i < text.size()) {
    uint32_t cp = 0;
    int len = 0;
    if (s[i] < 0x80) {
      cp = s[i];
      len = 1;
    } else if ((s[i] & 0xE0) == 0xC0 && i + 1 < text.size() && (s[i + 1] & 0xC0) == 0x80) {
      cp = ((s[i] & 0x1Fu) << 6) | (s[i + 1] & 0x3Fu);
      len = 2;
    } else {
      return false;
    }
    const auto it = map.cp_to_byte.find(cp);
    if (it == map.cp_to_byte.end()) return false;
    *bytes += static_cast<char>(it->second);
    i += len;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

namespace {

[[noreturn]] void fail_in_file(const fs::path& file, const std::string& what) {
  fail("tokenizer file " + file.string(), what);
}

std::string read_file(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) fail_in_file(file, std::string("cannot open: ") + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) fail_in_file(file, "read error");
  return ss.str();
}

json parse_json(const fs::path& file) {
  const std::string text = read_file(file);
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    fail_in_file(file, std::string("invalid JSON: ") + e.what());
  }
}

// The pieces of a vocabulary file: token text -> id, plus merges as (left text, right text).
struct RawVocab {
  std::vector<std::string> text_of_id;  // id -> token text as stored (byte-level alphabet)
  std::unordered_map<std::string, int32_t> id_of_text;
  std::vector<std::pair<int32_t, int32_t>> merges;
  std::vector<int32_t> merged_ids;        // rank -> id of the merged token
  std::vector<int32_t> declared_special;  // tokenizer.json added_tokens with "special": true
  std::vector<int32_t> declared_added;    // and with "special": false
  std::vector<std::string> prefix_tokens, suffix_tokens;  // the post-processor's, by text
  BpeOptions options;
};

// The pre-tokenizer regexes the engine knows, exactly as the published tokenizer.json files state
// them (data/pretokenizer.h has the scanner of each).
constexpr const char* kLlama3SplitRegex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr const char* kQwen2SplitRegex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

bool is_byte_level(const json& j, bool use_regex) {
  return j.is_object() && j.value("type", std::string()) == "ByteLevel" &&
         !j.value("add_prefix_space", false) && j.value("use_regex", true) == use_regex;
}

// normalizer, pre_tokenizer and decoder: one of the pipelines data/pretokenizer.h knows.
void read_pipeline(const json& root, const fs::path& file, RawVocab* raw) {
  const json normalizer = root.value("normalizer", json());
  if (normalizer.is_object() && normalizer.value("type", std::string()) == "NFC") {
    raw->options.normalizer = Normalizer::kNfc;
  } else if (!normalizer.is_null()) {
    fail_in_file(file, "normalizer " + normalizer.dump() +
                           " is not supported (only none and {\"type\": \"NFC\"})");
  }
  const json pre = root.value("pre_tokenizer", json());
  const json steps = pre.is_object() && pre.value("type", std::string()) == "Sequence"
                         ? pre.value("pretokenizers", json::array())
                         : json::array({pre});
  bool known = false;
  if (steps.size() == 1 && is_byte_level(steps[0], true)) {
    raw->options.pre_tokenizer = PreTokenizer::kGpt2;
    known = true;
  } else if (steps.size() == 2 && steps[0].is_object() &&
             steps[0].value("type", std::string()) == "Split" && is_byte_level(steps[1], false)) {
    const json& split = steps[0];
    const json pattern = split.value("pattern", json());
    const std::string regex =
        pattern.is_object() ? pattern.value("Regex", std::string()) : std::string();
    if (split.value("behavior", std::string()) != "Isolated" || split.value("invert", false)) {
      fail_in_file(file,
                   "Split pre-tokenizer must have \"behavior\": \"Isolated\" and no "
                   "\"invert\", got " +
                       split.dump());
    }
    if (regex == kLlama3SplitRegex) {
      raw->options.pre_tokenizer = PreTokenizer::kLlama3;
    } else if (regex == kQwen2SplitRegex) {
      raw->options.pre_tokenizer = PreTokenizer::kQwen2;
    } else {
      fail_in_file(file, "Split pattern " + pattern.dump() +
                             " is not one the engine knows (Llama 3's or Qwen2's regex, "
                             "docs/tokenizer.md)");
    }
    known = true;
  } else if (steps.size() == 2 && steps[0].is_object() &&
             steps[0].value("type", std::string()) == "Digits" &&
             steps[0].value("individual_digits", false) && is_byte_level(steps[1], true)) {
    raw->options.pre_tokenizer = PreTokenizer::kDigitsGpt2;
    known = true;
  }
  if (!known) {
    fail_in_file(file, "pre_tokenizer " + pre.dump() +
                           " is not one the engine knows: GPT-2's ByteLevel regex, Llama 3's or "
                           "Qwen2's Split regex then ByteLevel, or Digits then ByteLevel "
                           "(docs/tokenizer.md)");
  }
  const json decoder = root.value("decoder", json());
  if (!decoder.is_null() && decoder.value("type", std::string()) != "ByteLevel") {
    fail_in_file(file, "decoder " + decoder.dump() + " is not supported (only ByteLevel)");
  }
}

// post_processor: ByteLevel (offsets only), TemplateProcessing (special tokens around a text) or a
// Sequence of them. Records the template's tokens around the single sequence $A.
void resolve_post_processor(const json& root, const fs::path& file, RawVocab* raw) {
  const json post = root.value("post_processor", json());
  if (post.is_null()) return;
  const json steps = post.value("type", std::string()) == "Sequence"
                         ? post.value("processors", json::array())
                         : json::array({post});
  for (const json& step : steps) {
    const std::string type = step.is_object() ? step.value("type", std::string()) : "";
    if (type == "ByteLevel") continue;
    if (type != "TemplateProcessing") {
      fail_in_file(file, "post_processor " + step.dump() +
                             " is not supported (only ByteLevel and TemplateProcessing)");
    }
    bool seen_sequence = false;
    for (const json& item : step.value("single", json::array())) {
      if (item.contains("Sequence")) {
        if (seen_sequence || item["Sequence"].value("id", std::string()) != "A")
          fail_in_file(file, "post_processor template " + step["single"].dump() +
                                 " is not supported (one $A between special tokens)");
        seen_sequence = true;
      } else if (item.contains("SpecialToken")) {
        const std::string name = item["SpecialToken"].value("id", std::string());
        const json& table = step.value("special_tokens", json::object());
        if (!table.contains(name) || !table[name].contains("tokens"))
          fail_in_file(file, "post_processor special token '" + name + "' is not declared");
        for (const json& token : table[name]["tokens"]) {
          (seen_sequence ? raw->suffix_tokens : raw->prefix_tokens)
              .push_back(token.get<std::string>());
        }
      }
    }
  }
}

void read_vocab_object(const json& vocab, const fs::path& file, RawVocab* raw) {
  if (!vocab.is_object()) fail_in_file(file, "the vocabulary must be a JSON object {token: id}");
  std::vector<int8_t> seen;
  raw->text_of_id.assign(vocab.size(), std::string());
  seen.assign(vocab.size(), 0);
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it.value().is_number_integer())
      fail_in_file(file, "token '" + it.key() + "': id is not an integer");
    const int64_t id = it.value().get<int64_t>();
    if (id < 0 || id >= static_cast<int64_t>(vocab.size())) {
      fail_in_file(file, "token '" + it.key() + "': id " + std::to_string(id) + " outside [0, " +
                             std::to_string(vocab.size()) + ") (ids must be 0..N-1 without gaps)");
    }
    if (seen[id]) fail_in_file(file, "id " + std::to_string(id) + " is given to two tokens");
    seen[id] = 1;
    raw->text_of_id[id] = it.key();
    raw->id_of_text[it.key()] = static_cast<int32_t>(id);
  }
}

void add_merge(const std::string& left, const std::string& right, const fs::path& file,
               const std::string& where, RawVocab* raw) {
  const auto l = raw->id_of_text.find(left);
  const auto r = raw->id_of_text.find(right);
  if (l == raw->id_of_text.end())
    fail_in_file(file, where + ": token '" + left + "' is not in the vocabulary");
  if (r == raw->id_of_text.end())
    fail_in_file(file, where + ": token '" + right + "' is not in the vocabulary");
  const auto m = raw->id_of_text.find(left + right);
  if (m == raw->id_of_text.end()) {
    fail_in_file(file, where + ": merged token '" + left + right + "' is not in the vocabulary");
  }
  raw->merges.emplace_back(l->second, r->second);
  raw->merged_ids.push_back(m->second);
}

// merges.txt / vocab.bpe: an optional "#version" line, then "left right" per line.
void read_merges_text(const fs::path& file, RawVocab* raw) {
  const std::string text = read_file(file);
  size_t pos = 0;
  int line_no = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (line_no == 1 && line.rfind("#version", 0) == 0)) continue;
    const size_t space = line.find(' ');
    if (space == std::string::npos || space == 0 || space + 1 == line.size() ||
        line.find(' ', space + 1) != std::string::npos) {
      fail_in_file(
          file, "line " + std::to_string(line_no) + ": expected 'left right', got '" + line + "'");
    }
    add_merge(line.substr(0, space), line.substr(space + 1), file,
              "line " + std::to_string(line_no), raw);
  }
}

// tokenizer.json (Hugging Face tokenizers): only what a GPT-2-style byte-level BPE uses.
void read_tokenizer_json(const fs::path& file, RawVocab* raw) {
  const json root = parse_json(file);
  if (!root.is_object() || !root.contains("model") || !root["model"].is_object()) {
    fail_in_file(file, "no \"model\" object");
  }
  const json& model = root["model"];
  if (model.value("type", std::string("BPE")) != "BPE") {
    fail_in_file(
        file, "model.type is '" + model.value("type", std::string()) + "'; only BPE is supported");
  }
  auto null_or_empty = [&](const char* key) {
    return !model.contains(key) || model[key].is_null() ||
           (model[key].is_string() && model[key].get<std::string>().empty());
  };
  if (!null_or_empty("continuing_subword_prefix") || !null_or_empty("end_of_word_suffix")) {
    fail_in_file(file, "subword prefixes/suffixes are not supported (byte-level BPE has none)");
  }
  if (model.contains("dropout") && !model["dropout"].is_null() &&
      model["dropout"].get<double>() != 0.0) {
    fail_in_file(file, "BPE dropout is not supported");
  }
  if (model.value("byte_fallback", false)) fail_in_file(file, "byte_fallback is not supported");
  read_pipeline(root, file, raw);
  raw->options.ignore_merges = model.value("ignore_merges", false);
  if (!model.contains("vocab")) fail_in_file(file, "no model.vocab");
  json vocab = model["vocab"];
  // Added tokens are part of the vocabulary; tokenizer.json normally lists them in both places.
  if (root.contains("added_tokens") && root["added_tokens"].is_array()) {
    for (const json& t : root["added_tokens"]) {
      if (!t.is_object() || !t.contains("id") || !t.contains("content") ||
          !t["id"].is_number_integer() || !t["content"].is_string()) {
        fail_in_file(file, "added_tokens entries need an integer \"id\" and a string \"content\"");
      }
      vocab[t["content"].get<std::string>()] = t["id"];
    }
  }
  read_vocab_object(vocab, file, raw);
  if (root.contains("added_tokens") && root["added_tokens"].is_array()) {
    for (const json& t : root["added_tokens"]) {
      const std::string content = t["content"].get<std::string>();
      for (const char* key : {"single_word", "lstrip", "rstrip"}) {
        if (t.value(key, false)) {
          fail_in_file(file, "added token '" + content + "' has \"" + key +
                                 "\": true, which is not supported");
        }
      }
      const int32_t id = t["id"].get<int32_t>();
      if (t.value("special", true)) {
        raw->declared_special.push_back(id);
      } else {
        raw->declared_added.push_back(id);
      }
    }
  }
  resolve_post_processor(root, file, raw);
  if (!model.contains("merges") || !model["merges"].is_array())
    fail_in_file(file, "no model.merges array");
  int index = 0;
  for (const json& m : model["merges"]) {
    const std::string where = "model.merges[" + std::to_string(index++) + "]";
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const size_t space = s.find(' ');
      if (space == std::string::npos || space == 0 || space + 1 == s.size() ||
          s.find(' ', space + 1) != std::string::npos) {
        fail_in_file(file, where + ": expected \"left right\", got \"" + s + "\"");
      }
      add_merge(s.substr(0, space), s.substr(space + 1), file, where, raw);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      add_merge(m[0].get<std::string>(), m[1].get<std::string>(), file, where, raw);
    } else {
      fail_in_file(file, where + ": expected \"left right\" or [\"left\", \"right\"]");
    }
  }
}

// Turns token texts into bytes and builds the tokenizer. A token is special when it is neither one
// byte nor the result of a merge, and it is declared so (tokenizer.json's added_tokens with
// "special": true), or its text is not in GPT-2's byte alphabet, or it is marked like
// <|endoftext|> ("<|...|>") and not declared an ordinary added token; a special token's text is
// kept literally, as is an added token's ("special": false) that no merge produces. Every other
// token is spelled in GPT-2's byte alphabet (a token that no merge produces is then an ordinary
// token that BPE never reaches, as in Hugging Face).
BpeTokenizer build(RawVocab raw, const fs::path& vocab_file) {
  const size_t n = raw.text_of_id.size();
  std::vector<uint8_t> declared(n, 0), merged(n, 0), added(n, 0);
  for (int32_t id : raw.merged_ids) merged[id] = 1;
  for (int32_t id : raw.declared_special) declared[id] = 1;
  for (int32_t id : raw.declared_added) added[id] = !declared[id];
  std::vector<std::string> token_bytes(n);
  std::vector<int32_t> special_ids;
  std::string bytes;
  for (size_t id = 0; id < n; ++id) {
    const std::string& text = raw.text_of_id[id];
    const bool decodes = gpt2_unicode_to_bytes(text, &bytes);
    const bool reachable = merged[id] || (decodes && bytes.size() == 1);
    const bool marked = text.size() > 4 && text.compare(0, 2, "<|") == 0 &&
                        text.compare(text.size() - 2, 2, "|>") == 0;
    if (added[id] && !reachable) {
      token_bytes[id] = text;  // an added token that is not special: its text, matched as is
    } else if (!reachable && (declared[id] || !decodes || marked)) {
      token_bytes[id] = text;
      special_ids.push_back(static_cast<int32_t>(id));
    } else if (!decodes) {
      fail_in_file(vocab_file, "token '" + text + "' (id " + std::to_string(id) +
                                   ") is not written in GPT-2's byte-level alphabet");
    } else {
      token_bytes[id] = bytes;
    }
  }
  try {
    BpeOptions options = raw.options;
    for (int32_t id : raw.declared_added) {
      if (added[id]) options.added_ids.push_back(id);
    }
    auto ids_of = [&](const std::vector<std::string>& texts, std::vector<int32_t>* ids) {
      for (const std::string& text : texts) {
        const auto it = raw.id_of_text.find(text);
        if (it == raw.id_of_text.end())
          fail_in_file(vocab_file, "post_processor token '" + text + "' is not in the vocabulary");
        ids->push_back(it->second);
      }
    };
    ids_of(raw.prefix_tokens, &options.prefix_ids);
    ids_of(raw.suffix_tokens, &options.suffix_ids);
    return BpeTokenizer(std::move(token_bytes), raw.merges, special_ids, std::move(options));
  } catch (const std::invalid_argument& e) {
    fail_in_file(vocab_file, e.what());
  }
}

}  // namespace

BpeTokenizer BpeTokenizer::load(const std::string& path) {
  const fs::path p(path);
  std::error_code ec;
  if (fs::is_regular_file(p, ec)) {
    RawVocab raw;
    read_tokenizer_json(p, &raw);
    return build(std::move(raw), p);
  }
  if (!fs::is_directory(p, ec)) {
    throw std::runtime_error("tokenizer path " + path +
                             " is neither a directory nor a tokenizer.json file");
  }
  auto has = [&](const char* name) { return fs::exists(p / name, ec); };
  RawVocab raw;
  if (has("tokenizer.json")) {
    read_tokenizer_json(p / "tokenizer.json", &raw);
    return build(std::move(raw), p / "tokenizer.json");
  }
  for (const auto& [vocab_name, merges_name] :
       {std::pair{"vocab.json", "merges.txt"}, std::pair{"encoder.json", "vocab.bpe"}}) {
    if (has(vocab_name) && has(merges_name)) {
      read_vocab_object(parse_json(p / vocab_name), p / vocab_name, &raw);
      read_merges_text(p / merges_name, &raw);
      return build(std::move(raw), p / vocab_name);
    }
  }
  throw std::runtime_error(
      "no tokenizer files in " + path +
      " (expected tokenizer.json, vocab.json + merges.txt, or encoder.json + vocab.bpe)");
}

// ---------------------------------------------------------------------------------------------
// Saving in Hugging Face's formats
// ---------------------------------------------------------------------------------------------

void BpeTokenizer::save_hf(const std::string& dir) const {
  const fs::path d(dir);
  std::error_code ec;
  fs::create_directories(d, ec);
  if (ec) fail_in_file(d, "cannot create the directory: " + ec.message());

  auto is_added = [&](int32_t id) {
    return std::binary_search(options_.added_ids.begin(), options_.added_ids.end(), id);
  };
  auto text_of = [&](int32_t id) {
    return is_special(id) || is_added(id) ? tokens_[id] : bytes_to_gpt2_unicode(tokens_[id]);
  };
  nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
  for (int32_t id = 0; id < vocab_size(); ++id) vocab[text_of(id)] = id;
  std::string merges_txt = "#version: 0.2\n";
  nlohmann::ordered_json merges = nlohmann::ordered_json::array();
  for (const auto& [left, right] : merges_) {
    const std::string line = text_of(left) + " " + text_of(right);
    merges_txt += line + "\n";
    merges.push_back(line);
  }
  nlohmann::ordered_json added = nlohmann::ordered_json::array();
  for (int32_t id : special_ids_) {
    added.push_back({{"id", id},
                     {"content", tokens_[id]},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  }
  for (int32_t id : options_.added_ids) {
    added.push_back({{"id", id},
                     {"content", tokens_[id]},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", true},
                     {"special", false}});
  }
  auto byte_level = [](bool add_prefix_space, bool trim_offsets, bool use_regex = true) {
    return nlohmann::ordered_json{{"type", "ByteLevel"},
                                  {"add_prefix_space", add_prefix_space},
                                  {"trim_offsets", trim_offsets},
                                  {"use_regex", use_regex}};
  };
  nlohmann::ordered_json pre_tokenizer = byte_level(false, true);
  auto split = [&](const char* regex) {
    return nlohmann::ordered_json{{"type", "Sequence"},
                                  {"pretokenizers",
                                   {{{"type", "Split"},
                                     {"pattern", {{"Regex", regex}}},
                                     {"behavior", "Isolated"},
                                     {"invert", false}},
                                    byte_level(false, true, false)}}};
  };
  if (options_.pre_tokenizer == PreTokenizer::kLlama3) pre_tokenizer = split(kLlama3SplitRegex);
  if (options_.pre_tokenizer == PreTokenizer::kQwen2) pre_tokenizer = split(kQwen2SplitRegex);
  if (options_.pre_tokenizer == PreTokenizer::kDigitsGpt2) {
    pre_tokenizer = {
        {"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Digits"}, {"individual_digits", true}}, byte_level(false, true)}}};
  }
  nlohmann::ordered_json normalizer = nullptr;
  if (options_.normalizer == Normalizer::kNfc) normalizer = {{"type", "NFC"}};
  nlohmann::ordered_json post_processor = byte_level(true, false);
  if (!options_.prefix_ids.empty() || !options_.suffix_ids.empty()) {
    // TemplateProcessing with each special token on its own; a pair repeats the template.
    nlohmann::ordered_json single = nlohmann::ordered_json::array(), pair, table;
    for (int32_t id : options_.prefix_ids)
      single.push_back({{"SpecialToken", {{"id", tokens_[id]}, {"type_id", 0}}}});
    single.push_back({{"Sequence", {{"id", "A"}, {"type_id", 0}}}});
    for (int32_t id : options_.suffix_ids)
      single.push_back({{"SpecialToken", {{"id", tokens_[id]}, {"type_id", 0}}}});
    pair = single;
    for (nlohmann::ordered_json item : single) {
      if (item.contains("Sequence")) item["Sequence"]["id"] = "B";
      for (auto& [key, value] : item.items()) value["type_id"] = 1;
      pair.push_back(item);
    }
    for (const auto* ids : {&options_.prefix_ids, &options_.suffix_ids}) {
      for (int32_t id : *ids) {
        table[tokens_[id]] = {{"id", tokens_[id]}, {"ids", {id}}, {"tokens", {tokens_[id]}}};
      }
    }
    post_processor = {{"type", "Sequence"},
                      {"processors",
                       {post_processor,
                        {{"type", "TemplateProcessing"},
                         {"single", single},
                         {"pair", pair},
                         {"special_tokens", table}}}}};
  }
  nlohmann::ordered_json tokenizer_json = {{"version", "1.0"},
                                           {"truncation", nullptr},
                                           {"padding", nullptr},
                                           {"added_tokens", added},
                                           {"normalizer", normalizer},
                                           {"pre_tokenizer", pre_tokenizer},
                                           {"post_processor", post_processor},
                                           {"decoder", byte_level(true, true)},
                                           {"model",
                                            {{"type", "BPE"},
                                             {"dropout", nullptr},
                                             {"unk_token", nullptr},
                                             {"continuing_subword_prefix", ""},
                                             {"end_of_word_suffix", ""},
                                             {"fuse_unk", false},
                                             {"byte_fallback", false},
                                             {"ignore_merges", options_.ignore_merges},
                                             {"vocab", vocab},
                                             {"merges", merges}}}};
  nlohmann::ordered_json config = {{"tokenizer_class", "GPT2Tokenizer"},
                                   {"add_prefix_space", false},
                                   {"model_max_length", 1024}};
  if (eot_ >= 0) {
    for (const char* key : {"bos_token", "eos_token", "unk_token"}) config[key] = tokens_[eot_];
  }
  try {
    write_file_atomic((d / "vocab.json").string(), vocab.dump(1) + "\n");
    write_file_atomic((d / "merges.txt").string(), merges_txt);
    write_file_atomic((d / "tokenizer.json").string(), tokenizer_json.dump(1) + "\n");
    write_file_atomic((d / "tokenizer_config.json").string(), config.dump(2) + "\n");
  } catch (const nlohmann::json::exception& e) {  // e.g. a special token that is not valid UTF-8
    fail_in_file(d, std::string("cannot serialise the vocabulary: ") + e.what());
  }
}

// ---------------------------------------------------------------------------------------------
// Finding GPT-2's files
// ---------------------------------------------------------------------------------------------

std::string find_gpt2_tokenizer_dir() {
  auto complete = [](const fs::path& d) {
    std::error_code ec;
    return fs::exists(d / "encoder.json", ec) && fs::exists(d / "vocab.bpe", ec);
  };
  if (const char* env = std::getenv("GPT_TOKENIZER_DIR"); env && *env) {
    if (complete(env)) return env;
  }
  std::vector<fs::path> starts;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) starts.push_back(exe.parent_path());
  const fs::path cwd = fs::current_path(ec);
  if (!ec) starts.push_back(cwd);
  for (const fs::path& start : starts) {
    for (fs::path dir = start; !dir.empty(); dir = dir.parent_path()) {
      for (const fs::path& candidate :
           {dir / ".." / "shared" / "data" / "gpt2", dir / ".deps" / "gpt2"}) {
        if (complete(candidate)) return fs::weakly_canonical(candidate, ec).string();
      }
      if (dir == dir.root_path()) break;
    }
  }
  return "";
}

std::string resolve_tokenizer_path(const std::string& name_or_path) {
  if (name_or_path != "gpt2") return name_or_path;
  const std::string dir = find_gpt2_tokenizer_dir();
  if (dir.empty()) {
    throw std::runtime_error(
        "GPT-2's tokenizer files (encoder.json, vocab.bpe) were not found: set GPT_TOKENIZER_DIR, "
        "or "
        "run scripts/fetch_gpt2_tokenizer.sh (downloads them into .deps/gpt2)");
  }
  return dir;
}

}  // namespace gpt
