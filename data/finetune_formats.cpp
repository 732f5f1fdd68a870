// The importers of data/finetune.h: each input format becomes TextExamples (prompt, completion,
// label) with the file and line they came from.
#include <algorithm>
#include <charconv>
#include <stdexcept>

#include "data/finetune.h"

namespace gpt {

namespace {

struct FormatName {
  ExampleFormat format;
  const char* name;
  bool sft, classify;  // the tasks it serves
};

constexpr FormatName kFormats[] = {
    {ExampleFormat::kJsonl, "jsonl", true, true},
    {ExampleFormat::kGsm8k, "gsm8k", true, false},
    {ExampleFormat::kSeedTasks, "seed-tasks", true, false},
    {ExampleFormat::kDialogsum, "dialogsum", true, false},
    {ExampleFormat::kMulti30k, "multi30k", true, false},
    {ExampleFormat::kSst2, "sst2", false, true},
    {ExampleFormat::kUci, "uci", false, true},
    {ExampleFormat::kChat, "chat", true, false},
};

const FormatName& format_entry(ExampleFormat f) {
  for (const FormatName& e : kFormats)
    if (e.format == f) return e;
  throw std::logic_error("unknown ExampleFormat");
}

std::string language_name(const std::string& code) {
  if (code == "en") return "English";
  if (code == "de") return "German";
  if (code == "fr") return "French";
  if (code == "cs") return "Czech";
  return code;
}

// Label handling shared by the classification formats.
class LabelSet {
 public:
  explicit LabelSet(const FinetuneOptions& o)
      : words_(o.label_words),
        count_(o.label_words.empty() ? (o.num_classes > 0 ? o.num_classes : 2)
                                     : static_cast<int>(o.label_words.size())) {}

  // A label given as text (TSV, or a JSON string): a label word, or a class id in [0, K).
  int32_t from_text(std::string_view text, const std::string& file, int64_t line) const {
    text = trim_blanks(text);
    for (size_t i = 0; i < words_.size(); ++i)
      if (text == words_[i]) return static_cast<int32_t>(i);
    int64_t id = -1;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
    if (ec != std::errc() || end != text.data() + text.size() || text.empty()) id = -1;
    return checked(id, "'" + quote_for_error(text) + "'", file, line);
  }
  int32_t from_json(const nlohmann::json& v, const std::string& file, int64_t line) const {
    if (v.is_string()) return from_text(v.get<std::string>(), file, line);
    if (v.is_number_integer()) return checked(v.get<int64_t>(), v.dump(), file, line);
    throw InputError(
        file, line,
        "field 'label': expected a class id or a label word, got " + quote_for_error(v.dump()));
  }

 private:
  int32_t checked(int64_t id, const std::string& shown, const std::string& file,
                  int64_t line) const {
    if (id >= 0 && id < count_) return static_cast<int32_t>(id);
    std::string set;
    if (!words_.empty()) {
      for (size_t i = 0; i < words_.size(); ++i)
        set += (i ? ", " : "") + std::to_string(i) + "=" + words_[i];
    } else {
      set = "0.." + std::to_string(count_ - 1);
    }
    throw InputError(
        file, line,
        "label " + shown + " is not in the label set {" + quote_for_error(set, 200) + "}");
  }
  std::vector<std::string> words_;
  int count_;
};

// Fills prompt/completion (or the class id) of a classification example from its text and label.
TextExample classification_example(const FinetuneOptions& o, std::string_view text, int32_t label) {
  TextExample e;
  e.label = label;
  if (o.label_words.empty()) {
    e.prompt = std::string(text);
  } else {
    e.prompt = std::string(text) + "\nLabel:";
    e.completion = " " + o.label_words[static_cast<size_t>(label)];
  }
  return e;
}

bool has_field(const nlohmann::json& object, const char* key) {
  const auto it = object.find(key);
  return it != object.end() && !it->is_null();
}

// {"messages": [{"role", "content"}, ...]}: a conversation with at least one assistant turn.
TextExample conversation_example(const nlohmann::json& obj, const std::string& file, int64_t line) {
  const auto it = obj.find("messages");
  if (it == obj.end() || it->is_null()) throw InputError(file, line, "missing field 'messages'");
  if (!it->is_array() || it->empty())
    throw InputError(
        file, line,
        "field 'messages': expected a non-empty array of {role, content} objects, got " +
            std::string(it->is_array() ? "an empty array" : json_type_name(*it)));
  TextExample e;
  bool assistant = false;
  for (size_t k = 0; k < it->size(); ++k) {
    const nlohmann::json& m = (*it)[k];
    const std::string at = "messages[" + std::to_string(k) + "]";
    if (!m.is_object())
      throw InputError(file, line,
                       at + ": expected an object with role and content, got " + json_type_name(m));
    for (const char* key : {"role", "content"}) {
      const auto f = m.find(key);
      if (f == m.end() || f->is_null())
        throw InputError(file, line, "missing field '" + at + "." + key + "'");
      if (!f->is_string())
        throw InputError(
            file, line,
            "field '" + at + "." + key + "': expected a string, got " + json_type_name(*f));
    }
    ChatMessage msg{m["role"].get<std::string>(), m["content"].get<std::string>()};
    if (msg.role != "system" && msg.role != "user" && msg.role != "assistant")
      throw InputError(file, line,
                       "field '" + at + ".role': unknown role '" + quote_for_error(msg.role) +
                           "' (expected system, user or assistant)");
    assistant = assistant || msg.role == "assistant";
    e.messages.push_back(std::move(msg));
  }
  if (!assistant)
    throw InputError(file, line, "the conversation has no assistant turn (nothing to train on)");
  return e;
}

void read_jsonl_file(const FinetuneOptions& o, const LabelSet& labels, const std::string& file,
                     size_t input, const std::string& text, std::vector<TextExample>* out) {
  for_each_line(text, [&](std::string_view line, int64_t number) {
    if (is_blank_line(line)) return;
    const nlohmann::json obj = parse_jsonl_object(line, file, number);
    auto str = [&](const char* key, bool optional = false) {
      return json_string_field(obj, key, file, number, optional);
    };
    auto add = [&](TextExample e) {
      e.input = input;
      e.line = number;
      out->push_back(std::move(e));
    };
    switch (o.format) {
      case ExampleFormat::kJsonl:
        if (o.task == FinetuneTask::kClassify) {
          const std::string body = str(o.field.c_str());
          if (!has_field(obj, "label")) throw InputError(file, number, "missing field 'label'");
          add(classification_example(o, body, labels.from_json(obj["label"], file, number)));
        } else if (has_field(obj, "messages")) {
          add(conversation_example(obj, file, number));
        } else if (has_field(obj, "prompt") || has_field(obj, "completion")) {
          add(TextExample{str("prompt"), str("completion")});
        } else if (has_field(obj, "instruction") || has_field(obj, "output")) {
          add(TextExample{instruction_prompt(str("instruction"), str("input", true)),
                          str("output")});
        } else {
          throw InputError(file, number,
                           "expected the fields messages, prompt + completion, or instruction (+ "
                           "input) + output");
        }
        break;
      case ExampleFormat::kChat:
        add(conversation_example(obj, file, number));
        break;
      case ExampleFormat::kGsm8k:
        add(TextExample{"Question: " + str("question") + "\nAnswer:", " " + str("answer")});
        break;
      case ExampleFormat::kDialogsum: {
        const std::string summary = has_field(obj, "summary") || !has_field(obj, "summary1")
                                        ? str("summary")
                                        : str("summary1");
        add(TextExample{"Summarize:\n" + str("dialogue") + "\nSummary:", " " + summary});
        break;
      }
      case ExampleFormat::kSeedTasks: {
        const std::string instruction = str("instruction");
        const auto it = obj.find("instances");
        if (it == obj.end()) throw InputError(file, number, "missing field 'instances'");
        if (!it->is_array())
          throw InputError(file, number,
                           "field 'instances': expected an array of {input, output} objects");
        for (size_t k = 0; k < it->size(); ++k) {
          const nlohmann::json& inst = (*it)[k];
          if (!inst.is_object())
            throw InputError(
                file, number,
                "instances[" + std::to_string(k) + "]: expected an object with input and output");
          auto field = [&](const char* key, bool optional) -> std::string {
            const std::string name = "instances[" + std::to_string(k) + "]." + key;
            const auto f = inst.find(key);
            if (f == inst.end() || f->is_null()) {
              if (optional) return "";
              throw InputError(file, number, "missing field '" + name + "'");
            }
            if (!f->is_string())
              throw InputError(
                  file, number,
                  "field '" + name + "': expected a string, got " + json_type_name(*f));
            return f->get<std::string>();
          };
          add(TextExample{instruction_prompt(instruction, field("input", true)),
                          field("output", false)});
        }
        break;
      }
      default:
        throw std::logic_error("not a JSONL format");
    }
  });
}

void read_tsv_file(const FinetuneOptions& o, const LabelSet& labels, const std::string& file,
                   size_t input, const std::string& text, std::vector<TextExample>* out) {
  for_each_line(text, [&](std::string_view line, int64_t number) {
    if (is_blank_line(line)) return;
    std::string_view label, body;
    if (o.format == ExampleFormat::kSst2) {
      const size_t tab = line.find('\t');
      if (tab == std::string_view::npos)
        throw InputError(
            file, number,
            "expected label<TAB>sentence, found no tab in '" + quote_for_error(line) + "'");
      label = line.substr(0, tab);
      body = line.substr(tab + 1);
      if (number == 1 && trim_blanks(label) == "label") return;  // the header line
    } else {
      const size_t tab = line.rfind('\t');
      if (tab == std::string_view::npos)
        throw InputError(
            file, number,
            "expected sentence<TAB>0|1, found no tab in '" + quote_for_error(line) + "'");
      body = line.substr(0, tab);
      label = line.substr(tab + 1);
    }
    body = trim_blanks(body);
    if (body.empty()) throw InputError(file, number, "empty sentence");
    TextExample e = classification_example(o, body, labels.from_text(label, file, number));
    e.input = input;
    e.line = number;
    out->push_back(std::move(e));
  });
}

// NAME.en(.gz) -> NAME.de(.gz); "" when the name does not end in the source language.
std::string target_language_file(const std::string& path, const std::string& src,
                                 const std::string& tgt) {
  for (const std::string& suffix : {"." + src + ".gz", "." + src}) {
    if (path.size() > suffix.size() &&
        path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0)
      return path.substr(0, path.size() - suffix.size()) + "." + tgt +
             suffix.substr(src.size() + 1);
  }
  return "";
}

// A glob such as 'multi30k/train.*.gz' lists both languages: the target-language file of a listed
// source-language file is read with it, not on its own.
bool is_target_of_listed_source(const std::vector<std::string>& files, size_t f,
                                const FinetuneOptions& o) {
  for (size_t g = 0; g < files.size(); ++g)
    if (g != f && target_language_file(files[g], o.source_lang, o.target_lang) == files[f])
      return true;
  return false;
}

void read_parallel_files(const FinetuneOptions& o, const std::string& file, size_t input,
                         const std::string& text, std::vector<TextExample>* out) {
  const std::string target = target_language_file(file, o.source_lang, o.target_lang);
  if (target.empty()) {
    throw InputError(file, 0,
                     "multi30k inputs are the source-language files (NAME." + o.source_lang +
                         " or NAME." + o.source_lang + ".gz, with NAME." + o.target_lang +
                         "(.gz) beside them)");
  }
  const std::string target_text = read_input_file(target);
  std::vector<std::string_view> targets;
  for_each_line(target_text, [&](std::string_view line, int64_t) { targets.push_back(line); });
  int64_t count = 0;
  const std::string prompt_head = language_name(o.source_lang) + ": ";
  const std::string prompt_tail = "\n" + language_name(o.target_lang) + ":";
  for_each_line(text, [&](std::string_view line, int64_t number) {
    ++count;
    if (count > static_cast<int64_t>(targets.size()))
      throw InputError(
          file, number,
          "has more lines than " + target + " (" + std::to_string(targets.size()) + ")");
    const std::string_view src = trim_blanks(line),
                           tgt = trim_blanks(targets[static_cast<size_t>(number - 1)]);
    if (src.empty() && tgt.empty()) return;
    if (src.empty() || tgt.empty())
      throw InputError(src.empty() ? file : target, number,
                       "empty line where the other language has a sentence");
    TextExample e{prompt_head + std::string(src) + prompt_tail, " " + std::string(tgt)};
    e.input = input;
    e.line = number;
    out->push_back(std::move(e));
  });
  if (count < static_cast<int64_t>(targets.size()))
    throw InputError(target, count + 1,
                     "has more lines than " + file + " (" + std::to_string(count) + ")");
}

}  // namespace

ExampleFormat parse_example_format(const std::string& name) {
  std::string names;
  for (const FormatName& e : kFormats) {
    if (name == e.name) return e.format;
    names += std::string(names.empty() ? "" : ", ") + e.name;
  }
  throw std::invalid_argument("--format '" + name +
                              "' is not a fine-tuning format (expected one of " + names + ")");
}

const char* example_format_name(ExampleFormat format) {
  return format_entry(format).name;
}

std::string instruction_prompt(const std::string& instruction, const std::string& input) {
  if (input.empty()) return "### Instruction:\n" + instruction + "\n\n### Response:\n";
  return "### Instruction:\n" + instruction + "\n\n### Input:\n" + input + "\n\n### Response:\n";
}

std::vector<TextExample> read_examples(const FinetuneOptions& o,
                                       const std::vector<std::string>& files) {
  const FormatName& entry = format_entry(o.format);
  const bool classify = o.task == FinetuneTask::kClassify;
  if (classify ? !entry.classify : !entry.sft) {
    throw std::invalid_argument(std::string("--format ") + entry.name + " is for --task " +
                                (classify ? "sft" : "classify"));
  }
  if (!classify && (!o.label_words.empty() || o.num_classes != 0))
    throw std::invalid_argument("--label-words and --num-classes are for --task classify");
  if (classify && !o.label_words.empty() && o.num_classes != 0 &&
      o.num_classes != static_cast<int>(o.label_words.size()))
    throw std::invalid_argument("--num-classes " + std::to_string(o.num_classes) +
                                " does not match the " + std::to_string(o.label_words.size()) +
                                " --label-words");
  if (o.num_classes < 0 || o.num_classes == 1)
    throw std::invalid_argument("--num-classes must be at least 2");
  for (const std::string& w : o.label_words)
    if (trim_blanks(w).empty()) throw std::invalid_argument("--label-words: empty label word");
  const LabelSet labels(o);
  std::vector<TextExample> examples;
  for (size_t f = 0; f < files.size(); ++f) {
    if (o.format == ExampleFormat::kMulti30k && is_target_of_listed_source(files, f, o)) continue;
    const std::string text = read_input_file(files[f]);
    switch (o.format) {
      case ExampleFormat::kSst2:
      case ExampleFormat::kUci:
        read_tsv_file(o, labels, files[f], f, text, &examples);
        break;
      case ExampleFormat::kMulti30k:
        read_parallel_files(o, files[f], f, text, &examples);
        break;
      default:
        read_jsonl_file(o, labels, files[f], f, text, &examples);
        break;
    }
  }
  return examples;
}

}  // namespace gpt
