// gpt-eval's tasks. apps/eval.cpp is the command line; the tasks live here:
//
//   lm        apps/eval_shards.cpp  validation loss over token shards, perplexity, bits per byte;
//                                   with a base model, the forgetting report (both losses)
//   classify  apps/eval_shards.cpp  prepared classification shards: a class head, or label words
//                                   compared at the position where the label words part
//   generate  apps/eval_text.cpp    raw prompt/completion examples: KV-cache generation, BLEU,
//                                   ROUGE, distinct-n, GSM8K answers, and the teacher-forced loss
//                                   of the reference completions
//   choice    apps/eval_text.cpp    multiple choice (HellaSwag JSONL): the ending with the lowest
//                                   mean loss per token wins
//
// Every task returns an EvalReport: the numbers as JSON (written by --out-json) and the same
// numbers as tables for stdout. Nothing in a report depends on time or on the machine's thread
// count, so two runs print identical output. docs/evaluation.md defines every number.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/progress.h"
#include "data/prepare.h"
#include "engine/backend.h"
#include "models/gpt.h"
#include "models/gpt_interop.h"
#include "models/loader.h"

namespace gpt {

// Every setting of gpt-eval (flags and JSON keys of the same name: apps/eval.cpp registers them).
struct EvalSettings {
  std::string model;      // checkpoint, Hugging Face directory or llm.c .bin
  std::string adapter;    // an extra LoRA adapter file
  std::string tokenizer;  // bytes | gpt2 | a directory; empty: found beside the data or the model
  std::string task;       // lm | classify | generate | choice
  std::string data;
  std::string format;  // generate: gsm8k | dialogsum | multi30k | jsonl | seed-tasks
  std::string out_json;
  std::string device = "auto";
  std::string dtype = "auto";
  int batch_size = 8;
  int seq_len = 0;  // 0: from the data (classify) or the model's context (lm)
  long max_examples = 0;
  std::string label_words;  // classify: "negative,positive" when meta.json has none
  int max_new_tokens = 128;
  float temperature = 0.0f;
  int top_k = 0;
  float top_p = 1.0f;
  long seed = 1337;
  bool truncate = false;
  bool forgetting = false;
  std::string base;
  int threads = 0;
  int show_examples = 3;
  std::string progress = "auto";
};

// ---- reports ----------------------------------------------------------------------------------

// A table for stdout: the first column is left-aligned, the others right-aligned.
struct EvalTable {
  std::string title;
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
};

struct EvalReport {
  nlohmann::ordered_json json = nlohmann::ordered_json::object();  // "model", "metrics", ...
  std::vector<EvalTable> tables;
  std::vector<std::string> text;  // lines printed after the tables (sample generations)
};

// "%.*f" of a number ("nan" and "inf" as such).
std::string format_fixed(double value, int decimals);
// A table with one (name, value) row per metric.
EvalTable metric_table(const std::string& title,
                       const std::vector<std::pair<std::string, std::string>>& rows);
// The tables, aligned, separated by blank lines.
std::string render_tables(const std::vector<EvalTable>& tables);

// A progress line on stderr: "gpt-eval: lm  40/120 batches (33%)  4.1 s  ETA 8.2 s" (engine/
// progress.h). Line mode (--progress line, or auto on a terminal): redrawn in place, at most every
// 0.5 s; plain: one line every 10 s, plus the final one when the work took longer than 2 s. Never
// touches stdout.
void set_eval_progress_mode(ProgressMode mode);
class EvalProgress {
 public:
  EvalProgress(std::string label, int64_t total, std::string unit);
  void update(int64_t done);
  void finish();

 private:
  std::string text(int64_t done, bool final_line) const;
  std::string label_, unit_;
  int64_t total_;
  ProgressMode mode_;
  bool finished_ = false;
  int64_t done_ = 0;
  double start_ = 0.0, last_draw_ = 0.0;
  ProgressLine line_;
};

// What gpt-eval prints on stderr at the start of the work (the resolved config, the backend). A
// task calls announce_start() once every input has been checked and the model is built, so that
// bad input gives exactly one line on stderr: the error.
void set_start_banner(std::string text);
void announce_start();

// ---- models -----------------------------------------------------------------------------------

// Whether `path` is a checkpoint whose directory holds head.safetensors.
bool checkpoint_has_class_head(const std::string& path);

// Allocates a model for (max_batch, max_seq) with the given weights (from load_weights(path)) for
// evaluation (frozen), with a fine-tuned checkpoint's adapter (or `adapter` instead) and, with
// kClassHeadIfPresent, its class head: models/loader.h.
LoadedModel build_eval_model(GptWeights weights, const std::string& path, const std::string& adapter,
                             Backend& backend, int max_batch, int max_seq, HeadUse use);

// The tokenizer: --tokenizer when given, else the one found next to `near_first` (the data), else
// next to `near_second` (the model). Throws naming where it looked.
PrepareTokenizer load_eval_tokenizer(const std::string& spec, const std::string& near_first,
                                     const std::string& near_second);

// meta.json beside a shard glob (null when absent; throws naming it when malformed).
nlohmann::json read_data_meta(const std::string& pattern);
std::string data_meta_path(const std::string& pattern);

// Throws "<meta.json>: the data's vocab_size V does not match the model's vocab_size W in PATH".
void check_data_vocab(const nlohmann::json& meta, const std::string& pattern,
                      const GptConfig& config, const std::string& model_path);

// ---- tasks ------------------------------------------------------------------------------------
EvalReport run_lm_task(const EvalSettings& s, Backend& backend);
EvalReport run_classify_task(const EvalSettings& s, Backend& backend);
EvalReport run_generate_task(const EvalSettings& s, Backend& backend);
EvalReport run_choice_task(const EvalSettings& s, Backend& backend);

}  // namespace gpt
