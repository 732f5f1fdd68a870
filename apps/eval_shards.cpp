// gpt-eval on prepared token shards: --task lm (validation loss, perplexity, bits per byte, and the
// forgetting report against a base model) and --task classify (class head or label words).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <stdexcept>

#include "apps/eval_tasks.h"
#include "data/finetune.h"
#include "data/finetune_loader.h"
#include "data/loader.h"
#include "data/text_input.h"
#include "engine/metrics.h"

namespace fs = std::filesystem;

namespace gpt {

namespace {

// ---- language model ---------------------------------------------------------------------------

struct LmScore {
  double loss_sum = 0.0;  // nats, summed over every scored target
  int64_t targets = 0;
  int64_t windows = 0;  // rows of T scored
  double loss() const {
    return targets > 0 ? loss_sum / static_cast<double>(targets)
                       : std::numeric_limits<double>::quiet_NaN();
  }
};

// Every window of the validation set (at most max_windows of them when > 0) through the model;
// the loss is the sum over every target, so the mean is over tokens, not over batches.
LmScore score_lm(LanguageModel& model, const ValidationSet& set, int B, int T, int64_t max_windows,
                 const std::string& label) {
  LmScore score;
  std::vector<int32_t> tokens(static_cast<size_t>(B) * T), targets(tokens.size());
  int64_t batches = set.num_batches();
  if (max_windows > 0) batches = std::min(batches, (max_windows + B - 1) / B);
  EvalProgress progress(label, batches, "batches");
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

// UTF-8 bytes per token of the evaluated split, from meta.json: val_bytes / val_tokens when every
// shard is a val_ shard (train_bytes / train_tokens for train_ shards), as gpt-pretrain computes
// validation bits per byte. 0 when unknown.
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

void note_ignored_head(const LoadedModel& m) {
  if (m.class_head_ignored)
    std::fprintf(stderr,
                 "gpt-eval: note: %s has a class head (head.safetensors); this task uses the "
                 "language-model head (the tied token embedding)\n",
                 m.path.c_str());
}

}  // namespace

EvalReport run_lm_task(const EvalSettings& s, Backend& backend) {
  if (s.forgetting && s.base.empty())
    throw std::invalid_argument("--forgetting needs --base PATH (the model before fine-tuning)");
  const bool forgetting = !s.base.empty();
  if (forgetting) detect_weights_format(s.base);  // a missing base fails before any work
  const std::vector<std::string> files = expand_inputs({s.data});
  const nlohmann::json meta = read_data_meta(s.data);
  const double bytes_per_token = bytes_per_token_of(meta, files);

  struct Run {
    std::string role, path, adapter;
    LmScore score;
    nlohmann::ordered_json model;
  };
  std::vector<Run> runs = {{"model", s.model, s.adapter, {}, {}}};
  if (forgetting) runs.push_back({"base", s.base, "", {}, {}});
  int T = s.seq_len;
  int vocab = 0;
  std::unique_ptr<ValidationSet> set;
  for (Run& r : runs) {
    GptWeights w = load_weights(r.path);
    check_data_vocab(meta, s.data, w.config, r.path);
    if (vocab != 0 && w.config.vocab_size != vocab)
      throw std::runtime_error(r.path + ": the base model's vocab_size " +
                               std::to_string(w.config.vocab_size) + " differs from the model's " +
                               std::to_string(vocab) + " (" + s.model + ")");
    vocab = w.config.vocab_size;
    if (T == 0) T = w.config.max_seq_len;  // the first model's context, also for the base
    if (T > w.config.max_seq_len)
      throw std::invalid_argument("--seq-len " + std::to_string(T) + " exceeds the context of " +
                                  r.path + " (" + std::to_string(w.config.max_seq_len) +
                                  " tokens)" + (s.seq_len == 0 ? ": pass --seq-len" : ""));
    if (!set) set = std::make_unique<ValidationSet>(s.data, s.batch_size, T, vocab);
    LoadedModel m = build_eval_model(std::move(w), r.path, r.role == "model" ? r.adapter : "",
                                   backend, s.batch_size, T, HeadUse::kLanguageModel);
    announce_start();
    note_ignored_head(m);
    r.model = m.describe();
    r.score = score_lm(*m.model, *set, s.batch_size, T, s.max_examples, "lm " + r.role);
  }

  EvalReport report;
  report.json["model"] = runs[0].model;
  if (forgetting) report.json["base"] = runs[1].model;
  report.json["data"] = {{"pattern", s.data},
                         {"shards", files.size()},
                         {"meta", meta.is_null() ? nlohmann::ordered_json(nullptr)
                                                 : nlohmann::ordered_json(data_meta_path(s.data))}};
  const LmScore& a = runs[0].score;
  auto bpb = [&](const LmScore& sc) {
    return bytes_per_token > 0 ? format_fixed(bits_per_byte(sc.loss(), bytes_per_token), 6)
                               : std::string("-");
  };
  if (!forgetting) {
    report.json["metrics"] = lm_json(a, bytes_per_token, T);
    report.tables.push_back(
        metric_table("language model: " + s.data,
                     {{"loss", format_fixed(a.loss(), 6)},
                      {"perplexity", format_fixed(perplexity(a.loss()), 4)},
                      {"bits per token", format_fixed(bits_per_token(a.loss()), 6)},
                      {"bits per byte", bpb(a)},
                      {"tokens", std::to_string(a.targets)},
                      {"windows of " + std::to_string(T), std::to_string(a.windows)}}));
    return report;
  }
  const LmScore& b = runs[1].score;
  const double diff = a.loss() - b.loss();
  const double relative = diff / b.loss();
  nlohmann::ordered_json m;
  m["model"] = lm_json(a, bytes_per_token, T);
  m["base"] = lm_json(b, bytes_per_token, T);
  m["loss_difference"] = diff;
  m["relative_change"] = relative;
  report.json["metrics"] = m;
  EvalTable t;
  t.title = "forgetting: " + s.data + " (model " + s.model + ", base " + s.base + ")";
  t.header = {"metric", "model", "base", "model - base"};
  t.rows.push_back(
      {"loss", format_fixed(a.loss(), 6), format_fixed(b.loss(), 6), signed_fixed(diff, 6)});
  t.rows.push_back({"perplexity", format_fixed(perplexity(a.loss()), 4),
                    format_fixed(perplexity(b.loss()), 4),
                    signed_fixed(perplexity(a.loss()) - perplexity(b.loss()), 4)});
  if (bytes_per_token > 0)
    t.rows.push_back({"bits per byte", bpb(a), bpb(b),
                      signed_fixed(bits_per_byte(a.loss(), bytes_per_token) -
                                       bits_per_byte(b.loss(), bytes_per_token),
                                   6)});
  t.rows.push_back({"tokens", std::to_string(a.targets), std::to_string(b.targets), ""});
  t.rows.push_back(
      {"relative change of the loss", "", "", signed_fixed(100.0 * relative, 4) + "%"});
  report.tables.push_back(t);
  return report;
}

// ---- classification ---------------------------------------------------------------------------

namespace {

std::vector<std::string> split_words(const std::string& list) {
  std::vector<std::string> words;
  size_t start = 0;
  while (start <= list.size()) {
    const size_t end = list.find(',', start);
    const std::string w(
        trim_blanks(list.substr(start, end == std::string::npos ? end : end - start)));
    if (w.empty()) throw std::invalid_argument("--label-words '" + list + "': empty label word");
    words.push_back(w);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return words;
}

std::string join(const std::vector<std::string>& words) {
  std::string out;
  for (size_t i = 0; i < words.size(); ++i) out += (i ? "," : "") + words[i];
  return out;
}

// How label words are told apart. A row of label-word data reads
//   ... "\nLabel:" | w_1 w_2 ... <|endoftext|>      (targets from the first label-word token on)
// and seq[k] = tokens(" " + word_k) + <|endoftext|>. The sequences share a prefix of `prefix`
// tokens (none for GPT-2's " negative"/" positive"; the space for the byte tokenizer) and differ
// at the next one: the prediction is the class whose token there has the largest logit, read at
// the position that predicts it (the prefix is the same for every class, so teacher-forcing it
// from the true label changes nothing).
struct LabelWordScorer {
  std::vector<std::string> words;
  std::vector<std::vector<int32_t>> seqs;
  int prefix = 0;
  std::vector<int32_t> deciding;  // seqs[k][prefix]

  LabelWordScorer(std::vector<std::string> w, const PrepareTokenizer& tok) : words(std::move(w)) {
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
};

int argmax(const float* v, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i)
    if (v[i] > v[best]) best = i;
  return best;
}

}  // namespace

EvalReport run_classify_task(const EvalSettings& s, Backend& backend) {
  const nlohmann::json meta = read_data_meta(s.data);
  const std::string meta_path = data_meta_path(s.data);
  const std::vector<std::string> files = expand_inputs({s.data});
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

  GptWeights w = load_weights(s.model);
  const GptConfig config = w.config;
  check_data_vocab(meta, s.data, config, s.model);
  const bool head = checkpoint_has_class_head(s.model);
  int32_t eot = config.vocab_size - 1;  // <|endoftext|> of the byte tokenizer and of GPT-2
  if (meta.is_object() && meta.contains("eot_token") && meta["eot_token"].is_number_integer())
    eot = meta["eot_token"].get<int32_t>();

  // Row length: --seq-len, else the longest example (meta.json), else the model's context.
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
  FinetuneLoaderOptions lo;
  lo.B = s.batch_size;
  lo.T = T;
  lo.vocab_size = config.vocab_size;
  lo.pad_token = eot;
  lo.long_examples = s.truncate ? LongExamples::kTruncate : LongExamples::kError;
  FinetuneLoader loader(s.data, lo);
  const int data_classes = loader.num_classes();

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
  if (!head && words.empty())
    throw std::invalid_argument(
        "classify data without a class head and without label words: " + s.model +
        " has no class head and " +
        (meta.is_null() ? "there is no " + meta_path : meta_path + " records no label_words") +
        "; pass --label-words WORD0,WORD1,...");

  std::unique_ptr<LabelWordScorer> scorer;
  if (!head) {
    const PrepareTokenizer tok =
        load_eval_tokenizer(s.tokenizer, fs::path(s.data).parent_path().string(), s.model);
    if (tok.eot_token() != eot)
      throw std::invalid_argument(
          "the tokenizer's <|endoftext|> is " + std::to_string(tok.eot_token()) + ", the data's " +
          std::to_string(eot) + " (" + meta_path + "): pass the data's tokenizer with --tokenizer");
    scorer = std::make_unique<LabelWordScorer>(words, tok);
    for (int32_t id : scorer->deciding)
      if (id >= config.vocab_size)
        throw std::invalid_argument("label-word token " + std::to_string(id) +
                                    " is outside the model's vocabulary of " +
                                    std::to_string(config.vocab_size));
  }

  const int B = s.batch_size;
  LoadedModel m = build_eval_model(std::move(w), s.model, s.adapter, backend, B, T,
                                 HeadUse::kClassHeadIfPresent);
  LanguageModel& model = *m.model;
  const int K = head ? model.num_classes() : static_cast<int>(words.size());
  if (head && K != data_classes)
    throw std::invalid_argument(s.model + ": the class head has " + std::to_string(K) +
                                " classes, the data " + std::to_string(data_classes) + " (" +
                                s.data + ")");
  if (!words.empty() && static_cast<int>(words.size()) != K)
    throw std::invalid_argument("--label-words names " + std::to_string(words.size()) +
                                " classes, the class head has " + std::to_string(K));

  announce_start();
  const int64_t total = s.max_examples > 0
                            ? std::min<int64_t>(s.max_examples, loader.num_examples())
                            : loader.num_examples();
  const int Vp = config.padded_vocab_size();
  std::vector<int32_t> tokens(static_cast<size_t>(B) * T), targets(tokens.size());
  std::vector<int32_t> ptokens, ptargets;
  std::vector<int> labels, predictions;
  std::vector<int64_t> example_ids;
  double loss_sum = 0.0;
  int64_t loss_count = 0;
  EvalProgress progress("classify", total, "examples");
  for (int64_t bi = 0; bi < loader.batches_per_epoch(); ++bi) {
    loader.next_batch(tokens.data(), targets.data());
    const std::vector<int64_t> rows = loader.last_batch_examples();
    // Rows to score, and the shortest row length that holds every target (the positions after
    // it cannot change the logits before it: attention is causal).
    std::vector<int> first(B, -1), last(B, -1);
    int Tb = 0;
    for (int b = 0; b < B; ++b) {
      int32_t* y = targets.data() + static_cast<size_t>(b) * T;
      if (rows[b] < 0 || rows[b] >= total) {
        std::fill(y, y + T, -1);
        continue;
      }
      for (int t = 0; t < T; ++t)
        if (y[t] >= 0) {
          if (first[b] < 0) first[b] = t;
          last[b] = t;
        }
      if (first[b] < 0)
        throw std::runtime_error("'" + s.data + "': example " + std::to_string(rows[b]) +
                                 " has no target left after truncation to " + std::to_string(T) +
                                 " tokens: raise --seq-len");
      Tb = std::max(Tb, last[b] + 1);
    }
    if (Tb == 0) {
      if (rows[0] >= total) break;
      continue;
    }
    ptokens.resize(static_cast<size_t>(B) * Tb);
    ptargets.resize(ptokens.size());
    for (int b = 0; b < B; ++b) {
      std::copy_n(tokens.begin() + static_cast<size_t>(b) * T, Tb,
                  ptokens.begin() + static_cast<size_t>(b) * Tb);
      std::copy_n(targets.begin() + static_cast<size_t>(b) * T, Tb,
                  ptargets.begin() + static_cast<size_t>(b) * Tb);
    }
    loss_sum += model.forward(ptokens.data(), ptargets.data(), B, Tb);
    if (head) {
      const std::vector<float> logits = model.class_logits_to_host(B);
      for (int b = 0; b < B; ++b) {
        if (first[b] < 0) continue;
        labels.push_back(ptargets[static_cast<size_t>(b) * Tb + first[b]]);
        predictions.push_back(argmax(logits.data() + static_cast<size_t>(b) * K, K));
        example_ids.push_back(rows[b]);
        ++loss_count;
      }
    } else {
      const std::vector<float> logits = model.logits_to_host(B, Tb);
      const LabelWordScorer& sc = *scorer;
      for (int b = 0; b < B; ++b) {
        if (first[b] < 0) continue;
        const int32_t* y = ptargets.data() + static_cast<size_t>(b) * Tb;
        const int pos = first[b] + sc.prefix;  // predicts the deciding token
        if (pos > last[b])
          throw std::runtime_error("'" + s.data + "': example " + std::to_string(rows[b]) +
                                   " was cut inside its label word by the truncation to " +
                                   std::to_string(T) + " tokens: raise --seq-len");
        int label = -1;
        bool prefix_ok = true;
        for (int i = 0; prefix_ok && i < sc.prefix; ++i)
          prefix_ok = y[first[b] + i] == sc.seqs[0][static_cast<size_t>(i)];
        if (prefix_ok)
          for (int k = 0; k < K; ++k)
            if (y[pos] == sc.deciding[static_cast<size_t>(k)]) label = k;
        if (label < 0)
          throw std::runtime_error(
              "'" + s.data + "': example " + std::to_string(rows[b]) +
              ": its targets do not begin with any of the label words (" + join(sc.words) +
              ") as the tokenizer encodes them: prepared with other label words or another "
              "tokenizer?");
        const float* row = logits.data() + (static_cast<size_t>(b) * Tb + pos) * Vp;
        int best = 0;
        for (int k = 1; k < K; ++k)
          if (row[sc.deciding[static_cast<size_t>(k)]] >
              row[sc.deciding[static_cast<size_t>(best)]])
            best = k;
        labels.push_back(label);
        predictions.push_back(best);
        example_ids.push_back(rows[b]);
        loss_count += std::count_if(y, y + Tb, [](int32_t v) { return v >= 0; });
      }
    }
    progress.update(static_cast<int64_t>(labels.size()));
  }
  progress.finish();
  if (labels.empty()) throw std::runtime_error("'" + s.data + "': no example to evaluate");

  const ClassificationReport r = classification_report(labels, predictions, K);
  std::vector<std::string> names;
  for (int k = 0; k < K; ++k)
    names.push_back(words.empty() ? std::to_string(k) : words[static_cast<size_t>(k)]);
  const double loss = loss_sum / static_cast<double>(loss_count);

  EvalReport report;
  report.json["model"] = m.describe();
  report.json["data"] = {{"pattern", s.data}, {"shards", files.size()}, {"seq_len", T}};
  nlohmann::ordered_json j;
  j["mode"] = head ? "class_head" : "label_words";
  j["examples"] = r.num_examples;
  j["accuracy"] = r.accuracy;
  auto prf = [](const PrecisionRecallF1& p) {
    return nlohmann::ordered_json{{"precision", p.precision}, {"recall", p.recall}, {"f1", p.f1}};
  };
  j["macro"] = prf(r.macro);
  j["weighted"] = prf(r.weighted);
  j["per_class"] = nlohmann::ordered_json::array();
  for (int k = 0; k < K; ++k) {
    nlohmann::ordered_json c = prf(r.per_class[static_cast<size_t>(k)]);
    c["class"] = k;
    c["name"] = names[static_cast<size_t>(k)];
    c["support"] = r.support[static_cast<size_t>(k)];
    j["per_class"].push_back(c);
  }
  j["confusion"] = r.confusion;
  j["loss"] = loss;
  j["loss_per"] =
      head ? "example (class-head cross-entropy)" : "target token (label word + <|endoftext|>)";
  if (scorer) {
    j["label_words"] = scorer->words;
    j["label_word_tokens"] = scorer->seqs;
    j["shared_prefix_tokens"] = scorer->prefix;
  }
  report.json["metrics"] = j;
  report.json["examples"] = {
      {"index", example_ids}, {"label", labels}, {"prediction", predictions}};

  report.tables.push_back(metric_table(
      std::string("classification (") + (head ? "class head" : "label words") + "): " + s.data,
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
  for (int k = 0; k < K; ++k) {
    const PrecisionRecallF1& p = r.per_class[static_cast<size_t>(k)];
    per.rows.push_back({words.empty() ? names[static_cast<size_t>(k)]
                                      : std::to_string(k) + " " + names[static_cast<size_t>(k)],
                        format_fixed(p.precision, 4), format_fixed(p.recall, 4),
                        format_fixed(p.f1, 4), std::to_string(r.support[static_cast<size_t>(k)])});
  }
  report.tables.push_back(per);
  EvalTable conf;
  conf.title = "confusion matrix (rows: true class, columns: predicted)";
  conf.header = {"true \\ predicted"};
  for (int k = 0; k < K; ++k) conf.header.push_back(names[static_cast<size_t>(k)]);
  for (int t = 0; t < K; ++t) {
    std::vector<std::string> row = {names[static_cast<size_t>(t)]};
    for (int p = 0; p < K; ++p)
      row.push_back(std::to_string(r.confusion[static_cast<size_t>(t)][static_cast<size_t>(p)]));
    conf.rows.push_back(row);
  }
  report.tables.push_back(conf);
  return report;
}

}  // namespace gpt
