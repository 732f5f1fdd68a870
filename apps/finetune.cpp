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
#include <omp.h>

#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "apps/app_common.h"
#include "apps/options.h"
#include "apps/train_app.h"
#include "data/finetune_loader.h"
#include "data/loader.h"
#include "engine/checkpoint.h"
#include "engine/optimizer.h"
#include "engine/rng.h"
#include "engine/trainer.h"
#include "models/finetune_io.h"
#include "models/gpt_interop.h"
#include "models/gpt_io.h"
#include "models/loader.h"
#include "models/trainability.h"
#include "train/early_stopping.h"
#include "train/lora_merge.h"
#include "train/replay.h"
#include "train/run_state.h"
#include "train/signals.h"
#include "train/tokenizer_files.h"
#include "train/validation.h"

namespace fs = std::filesystem;

namespace {

struct FinetuneSettings : gpt::TrainSettings {
  FinetuneSettings() {
    out = "runs/finetune";
    steps = 300;
    warmup_steps = 20;
    weight_decay = 0.0f;
    eval_every = 50;
  }
  std::string init;
  std::string resume;
  std::string task = "sft";
  std::string method = "full";
  std::string train_data;
  std::string val_data;
  int seq_len = 0;
  float lr = 0.0f;
  float min_lr = 0.0f;
  int patience = 0;
  std::string metric = "auto";
  int lora_rank = 8;
  float lora_alpha = 16.0f;
  std::string lora_targets = "qkv,attproj";
  bool merge_lora = false;
  int train_top = 1;
  bool train_layernorm = false;
  bool train_biases = false;
  bool train_embeddings = false;
  bool train_head = true;
  std::string layout = "padded";
  bool truncate = false;
  std::string replay_data;
  float replay_ratio = 0.0f;
  int keep_last = 2;
  bool group_by_length = false;
  bool trim_rows = true;
};

void register_options(gpt::Options& o, FinetuneSettings& s) {
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
  o.add("lora_targets", &s.lora_targets, "comma-separated: qkv, attproj, fc, fcproj");
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

gpt::LoraConfig parse_lora(const FinetuneSettings& s) {
  return gpt::parse_lora_settings(s.lora_rank, s.lora_alpha, s.lora_targets);
}

// The trainable parameters of --method (models/trainability.h, shared with gpt-plan).
gpt::FinetuneMethod finetune_method(const FinetuneSettings& s, const gpt::LoraConfig& lora) {
  gpt::FinetuneMethod m;
  m.method = s.method;
  m.lora = lora;
  m.train_top = s.train_top;
  m.train_layernorm = s.train_layernorm;
  m.train_biases = s.train_biases;
  m.train_embeddings = s.train_embeddings;
  m.train_head = s.train_head;
  return m;
}

int run(int argc, char** argv) {
  CLI::App app{"Fine-tune a pretrained GPT: full, LoRA or partly frozen; lm, sft or classify."};
  FinetuneSettings s;
  gpt::Options options;
  register_options(options, s);
  if (const int status = gpt::parse_command_line(app, options, argc, argv); status >= 0)
    return status;

  // ---- --resume: the checkpoint's settings become the defaults (then --config, then flags) ------
  std::optional<gpt::Checkpoint> resume;
  if (!s.resume.empty()) {
    resume = gpt::open_resume(options, s.resume, s.out);
    if (!resume->state().contains("finetune"))
      throw std::invalid_argument(resume->path("trainer_state.json") +
                                  ": not a gpt-finetune checkpoint (no field 'finetune'): continue "
                                  "it with gpt-pretrain --resume, or start from it with --init");
    if (!resume->state().contains("finetune_state"))
      throw std::invalid_argument(resume->path("trainer_state.json") +
                                  ": written by a gpt-finetune without --resume support (no field "
                                  "'finetune_state'): start from it with --init instead");
    // For the record (config.json): the model the run started from; the weights
    // come from the checkpoint.
    const nlohmann::json& saved = resume->field("config");
    if (s.init.empty() && saved.is_object() && saved.contains("init") && saved["init"].is_string())
      s.init = saved["init"].get<std::string>();
  }

  // ---- validate everything before printing or writing -------------------------------------------
  if (s.init.empty() && !resume)
    throw std::invalid_argument("--init is required (the pretrained model)");
  if (s.train_data.empty()) throw std::invalid_argument("--train-data is required");
  if (s.task != "lm" && s.task != "sft" && s.task != "classify")
    throw std::invalid_argument("--task '" + s.task + "': expected lm, sft or classify");
  if (s.method != "full" && s.method != "lora" && s.method != "freeze")
    throw std::invalid_argument("--method '" + s.method + "': expected full, lora or freeze");
  if (s.layout != "padded" && s.layout != "packed")
    throw std::invalid_argument("--layout '" + s.layout + "': expected padded or packed");
  if (s.metric != "auto" && s.metric != "val_loss" && s.metric != "accuracy")
    throw std::invalid_argument("--metric '" + s.metric + "': expected val_loss, accuracy or auto");
  if (s.replay_ratio < 0 || s.replay_ratio >= 1)
    throw std::invalid_argument("--replay-ratio must be in [0, 1)");
  if (s.replay_ratio > 0 && s.replay_data.empty())
    throw std::invalid_argument("--replay-ratio needs --replay-data");
  if (s.steps <= 0 || s.batch_size <= 0)
    throw std::invalid_argument("steps and batch_size must be positive");
  const gpt::LoraConfig lora_cfg = s.method == "lora" ? parse_lora(s) : gpt::LoraConfig{};
  if (s.lr == 0.0f) s.lr = s.method == "full" ? 1e-4f : s.method == "lora" ? 1e-3f : 5e-4f;
  if (s.min_lr == 0.0f) s.min_lr = s.lr / 10;
  (void)gpt::attention_kernel_from_name(s.attention);  // checked before anything starts
  if (!resume && !s.overwrite && !gpt::latest_checkpoint(s.out).empty())
    throw std::invalid_argument(
        s.out +
        " already holds checkpoints: continue the run with --resume latest, "
        "choose another --out or pass --overwrite true");
  if (resume && resume->step() > s.steps)
    throw std::invalid_argument(resume->path("trainer_state.json") +
                                ": the checkpoint is at step " + std::to_string(resume->step()) +
                                ", beyond --steps " + std::to_string(s.steps));

  // The job's ranks, this rank's device and backend (train/run.h).
  gpt::TrainingRun run("gpt-finetune", s, gpt::app_run_hooks());
  gpt::Backend* backend = &run.backend();
  // The weights to start from: the checkpoint's (base weights, adapters and
  // head as trained) or --init.
  const std::string weights_from = resume ? resume->dir() : s.init;
  gpt::GptWeights probe_config = gpt::load_weights(weights_from);  // validates the weights fully
  const int context = probe_config.config.max_seq_len;
  if (s.seq_len == 0) s.seq_len = std::min(256, context);
  if (s.seq_len > context)
    throw std::invalid_argument("seq_len " + std::to_string(s.seq_len) +
                                " exceeds the model's context of " + std::to_string(context));
  const long micro = static_cast<long>(s.batch_size) * s.seq_len;
  if (s.total_batch_tokens % micro != 0)
    throw std::invalid_argument("total_batch_tokens must be a multiple of batch_size * seq_len (" +
                                std::to_string(micro) + ")");
  const int vocab = probe_config.config.vocab_size;
  const nlohmann::json meta = gpt::read_meta_beside(s.train_data);
  if (meta.contains("vocab_size") && meta["vocab_size"].get<int>() > vocab)
    throw std::invalid_argument(fs::path(s.train_data).parent_path().string() +
                                "/meta.json: the data's vocabulary (" +
                                std::to_string(meta["vocab_size"].get<int>()) +
                                ") is larger than the model's (" + std::to_string(vocab) + ")");
  const int32_t eot = meta.value("eot_token", vocab - 1);

  // Data.
  std::unique_ptr<gpt::TrainLoader> lm_train;
  std::unique_ptr<gpt::ValidationSet> lm_val;
  std::unique_ptr<gpt::FinetuneLoader> ft_train, ft_val;
  gpt::FinetuneLoaderOptions fo;
  fo.B = s.batch_size;
  fo.T = s.seq_len;
  fo.vocab_size = vocab;
  fo.pad_token = eot;
  fo.layout = s.layout == "packed" ? gpt::FinetuneLayout::kPacked : gpt::FinetuneLayout::kPadded;
  fo.long_examples = s.truncate ? gpt::LongExamples::kTruncate : gpt::LongExamples::kError;
  fo.seed = static_cast<uint64_t>(s.seed);
  fo.trim = s.trim_rows && fo.layout == gpt::FinetuneLayout::kPadded;
  if (s.group_by_length && fo.layout != gpt::FinetuneLayout::kPadded)
    throw std::invalid_argument("--group-by-length needs --layout padded");
  if (s.task == "lm") {
    lm_train = std::make_unique<gpt::TrainLoader>(s.train_data, s.batch_size, s.seq_len, vocab,
                                                  s.shuffle, static_cast<uint64_t>(s.seed));
    if (!s.val_data.empty())
      lm_val = std::make_unique<gpt::ValidationSet>(s.val_data, s.batch_size, s.seq_len, vocab);
  } else {
    fo.shuffle = s.shuffle;
    fo.group_by_length = s.group_by_length;
    ft_train = std::make_unique<gpt::FinetuneLoader>(s.train_data, fo);
    if (!s.val_data.empty()) {
      gpt::FinetuneLoaderOptions vo = fo;
      vo.shuffle = false;
      vo.group_by_length = false;
      vo.layout = gpt::FinetuneLayout::kPadded;
      vo.trim = true;
      ft_val = std::make_unique<gpt::FinetuneLoader>(s.val_data, vo);
    }
  }
  const int num_classes = ft_train ? ft_train->num_classes() : 0;
  if (s.task == "classify" && ft_train && num_classes == 0 && s.metric == "accuracy")
    throw std::invalid_argument(
        "--metric accuracy needs class-id data (a class head); this data uses label words");
  if (s.task != "classify" && num_classes > 0)
    throw std::invalid_argument(s.train_data + ": class-id data needs --task classify");
  std::unique_ptr<gpt::TrainLoader> replay;
  if (s.replay_ratio > 0)
    replay = std::make_unique<gpt::TrainLoader>(s.replay_data, s.batch_size, s.seq_len, vocab, true,
                                                static_cast<uint64_t>(s.seed) + 1);
  const std::string metric =
      s.metric == "auto" ? (num_classes > 0 ? "accuracy" : "val_loss") : s.metric;
  if (metric == "accuracy" && num_classes == 0)
    throw std::invalid_argument(
        "--metric accuracy needs a class head (class-id classification data)");

  // Model.
  gpt::LoadOptions load;
  load.max_batch = s.batch_size;
  load.max_seq = s.seq_len;
  gpt::LoadedModel loaded = gpt::load_model(std::move(probe_config), weights_from, *backend, load);
  gpt::LanguageModel& model = *loaded.model;
  if (num_classes > 0) {
    if (loaded.has_class_head && model.num_classes() != num_classes)
      throw std::invalid_argument(weights_from + ": its class head has " +
                                  std::to_string(model.num_classes()) + " classes, the data " +
                                  std::to_string(num_classes));
    if (!loaded.has_class_head) model.enable_class_head(num_classes, static_cast<uint64_t>(s.seed));
  }
  if (s.method == "lora") {
    if (loaded.has_adapter && !resume)
      throw std::invalid_argument(s.init + ": already has LoRA adapters; merge them first");
    if (resume && !loaded.has_adapter)
      throw std::invalid_argument(resume->dir() +
                                  ": --method lora, but the checkpoint has no adapter.safetensors");
    if (!loaded.has_adapter) model.enable_lora(lora_cfg, static_cast<uint64_t>(s.seed));
  }
  gpt::apply_trainable(model, finetune_method(s, lora_cfg));
  if (model.num_trainable_parameters() == 0)
    throw std::invalid_argument("nothing to train: every parameter is frozen");
  gpt::DataParallel& dp = run.make_optimizer(model.parameters());
  gpt::AdamW& optimizer = dp.optimizer();

  // Batches: the task's loader, with replay batches mixed in deterministically (train/replay.h).
  gpt::ReplayMix mix(
      [&](int32_t* t, int32_t* g) {
        if (lm_train) {
          lm_train->next_batch(t, g);
          return s.seq_len;
        }
        ft_train->next_batch(t, g);
        return ft_train->last_batch_T();
      },
      std::move(replay), s.replay_ratio, static_cast<uint64_t>(s.seed), s.batch_size, s.seq_len,
      num_classes > 0);
  std::vector<gpt::LoaderSlot> loaders;  // the loaders a checkpoint keeps, by name
  if (lm_train)
    loaders.push_back({"train", s.train_data, lm_train->num_samples(),
                       [&] { return lm_train->state(); },
                       [&](const gpt::LoaderState& st) { lm_train->set_state(st); }});
  if (ft_train)
    loaders.push_back({"train", s.train_data, ft_train->num_examples(),
                       [&] { return ft_train->state(); },
                       [&](const gpt::LoaderState& st) { ft_train->set_state(st); }});
  gpt::TrainLoader* replay_loader = mix.replay();
  if (replay_loader)
    loaders.push_back({"replay", s.replay_data, replay_loader->num_samples(),
                       [=] { return replay_loader->state(); },
                       [=](const gpt::LoaderState& st) { replay_loader->set_state(st); }});
  gpt::Rng* replay_rng = replay_loader ? &mix.rng() : nullptr;

  // ---- --resume: the optimizer and every loader where the checkpoint left them ------------------
  gpt::BestTracker best;  // lower is better: val_loss, or 1 - accuracy
  if (resume) {
    const std::string state_path = resume->path("trainer_state.json");
    run.load_optimizer_state(*resume);
    if (optimizer.step_count() != resume->step())
      throw std::runtime_error(
          resume->dir() + ": optimizer step " + std::to_string(optimizer.step_count()) +
          " differs from the checkpoint's step " + std::to_string(resume->step()));
    gpt::finetune_state_from_json(resume->field("finetune_state"), loaders, best, replay_rng,
                                  state_path);
  }

  if (resume && s.patience > 0 && best.bad_validations() >= s.patience)
    throw std::invalid_argument(resume->dir() + ": this run stopped early (" + metric +
                                " did not improve for " + std::to_string(best.bad_validations()) +
                                " validations; best at step " + std::to_string(best.best_step()) +
                                "): raise --patience to train on");

  // ---- start: print and write ------------------------------------------------------------------
  const nlohmann::json resolved = options.to_json();
  run.prepare_outputs(resolved, resume ? resume->step() : -1, !resume && s.overwrite);
  run.print("config: %s\nbackend: %s\n%s\n", resolved.dump().c_str(),
            backend->description().c_str(), run.describe().c_str());
  if (resume)
    run.print(
        "resume: %s at step %ld (best %s so far at step %ld, %d validation(s) without "
        "improvement)\n",
        resume->dir().c_str(), resume->step(), metric.c_str(), best.best_step(),
        best.bad_validations());
  int64_t total_params = 0;  // every tensor the model has, the class head and adapters included
  for (const gpt::ParamGroup& g : model.parameters()) total_params += g.param.numel();
  run.print(
      "model: %s from %s, %.2fM parameters; task %s%s, method %s: %lld trainable (%.2f%%), "
      "optimizer state %.2f MiB\n",
      loaded.format.c_str(), weights_from.c_str(), total_params / 1e6, s.task.c_str(),
      num_classes > 0 ? (" (" + std::to_string(num_classes) + "-class head)").c_str() : "",
      s.method.c_str(), static_cast<long long>(model.num_trainable_parameters()),
      100.0 * model.num_trainable_parameters() / static_cast<double>(total_params),
      optimizer.state_bytes() / 1048576.0);

  // Validation: mean loss over every target of the validation set; accuracy for a class head.
  std::vector<int32_t> vt(static_cast<size_t>(s.batch_size) * s.seq_len), vg(vt.size());
  double last_accuracy = -1;
  auto evaluate = [&]() {
    gpt::EvalResult r;
    int64_t count = 0, examples = 0;
    int T = s.seq_len;
    // The class of row b of the batch just read (-1: none): its one target.
    auto label_of = [&](int b) {
      int32_t label = -1;
      for (int t = 0; t < T; ++t) label = std::max(label, vg[static_cast<size_t>(b) * T + t]);
      return label;
    };
    int64_t nb = lm_val ? lm_val->num_batches() : ft_val->batches_per_epoch();
    if (s.val_max_batches > 0) nb = std::min<int64_t>(nb, s.val_max_batches);
    if (ft_val) ft_val->set_state(gpt::LoaderState{});
    auto read = [&](int64_t i) {
      if (lm_val) {
        count += lm_val->batch(i, vt.data(), vg.data());
        return;
      }
      count += ft_val->next_batch(vt.data(), vg.data());
      T = ft_val->last_batch_T();
      if (num_classes > 0)
        for (int b = 0; b < s.batch_size; ++b) examples += label_of(b) >= 0;
    };
    auto run_batch = [&](int64_t, double* v) {  // v[0]: the loss sum, v[1]: correct predictions
      v[0] = model.forward(vt.data(), vg.data(), s.batch_size, T);
      if (num_classes == 0) return;
      const std::vector<float> logits = model.class_logits_to_host(s.batch_size);
      for (int b = 0; b < s.batch_size; ++b) {
        const int32_t label = label_of(b);
        if (label < 0) continue;
        const float* row = logits.data() + static_cast<size_t>(b) * num_classes;
        v[1] += static_cast<int>(std::max_element(row, row + num_classes) - row) == label;
      }
    };
    const std::vector<double> sums = gpt::rank_split_sums(run.comm(), nb, 2, read, run_batch);
    const double loss_sum = sums[0];
    const int64_t correct = static_cast<int64_t>(sums[1]);
    r.loss = count > 0 ? loss_sum / static_cast<double>(count) : 0.0;
    last_accuracy =
        examples > 0 ? static_cast<double>(correct) / static_cast<double>(examples) : -1;
    if (last_accuracy >= 0)
      run.print("validation accuracy %.4f (%lld examples)\n", last_accuracy,
                static_cast<long long>(examples));
    return r;
  };
  const bool has_val = lm_val || ft_val;

  // Checkpoints: the best by the chosen metric (lower is better: val_loss, or 1 - accuracy).
  const std::vector<std::string> tokenizer_files = gpt::finetune_tokenizer_files(s.train_data);
  gpt::RetentionPolicy retention;
  retention.keep_last = s.keep_last;
  auto save = [&](const gpt::StepRecord& r, double score) {
    gpt::CheckpointContents c;
    if (run.is_main()) {  // every rank holds the same weights
      c.tensor_files.emplace_back("model.safetensors", model.weights_to_safetensors());
      if (model.lora_enabled())
        c.tensor_files.emplace_back("adapter.safetensors", gpt::lora_to_safetensors(model));
      if (model.num_classes() > 0)
        c.tensor_files.emplace_back("head.safetensors", gpt::class_head_to_safetensors(model));
    }
    run.add_optimizer_state(c);  // collective: every rank's shard, on rank 0
    c.copy_files = tokenizer_files;
    nlohmann::json& st = c.state;
    st["train_loss"] = r.train_loss;
    if (std::isfinite(score)) st["val_loss"] = score;  // the selection score: lower is better
    if (r.has_val) st["val_lm_loss"] = r.val.loss;
    if (last_accuracy >= 0 && r.has_val) st["val_accuracy"] = last_accuracy;
    st["metric"] = metric;
    // Everything a resumed run needs beyond the weights and the optimizer (this step's state: the
    // trainer fetches a step's batches at its start, so nothing is read ahead).
    st["finetune_state"] = gpt::finetune_state_to_json(loaders, best, replay_rng);
    st["finetune"] = {{"task", s.task}, {"method", s.method}, {"num_classes", num_classes}};
    st["model_config"] = model.config_json();
    st["config"] = resolved;
    return run.save_checkpoint(s.out, r.step, c, retention);
  };

  const gpt::TrainerConfig tc = run.trainer_config(s.seq_len, s.lr, s.min_lr);
  gpt::ReplayHeadSwitch trainable(model, mix);
  gpt::Trainer trainer(
      trainable, dp, tc, [&](int32_t* t, int32_t* g) { return mix.next_batch(t, g); },
      has_val ? gpt::Trainer::EvalFn(evaluate) : gpt::Trainer::EvalFn());
  std::optional<gpt::StepRecord> last;
  std::string stop_reason;
  trainer.set_after_step([&](const gpt::StepRecord& r) {
    last = r;
    if (r.has_val) {
      const double score = metric == "accuracy" ? 1.0 - last_accuracy : r.val.loss;
      if (last_accuracy >= 0 && run.is_main()) {
        std::ofstream(s.out + "/log.jsonl", std::ios::app)
            << nlohmann::json{{"step", r.step}, {"val_accuracy", last_accuracy}}.dump() << "\n";
      }
      const gpt::BestTracker::Verdict verdict = best.offer(score, r.step, s.patience);
      if (verdict == gpt::BestTracker::Verdict::improved) {
        save(r, score);
        if (model.lora_enabled() && run.is_main())
          gpt::write_safetensors(s.out + "/adapter.safetensors", gpt::lora_to_safetensors(model));
      } else if (verdict == gpt::BestTracker::Verdict::stop) {
        stop_reason = "early stopping: " + metric + " has not improved for " +
                      std::to_string(s.patience) + " validations (best at step " +
                      std::to_string(best.best_step()) + ")";
        return gpt::StepAction::stop;
      }
    }
    if (s.save_every > 0 && r.step % s.save_every == 0 && r.step != best.best_step())
      save(r, INFINITY);
    if (run.stop_requested() && r.step < s.steps) {
      stop_reason = std::string("gpt-finetune: ") + run.stop_signal_name() +
                    ": stopped after step " + std::to_string(r.step) + "/" +
                    std::to_string(s.steps);
      return gpt::StepAction::stop;
    }
    return gpt::StepAction::keep_going;
  });
  trainer.run();
  std::string last_dir = best.best_step() >= 0 && last && last->step == best.best_step()
                             ? s.out + "/" + gpt::checkpoint_dir_name(best.best_step())
                             : "";
  if (last && last->step != best.best_step()) last_dir = save(*last, INFINITY);
  if (gpt::stop_signal() != 0 && !stop_reason.empty())
    stop_reason += "; last checkpoint " + last_dir +
                   (best.best_step() >= 0 ? "; best " + s.out + "/best (step " +
                                                std::to_string(best.best_step()) + ")"
                                          : "");
  if (!stop_reason.empty()) run.print("%s\n", stop_reason.c_str());
  if (!run.is_main()) return 0;  // the rest writes files: rank 0's work
  if (!has_val && model.lora_enabled())
    gpt::write_safetensors(s.out + "/adapter.safetensors", gpt::lora_to_safetensors(model));

  if (s.merge_lora && model.lora_enabled()) {
    // Fold the best adapters (or the last, without validation) into the base and save it whole.
    gpt::LoraMerge merge;
    merge.out = s.out;
    merge.best_step = best.best_step();
    merge.steps = s.steps;
    merge.tokenizer_files = tokenizer_files;
    merge.task = s.task;
    merge.num_classes = num_classes;
    merge.config = resolved;
    const std::string dir = gpt::merge_lora_and_save(model, merge);
    std::fprintf(stderr, "merged: %s\n", dir.c_str());
  }
  std::fprintf(
      stderr,
      "done: %ld steps; best %s %.4f at step %ld (%s/best); peak memory %.1f MiB (%zu bytes)\n",
      last ? last->step : 0L, metric.c_str(),
      metric == "accuracy" ? 1.0 - best.best_score() : best.best_score(), best.best_step(),
      s.out.c_str(), backend->peak_bytes() / 1048576.0, backend->peak_bytes());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return gpt::run_app("gpt-finetune", run, argc, argv);
}
