// --task generate: prompt/completion examples read as gpt-prepare reads them, completions generated
// with the KV cache, scored with BLEU, ROUGE, distinct-n and GSM8K answers, plus the teacher-forced
// loss of the reference completions.
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <stdexcept>

#include "data/finetune.h"
#include "data/text_input.h"
#include "eval/metrics.h"
#include "eval/tasks.h"
#include "eval/text.h"
#include "models/generation.h"

namespace gpt {

namespace {

// ---- examples ---------------------------------------------------------------------------------

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

// What generation continues: <|endoftext|> prompt, its first tokens dropped under --truncate so
// that max_new_tokens fit the context.
void fit_prompt(const EvalSettings& s, const std::vector<int32_t>& prompt_ids, int32_t eot, int ctx,
                const std::string& file, int64_t line, GenerateExample& g) {
  g.prompt_ids.push_back(eot);
  g.prompt_ids.insert(g.prompt_ids.end(), prompt_ids.begin(), prompt_ids.end());
  const int P = static_cast<int>(g.prompt_ids.size());
  if (P >= ctx && !s.truncate)
    throw InputError(file, line,
                     "prompt of " + std::to_string(P) + " tokens does not fit the context of " +
                         std::to_string(ctx) + " tokens of " + s.model +
                         " (--truncate keeps its last tokens)");
  if (s.truncate && P + s.max_new_tokens > ctx) {
    const int keep = std::max(1, ctx - s.max_new_tokens);
    g.prompt_ids.erase(g.prompt_ids.begin(), g.prompt_ids.end() - keep);
    g.prompt_truncated = true;
  }
}

// The teacher-forced row: <|endoftext|> prompt reference <|endoftext|>; under --truncate the
// prompt's first tokens are dropped (one is kept before the completion), then the end if the
// completion alone is too long.
void fit_teacher(const EvalSettings& s, const std::vector<int32_t>& prompt_ids,
                 const std::vector<int32_t>& completion_ids, int32_t eot, int ctx,
                 const std::string& file, int64_t line, GenerateExample& g) {
  g.teacher = make_token_example(prompt_ids, completion_ids, -1, eot, false);
  const int64_t n = static_cast<int64_t>(g.teacher.tokens.size());
  if (n - 1 <= ctx) return;
  if (!s.truncate)
    throw InputError(file, line,
                     "prompt and reference completion are " + std::to_string(n) +
                         " tokens, more than the context of " + std::to_string(ctx) +
                         " tokens of " + s.model + " (--truncate cuts the prompt's start)");
  const int64_t prompt_len = 1 + static_cast<int64_t>(prompt_ids.size());
  const int64_t cut = std::min(n - 1 - ctx, prompt_len - 1);
  g.teacher.tokens.erase(g.teacher.tokens.begin(), g.teacher.tokens.begin() + cut);
  g.teacher.loss.erase(g.teacher.loss.begin(), g.teacher.loss.begin() + cut);
  g.teacher.tokens.resize(std::min<size_t>(g.teacher.tokens.size(), ctx + 1));
  g.teacher.loss.resize(g.teacher.tokens.size());
  g.teacher_truncated = true;
}

// Every example tokenized and checked against the context, before the model is built.
std::vector<GenerateExample> prepare_examples(const EvalSettings& s, const PrepareTokenizer& tok,
                                              const std::vector<TextExample>& raw,
                                              const std::vector<std::string>& files,
                                              ExampleFormat format, int ctx) {
  std::vector<GenerateExample> examples;
  ExtraReferences extra(files);
  for (const TextExample& e : raw) {
    GenerateExample g;
    g.source = files[e.input] + ":" + std::to_string(e.line);
    g.prompt = e.prompt;
    if (format == ExampleFormat::kDialogsum) g.references = extra.dialogsum(e.input, e.line);
    if (g.references.empty()) g.references.push_back(strip(e.completion));
    const std::vector<int32_t> prompt_ids = tok.encode(e.prompt);
    fit_prompt(s, prompt_ids, tok.eot_token(), ctx, files[e.input], e.line, g);
    fit_teacher(s, prompt_ids, tok.encode(e.completion), tok.eot_token(), ctx, files[e.input],
                e.line, g);
    examples.push_back(std::move(g));
  }
  return examples;
}

// ---- generation -------------------------------------------------------------------------------

// What the model produced for every example, and the teacher-forced loss of the references.
struct Generations {
  std::vector<std::string> completions;  // valid UTF-8
  std::vector<int64_t> lengths;          // generated tokens
  std::vector<bool> stopped_at_eot;
  double loss_sum = 0.0;
  int64_t loss_tokens = 0, generated_tokens = 0, stopped = 0;
};

// Teacher-forced loss (summed) of the reference completion and its closing <|endoftext|>.
double teacher_forced_loss(LanguageModel& model, const TokenExample& teacher,
                           int64_t& loss_tokens) {
  const int T = static_cast<int>(teacher.tokens.size()) - 1;
  std::vector<int32_t> inputs(teacher.tokens.begin(), teacher.tokens.end() - 1);
  std::vector<int32_t> targets(static_cast<size_t>(T), -1);
  for (int t = 0; t < T; ++t)
    if (teacher.loss[static_cast<size_t>(t) + 1]) {
      targets[static_cast<size_t>(t)] = teacher.tokens[static_cast<size_t>(t) + 1];
      ++loss_tokens;
    }
  return model.forward(inputs.data(), targets.data(), 1, T);
}

// One example at a time: prompts differ in length, and the KV cache is per row.
Generations generate_all(LanguageModel& model, Sampler& sampler, const PrepareTokenizer& tok,
                         const std::vector<GenerateExample>& examples, int ctx, int max_new_tokens,
                         const EvalConsole& console) {
  Generations gens;
  EvalProgress progress(console, "generate", static_cast<int64_t>(examples.size()), "examples");
  for (size_t i = 0; i < examples.size(); ++i) {
    const GenerateExample& g = examples[i];
    gens.loss_sum += teacher_forced_loss(model, g.teacher, gens.loss_tokens);
    const int budget = std::min(max_new_tokens, ctx - static_cast<int>(g.prompt_ids.size()));
    const Generated generated =
        generate_tokens(model, sampler, g.prompt_ids, budget, {tok.eot_token()});
    const std::vector<int32_t>& out = generated.tokens;
    const bool hit_eot = generated.stopped;
    gens.completions.push_back(to_valid_utf8(tok.decode(out)));
    gens.lengths.push_back(static_cast<int64_t>(out.size()));
    gens.stopped_at_eot.push_back(hit_eot);
    gens.generated_tokens += static_cast<int64_t>(out.size());
    gens.stopped += hit_eot ? 1 : 0;
    progress.update(static_cast<int64_t>(i) + 1);
  }
  progress.finish();
  return gens;
}

// ---- metrics ----------------------------------------------------------------------------------

struct GenerateScores {
  std::vector<std::string> hyps;               // stripped completions
  std::vector<std::vector<std::string>> refs;  // references of each example
  size_t streams = 0;                          // references per example (the fewest)
  int64_t exact = 0, prompts_truncated = 0, teachers_truncated = 0;
  BleuScore bleu;
  RougeCorpus rouge;
  Diversity diversity;
  std::optional<Gsm8kScore> gsm8k;  // for GSM8K data, or when every reference has "#### N"
  double completion_loss = 0.0;
};

GenerateScores score_generations(const std::vector<GenerateExample>& examples,
                                 const Generations& gens, bool gsm8k_format) {
  const size_t N = examples.size();
  GenerateScores sc;
  sc.hyps.resize(N);
  sc.refs.resize(N);
  sc.streams = std::numeric_limits<size_t>::max();
  bool all_gsm8k_refs = true;
  for (size_t i = 0; i < N; ++i) {
    sc.hyps[i] = strip(gens.completions[i]);
    sc.refs[i] = examples[i].references;
    sc.streams = std::min(sc.streams, sc.refs[i].size());
    if (!extract_gsm8k_answer(sc.refs[i][0])) all_gsm8k_refs = false;
    if (std::find(sc.refs[i].begin(), sc.refs[i].end(), sc.hyps[i]) != sc.refs[i].end()) ++sc.exact;
    sc.prompts_truncated += examples[i].prompt_truncated ? 1 : 0;
    sc.teachers_truncated += examples[i].teacher_truncated ? 1 : 0;
  }
  std::vector<std::vector<std::string>> bleu_refs(sc.streams, std::vector<std::string>(N));
  for (size_t r = 0; r < sc.streams; ++r)
    for (size_t i = 0; i < N; ++i) bleu_refs[r][i] = sc.refs[i][r];
  sc.bleu = corpus_bleu(sc.hyps, bleu_refs);
  sc.rouge = rouge_corpus(sc.hyps, sc.refs);
  sc.diversity = distinct_n(sc.hyps);
  if (gsm8k_format || all_gsm8k_refs) {
    std::vector<std::string> answers;
    for (const auto& r : sc.refs) answers.push_back(r[0]);
    sc.gsm8k = gsm8k_score(sc.hyps, answers);
  }
  sc.completion_loss = gens.loss_tokens > 0 ? gens.loss_sum / static_cast<double>(gens.loss_tokens)
                                            : std::numeric_limits<double>::quiet_NaN();
  return sc;
}

nlohmann::ordered_json generate_metrics_json(const GenerateScores& sc, const Generations& gens) {
  const double n = static_cast<double>(sc.hyps.size());
  auto rj = [](const RougeScore& r) {
    return nlohmann::ordered_json{
        {"precision", r.precision}, {"recall", r.recall}, {"fmeasure", r.fmeasure}};
  };
  nlohmann::ordered_json j;
  j["examples"] = sc.hyps.size();
  j["completion_loss"] = sc.completion_loss;
  j["completion_perplexity"] = perplexity(sc.completion_loss);
  j["completion_tokens"] = gens.loss_tokens;
  j["bleu"] = sc.bleu.score;
  j["bleu_details"] = {{"references_per_example", sc.streams},
                       {"precisions", sc.bleu.precisions},
                       {"brevity_penalty", sc.bleu.brevity_penalty},
                       {"sys_len", sc.bleu.sys_len},
                       {"ref_len", sc.bleu.ref_len}};
  j["rouge1"] = sc.rouge.mean.rouge1.fmeasure;
  j["rouge2"] = sc.rouge.mean.rouge2.fmeasure;
  j["rougeL"] = sc.rouge.mean.rougeL.fmeasure;
  j["rouge_details"] = {{"rouge1", rj(sc.rouge.mean.rouge1)},
                        {"rouge2", rj(sc.rouge.mean.rouge2)},
                        {"rougeL", rj(sc.rouge.mean.rougeL)}};
  j["distinct1"] = sc.diversity.distinct1;
  j["distinct2"] = sc.diversity.distinct2;
  j["exact_match"] = static_cast<double>(sc.exact) / n;
  if (sc.gsm8k)
    j["gsm8k"] = {{"format_rate", sc.gsm8k->format_rate},
                  {"accuracy", sc.gsm8k->accuracy},
                  {"well_formed", sc.gsm8k->well_formed},
                  {"correct", sc.gsm8k->correct}};
  j["generated_tokens_mean"] = static_cast<double>(gens.generated_tokens) / n;
  j["stopped_at_eot"] = static_cast<double>(gens.stopped) / n;
  j["truncated_prompts"] = sc.prompts_truncated;
  j["truncated_references"] = sc.teachers_truncated;
  return j;
}

nlohmann::ordered_json generations_json(const std::vector<GenerateExample>& examples,
                                        const GenerateScores& sc, const Generations& gens) {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (size_t i = 0; i < examples.size(); ++i) {
    nlohmann::ordered_json g;
    g["index"] = i;
    g["source"] = examples[i].source;
    g["prompt"] = examples[i].prompt;
    g["reference"] = sc.refs[i][0];
    if (sc.refs[i].size() > 1) g["references"] = sc.refs[i];
    g["completion"] = gens.completions[i];
    g["tokens"] = gens.lengths[i];
    g["stopped_at_eot"] = static_cast<bool>(gens.stopped_at_eot[i]);
    out.push_back(g);
  }
  return out;
}

EvalTable generate_table(const EvalSettings& s, const GenerateScores& sc, const Generations& gens) {
  const double n = static_cast<double>(sc.hyps.size());
  std::vector<std::pair<std::string, std::string>> rows = {
      {"completion loss (teacher-forced)", format_fixed(sc.completion_loss, 6)},
      {"completion perplexity", format_fixed(perplexity(sc.completion_loss), 4)},
      {"BLEU (sacrebleu 13a)", format_fixed(sc.bleu.score, 2)},
      {"ROUGE-1 F", format_fixed(sc.rouge.mean.rouge1.fmeasure, 4)},
      {"ROUGE-2 F", format_fixed(sc.rouge.mean.rouge2.fmeasure, 4)},
      {"ROUGE-L F", format_fixed(sc.rouge.mean.rougeL.fmeasure, 4)},
      {"distinct-1", format_fixed(sc.diversity.distinct1, 4)},
      {"distinct-2", format_fixed(sc.diversity.distinct2, 4)},
      {"exact match", format_fixed(static_cast<double>(sc.exact) / n, 4)}};
  if (sc.gsm8k) {
    rows.push_back({"GSM8K '#### N' format rate", format_fixed(sc.gsm8k->format_rate, 4)});
    rows.push_back({"GSM8K accuracy", format_fixed(sc.gsm8k->accuracy, 4)});
  }
  rows.push_back(
      {"generated tokens (mean)", format_fixed(static_cast<double>(gens.generated_tokens) / n, 2)});
  rows.push_back(
      {"stopped at <|endoftext|>", format_fixed(static_cast<double>(gens.stopped) / n, 4)});
  rows.push_back({"examples", std::to_string(sc.hyps.size())});
  if (sc.prompts_truncated + sc.teachers_truncated > 0)
    rows.push_back({"truncated prompts / references", std::to_string(sc.prompts_truncated) + " / " +
                                                          std::to_string(sc.teachers_truncated)});
  return metric_table("generation (" + s.format + "): " + s.data, rows);
}

// The first `show` examples: prompt, reference and completion, one line each.
std::vector<std::string> sample_lines(const std::vector<GenerateExample>& examples,
                                      const GenerateScores& sc, const Generations& gens,
                                      int show_examples) {
  std::vector<std::string> lines;
  const size_t show = std::min(examples.size(), static_cast<size_t>(std::max(0, show_examples)));
  for (size_t i = 0; i < show; ++i) {
    lines.push_back("example " + std::to_string(i) + " (" + examples[i].source + ")");
    lines.push_back("  prompt:     " + one_line(to_valid_utf8(examples[i].prompt), 160));
    lines.push_back("  reference:  " + one_line(sc.refs[i][0], 160));
    lines.push_back("  completion: " + one_line(gens.completions[i], 160));
  }
  return lines;
}

EvalReport generate_report(const EvalSettings& s, const LoadedModel& m,
                           const std::vector<std::string>& files,
                           const std::vector<GenerateExample>& examples, const Generations& gens,
                           ExampleFormat format) {
  const GenerateScores sc = score_generations(examples, gens, format == ExampleFormat::kGsm8k);
  EvalReport report;
  report.json["model"] = m.describe();
  report.json["data"] = {{"pattern", s.data}, {"format", s.format}, {"files", files}};
  report.json["sampling"] = {{"temperature", s.temperature},
                             {"top_k", s.top_k},
                             {"top_p", s.top_p},
                             {"seed", s.seed},
                             {"max_new_tokens", s.max_new_tokens}};
  report.json["metrics"] = generate_metrics_json(sc, gens);
  report.json["generations"] = generations_json(examples, sc, gens);
  report.tables.push_back(generate_table(s, sc, gens));
  report.text = sample_lines(examples, sc, gens, s.show_examples);
  return report;
}

}  // namespace

EvalReport run_generate_task(const EvalSettings& s, EvalContext& context) {
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
  const int ctx = w.config.max_seq_len;
  const PrepareTokenizer tok =
      load_eval_tokenizer(context.load_tokenizer, s.tokenizer, "", s.model);
  check_tokenizer_fits(tok, w.config, s.model);
  const std::vector<GenerateExample> examples =
      prepare_examples(s, tok, raw, files, fo.format, ctx);

  LoadedModel m = build_eval_model(std::move(w), s.model, s.adapter, context.backend, 1, ctx,
                                   HeadUse::kLanguageModel);
  context.console.announce_start();
  const Generations gens =
      generate_all(*m.model, sampler, tok, examples, ctx, s.max_new_tokens, context.console);
  return generate_report(s, m, files, examples, gens, fo.format);
}

}  // namespace gpt
