// --task classify on prepared classification shards: with the checkpoint's class head, or by the
// label words the data was prepared with, compared at the position where they part.
#include "eval/classify.h"

#include <algorithm>
#include <filesystem>
#include <memory>
#include <stdexcept>

#include "data/finetune.h"
#include "data/finetune_loader.h"
#include "data/text_input.h"
#include "eval/metrics.h"
#include "eval/tasks.h"

namespace fs = std::filesystem;

namespace gpt {

LabelWordScorer::LabelWordScorer(std::vector<std::string> w, const PrepareTokenizer& tok)
    : words(std::move(w)) {
  for (const std::string& word : words) {
    std::vector<int32_t> ids = tok.encode(" " + word);
    ids.push_back(tok.eot_token());
    seqs.push_back(std::move(ids));
  }
  while (true) {
    bool same = true;
    for (const auto& q : seqs)
      if (static_cast<int>(q.size()) <= prefix + 1 || q[prefix] != seqs[0][prefix]) same = false;
    if (!same) break;
    ++prefix;
  }
  for (size_t k = 0; k < seqs.size(); ++k) {
    deciding.push_back(seqs[k][prefix]);
    for (size_t j = 0; j < k; ++j)
      if (deciding[j] == deciding[k])
        throw std::invalid_argument("label words '" + words[j] + "' and '" + words[k] +
                                    "' have the same token after their common prefix of " +
                                    std::to_string(prefix) +
                                    " tokens: they cannot be told apart by one token");
  }
}

namespace {

int argmax(const float* v, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i)
    if (v[i] > v[best]) best = i;
  return best;
}

std::string join(const std::vector<std::string>& words) {
  std::string out;
  for (size_t i = 0; i < words.size(); ++i) out += (i ? "," : "") + words[i];
  return out;
}

// The class whose label-word tokens the targets `y` begin with (at `first`), -1 when none does.
int label_word_class(const int32_t* y, int first, const LabelWordScorer& sc) {
  for (int i = 0; i < sc.prefix; ++i)
    if (y[first + i] != sc.seqs[0][static_cast<size_t>(i)]) return -1;
  int label = -1;
  for (size_t k = 0; k < sc.deciding.size(); ++k)
    if (y[first + sc.prefix] == sc.deciding[k]) label = static_cast<int>(k);
  return label;
}

// The class whose deciding token has the largest logit in `row` (the first one on ties).
int label_word_prediction(const float* row, const LabelWordScorer& sc) {
  int best = 0;
  for (size_t k = 1; k < sc.deciding.size(); ++k)
    if (row[sc.deciding[k]] > row[sc.deciding[static_cast<size_t>(best)]])
      best = static_cast<int>(k);
  return best;
}

}  // namespace

void tally_class_head(const std::vector<float>& logits, int K, const int32_t* targets,
                      const ScoredRows& rows, ClassifyTally& tally) {
  const int Tb = rows.row_length;
  for (size_t b = 0; b < rows.first.size(); ++b) {
    if (rows.first[b] < 0) continue;
    tally.labels.push_back(targets[b * static_cast<size_t>(Tb) + rows.first[b]]);
    tally.predictions.push_back(argmax(logits.data() + b * static_cast<size_t>(K), K));
    tally.example_ids.push_back(rows.examples[b]);
    ++tally.loss_count;
  }
}

void tally_label_words(const std::vector<float>& logits, int Vp, const int32_t* targets,
                       const ScoredRows& rows, const LabelWordScorer& scorer,
                       const std::string& data, int T, ClassifyTally& tally) {
  const int Tb = rows.row_length;
  for (size_t b = 0; b < rows.first.size(); ++b) {
    if (rows.first[b] < 0) continue;
    const int32_t* y = targets + b * static_cast<size_t>(Tb);
    const int pos = rows.first[b] + scorer.prefix;  // predicts the deciding token
    if (pos > rows.last[b])
      throw std::runtime_error("'" + data + "': example " + std::to_string(rows.examples[b]) +
                               " was cut inside its label word by the truncation to " +
                               std::to_string(T) + " tokens: raise --seq-len");
    const int label = label_word_class(y, rows.first[b], scorer);
    if (label < 0)
      throw std::runtime_error(
          "'" + data + "': example " + std::to_string(rows.examples[b]) +
          ": its targets do not begin with any of the label words (" + join(scorer.words) +
          ") as the tokenizer encodes them: prepared with other label words or another "
          "tokenizer?");
    const float* row = logits.data() + (b * static_cast<size_t>(Tb) + pos) * Vp;
    tally.labels.push_back(label);
    tally.predictions.push_back(label_word_prediction(row, scorer));
    tally.example_ids.push_back(rows.examples[b]);
    tally.loss_count += std::count_if(y, y + Tb, [](int32_t v) { return v >= 0; });
  }
}

namespace {

std::vector<std::string> split_words(const std::string& list) {
  std::vector<std::string> words = split_commas(list);
  for (const std::string& w : words)
    if (w.empty()) throw std::invalid_argument("--label-words '" + list + "': empty label word");
  return words;
}

// The label words: meta.json's, or --label-words (which must then agree). Empty for data prepared
// for a class head. Throws for data prepared for another task.
std::vector<std::string> label_words_of(const EvalSettings& s, const nlohmann::json& meta,
                                        const std::string& meta_path) {
  if (meta.is_object() && meta.contains("task") && meta["task"] != "classify")
    throw std::invalid_argument(meta_path + ": the data was prepared with --task " +
                                meta["task"].dump() +
                                "; --task classify needs shards from gpt-prepare --task classify");
  std::vector<std::string> words;
  if (meta.is_object() && meta.contains("label_words")) {
    try {
      words = meta["label_words"].get<std::vector<std::string>>();
    } catch (const nlohmann::json::exception&) {
      throw std::runtime_error(meta_path + ": field 'label_words': expected an array of strings");
    }
  }
  if (!s.label_words.empty()) {
    const std::vector<std::string> given = split_words(s.label_words);
    if (!words.empty() && given != words)
      throw std::invalid_argument("--label-words " + s.label_words +
                                  " differs from the label words the data was prepared with (" +
                                  join(words) + ", " + meta_path + ")");
    words = given;
  }
  return words;
}

// Row length: --seq-len, else the longest example (meta.json), else the model's context.
int classify_row_length(const EvalSettings& s, const nlohmann::json& meta,
                        const std::vector<std::string>& words, const GptConfig& config) {
  int T = s.seq_len > 0 ? s.seq_len : config.max_seq_len;
  if (s.seq_len == 0 && meta.is_object() && meta.contains("max_example_tokens") &&
      meta["max_example_tokens"].is_number_integer()) {
    const int64_t n = meta["max_example_tokens"].get<int64_t>();
    const int64_t row = words.empty() && !meta.contains("label_words") ? n : n - 1;
    T = static_cast<int>(std::clamp<int64_t>(row, 1, config.max_seq_len));
  }
  if (T > config.max_seq_len)
    throw std::invalid_argument("--seq-len " + std::to_string(T) + " exceeds the context of " +
                                s.model + " (" + std::to_string(config.max_seq_len) + " tokens)");
  return T;
}

// The data must suit the model: class ids for a class head, label words without one.
void check_head_suits_data(const EvalSettings& s, bool head, int data_classes, bool no_words,
                           const nlohmann::json& meta, const std::string& meta_path) {
  if (head && data_classes == 0)
    throw std::invalid_argument(
        s.model + " has a class head, but '" + s.data +
        "' holds label-word examples (gpt-prepare --label-words): evaluate it on data prepared "
        "without --label-words");
  if (!head && data_classes > 0)
    throw std::invalid_argument(
        "'" + s.data + "' was prepared for a class head (no --label-words), but " + s.model +
        " has no class head (head.safetensors): evaluate a checkpoint fine-tuned with a class "
        "head, or prepare the data with --label-words");
  if (!head && no_words)
    throw std::invalid_argument(
        "classify data without a class head and without label words: " + s.model +
        " has no class head and " +
        (meta.is_null() ? "there is no " + meta_path : meta_path + " records no label_words") +
        "; pass --label-words WORD0,WORD1,...");
}

// The label words as the data's tokenizer encodes them, checked against the data's <|endoftext|>
// and the model's vocabulary.
std::unique_ptr<LabelWordScorer> make_label_word_scorer(const EvalSettings& s, EvalContext& context,
                                                        const std::vector<std::string>& words,
                                                        int32_t eot, const std::string& meta_path,
                                                        const GptConfig& config) {
  const PrepareTokenizer tok = load_eval_tokenizer(
      context.load_tokenizer, s.tokenizer, fs::path(s.data).parent_path().string(), s.model);
  if (tok.eot_token() != eot)
    throw std::invalid_argument(
        "the tokenizer's <|endoftext|> is " + std::to_string(tok.eot_token()) + ", the data's " +
        std::to_string(eot) + " (" + meta_path + "): pass the data's tokenizer with --tokenizer");
  auto scorer = std::make_unique<LabelWordScorer>(words, tok);
  for (int32_t id : scorer->deciding)
    if (id >= config.vocab_size)
      throw std::invalid_argument("label-word token " + std::to_string(id) +
                                  " is outside the model's vocabulary of " +
                                  std::to_string(config.vocab_size));
  return scorer;
}

// The number of classes K: the class head's (which must match the data's), or the label words'.
int class_count(const EvalSettings& s, const LanguageModel& model, bool head, int data_classes,
                const std::vector<std::string>& words) {
  const int K = head ? model.num_classes() : static_cast<int>(words.size());
  if (head && K != data_classes)
    throw std::invalid_argument(s.model + ": the class head has " + std::to_string(K) +
                                " classes, the data " + std::to_string(data_classes) + " (" +
                                s.data + ")");
  if (!words.empty() && static_cast<int>(words.size()) != K)
    throw std::invalid_argument("--label-words names " + std::to_string(words.size()) +
                                " classes, the class head has " + std::to_string(K));
  return K;
}

// The rows of a (B, T) batch to score: those of the first `total` examples; the other rows get
// their targets masked. Throws for a row with no target left after truncation.
ScoredRows select_scored_rows(int32_t* targets, int B, int T, std::vector<int64_t> examples,
                              int64_t total, const std::string& data) {
  ScoredRows rows;
  rows.first.assign(static_cast<size_t>(B), -1);
  rows.last.assign(static_cast<size_t>(B), -1);
  rows.examples = std::move(examples);
  for (int b = 0; b < B; ++b) {
    int32_t* y = targets + static_cast<size_t>(b) * T;
    if (rows.examples[b] < 0 || rows.examples[b] >= total) {
      std::fill(y, y + T, -1);
      continue;
    }
    for (int t = 0; t < T; ++t)
      if (y[t] >= 0) {
        if (rows.first[b] < 0) rows.first[b] = t;
        rows.last[b] = t;
      }
    if (rows.first[b] < 0)
      throw std::runtime_error("'" + data + "': example " + std::to_string(rows.examples[b]) +
                               " has no target left after truncation to " + std::to_string(T) +
                               " tokens: raise --seq-len");
    rows.row_length = std::max(rows.row_length, rows.last[b] + 1);
  }
  return rows;
}

// The first Tb positions of each row of a (B, T) batch, as a (B, Tb) batch.
void cut_rows(const std::vector<int32_t>& in, int B, int T, int Tb, std::vector<int32_t>& out) {
  out.resize(static_cast<size_t>(B) * Tb);
  for (int b = 0; b < B; ++b)
    std::copy_n(in.begin() + static_cast<size_t>(b) * T, Tb,
                out.begin() + static_cast<size_t>(b) * Tb);
}

// Every example (the first s.max_examples) through the model: with the class head when `scorer`
// is null, else by label words.
ClassifyTally classify_examples(const EvalSettings& s, LanguageModel& model, FinetuneLoader& loader,
                                const LabelWordScorer* scorer, int K, int T,
                                const EvalConsole& console) {
  const int B = s.batch_size;
  const int Vp = model.shape().padded_vocab_size;
  const int64_t total = s.max_examples > 0
                            ? std::min<int64_t>(s.max_examples, loader.num_examples())
                            : loader.num_examples();
  std::vector<int32_t> tokens(static_cast<size_t>(B) * T), targets(tokens.size());
  std::vector<int32_t> row_tokens, row_targets;
  ClassifyTally tally;
  EvalProgress progress(console, "classify", total, "examples");
  for (int64_t bi = 0; bi < loader.batches_per_epoch(); ++bi) {
    loader.next_batch(tokens.data(), targets.data());
    const ScoredRows rows =
        select_scored_rows(targets.data(), B, T, loader.last_batch_examples(), total, s.data);
    const int Tb = rows.row_length;
    if (Tb == 0) {
      if (rows.examples[0] >= total) break;
      continue;
    }
    cut_rows(tokens, B, T, Tb, row_tokens);
    cut_rows(targets, B, T, Tb, row_targets);
    tally.loss_sum += model.forward(row_tokens.data(), row_targets.data(), B, Tb);
    if (!scorer)
      tally_class_head(model.class_logits_to_host(B), K, row_targets.data(), rows, tally);
    else
      tally_label_words(model.logits_to_host(B, Tb), Vp, row_targets.data(), rows, *scorer, s.data,
                        T, tally);
    progress.update(static_cast<int64_t>(tally.labels.size()));
  }
  progress.finish();
  if (tally.labels.empty()) throw std::runtime_error("'" + s.data + "': no example to evaluate");
  return tally;
}

nlohmann::ordered_json classify_metrics_json(const ClassificationReport& r,
                                             const std::vector<std::string>& names, double loss,
                                             const LabelWordScorer* scorer) {
  auto prf = [](const PrecisionRecallF1& p) {
    return nlohmann::ordered_json{{"precision", p.precision}, {"recall", p.recall}, {"f1", p.f1}};
  };
  nlohmann::ordered_json j;
  j["mode"] = scorer ? "label_words" : "class_head";
  j["examples"] = r.num_examples;
  j["accuracy"] = r.accuracy;
  j["macro"] = prf(r.macro);
  j["weighted"] = prf(r.weighted);
  j["per_class"] = nlohmann::ordered_json::array();
  for (size_t k = 0; k < names.size(); ++k) {
    nlohmann::ordered_json c = prf(r.per_class[k]);
    c["class"] = static_cast<int>(k);
    c["name"] = names[k];
    c["support"] = r.support[k];
    j["per_class"].push_back(c);
  }
  j["confusion"] = r.confusion;
  j["loss"] = loss;
  j["loss_per"] =
      scorer ? "target token (label word + <|endoftext|>)" : "example (class-head cross-entropy)";
  if (scorer) {
    j["label_words"] = scorer->words;
    j["label_word_tokens"] = scorer->seqs;
    j["shared_prefix_tokens"] = scorer->prefix;
  }
  return j;
}

// The summary, the per-class scores and the confusion matrix. `words`: the label words (empty:
// classes are shown by number).
std::vector<EvalTable> classify_tables(const ClassificationReport& r,
                                       const std::vector<std::string>& names,
                                       const std::vector<std::string>& words, double loss,
                                       bool head, const std::string& data) {
  const size_t K = names.size();
  std::vector<EvalTable> tables;
  tables.push_back(metric_table(
      std::string("classification (") + (head ? "class head" : "label words") + "): " + data,
      {{"accuracy", format_fixed(r.accuracy, 4)},
       {"macro precision", format_fixed(r.macro.precision, 4)},
       {"macro recall", format_fixed(r.macro.recall, 4)},
       {"macro F1", format_fixed(r.macro.f1, 4)},
       {"weighted F1", format_fixed(r.weighted.f1, 4)},
       {head ? "loss per example" : "loss per target token", format_fixed(loss, 6)},
       {"examples", std::to_string(r.num_examples)}}));
  EvalTable per;
  per.title = "per class";
  per.header = {"class", "precision", "recall", "f1", "support"};
  for (size_t k = 0; k < K; ++k) {
    const PrecisionRecallF1& p = r.per_class[k];
    per.rows.push_back({words.empty() ? names[k] : std::to_string(k) + " " + names[k],
                        format_fixed(p.precision, 4), format_fixed(p.recall, 4),
                        format_fixed(p.f1, 4), std::to_string(r.support[k])});
  }
  tables.push_back(per);
  EvalTable conf;
  conf.title = "confusion matrix (rows: true class, columns: predicted)";
  conf.header = {"true \\ predicted"};
  for (size_t k = 0; k < K; ++k) conf.header.push_back(names[k]);
  for (size_t t = 0; t < K; ++t) {
    std::vector<std::string> row = {names[t]};
    for (size_t p = 0; p < K; ++p) row.push_back(std::to_string(r.confusion[t][p]));
    conf.rows.push_back(row);
  }
  tables.push_back(conf);
  return tables;
}

EvalReport classify_report(const EvalSettings& s, const LoadedModel& m, size_t shards, int T, int K,
                           const ClassifyTally& tally, const std::vector<std::string>& words,
                           const LabelWordScorer* scorer) {
  const ClassificationReport r = classification_report(tally.labels, tally.predictions, K);
  std::vector<std::string> names;
  for (int k = 0; k < K; ++k)
    names.push_back(words.empty() ? std::to_string(k) : words[static_cast<size_t>(k)]);
  const double loss = tally.loss_sum / static_cast<double>(tally.loss_count);
  EvalReport report;
  report.json["model"] = m.describe();
  report.json["data"] = {{"pattern", s.data}, {"shards", shards}, {"seq_len", T}};
  report.json["metrics"] = classify_metrics_json(r, names, loss, scorer);
  report.json["examples"] = {
      {"index", tally.example_ids}, {"label", tally.labels}, {"prediction", tally.predictions}};
  report.tables = classify_tables(r, names, words, loss, scorer == nullptr, s.data);
  return report;
}

}  // namespace

EvalReport run_classify_task(const EvalSettings& s, EvalContext& context) {
  const nlohmann::json meta = read_data_meta(s.data);
  const std::string meta_path = data_meta_path(s.data);
  const std::vector<std::string> files = expand_inputs({s.data});
  const std::vector<std::string> words = label_words_of(s, meta, meta_path);

  GptWeights w = load_weights(s.model);
  const GptConfig config = w.config;
  check_data_vocab(meta, s.data, config, s.model);
  const bool head = checkpoint_has_class_head(s.model);
  int32_t eot = config.vocab_size - 1;  // <|endoftext|> of the byte tokenizer and of GPT-2
  if (meta.is_object() && meta.contains("eot_token") && meta["eot_token"].is_number_integer())
    eot = meta["eot_token"].get<int32_t>();
  const int T = classify_row_length(s, meta, words, config);
  FinetuneLoaderOptions lo;
  lo.B = s.batch_size;
  lo.T = T;
  lo.vocab_size = config.vocab_size;
  lo.pad_token = eot;
  lo.long_examples = s.truncate ? LongExamples::kTruncate : LongExamples::kError;
  FinetuneLoader loader(s.data, lo);
  check_head_suits_data(s, head, loader.num_classes(), words.empty(), meta, meta_path);
  std::unique_ptr<LabelWordScorer> scorer;
  if (!head) scorer = make_label_word_scorer(s, context, words, eot, meta_path, config);

  LoadedModel m = build_eval_model(std::move(w), s.model, s.adapter, context.backend, s.batch_size,
                                   T, HeadUse::kClassHeadIfPresent);
  const int K = class_count(s, *m.model, head, loader.num_classes(), words);
  context.console.announce_start();
  const ClassifyTally tally =
      classify_examples(s, *m.model, loader, scorer.get(), K, T, context.console);
  return classify_report(s, m, files.size(), T, K, tally, words, scorer.get());
}

}  // namespace gpt
