// gpt-eval: evaluate a model (pretrained, fine-tuned, a LoRA adapter on a base) on one task.
//
//   gpt-eval --model runs/tiny --task lm --data 'data/ts/val_*.bin'
//   gpt-eval --model runs/sst2-ft/latest --task classify --data 'data/sst2/val_*.bin'
//   gpt-eval --model runs/gsm8k-lora/latest --task generate --format gsm8k
//            --data ../shared/data/gsm8k/test.jsonl --max-examples 200 --out-json gsm8k.json
//   gpt-eval --model gpt2-hf --task choice --data hellaswag_val.jsonl
//   gpt-eval --model runs/ft/latest --task lm --data 'data/web/val_*.bin' --forgetting --base
//   gpt2-hf
//
// Prints a table on stdout and, with --out-json, writes the same numbers as JSON. Progress goes to
// stderr. The tasks are in the eval/ library (eval/tasks.h); docs/evaluation.md defines every
// number.
#include <omp.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "apps/options.h"
#include "data/tokenizer_finder.h"
#include "engine/files.h"
#include "eval/tasks.h"

namespace fs = std::filesystem;

namespace {

// Every setting of gpt-eval: the task's, and how and where it runs.
struct EvalCommand {
  gpt::EvalSettings task;
  std::string out_json;
  std::string device = "auto";
  std::string dtype = "auto";
  int threads = 0;
  std::string progress = "auto";
};

// Flags and JSON keys of the same name; the order is the resolved config's.
void register_options(gpt::Options& o, EvalCommand& c) {
  gpt::EvalSettings& s = c.task;
  o.add(
      "model", &s.model,
      "the model: a checkpoint (directory, run directory or `latest`; its adapter.safetensors and "
      "head.safetensors are applied), a Hugging Face GPT-2 directory or an llm.c .bin");
  o.add("adapter", &s.adapter, "a LoRA adapter file (adapter.safetensors) to apply to --model");
  o.add(
      "tokenizer", &s.tokenizer,
      "bytes, gpt2 or a tokenizer directory (default: the one beside the data, else the model's)");
  o.add("task", &s.task, "lm | classify | generate | choice");
  o.add("data", &s.data,
        "lm, classify: token shards (a glob, quote it: 'dir/val_*.bin'); generate: examples in "
        "--format; choice: HellaSwag-style JSONL");
  o.add("format", &s.format,
        "generate: the examples' format: gsm8k, dialogsum, multi30k, jsonl, seed-tasks (as for "
        "gpt-prepare)");
  o.add("out_json", &c.out_json, "also write the results as JSON to this file (empty: no file)");
  o.add("device", &c.device, "cpu, cuda or auto");
  o.add("dtype", &c.dtype, "compute dtype: auto (f32 on cpu, bf16 on cuda), f32, bf16");
  o.add("batch_size", &s.batch_size,
        "rows per forward pass (lm, classify, choice; generate runs one example at a time)");
  o.add("seq_len", &s.seq_len,
        "row length T (lm: the window; classify: the padded row); 0: the model's context (lm), "
        "the longest example (classify)");
  o.add("max_examples", &s.max_examples,
        "evaluate only the first N examples (lm: windows of T tokens; 0: all)");
  o.add("label_words", &s.label_words,
        "classify without a class head: the label words, comma-separated (negative,positive), "
        "when the data's meta.json records none");
  o.add("max_new_tokens", &s.max_new_tokens, "generate: tokens to generate per example at most");
  o.add("temperature", &s.temperature, "generate: sampling temperature (0: greedy)");
  o.add("top_k", &s.top_k, "generate: sample from the k most likely tokens (0: all)");
  o.add("top_p", &s.top_p, "generate: nucleus sampling probability mass (1: off)");
  o.add("seed", &s.seed, "generate: seed of the sampler (the run is deterministic for a seed)");
  o.add("truncate", &s.truncate,
        "cut what does not fit the context instead of failing: generate keeps a prompt's last "
        "tokens, choice drops a context's first tokens, classify cuts examples to --seq-len (a "
        "bare --truncate means true)");
  o.add("forgetting", &s.forgetting,
        "lm: also evaluate --base on the same data and report both losses and the change (a bare "
        "--forgetting means true; --base alone implies it)");
  o.add("base", &s.base, "lm: the model before fine-tuning, for --forgetting (any --model format)");
  o.add("threads", &c.threads, "OpenMP threads for the CPU backend (0: OMP_NUM_THREADS or all)");
  o.add("show_examples", &s.show_examples, "generate: sample generations printed on stdout");
  o.add(
      "progress", &c.progress,
      "progress on stderr: auto (line on a terminal, else plain), line (one line redrawn in place) "
      "or plain (a line every 10 s)");
}

// `--truncate` and `--forgetting` may be given bare, meaning true: the Options table takes a value
// for every flag, so a bare one gets "true" inserted after it.
std::vector<std::string> with_bare_flags(int argc, char** argv) {
  std::vector<std::string> args(argv, argv + argc);
  for (size_t i = 1; i < args.size(); ++i) {
    if (args[i] != "--truncate" && args[i] != "--forgetting") continue;
    if (i + 1 == args.size() || args[i + 1].rfind("--", 0) == 0)
      args.insert(args.begin() + static_cast<std::ptrdiff_t>(i) + 1, "true");
  }
  return args;
}

// "model: runs/tiny (checkpoint; 1 layers, 2 heads, width 16, context 64, vocab 257)".
std::string model_line(const std::string& role, const nlohmann::ordered_json& m) {
  std::string line =
      role + ": " + m.value("path", "") + " (" + m.value("format", "") + "; " +
      std::to_string(m.value("n_layer", 0)) + " layers, " + std::to_string(m.value("n_head", 0)) +
      " heads, width " + std::to_string(m.value("n_embd", 0)) + ", context " +
      std::to_string(m.value("context", 0)) + ", vocab " + std::to_string(m.value("vocab_size", 0));
  if (m.value("adapter", false)) line += "; LoRA adapter";
  if (m.contains("class_head") && m["class_head"].is_number())
    line += "; class head of " + m["class_head"].dump() + " classes";
  return line + ")\n";
}

int run(int argc, char** argv) {
  CLI::App app{
      "Evaluate a GPT-2 style model: validation loss and perplexity (lm), classification "
      "(classify), generation metrics (generate), multiple choice (choice), forgetting (lm "
      "--forgetting)."};
  app.footer(
      "Examples:\n"
      "  gpt-eval --model runs/tiny --task lm --data 'data/ts/val_*.bin'\n"
      "  gpt-eval --model runs/ft/latest --task lm --data 'data/ts/val_*.bin' --forgetting "
      "--base runs/tiny\n"
      "  gpt-eval --model runs/sst2/latest --task classify --data 'data/sst2/val_*.bin'\n"
      "  gpt-eval --model runs/gsm8k/latest --task generate --format gsm8k --data test.jsonl "
      "--max-examples 100\n"
      "  gpt-eval --model gpt2-hf --task choice --data hellaswag_val.jsonl --out-json hs.json\n"
      "See docs/evaluation.md for the metrics and the JSON format.");
  EvalCommand c;
  gpt::Options options;
  register_options(options, c);
  options.register_flags(app);
  std::vector<std::string> args = with_bare_flags(argc, argv);
  std::vector<char*> arg_ptrs;
  for (std::string& a : args) arg_ptrs.push_back(a.data());
  try {
    app.parse(static_cast<int>(arg_ptrs.size()), arg_ptrs.data());
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  options.resolve();

  const gpt::EvalSettings& s = c.task;
  gpt::check_eval_settings(s);
  if (c.threads > 0) omp_set_num_threads(c.threads);
  const gpt::ProgressMode progress = gpt::progress_mode_from_name(c.progress, "--progress");

  const nlohmann::json resolved = options.to_json();
  auto backend = gpt::make_backend_from_names(c.device, c.dtype);
  gpt::EvalConsole console(
      progress, "config: " + resolved.dump() + "\nbackend: " + backend->description() + "\n");
  gpt::EvalContext context{*backend, gpt::find_tokenizer, console};
  const gpt::EvalReport report = gpt::run_eval_task(s, context);

  nlohmann::ordered_json out;
  out["task"] = s.task;
  for (auto it = report.json.begin(); it != report.json.end(); ++it) out[it.key()] = it.value();
  out["config"] = resolved;
  if (!c.out_json.empty()) {
    const fs::path target(c.out_json);
    if (target.has_parent_path()) fs::create_directories(target.parent_path());
    gpt::write_file_atomic(
        c.out_json,
        out.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n");
  }

  std::string text = model_line("model", out["model"]);
  if (out.contains("base")) text += model_line("base", out["base"]);
  text += "\n" + gpt::render_tables(report.tables);
  if (!report.text.empty()) {
    text += "\n";
    for (const std::string& line : report.text) text += line + "\n";
  }
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return gpt::run_app("gpt-eval", run, argc, argv);
}
