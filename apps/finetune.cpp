// gpt-finetune: adapt a pretrained model to a task, and keep what it learned elsewhere in view.
//
//   gpt-finetune --init runs/base --task classify --method lora
//       --train-data 'data/sst2/train_*.bin' --val-data 'data/sst2/val_*.bin' --out runs/sst2-lora
//
// Tasks: lm (continued, domain-adaptive pretraining on token shards), sft (prompt/completion
// shards from `gpt-prepare --task sft`: the loss is on the completion only), classify (shards from
// `gpt-prepare --task classify`: a class head when the data has class ids, label words otherwise).
// Methods: full, lora (adapters on --lora-targets; the base is frozen), freeze (train only the top
// --train-top blocks and the parts named by --train-*). Validation every --eval-every steps;
// --patience stops when --metric has not improved for that many validations; the best model is
// kept as OUT/best. --replay-data mixes pretraining batches into the steps to limit forgetting.
//
// Outputs: OUT/config.json, OUT/log.jsonl (with val_accuracy for a class head), checkpoints
// OUT/ckpt_* with `latest` and `best`, OUT/adapter.safetensors (LoRA: the best adapters alone), and
// with --merge-lora OUT/merged (a full checkpoint with the adapters folded in). SIGINT/SIGTERM: the
// step in flight finishes, the last checkpoint is written (the best is already there), exit 0.
// `--out OUT --resume latest` continues it with the same bits as a run that never stopped: the
// weights, adapters and class head, the optimizer, the data order of the task, replay and
// validation loaders, the replay mixing and the early-stopping state all come from the checkpoint.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <optional>
#include <string>

#include "apps/options.h"
#include "apps/train_app.h"
#include "train/finetune.h"

namespace {

void register_options(gpt::Options& o, gpt::FinetuneSettings& s) {
  o.add("init", &s.init,
        "the model to start from: a checkpoint, a Hugging Face GPT-2 directory or an llm.c .bin");
  o.add("resume", &s.resume,
        "continue a stopped run bit for bit: a checkpoint directory, or 'latest' (OUT/latest); "
        "the checkpoint's settings are the defaults, flags override them");
  o.add("task", &s.task, "lm (continued pretraining), sft (loss on completions), classify");
  o.add("method", &s.method, "full, lora or freeze");
  o.add("train_data", &s.train_data,
        "training shards (a glob); sft/classify need gpt-prepare's .mask files");
  o.add("val_data", &s.val_data,
        "validation shards (a glob); empty: no validation, no early stopping");
  o.add("seq_len", &s.seq_len, "row length T (0: min(256, the model's context))");
  o.add("lr", &s.lr, "peak learning rate (0: 1e-4 full, 1e-3 lora, 5e-4 freeze)");
  o.add("min_lr", &s.min_lr, "final learning rate of the cosine (0: lr/10)");
  o.add("patience", &s.patience,
        "early stopping: stop after N validations without improvement (0: off)");
  o.add(
      "metric", &s.metric,
      "what early stopping and the best checkpoint follow: val_loss, accuracy (class head), auto");
  o.add("lora_rank", &s.lora_rank, "LoRA rank r");
  o.add("lora_alpha", &s.lora_alpha, "LoRA alpha (the update is scaled by alpha/r)");
  o.add("lora_targets", &s.lora_targets,
        "comma-separated: qkv, attproj, fc, fcproj (Llama family: also q_proj,k_proj,v_proj, "
        "o_proj, gate_proj,up_proj, down_proj)");
  o.add("merge_lora", &s.merge_lora,
        "also write OUT/merged, a full checkpoint with the adapters folded in");
  o.add("train_top", &s.train_top,
        "freeze: train the top N blocks (and the final LayerNorm when N > 0)");
  o.add("train_layernorm", &s.train_layernorm, "freeze: also train every LayerNorm");
  o.add("train_biases", &s.train_biases, "freeze: also train every bias");
  o.add("train_embeddings", &s.train_embeddings,
        "freeze: also train wte (the tied LM head) and wpe");
  o.add("train_head", &s.train_head, "freeze/lora: train the class head");
  o.add("layout", &s.layout, "sft/classify rows: padded (one example a row) or packed");
  o.add("truncate", &s.truncate, "cut examples longer than a row instead of failing");
  o.add("replay_data", &s.replay_data, "pretraining shards (a glob) to mix in against forgetting");
  o.add("replay_ratio", &s.replay_ratio, "share of micro-batches taken from --replay-data");
  o.add("keep_last", &s.keep_last, "keep the newest K checkpoints (the best always stays; 0: all)");
  o.add("group_by_length", &s.group_by_length,
        "padded sft/classify: batch examples of similar length (rows are cut to a batch's longest "
        "example either way), much faster on short examples");
  o.add("trim_rows", &s.trim_rows,
        "padded sft/classify: cut each batch's rows to its longest example (exact: attention is "
        "causal); false keeps every row at --seq-len");
  gpt::register_train_options(o, s);
}

// The start-up lines: settings, backend, ranks, the resumed state, the model and what it trains.
void print_start(gpt::FinetuneJob& job, const gpt::FinetuneSettings& s,
                 const nlohmann::json& resolved) {
  gpt::TrainingRun& run = job.run();
  run.print("config: %s\nbackend: %s\n%s\n", resolved.dump().c_str(),
            run.backend().description().c_str(), run.describe().c_str());
  if (job.resumed())
    run.print(
        "resume: %s at step %ld (best %s so far at step %ld, %d validation(s) without "
        "improvement)\n",
        job.resumed()->dir().c_str(), job.resumed()->step(), job.metric().c_str(),
        job.best().best_step(), job.best().bad_validations());
  gpt::LanguageModel& model = job.model();
  int64_t total_params = 0;  // every tensor the model has, the class head and adapters included
  for (const gpt::ParamGroup& g : model.parameters()) total_params += g.param.numel();
  const int num_classes = job.num_classes();
  run.print(
      "model: %s from %s, %.2fM parameters; task %s%s, method %s: %lld trainable (%.2f%%), "
      "optimizer state %.2f MiB\n",
      job.model_format().c_str(), job.weights_from().c_str(), total_params / 1e6, s.task.c_str(),
      num_classes > 0 ? (" (" + std::to_string(num_classes) + "-class head)").c_str() : "",
      s.method.c_str(), static_cast<long long>(model.num_trainable_parameters()),
      100.0 * model.num_trainable_parameters() / static_cast<double>(total_params),
      run.dp().optimizer().state_bytes() / 1048576.0);
}

// The summary: steps, the best by the metric, peak memory (rank 0).
void print_done(gpt::FinetuneJob& job, const gpt::FinetuneSettings& s) {
  const bool accuracy = job.metric() == "accuracy";
  const double best = job.best().best_score();
  const size_t peak = job.run().backend().peak_bytes();
  std::fprintf(
      stderr,
      "done: %ld steps; best %s %.4f at step %ld (%s/best); peak memory %.1f MiB (%zu bytes)\n",
      job.last_step(), job.metric().c_str(), accuracy ? 1.0 - best : best, job.best().best_step(),
      s.out.c_str(), peak / 1048576.0, peak);
}

int run(int argc, char** argv) {
  CLI::App app{"Fine-tune a pretrained GPT: full, LoRA or partly frozen; lm, sft or classify."};
  gpt::FinetuneSettings s;
  gpt::Options options;
  register_options(options, s);
  int status = -1;
  // --resume: the checkpoint's settings become the defaults (then --config, then flags).
  std::optional<gpt::Checkpoint> resume =
      gpt::parse_training_command_line(app, options, s.resume, s.out, argc, argv, status);
  if (status >= 0) return status;
  gpt::FinetuneJob job(s, std::move(resume), gpt::app_run_hooks());
  job.open();  // everything that can fail on bad input fails here, before any output
  const nlohmann::json resolved = options.to_json();
  job.start(resolved);
  print_start(job, s, resolved);
  job.train();
  job.finish();
  if (!job.stop_message().empty()) job.run().print("%s\n", job.stop_message().c_str());
  if (!job.run().is_main()) return 0;  // the rest writes files: rank 0's work
  const std::string merged = job.write_final_files();
  if (!merged.empty()) std::fprintf(stderr, "merged: %s\n", merged.c_str());
  print_done(job, s);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return gpt::run_app("gpt-finetune", run, argc, argv);
}
