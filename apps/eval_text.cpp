// gpt-eval on raw text: --task generate (prompt/completion examples read as gpt-prepare reads them,
// completions generated with the KV cache, scored with BLEU, ROUGE, distinct-n and GSM8K answers,
// plus the teacher-forced loss of the reference completions) and --task choice (HellaSwag-style
// multiple choice scored by the loss of each ending).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <optional>
#include <stdexcept>

#include "apps/eval_tasks.h"
#include "data/finetune.h"
#include "data/text_input.h"
#include "engine/metrics.h"
#include "models/sampler.h"

namespace gpt {

namespace {

// ---- text helpers -----------------------------------------------------------------------------

std::string strip(const std::string& text) {
  const char* ws = " \t\r\n\f\v";
  const size_t a = text.find_first_not_of(ws);
  if (a == std::string::npos) return "";
  const size_t b = text.find_last_not_of(ws);
  return text.substr(a, b - a + 1);
}

// The text with every byte that is not part of a well-formed UTF-8 sequence replaced by U+FFFD
// (a completion may end inside a character; the metrics and JSON need valid UTF-8).
std::string to_valid_utf8(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    int len = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      len = 1;
      cp = c;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    }
    bool ok = len > 0 && i + static_cast<size_t>(len) <= s.size();
    for (int k = 1; ok && k < len; ++k) {
      const unsigned char d = static_cast<unsigned char>(s[i + static_cast<size_t>(k)]);
      ok = (d & 0xC0) == 0x80;
      cp = (cp << 6) | (d & 0x3F);
    }
    static const uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (ok && len > 1) ok = cp >= kMin[len] && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
    if (ok) {
      out.append(s, i, static_cast<size_t>(len));
      i += static_cast<size_t>(len);
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

// One line for stdout: line breaks shown as "\n", cut to max_chars code points.
std::string one_line(const std::string& text, size_t max_chars) {
  std::string out;
  size_t chars = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if ((c & 0xC0) != 0x80 && chars++ == max_chars) return out + "...";
    if (c == '\n')
      out += "\\n";
    else if (c == '\t' || c == '\r')
      out += ' ';
    else
      out += static_cast<char>(c);
  }
  return out;
}

std::string source_of(const std::vector<std::string>& files, size_t input, int64_t line) {
  return files[input] + ":" + std::to_string(line);
}

void check_tokenizer_fits(const PrepareTokenizer& tok, const GptConfig& config,
                          const std::string& model_path) {
  if (tok.vocab_size() > config.vocab_size)
    throw std::invalid_argument("the tokenizer has " + std::to_string(tok.vocab_size()) +
                                " tokens, more than the vocabulary of " + model_path + " (" +
                                std::to_string(config.vocab_size) +
                                "): pass the model's tokenizer with --tokenizer");
}

// ---- generate ---------------------------------------------------------------------------------

struct GenerateExample {
  std::string source;  // file:line
  std::string prompt;
  std::vector<std::string> references;  // stripped
  std::vector<int32_t> prompt_ids;      // <|endoftext|> prompt: what generation continues
  TokenExample teacher;                 // <|endoftext|> prompt reference <|endoftext|>, loss flags
  bool prompt_truncated = false, teacher_truncated = false;
};

// DialogSum's test file has three reference summaries (summary1..3); read_examples gives the
// first as the completion. The others come from the same JSONL line.
class ExtraReferences {
 public:
  explicit ExtraReferences(const std::vector<std::string>& files) : files_(files) {}
  std::vector<std::string> dialogsum(size_t input, int64_t line) {
    auto it = lines_.find(input);
    if (it == lines_.end()) {
      std::vector<std::string> lines;
      const std::string text = read_input_file(files_[input]);
      for_each_line(text, [&](std::string_view l, int64_t) { lines.emplace_back(l); });
      it = lines_.emplace(input, std::move(lines)).first;
    }
    const nlohmann::json obj =
        parse_jsonl_object(it->second.at(static_cast<size_t>(line - 1)), files_[input], line);
    std::vector<std::string> refs;
    for (const char* key : {"summary", "summary1", "summary2", "summary3", "summary4"}) {
      const auto f = obj.find(key);
      if (f != obj.end() && f->is_string() && !strip(f->get<std::string>()).empty())
        refs.push_back(strip(f->get<std::string>()));
    }
    return refs;
  }

 private:
  const std::vector<std::string>& files_;
  std::map<size_t, std::vector<std::string>> lines_;
};

}  // namespace

EvalReport run_generate_task(const EvalSettings& s, Backend& backend) {
  if (s.format.empty())
    throw std::invalid_argument(
        "--task generate needs --format (gsm8k, dialogsum, multi30k, jsonl, seed-tasks)");
  if (s.max_new_tokens <= 0) throw std::invalid_argument("--max-new-tokens must be positive");
  Sampler sampler(SamplingConfig{s.temperature, s.top_k, s.top_p},
                  static_cast<uint64_t>(s.seed));  // checks the sampling flags
  FinetuneOptions fo;
  fo.task = FinetuneTask::kSft;
  fo.format = parse_example_format(s.format);
  const std::vector<std::string> files = expand_inputs({s.data});
  std::vector<TextExample> raw = read_examples(fo, files);
  if (s.max_examples > 0 && static_cast<int64_t>(raw.size()) > s.max_examples)
    raw.resize(static_cast<size_t>(s.max_examples));
  if (raw.empty()) throw std::runtime_error(s.data + ": no examples");

  GptWeights w = load_weights(s.model);
  const GptConfig config = w.config;
  const int ctx = config.max_seq_len;
  const PrepareTokenizer tok = load_eval_tokenizer(s.tokenizer, "", s.model);
  check_tokenizer_fits(tok, config, s.model);
  const int32_t eot = tok.eot_token();

  // Tokenize and check every example before the model is built.
  std::vector<GenerateExample> examples;
  ExtraReferences extra(files);
  for (const TextExample& e : raw) {
    GenerateExample g;
    g.source = source_of(files, e.input, e.line);
    g.prompt = e.prompt;
    if (fo.format == ExampleFormat::kDialogsum) g.references = extra.dialogsum(e.input, e.line);
    if (g.references.empty()) g.references.push_back(strip(e.completion));
    const std::vector<int32_t> prompt_ids = tok.encode(e.prompt);
    g.prompt_ids.push_back(eot);
    g.prompt_ids.insert(g.prompt_ids.end(), prompt_ids.begin(), prompt_ids.end());
    const int P = static_cast<int>(g.prompt_ids.size());
    if (P >= ctx && !s.truncate)
      throw InputError(files[e.input], e.line,
                       "prompt of " + std::to_string(P) + " tokens does not fit the context of " +
                           std::to_string(ctx) + " tokens of " + s.model +
                           " (--truncate keeps its last tokens)");
    if (s.truncate && P + s.max_new_tokens > ctx) {
      const int keep = std::max(1, ctx - s.max_new_tokens);
      g.prompt_ids.erase(g.prompt_ids.begin(), g.prompt_ids.end() - keep);
      g.prompt_truncated = true;
    }
    g.teacher = make_token_example(prompt_ids, tok.encode(e.completion), -1, eot, false);
    const int64_t n = static_cast<int64_t>(g.teacher.tokens.size());
    if (n - 1 > ctx) {
      if (!s.truncate)
        throw InputError(files[e.input], e.line,
                         "prompt and reference completion are " + std::to_string(n) +
                             " tokens, more than the context of " + std::to_string(ctx) +
                             " tokens of " + s.model + " (--truncate cuts the prompt's start)");
      // Drop the prompt's first tokens (keep one before the completion), then the end if the
      // completion alone is too long.
      const int64_t prompt_len = 1 + static_cast<int64_t>(prompt_ids.size());
      const int64_t cut = std::min(n - 1 - ctx, prompt_len - 1);
      g.teacher.tokens.erase(g.teacher.tokens.begin(), g.teacher.tokens.begin() + cut);
      g.teacher.loss.erase(g.teacher.loss.begin(), g.teacher.loss.begin() + cut);
      g.teacher.tokens.resize(std::min<size_t>(g.teacher.tokens.size(), ctx + 1));
      g.teacher.loss.resize(g.teacher.tokens.size());
      g.teacher_truncated = true;
    }
    examples.push_back(std::move(g));
  }

  // One example at a time: prompts differ in length, and the KV cache is per row.
  LoadedModel m =
      build_eval_model(std::move(w), s.model, s.adapter, backend, 1, ctx, HeadUse::kLanguageModel);
  LanguageModel& model = *m.model;
  announce_start();
  double loss_sum = 0.0;
  int64_t loss_tokens = 0, generated_tokens = 0, stopped = 0;
  std::vector<std::string> completions;
  std::vector<int64_t> completion_lengths;
  std::vector<bool> completion_stopped;
  std::vector<int32_t> inputs, targets;
  EvalProgress progress("generate", static_cast<int64_t>(examples.size()), "examples");
  for (size_t i = 0; i < examples.size(); ++i) {
    const GenerateExample& g = examples[i];
    // Teacher-forced loss of the reference completion (and the closing <|endoftext|>).
    const int T = static_cast<int>(g.teacher.tokens.size()) - 1;
    inputs.assign(g.teacher.tokens.begin(), g.teacher.tokens.end() - 1);
    targets.assign(static_cast<size_t>(T), -1);
    for (int t = 0; t < T; ++t)
      if (g.teacher.loss[static_cast<size_t>(t) + 1]) {
        targets[static_cast<size_t>(t)] = g.teacher.tokens[static_cast<size_t>(t) + 1];
        ++loss_tokens;
      }
    loss_sum += model.forward(inputs.data(), targets.data(), 1, T);
    // Generation with the KV cache.
    const int P = static_cast<int>(g.prompt_ids.size());
    const int budget = std::min(s.max_new_tokens, ctx - P);
    std::vector<float> logits = model.prefill(g.prompt_ids.data(), 1, P);
    std::vector<int32_t> out;
    bool hit_eot = false;
    for (int k = 0; k < budget; ++k) {
      const int32_t next = sampler.sample(logits.data(), config.vocab_size);
      if (next == eot) {
        hit_eot = true;
        break;
      }
      out.push_back(next);
      if (k + 1 < budget) logits = model.decode(&next, 1, P + k);
    }
    completions.push_back(to_valid_utf8(tok.decode(out)));
    completion_lengths.push_back(static_cast<int64_t>(out.size()));
    completion_stopped.push_back(hit_eot);
    generated_tokens += static_cast<int64_t>(out.size());
    stopped += hit_eot ? 1 : 0;
    progress.update(static_cast<int64_t>(i) + 1);
  }
  progress.finish();

  // ---- metrics --------------------------------------------------------------------------------
  const size_t N = examples.size();
  std::vector<std::string> hyps(N);
  std::vector<std::vector<std::string>> refs(N);
  size_t streams = std::numeric_limits<size_t>::max();
  bool gsm8k_style = fo.format == ExampleFormat::kGsm8k;
  bool all_gsm8k_refs = true;
  int64_t exact = 0, prompts_truncated = 0, teachers_truncated = 0;
  for (size_t i = 0; i < N; ++i) {
    hyps[i] = strip(completions[i]);
    refs[i] = examples[i].references;
    streams = std::min(streams, refs[i].size());
    if (!extract_gsm8k_answer(refs[i][0])) all_gsm8k_refs = false;
    if (std::find(refs[i].begin(), refs[i].end(), hyps[i]) != refs[i].end()) ++exact;
    prompts_truncated += examples[i].prompt_truncated ? 1 : 0;
    teachers_truncated += examples[i].teacher_truncated ? 1 : 0;
  }
  gsm8k_style = gsm8k_style || all_gsm8k_refs;
  std::vector<std::vector<std::string>> bleu_refs(streams, std::vector<std::string>(N));
  for (size_t r = 0; r < streams; ++r)
    for (size_t i = 0; i < N; ++i) bleu_refs[r][i] = refs[i][r];
  const BleuScore bleu = corpus_bleu(hyps, bleu_refs);
  const RougeCorpus rouge = rouge_corpus(hyps, refs);
  const Diversity div = distinct_n(hyps);
  const double completion_loss = loss_tokens > 0 ? loss_sum / static_cast<double>(loss_tokens)
                                                 : std::numeric_limits<double>::quiet_NaN();
  const double n = static_cast<double>(N);

  EvalReport report;
  report.json["model"] = m.describe();
  report.json["data"] = {{"pattern", s.data}, {"format", s.format}, {"files", files}};
  report.json["sampling"] = {{"temperature", s.temperature},
                             {"top_k", s.top_k},
                             {"top_p", s.top_p},
                             {"seed", s.seed},
                             {"max_new_tokens", s.max_new_tokens}};
  nlohmann::ordered_json j;
  j["examples"] = N;
  j["completion_loss"] = completion_loss;
  j["completion_perplexity"] = perplexity(completion_loss);
  j["completion_tokens"] = loss_tokens;
  j["bleu"] = bleu.score;
  j["bleu_details"] = {{"references_per_example", streams},
                       {"precisions", bleu.precisions},
                       {"brevity_penalty", bleu.brevity_penalty},
                       {"sys_len", bleu.sys_len},
                       {"ref_len", bleu.ref_len}};
  auto rj = [](const RougeScore& r) {
    return nlohmann::ordered_json{
        {"precision", r.precision}, {"recall", r.recall}, {"fmeasure", r.fmeasure}};
  };
  j["rouge1"] = rouge.mean.rouge1.fmeasure;
  j["rouge2"] = rouge.mean.rouge2.fmeasure;
  j["rougeL"] = rouge.mean.rougeL.fmeasure;
  j["rouge_details"] = {{"rouge1", rj(rouge.mean.rouge1)},
                        {"rouge2", rj(rouge.mean.rouge2)},
                        {"rougeL", rj(rouge.mean.rougeL)}};
  j["distinct1"] = div.distinct1;
  j["distinct2"] = div.distinct2;
  j["exact_match"] = static_cast<double>(exact) / n;
  std::optional<Gsm8kScore> gsm;
  if (gsm8k_style) {
    std::vector<std::string> answers;
    for (const auto& r : refs) answers.push_back(r[0]);
    gsm = gsm8k_score(hyps, answers);
    j["gsm8k"] = {{"format_rate", gsm->format_rate},
                  {"accuracy", gsm->accuracy},
                  {"well_formed", gsm->well_formed},
                  {"correct", gsm->correct}};
  }
  j["generated_tokens_mean"] = static_cast<double>(generated_tokens) / n;
  j["stopped_at_eot"] = static_cast<double>(stopped) / n;
  j["truncated_prompts"] = prompts_truncated;
  j["truncated_references"] = teachers_truncated;
  report.json["metrics"] = j;
  nlohmann::ordered_json gens = nlohmann::ordered_json::array();
  for (size_t i = 0; i < N; ++i) {
    nlohmann::ordered_json g;
    g["index"] = i;
    g["source"] = examples[i].source;
    g["prompt"] = examples[i].prompt;
    g["reference"] = refs[i][0];
    if (refs[i].size() > 1) g["references"] = refs[i];
    g["completion"] = completions[i];
    g["tokens"] = completion_lengths[i];
    g["stopped_at_eot"] = static_cast<bool>(completion_stopped[i]);
    gens.push_back(g);
  }
  report.json["generations"] = gens;

  std::vector<std::pair<std::string, std::string>> rows = {
      {"completion loss (teacher-forced)", format_fixed(completion_loss, 6)},
      {"completion perplexity", format_fixed(perplexity(completion_loss), 4)},
      {"BLEU (sacrebleu 13a)", format_fixed(bleu.score, 2)},
      {"ROUGE-1 F", format_fixed(rouge.mean.rouge1.fmeasure, 4)},
      {"ROUGE-2 F", format_fixed(rouge.mean.rouge2.fmeasure, 4)},
      {"ROUGE-L F", format_fixed(rouge.mean.rougeL.fmeasure, 4)},
      {"distinct-1", format_fixed(div.distinct1, 4)},
      {"distinct-2", format_fixed(div.distinct2, 4)},
      {"exact match", format_fixed(static_cast<double>(exact) / n, 4)}};
  if (gsm) {
    rows.push_back({"GSM8K '#### N' format rate", format_fixed(gsm->format_rate, 4)});
    rows.push_back({"GSM8K accuracy", format_fixed(gsm->accuracy, 4)});
  }
  rows.push_back(
      {"generated tokens (mean)", format_fixed(static_cast<double>(generated_tokens) / n, 2)});
  rows.push_back({"stopped at <|endoftext|>", format_fixed(static_cast<double>(stopped) / n, 4)});
  rows.push_back({"examples", std::to_string(N)});
  if (prompts_truncated + teachers_truncated > 0)
    rows.push_back({"truncated prompts / references", std::to_string(prompts_truncated) + " / " +
                                                          std::to_string(teachers_truncated)});
  report.tables.push_back(metric_table("generation (" + s.format + "): " + s.data, rows));
  const size_t show = std::min(N, static_cast<size_t>(std::max(0, s.show_examples)));
  for (size_t i = 0; i < show; ++i) {
    report.text.push_back("example " + std::to_string(i) + " (" + examples[i].source + ")");
    report.text.push_back("  prompt:     " + one_line(to_valid_utf8(examples[i].prompt), 160));
    report.text.push_back("  reference:  " + one_line(refs[i][0], 160));
    report.text.push_back("  completion: " + one_line(completions[i], 160));
  }
  return report;
}

// ---- choice -----------------------------------------------------------------------------------

namespace {

struct ChoiceItem {
  std::string file;
  int64_t line = 0;
  std::string context;
  std::vector<std::string> endings;
  int label = -1;
};

// HellaSwag's JSONL: {"ctx": "...", "endings": ["...", ...], "label": i}; "ctx_a" + "ctx_b" when
// there is no "ctx"; the label may be an integer or a string of digits.
std::vector<ChoiceItem> read_choice_items(const std::vector<std::string>& files) {
  std::vector<ChoiceItem> items;
  for (const std::string& file : files) {
    const std::string text = read_input_file(file);
    for_each_line(text, [&](std::string_view line, int64_t number) {
      if (is_blank_line(line)) return;
      const nlohmann::json obj = parse_jsonl_object(line, file, number);
      ChoiceItem item;
      item.file = file;
      item.line = number;
      if (obj.contains("ctx")) {
        item.context = json_string_field(obj, "ctx", file, number);
      } else if (obj.contains("ctx_a")) {
        item.context = json_string_field(obj, "ctx_a", file, number);
        const std::string b = json_string_field(obj, "ctx_b", file, number, true);
        if (!b.empty()) item.context += " " + b;
      } else {
        throw InputError(file, number, "missing field 'ctx' (or 'ctx_a' and 'ctx_b')");
      }
      const auto endings = obj.find("endings");
      if (endings == obj.end()) throw InputError(file, number, "missing field 'endings'");
      if (!endings->is_array() || endings->size() < 2)
        throw InputError(file, number, "field 'endings': expected an array of at least 2 strings");
      for (size_t k = 0; k < endings->size(); ++k) {
        if (!(*endings)[k].is_string())
          throw InputError(file, number,
                           "field 'endings[" + std::to_string(k) + "]': expected a string, got " +
                               json_type_name((*endings)[k]));
        item.endings.push_back((*endings)[k].get<std::string>());
      }
      const auto label = obj.find("label");
      if (label == obj.end()) throw InputError(file, number, "missing field 'label'");
      int64_t id = -1;
      if (label->is_number_integer()) {
        id = label->get<int64_t>();
      } else if (label->is_string()) {
        const std::string l = label->get<std::string>();
        if (!l.empty() && l.size() < 10 && l.find_first_not_of("0123456789") == std::string::npos)
          id = std::stoll(l);
      } else {
        throw InputError(
            file, number,
            std::string("field 'label': expected an integer, got ") + json_type_name(*label));
      }
      if (id < 0 || id >= static_cast<int64_t>(item.endings.size()))
        throw InputError(file, number,
                         "field 'label': " + quote_for_error(label->dump()) +
                             " is not an ending index in [0, " +
                             std::to_string(item.endings.size()) + ")");
      item.label = static_cast<int>(id);
      items.push_back(std::move(item));
    });
  }
  return items;
}

struct ChoiceRow {
  size_t item;
  std::vector<int32_t> tokens;  // <|endoftext|> context ending
  size_t ending_start;          // index of the ending's first token
};

}  // namespace

EvalReport run_choice_task(const EvalSettings& s, Backend& backend) {
  const std::vector<std::string> files = expand_inputs({s.data});
  std::vector<ChoiceItem> items = read_choice_items(files);
  if (s.max_examples > 0 && static_cast<int64_t>(items.size()) > s.max_examples)
    items.resize(static_cast<size_t>(s.max_examples));
  if (items.empty()) throw std::runtime_error(s.data + ": no items");

  GptWeights w = load_weights(s.model);
  const GptConfig config = w.config;
  const int ctx = config.max_seq_len;
  const PrepareTokenizer tok = load_eval_tokenizer(s.tokenizer, "", s.model);
  check_tokenizer_fits(tok, config, s.model);
  const int32_t eot = tok.eot_token();

  // Rows: <|endoftext|> context ending, scored on the ending's tokens. The context and the ending
  // are encoded apart (the boundary is a token boundary), the ending with a leading space.
  std::vector<ChoiceRow> rows;
  int max_len = 1;
  int64_t truncated = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    const ChoiceItem& item = items[i];
    std::vector<int32_t> context = {eot};
    tok.encode_append(item.context, &context);
    for (size_t k = 0; k < item.endings.size(); ++k) {
      const std::string& e = item.endings[k];
      const bool spaced = !e.empty() && (e[0] == ' ' || e[0] == '\n' || e[0] == '\t');
      const std::vector<int32_t> ending = tok.encode(spaced ? e : " " + e);
      if (strip(e).empty())
        throw InputError(item.file, item.line, "ending " + std::to_string(k) + " is empty");
      ChoiceRow row{i, context, context.size()};
      row.tokens.insert(row.tokens.end(), ending.begin(), ending.end());
      const int64_t len = static_cast<int64_t>(row.tokens.size()) - 1;
      if (len > ctx) {
        const int64_t cut = len - ctx;
        if (!s.truncate || cut >= static_cast<int64_t>(context.size()))
          throw InputError(item.file, item.line,
                           "context and ending " + std::to_string(k) + " are " +
                               std::to_string(row.tokens.size()) +
                               " tokens, more than the context of " + std::to_string(ctx) +
                               " tokens of " + s.model +
                               (s.truncate ? " (the ending alone does not fit)"
                                           : " (--truncate drops the context's first tokens)"));
        row.tokens.erase(row.tokens.begin(), row.tokens.begin() + cut);
        row.ending_start -= static_cast<size_t>(cut);
        ++truncated;
      }
      max_len = std::max(max_len, static_cast<int>(row.tokens.size()) - 1);
      rows.push_back(std::move(row));
    }
  }

  const int B = s.batch_size;
  LoadedModel m = build_eval_model(std::move(w), s.model, s.adapter, backend, B, max_len,
                                 HeadUse::kLanguageModel);
  LanguageModel& model = *m.model;
  announce_start();
  const int V = config.vocab_size, Vp = config.padded_vocab_size();
  std::vector<double> row_loss(rows.size(), 0.0);
  std::vector<int64_t> row_tokens(rows.size(), 0);
  std::vector<int32_t> tokens;
  EvalProgress progress("choice", static_cast<int64_t>(items.size()), "items");
  for (size_t start = 0; start < rows.size(); start += static_cast<size_t>(B)) {
    const size_t end = std::min(rows.size(), start + static_cast<size_t>(B));
    int Tb = 1;
    for (size_t r = start; r < end; ++r)
      Tb = std::max(Tb, static_cast<int>(rows[r].tokens.size()) - 1);
    tokens.assign(static_cast<size_t>(B) * Tb, eot);
    for (size_t r = start; r < end; ++r)
      std::copy(rows[r].tokens.begin(), rows[r].tokens.end() - 1,
                tokens.begin() + static_cast<ptrdiff_t>((r - start) * static_cast<size_t>(Tb)));
    model.forward(tokens.data(), nullptr, B, Tb);
    const std::vector<float> logits = model.logits_to_host(B, Tb);
    // -log softmax of each ending token, in double, over the real vocabulary.
    for (size_t r = start; r < end; ++r) {
      const ChoiceRow& row = rows[r];
      for (size_t t = row.ending_start - 1; t + 1 < row.tokens.size(); ++t) {
        const float* x = logits.data() + ((r - start) * static_cast<size_t>(Tb) + t) * Vp;
        const float mx = *std::max_element(x, x + V);
        double sum = 0.0;
        for (int v = 0; v < V; ++v) sum += std::exp(static_cast<double>(x[v]) - mx);
        row_loss[r] += static_cast<double>(mx) + std::log(sum) - x[row.tokens[t + 1]];
        ++row_tokens[r];
      }
    }
    progress.update(static_cast<int64_t>(rows[end - 1].item) + (end == rows.size() ? 1 : 0));
  }
  progress.finish();

  // Per item: the ending with the lowest mean loss per token wins (ties: the first); the
  // unnormalised variant compares the summed losses.
  int64_t correct = 0, correct_sum = 0;
  nlohmann::ordered_json per_item = nlohmann::ordered_json::array();
  size_t r = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    std::vector<double> mean, sum;
    for (; r < rows.size() && rows[r].item == i; ++r) {
      sum.push_back(row_loss[r]);
      mean.push_back(row_loss[r] / static_cast<double>(row_tokens[r]));
    }
    const int pred = static_cast<int>(std::min_element(mean.begin(), mean.end()) - mean.begin());
    const int pred_sum = static_cast<int>(std::min_element(sum.begin(), sum.end()) - sum.begin());
    correct += pred == items[i].label ? 1 : 0;
    correct_sum += pred_sum == items[i].label ? 1 : 0;
    per_item.push_back({{"source", items[i].file + ":" + std::to_string(items[i].line)},
                        {"label", items[i].label},
                        {"prediction", pred},
                        {"prediction_unnormalised", pred_sum},
                        {"mean_losses", mean},
                        {"losses", sum}});
  }
  const double n = static_cast<double>(items.size());
  EvalReport report;
  report.json["model"] = m.describe();
  report.json["data"] = {{"pattern", s.data}, {"files", files}};
  report.json["metrics"] = {{"accuracy", static_cast<double>(correct) / n},
                            {"accuracy_unnormalised", static_cast<double>(correct_sum) / n},
                            {"items", items.size()},
                            {"endings", rows.size()},
                            {"truncated_rows", truncated}};
  report.json["items"] = per_item;
  std::vector<std::pair<std::string, std::string>> table = {
      {"accuracy (mean loss per ending token)", format_fixed(static_cast<double>(correct) / n, 4)},
      {"accuracy (summed loss)", format_fixed(static_cast<double>(correct_sum) / n, 4)},
      {"items", std::to_string(items.size())},
      {"endings scored", std::to_string(rows.size())}};
  if (truncated > 0) table.push_back({"truncated rows", std::to_string(truncated)});
  report.tables.push_back(metric_table("multiple choice: " + s.data, table));
  return report;
}

}  // namespace gpt
