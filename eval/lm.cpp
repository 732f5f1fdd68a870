// --task lm: validation loss, perplexity and bits per byte over token shards, and the forgetting
// report against a base model (both losses and the change).
#include "eval/lm.h"

#include <algorithm>
#include <filesystem>
#include <stdexcept>

#include "data/text_input.h"
#include "eval/metrics.h"
#include "eval/tasks.h"

namespace fs = std::filesystem;

namespace gpt {

LmScore score_lm(LanguageModel& model, const ValidationSet& set, int B, int T, int64_t max_windows,
                 const EvalConsole& console, const std::string& label) {
  LmScore score;
  std::vector<int32_t> tokens(static_cast<size_t>(B) * T), targets(tokens.size());
  int64_t batches = set.num_batches();
  if (max_windows > 0) batches = std::min(batches, (max_windows + B - 1) / B);
  EvalProgress progress(console, label, batches, "batches");
  for (int64_t i = 0; i < batches; ++i) {
    set.batch(i, tokens.data(), targets.data());
    int64_t count = 0;
    for (int b = 0; b < B; ++b) {
      int32_t* row = targets.data() + static_cast<size_t>(b) * T;
      if (max_windows > 0 && i * B + b >= max_windows) std::fill(row, row + T, -1);
      const int64_t n = std::count_if(row, row + T, [](int32_t y) { return y >= 0; });
      count += n;
      if (n > 0) ++score.windows;
    }
    if (count > 0) {
      score.loss_sum += model.forward(tokens.data(), targets.data(), B, T);
      score.targets += count;
    }
    progress.update(i + 1);
  }
  progress.finish();
  return score;
}

double bytes_per_token_of(const nlohmann::json& meta, const std::vector<std::string>& files) {
  if (!meta.is_object() || files.empty()) return 0.0;
  auto all_start_with = [&](const std::string& prefix) {
    return std::all_of(files.begin(), files.end(), [&](const std::string& f) {
      return fs::path(f).filename().string().rfind(prefix, 0) == 0;
    });
  };
  const std::string split = all_start_with("val_")     ? "val"
                            : all_start_with("train_") ? "train"
                                                       : "";
  if (split.empty()) return 0.0;
  const std::string bytes_key = split + "_bytes", tokens_key = split + "_tokens";
  if (!meta.contains(bytes_key) || !meta.contains(tokens_key) || !meta[bytes_key].is_number() ||
      !meta[tokens_key].is_number())
    return 0.0;
  const double tokens = meta[tokens_key].get<double>();
  return tokens > 0 ? meta[bytes_key].get<double>() / tokens : 0.0;
}

namespace {

// One model scored by the task: the model itself, or the base of the forgetting report.
struct LmRun {
  std::string role, path, adapter;
  LmScore score;
  nlohmann::ordered_json model;
};

void note_ignored_head(const LoadedModel& m, const EvalConsole& console) {
  if (m.class_head_ignored)
    console.note(m.path +
                 " has a class head (head.safetensors); this task uses the language-model head "
                 "(the tied token embedding)");
}

// Loads each run's model in turn and scores it on the data. Returns the row length T: --seq-len,
// else the first model's context (also for the base).
int score_runs(const EvalSettings& s, EvalContext& context, const nlohmann::json& meta,
               std::vector<LmRun>& runs) {
  int T = s.seq_len;
  int vocab = 0;
  std::unique_ptr<ValidationSet> set;
  for (LmRun& r : runs) {
    GptWeights w = load_weights(r.path);
    check_data_vocab(meta, s.data, w.config, r.path);
    if (vocab != 0 && w.config.vocab_size != vocab)
      throw std::runtime_error(r.path + ": the base model's vocab_size " +
                               std::to_string(w.config.vocab_size) + " differs from the model's " +
                               std::to_string(vocab) + " (" + s.model + ")");
    vocab = w.config.vocab_size;
    if (T == 0) T = w.config.max_seq_len;
    if (T > w.config.max_seq_len)
      throw std::invalid_argument("--seq-len " + std::to_string(T) + " exceeds the context of " +
                                  r.path + " (" + std::to_string(w.config.max_seq_len) +
                                  " tokens)" + (s.seq_len == 0 ? ": pass --seq-len" : ""));
    if (!set) set = std::make_unique<ValidationSet>(s.data, s.batch_size, T, vocab);
    LoadedModel m = build_eval_model(std::move(w), r.path, r.adapter, context.backend, s.batch_size,
                                     T, HeadUse::kLanguageModel);
    context.console.announce_start();
    note_ignored_head(m, context.console);
    r.model = m.describe();
    r.score =
        score_lm(*m.model, *set, s.batch_size, T, s.max_examples, context.console, "lm " + r.role);
  }
  return T;
}

nlohmann::ordered_json lm_json(const LmScore& score, double bytes_per_token, int T) {
  nlohmann::ordered_json j;
  j["loss"] = score.loss();
  j["perplexity"] = perplexity(score.loss());
  j["bits_per_token"] = bits_per_token(score.loss());
  j["bits_per_byte"] = bytes_per_token > 0
                           ? nlohmann::ordered_json(bits_per_byte(score.loss(), bytes_per_token))
                           : nlohmann::ordered_json(nullptr);
  j["bytes_per_token"] = bytes_per_token > 0 ? nlohmann::ordered_json(bytes_per_token)
                                             : nlohmann::ordered_json(nullptr);
  j["tokens"] = score.targets;
  j["windows"] = score.windows;
  j["seq_len"] = T;
  return j;
}

std::string signed_fixed(double v, int decimals) {
  return (v >= 0 ? "+" : "") + format_fixed(v, decimals);
}

std::string bits_per_byte_text(const LmScore& score, double bytes_per_token) {
  return bytes_per_token > 0 ? format_fixed(bits_per_byte(score.loss(), bytes_per_token), 6)
                             : std::string("-");
}

EvalTable lm_table(const std::string& data, const LmScore& a, double bytes_per_token, int T) {
  return metric_table("language model: " + data,
                      {{"loss", format_fixed(a.loss(), 6)},
                       {"perplexity", format_fixed(perplexity(a.loss()), 4)},
                       {"bits per token", format_fixed(bits_per_token(a.loss()), 6)},
                       {"bits per byte", bits_per_byte_text(a, bytes_per_token)},
                       {"tokens", std::to_string(a.targets)},
                       {"windows of " + std::to_string(T), std::to_string(a.windows)}});
}

// The forgetting report's metrics: both models' numbers, the loss difference and its ratio.
nlohmann::ordered_json forgetting_json(const LmScore& a, const LmScore& b, double bytes_per_token,
                                       int T) {
  nlohmann::ordered_json m;
  m["model"] = lm_json(a, bytes_per_token, T);
  m["base"] = lm_json(b, bytes_per_token, T);
  m["loss_difference"] = a.loss() - b.loss();
  m["relative_change"] = (a.loss() - b.loss()) / b.loss();
  return m;
}

EvalTable forgetting_table(const EvalSettings& s, const LmScore& a, const LmScore& b,
                           double bytes_per_token) {
  const double diff = a.loss() - b.loss();
  EvalTable t;
  t.title = "forgetting: " + s.data + " (model " + s.model + ", base " + s.base + ")";
  t.header = {"metric", "model", "base", "model - base"};
  t.rows.push_back(
      {"loss", format_fixed(a.loss(), 6), format_fixed(b.loss(), 6), signed_fixed(diff, 6)});
  t.rows.push_back({"perplexity", format_fixed(perplexity(a.loss()), 4),
                    format_fixed(perplexity(b.loss()), 4),
                    signed_fixed(perplexity(a.loss()) - perplexity(b.loss()), 4)});
  if (bytes_per_token > 0)
    t.rows.push_back({"bits per byte", bits_per_byte_text(a, bytes_per_token),
                      bits_per_byte_text(b, bytes_per_token),
                      signed_fixed(bits_per_byte(a.loss(), bytes_per_token) -
                                       bits_per_byte(b.loss(), bytes_per_token),
                                   6)});
  t.rows.push_back({"tokens", std::to_string(a.targets), std::to_string(b.targets), ""});
  t.rows.push_back(
      {"relative change of the loss", "", "", signed_fixed(100.0 * (diff / b.loss()), 4) + "%"});
  return t;
}

}  // namespace

EvalReport run_lm_task(const EvalSettings& s, EvalContext& context) {
  if (s.forgetting && s.base.empty())
    throw std::invalid_argument("--forgetting needs --base PATH (the model before fine-tuning)");
  const bool forgetting = !s.base.empty();
  if (forgetting) detect_weights_format(s.base);  // a missing base fails before any work
  const std::vector<std::string> files = expand_inputs({s.data});
  const nlohmann::json meta = read_data_meta(s.data);
  const double bytes_per_token = bytes_per_token_of(meta, files);

  std::vector<LmRun> runs = {{"model", s.model, s.adapter, {}, {}}};
  if (forgetting) runs.push_back({"base", s.base, "", {}, {}});
  const int T = score_runs(s, context, meta, runs);

  EvalReport report;
  report.json["model"] = runs[0].model;
  if (forgetting) report.json["base"] = runs[1].model;
  report.json["data"] = {{"pattern", s.data},
                         {"shards", files.size()},
                         {"meta", meta.is_null() ? nlohmann::ordered_json(nullptr)
                                                 : nlohmann::ordered_json(data_meta_path(s.data))}};
  if (!forgetting) {
    report.json["metrics"] = lm_json(runs[0].score, bytes_per_token, T);
    report.tables.push_back(lm_table(s.data, runs[0].score, bytes_per_token, T));
  } else {
    report.json["metrics"] = forgetting_json(runs[0].score, runs[1].score, bytes_per_token, T);
    report.tables.push_back(forgetting_table(s, runs[0].score, runs[1].score, bytes_per_token));
  }
  return report;
}

}  // namespace gpt
