// Chat templates recognised from their text and rendered without Jinja (see chat_template.h).
#include "data/chat_template.h"

#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <stdexcept>

#include "data/bpe_tokenizer.h"

namespace gpt {

namespace {

// ---- reading the model's files ------------------------------------------------------------------

bool read_json_file(const std::string& path, nlohmann::json* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    *out = nlohmann::json::parse(ss.str());
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(path + ": not valid JSON (" + e.what() + ")");
  }
  if (!out->is_object()) throw std::runtime_error(path + ": expected a JSON object");
  return true;
}

// A token field: null/absent -> "", a string, or an AddedToken object {"content": ...}.
std::string token_field(const nlohmann::json& cfg, const char* key, const std::string& path) {
  const auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string())
    return (*it)["content"].get<std::string>();
  throw std::runtime_error(path + ": field '" + key +
                           "' must be a string, null or an object with a string \"content\"");
}

// ---- template text in a canonical form ----------------------------------------------------------

// Escapes a string literal's value the one way the canonical form writes it.
std::string escape_literal(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\'')
      out += "\\'";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string unescape_literal(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      const char c = s[++i];
      out += c == 'n' ? '\n' : c == 't' ? '\t' : c;
    } else {
      out += s[i];
    }
  }
  return out;
}

bool is_blank(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

// The template with its layout removed: inside tags, whitespace outside string literals and the
// whitespace-control marks are dropped and every literal is written '...' with one escaping;
// comments and whitespace-only text between tags are dropped (transformers renders with
// trim_blocks and lstrip_blocks, and the published templates strip that text); other text
// between tags is kept as a literal output tag. Two templates with the same canonical form render
// the same, which is what recognition compares.
std::string canonical(const std::string& t) {
  std::string out;
  size_t i = 0;
  const size_t n = t.size();
  while (i < n) {
    const bool tag =
        i + 1 < n && t[i] == '{' && (t[i + 1] == '{' || t[i + 1] == '%' || t[i + 1] == '#');
    if (!tag) {
      size_t j = i;
      while (j < n &&
             !(j + 1 < n && t[j] == '{' && (t[j + 1] == '{' || t[j + 1] == '%' || t[j + 1] == '#')))
        ++j;
      const std::string raw = t.substr(i, j - i);
      bool blank = true;
      for (char c : raw) blank = blank && is_blank(c);
      if (!blank) out += "{{'" + escape_literal(raw) + "'}}";
      i = j;
      continue;
    }
    const char kind = t[i + 1];
    const char close = kind == '{' ? '}' : kind;
    if (kind == '#') {
      const size_t end = t.find("#}", i + 2);
      i = end == std::string::npos ? n : end + 2;
      continue;
    }
    out += '{';
    out += kind;
    i += 2;
    if (i < n && (t[i] == '-' || t[i] == '+')) ++i;
    std::string body;
    while (i < n) {
      const char c = t[i];
      if (c == '\'' || c == '"') {
        std::string value;
        ++i;
        while (i < n && t[i] != c) {
          if (t[i] == '\\' && i + 1 < n) {
            value += t[i];
            value += t[i + 1];
            i += 2;
          } else {
            value += t[i++];
          }
        }
        ++i;  // the closing quote
        body += "'" + escape_literal(unescape_literal(value)) + "'";
        continue;
      }
      if (c == close && i + 1 < n && t[i + 1] == '}') break;
      if ((c == '-' || c == '+') && i + 2 < n && t[i + 1] == close && t[i + 2] == '}') {
        ++i;
        continue;
      }
      if (!is_blank(c)) body += c;
      ++i;
    }
    out += body;
    out += close;
    out += '}';
    i += 2;
  }
  return out;
}

std::string excerpt(const std::string& jinja) {
  std::string s;
  for (char c : jinja.substr(0, 100)) s += c == '\n' ? std::string("\\n") : std::string(1, c);
  return "'" + s + (jinja.size() > 100 ? "...'" : "'");
}

// ---- the published templates (their parts that decide the rendering) ---------------------------

const char* const kChatml =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] "
    "+ '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|im_start|>assistant\\n' "
    "}}{% endif %}";
const char* const kChatmlSystem =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
    "'<|im_start|>system\\n@SYSTEM@<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] "
    "+ "
    "'\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt "
    "%}{{ '<|im_start|>assistant\\n' }}{% endif %}";
const char* const kLlama3 =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | "
    "trim "
    "+ '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif "
    "%}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";

// Qwen2.5's template (Qwen2.5-Instruct and its derivatives): a tools branch the engine never takes
// (it passes no tools), else ChatML after a system turn that is the first message or the default
// below (@SYSTEM@), and assistant turns without tool calls as plain ChatML.
const char* const kQwen25System =
    "{%- else %}{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + "
    "messages[0]['content'] + '<|im_end|>\\n' }}{%- else %}{{- '<|im_start|>system\\n@SYSTEM@"
    "<|im_end|>\\n' }}{%- endif %}{%- endif %}";
const char* const kQwen25Parts[] = {
    "{%- if tools %}{{- '<|im_start|>system\\n' }}",
    "{%- for message in messages %}{%- if (message.role == \"user\") or (message.role == "
    "\"system\" and not loop.first) or (message.role == \"assistant\" and not "
    "message.tool_calls) %}{{- '<|im_start|>' + message.role + '\\n' + message.content + "
    "'<|im_end|>' + '\\n' }}{%- elif message.role == \"assistant\" %}",
    "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}",
};

const char* const kQwen3Parts[] = {
    "{%- else %}{%- if messages[0].role == 'system' %}{{- '<|im_start|>system\\n' + "
    "messages[0].content + '<|im_end|>\\n' }}{%- endif %}{%- endif %}",
    "{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}",
    "{%- if ns.multi_step_tool and message.role == \"user\" and "
    "not(message.content.startswith('<tool_response>') and "
    "message.content.endswith('</tool_response>')) %}{%- set ns.multi_step_tool = false %}{%- set "
    "ns.last_query_index = index %}{%- endif %}",
    "{%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) %}{{- "
    "'<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}{%- elif "
    "message.role == \"assistant\" %}{%- set content = message.content %}{%- set reasoning_content "
    "= '' %}",
    "{%- if '</think>' in message.content %}{%- set content = "
    "message.content.split('</think>')[-1].lstrip('\\n') %}{%- set reasoning_content = "
    "message.content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') %}{%- "
    "endif %}",
    "{%- if loop.index0 > ns.last_query_index %}{%- if loop.last or (not loop.last and "
    "reasoning_content) %}{{- '<|im_start|>' + message.role + '\\n<think>\\n' + "
    "reasoning_content.strip('\\n') + '\\n</think>\\n\\n' + content.lstrip('\\n') }}{%- else %}{{- "
    "'<|im_start|>' + message.role + '\\n' + content }}{%- endif %}{%- else %}{{- '<|im_start|>' + "
    "message.role + '\\n' + content }}{%- endif %}",
    "{{- '<|im_end|>\\n' }}",
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- if enable_thinking is "
    "defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}{%- "
    "endif %}",
};

const char* const kLlama31Parts[] = {
    "{%- if messages[0]['role'] == 'system' %}{%- set system_message = "
    "messages[0]['content']|trim %}{%- set messages = messages[1:] %}{%- else %}{%- set "
    "system_message = \"\" %}{%- endif %}",
    "{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}",
    "{{- \"Cutting Knowledge Date: December 2023\\n\" }}{{- \"Today Date: \" + date_string + "
    "\"\\n\\n\" }}",
    "{{- system_message }}{{- \"<|eot_id|>\" }}",
    "{%- for message in messages %}{%- if not (message.role == 'ipython' or message.role == 'tool' "
    "or 'tool_calls' in message) %}{{- '<|start_header_id|>' + message['role'] + "
    "'<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}",
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' "
    "}}{%- endif %}",
};

template <size_t N>
bool has_all(const std::string& canon, const char* const (&parts)[N]) {
  for (const char* p : parts)
    if (canon.find(canonical(p)) == std::string::npos) return false;
  return true;
}

bool starts_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(0, p.size(), p) == 0;
}
bool ends_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

// ---- rendering helpers --------------------------------------------------------------------------

std::string strip_chars(const std::string& s, bool left, bool right, char c) {
  size_t b = 0, e = s.size();
  if (left)
    while (b < e && s[b] == c) ++b;
  if (right)
    while (e > b && s[e - 1] == c) --e;
  return s.substr(b, e - b);
}

// Decodes the UTF-8 code point at s[i] (of length *len); invalid bytes are one-byte code points
// that are never whitespace.
uint32_t code_point_at(const std::string& s, size_t i, size_t* len) {
  const auto b = static_cast<unsigned char>(s[i]);
  int extra = b < 0x80 ? 0 : (b >> 5) == 6 ? 1 : (b >> 4) == 14 ? 2 : (b >> 3) == 30 ? 3 : -1;
  if (extra < 0 || i + static_cast<size_t>(extra) >= s.size() + (extra == 0 ? 1 : 0)) {
    *len = 1;
    return 0xFFFFFFFFu;
  }
  uint32_t cp = extra == 0 ? b : b & (0x3F >> extra);
  for (int k = 1; k <= extra; ++k) {
    const auto c = static_cast<unsigned char>(s[i + static_cast<size_t>(k)]);
    if ((c >> 6) != 2) {
      *len = 1;
      return 0xFFFFFFFFu;
    }
    cp = (cp << 6) | (c & 0x3F);
  }
  *len = static_cast<size_t>(extra) + 1;
  return cp;
}

bool python_space(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

class Out {
 public:
  void text(const std::string& s, bool assistant = false) {
    if (s.empty()) return;
    if (!segs_.empty() && !segs_.back().special && segs_.back().assistant == assistant) {
      segs_.back().text += s;
    } else {
      segs_.push_back(ChatSegment{s, false, assistant});
    }
  }
  void special(const std::string& s, bool assistant = false) {
    if (!s.empty()) segs_.push_back(ChatSegment{s, true, assistant});
  }
  std::vector<ChatSegment> take() { return std::move(segs_); }

 private:
  std::vector<ChatSegment> segs_;
};

void check_roles(const std::vector<ChatMessage>& messages) {
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string& r = messages[i].role;
    if (r != "system" && r != "user" && r != "assistant")
      throw std::invalid_argument("message " + std::to_string(i) + ": role '" + r +
                                  "' is not one of system, user, assistant");
  }
}

}  // namespace

std::string llama_today_date() {
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%d %b %Y", &local);
  return buf;
}

std::string python_strip(const std::string& text) {
  size_t b = 0, len = 0;
  while (b < text.size() && python_space(code_point_at(text, b, &len))) b += len;
  size_t e = b, keep = b;
  while (e < text.size()) {
    const bool space = python_space(code_point_at(text, e, &len));
    e += len;
    if (!space) keep = e;
  }
  return text.substr(b, keep - b);
}

ModelChatConfig read_model_chat_config(const std::string& dir) {
  ModelChatConfig c;
  nlohmann::json tc;
  const std::string tc_path = dir + "/tokenizer_config.json";
  if (read_json_file(tc_path, &tc)) {
    c.config_path = tc_path;
    c.bos_token = token_field(tc, "bos_token", tc_path);
    c.eos_token = token_field(tc, "eos_token", tc_path);
    c.pad_token = token_field(tc, "pad_token", tc_path);
    if (tc.contains("add_bos_token") && tc["add_bos_token"].is_boolean())
      c.add_bos_token = tc["add_bos_token"].get<bool>();
    const auto it = tc.find("chat_template");
    if (it != tc.end() && !it->is_null()) {
      if (it->is_string()) {
        c.chat_template = it->get<std::string>();
      } else if (it->is_array()) {
        for (const nlohmann::json& t : *it) {
          if (!t.is_object() || !t.contains("name") || !t.contains("template") ||
              !t["name"].is_string() || !t["template"].is_string())
            throw std::runtime_error(tc_path +
                                     ": chat_template list entries need string name and template");
          if (t["name"] == "default") c.chat_template = t["template"].get<std::string>();
        }
        if (c.chat_template.empty())
          throw std::runtime_error(tc_path + ": chat_template list has no template named default");
      } else {
        throw std::runtime_error(tc_path + ": chat_template must be a string or a list");
      }
    }
  }
  nlohmann::json gc;
  const std::string gc_path = dir + "/generation_config.json";
  if (read_json_file(gc_path, &gc)) {
    const auto it = gc.find("eos_token_id");
    if (it != gc.end() && !it->is_null()) {
      auto add = [&](const nlohmann::json& v) {
        if (!v.is_number_integer())
          throw std::runtime_error(gc_path + ": eos_token_id must be an integer or a list of them");
        c.eos_ids.push_back(v.get<int32_t>());
      };
      if (it->is_array()) {
        for (const nlohmann::json& v : *it) add(v);
      } else {
        add(*it);
      }
    }
  }
  return c;
}

ChatTemplate ChatTemplate::recognise(const std::string& jinja, const std::string& bos_token) {
  if (jinja.empty())
    throw std::invalid_argument(
        "the tokenizer has no chat template (tokenizer_config.json "
        "\"chat_template\")");
  ChatTemplate t;
  t.bos_ = bos_token;
  const std::string canon = canonical(jinja);
  if (canon == canonical(kChatml)) {
    t.kind_ = Kind::kChatml;
    return t;
  }
  {
    const std::string with = canonical(kChatmlSystem);
    const size_t at = with.find("@SYSTEM@");
    const std::string head = with.substr(0, at), tail = with.substr(at + 8);
    if (canon.size() > head.size() + tail.size() && starts_with(canon, head) &&
        ends_with(canon, tail)) {
      const std::string mid = canon.substr(head.size(), canon.size() - head.size() - tail.size());
      bool plain = true;  // one literal: no unescaped quote inside
      for (size_t i = 0; i < mid.size(); ++i) {
        if (mid[i] == '\\')
          ++i;
        else if (mid[i] == '\'')
          plain = false;
      }
      if (plain) {
        t.kind_ = Kind::kChatml;
        t.default_system_ = unescape_literal(mid);
        return t;
      }
    }
  }
  if (canon == canonical(kLlama3)) {
    t.kind_ = Kind::kLlama3;
    return t;
  }
  if (has_all(canon, kQwen3Parts)) {
    t.kind_ = Kind::kQwen3;
    return t;
  }
  if (has_all(canon, kQwen25Parts)) {  // ChatML with the default system the template writes
    const std::string with = canonical(kQwen25System);
    const size_t at = with.find("@SYSTEM@");
    const size_t head_at = canon.find(with.substr(0, at));
    const std::string tail = with.substr(at + 8);
    if (head_at != std::string::npos) {
      const size_t from = head_at + at;
      const size_t to = canon.find(tail, from);
      const std::string mid = to == std::string::npos ? "" : canon.substr(from, to - from);
      if (!mid.empty() && mid.find('\'') == std::string::npos) {
        t.kind_ = Kind::kChatml;
        t.default_system_ = unescape_literal(mid);
        return t;
      }
    }
  }
  if (has_all(canon, kLlama31Parts) && starts_with(canon, canonical("{{- bos_token }}"))) {
    t.kind_ = Kind::kLlama31;
    static const std::regex fixed(
        R"(\{%ifnotdate_stringisdefined%\}\{%setdate_string='([^'\\]*)'%\})");
    const std::string today = canonical(
        "{%- if not date_string is defined %}{%- if strftime_now is defined %}{%- set date_string "
        "= strftime_now(\"%d %b %Y\") %}");
    std::smatch m;
    if (std::regex_search(canon, m, fixed)) {
      t.date_ = m[1].str();
    } else if (canon.find(today) != std::string::npos) {
      t.date_ = llama_today_date();
    } else {
      throw std::invalid_argument("chat template " + excerpt(jinja) +
                                  ": a Llama 3.1-style template whose date_string this engine "
                                  "cannot read");
    }
    return t;
  }
  std::string hint;
  if (jinja.find("<|im_start|>") != std::string::npos)
    hint =
        " (it writes <|im_start|>, but differs from the ChatML and Qwen3 templates this engine "
        "renders)";
  else if (jinja.find("<|start_header_id|>") != std::string::npos)
    hint =
        " (it writes <|start_header_id|>, but differs from the Llama 3 and 3.1 templates this "
        "engine renders)";
  throw std::invalid_argument("chat template " + excerpt(jinja) + " is not one this engine knows" +
                              hint +
                              "; the engine has no Jinja interpreter and renders ChatML (Qwen2, "
                              "Qwen2.5, SmolLM2), Qwen3, Llama 3 "
                              "and Llama 3.1/3.2/3.3 Instruct (docs/data.md)");
}

const char* ChatTemplate::name() const {
  switch (kind_) {
    case Kind::kChatml:
      return "chatml";
    case Kind::kQwen3:
      return "qwen3";
    case Kind::kLlama3:
      return "llama3";
    case Kind::kLlama31:
      return "llama3.1";
  }
  return "?";
}

std::vector<std::string> ChatTemplate::special_tokens() const {
  if (kind_ == Kind::kChatml || kind_ == Kind::kQwen3) return {"<|im_start|>", "<|im_end|>"};
  std::vector<std::string> s = {"<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"};
  if (!bos_.empty()) s.insert(s.begin(), bos_);
  return s;
}

std::vector<ChatSegment> ChatTemplate::render(const std::vector<ChatMessage>& messages,
                                              bool add_generation_prompt) const {
  check_roles(messages);
  Out out;
  if (kind_ == Kind::kChatml || kind_ == Kind::kQwen3) {
    auto turn = [&](const std::string& role, const std::string& content) {
      const bool a = role == "assistant";
      out.special("<|im_start|>");
      out.text(role + "\n");
      out.text(content, a);
      out.special("<|im_end|>", a);
      out.text("\n");
    };
    if (kind_ == Kind::kChatml) {
      for (size_t i = 0; i < messages.size(); ++i) {
        if (i == 0 && messages[0].role != "system" && !default_system_.empty())
          turn("system", default_system_);
        turn(messages[i].role, messages[i].content);
      }
    } else {
      if (!messages.empty() && messages[0].role == "system") turn("system", messages[0].content);
      size_t last_query = messages.empty() ? 0 : messages.size() - 1;
      for (size_t k = messages.size(); k-- > 0;) {
        const std::string& c = messages[k].content;
        const bool tool_response =
            starts_with(c, "<tool_response>") && ends_with(c, "</tool_response>");
        if (messages[k].role == "user" && !tool_response) {
          last_query = k;
          break;
        }
      }
      for (size_t i = 0; i < messages.size(); ++i) {
        const ChatMessage& m = messages[i];
        if (m.role == "user" || (m.role == "system" && i > 0)) {
          turn(m.role, m.content);
        } else if (m.role == "assistant") {
          std::string content = m.content, reasoning;
          const size_t close = m.content.find("</think>");
          if (close != std::string::npos) {
            content =
                strip_chars(m.content.substr(m.content.rfind("</think>") + 8), true, false, '\n');
            std::string before = strip_chars(m.content.substr(0, close), false, true, '\n');
            const size_t open = before.rfind("<think>");
            if (open != std::string::npos) before = before.substr(open + 7);
            reasoning = strip_chars(before, true, false, '\n');
          }
          const bool last = i + 1 == messages.size();
          const bool think = i > last_query && (last || !reasoning.empty());
          out.special("<|im_start|>");
          out.text("assistant\n");
          if (think) {
            out.text("<think>\n" + strip_chars(reasoning, true, true, '\n') + "\n</think>\n\n" +
                         strip_chars(content, true, false, '\n'),
                     true);
          } else {
            out.text(content, true);
          }
          out.special("<|im_end|>", true);
          out.text("\n");
        }
      }
    }
    if (add_generation_prompt) {
      out.special("<|im_start|>");
      out.text("assistant\n");
    }
    return out.take();
  }
  // Llama 3 and 3.1
  auto turn = [&](const std::string& role, const std::string& content) {
    const bool a = role == "assistant";
    out.special("<|start_header_id|>");
    out.text(role);
    out.special("<|end_header_id|>");
    out.text("\n\n");
    out.text(python_strip(content), a);
    out.special("<|eot_id|>", a);
  };
  size_t first = 0;
  if (kind_ == Kind::kLlama31) {
    out.special(bos_);
    std::string system;
    if (!messages.empty() && messages[0].role == "system") {
      system = python_strip(messages[0].content);
      first = 1;
    }
    out.special("<|start_header_id|>");
    out.text("system");
    out.special("<|end_header_id|>");
    out.text("\n\nCutting Knowledge Date: December 2023\nToday Date: " + date_ + "\n\n" + system);
    out.special("<|eot_id|>");
  } else if (!messages.empty()) {
    out.special(bos_);
  }
  for (size_t i = first; i < messages.size(); ++i) turn(messages[i].role, messages[i].content);
  if (add_generation_prompt) {
    out.special("<|start_header_id|>");
    out.text("assistant");
    out.special("<|end_header_id|>");
    out.text("\n\n");
  }
  return out.take();
}

std::string ChatTemplate::render_text(const std::vector<ChatMessage>& messages,
                                      bool add_generation_prompt) const {
  std::string s;
  for (const ChatSegment& seg : render(messages, add_generation_prompt)) s += seg.text;
  return s;
}

ChatTokens encode_chat(const BpeTokenizer& tok, const std::vector<ChatSegment>& segments) {
  ChatTokens r;
  size_t i = 0;
  while (i < segments.size()) {
    if (segments[i].special) {
      const int id = tok.special_token_id(segments[i].text);
      if (id < 0)
        throw std::invalid_argument("the chat template writes the special token " +
                                    segments[i].text + ", which the tokenizer does not have");
      r.ids.push_back(id);
      r.trained.push_back(segments[i].assistant ? 1 : 0);
      ++i;
      continue;
    }
    // A run of text segments up to the next special token: encoded as one text.
    size_t j = i;
    std::string run;
    while (j < segments.size() && !segments[j].special) run += segments[j++].text;
    const size_t before = r.ids.size();
    tok.encode_append(run, SpecialTokens::kAsText, &r.ids);
    size_t decoded = 0;
    for (size_t k = before; k < r.ids.size(); ++k) decoded += tok.token_bytes(r.ids[k]).size();
    // The tokenizer's normaliser (NFC) may change the bytes; the offsets still hold when only the
    // run's last segment can change (the ones before it are ASCII: template headers).
    bool ascii_head = true;
    for (size_t k = i; k + 1 < j; ++k)
      for (char c : segments[k].text)
        ascii_head = ascii_head && static_cast<unsigned char>(c) < 0x80;
    if (decoded == run.size() || ascii_head) {
      // Token k is trained when any of its bytes lies in an assistant segment.
      size_t pos = 0, seg = i, seg_end = segments[i].text.size();
      for (size_t k = before; k < r.ids.size(); ++k) {
        const size_t end = pos + tok.token_bytes(r.ids[k]).size();
        bool trained = false;
        while (true) {
          trained = trained || segments[seg].assistant;
          if (seg_end >= end || seg + 1 >= j) break;
          ++seg;
          seg_end += segments[seg].text.size();
        }
        if (seg_end == end && seg + 1 < j) {
          ++seg;
          seg_end += segments[seg].text.size();
        }
        r.trained.push_back(trained ? 1 : 0);
        pos = end;
      }
    } else {
      // The normaliser changed non-ASCII text before the last segment: encode the segments one by
      // one (the ids may then differ from encoding the run whole).
      r.ids.resize(before);
      for (size_t k = i; k < j; ++k) {
        tok.encode_append(segments[k].text, SpecialTokens::kAsText, &r.ids);
        r.trained.resize(r.ids.size(), segments[k].assistant ? 1 : 0);
      }
    }
    i = j;
  }
  return r;
}

}  // namespace gpt
