#include "train/finetune.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "engine/optimizer.h"
#include "models/finetune_io.h"
#include "models/gpt_interop.h"
#include "train/lora_merge.h"
#include "train/signals.h"
#include "train/tokenizer_files.h"
#include "train/validation.h"

namespace fs = std::filesystem;

namespace gpt {

namespace {

// The trainable parameters of --method (models/trainability.h, shared with gpt-plan).
FinetuneMethod finetune_method(const FinetuneSettings& s, const LoraConfig& lora) {
  FinetuneMethod m;
  m.method = s.method;
  m.lora = lora;
  m.train_top = s.train_top;
  m.train_layernorm = s.train_layernorm;
  m.train_biases = s.train_biases;
  m.train_embeddings = s.train_embeddings;
  m.train_head = s.train_head;
  return m;
}

}  // namespace

FinetuneJob::FinetuneJob(FinetuneSettings& s, std::optional<Checkpoint> resume,
                         const RunHooks& hooks)
    : s_(s), resume_(std::move(resume)), hooks_(hooks) {}

// ---- open ---------------------------------------------------------------------------------------
void FinetuneJob::check_resume() {
  if (!resume_) return;
  if (!resume_->state().contains("finetune"))
    throw std::invalid_argument(resume_->path("trainer_state.json") +
                                ": not a gpt-finetune checkpoint (no field 'finetune'): continue "
                                "it with gpt-pretrain --resume, or start from it with --init");
  if (!resume_->state().contains("finetune_state"))
    throw std::invalid_argument(resume_->path("trainer_state.json") +
                                ": written by a gpt-finetune without --resume support (no field "
                                "'finetune_state'): start from it with --init instead");
  // For the record (config.json): the model the run started from; the weights come from the
  // checkpoint.
  const nlohmann::json& saved = resume_->field("config");
  if (s_.init.empty() && saved.is_object() && saved.contains("init") && saved["init"].is_string())
    s_.init = saved["init"].get<std::string>();
}

// Everything the settings alone decide, before printing or writing.
void FinetuneJob::check_settings() {
  if (s_.init.empty() && !resume_)
    throw std::invalid_argument("--init is required (the pretrained model)");
  if (s_.train_data.empty()) throw std::invalid_argument("--train-data is required");
  if (s_.task != "lm" && s_.task != "sft" && s_.task != "classify")
    throw std::invalid_argument("--task '" + s_.task + "': expected lm, sft or classify");
  if (s_.method != "full" && s_.method != "lora" && s_.method != "freeze")
    throw std::invalid_argument("--method '" + s_.method + "': expected full, lora or freeze");
  if (s_.layout != "padded" && s_.layout != "packed")
    throw std::invalid_argument("--layout '" + s_.layout + "': expected padded or packed");
  if (s_.metric != "auto" && s_.metric != "val_loss" && s_.metric != "accuracy")
    throw std::invalid_argument("--metric '" + s_.metric +
                                "': expected val_loss, accuracy or auto");
  if (s_.replay_ratio < 0 || s_.replay_ratio >= 1)
    throw std::invalid_argument("--replay-ratio must be in [0, 1)");
  if (s_.replay_ratio > 0 && s_.replay_data.empty())
    throw std::invalid_argument("--replay-ratio needs --replay-data");
  if (s_.steps <= 0 || s_.batch_size <= 0)
    throw std::invalid_argument("steps and batch_size must be positive");
  if (s_.method == "lora")
    lora_cfg_ = parse_lora_settings(s_.lora_rank, s_.lora_alpha, s_.lora_targets);
  if (s_.lr == 0.0f) s_.lr = s_.method == "full" ? 1e-4f : s_.method == "lora" ? 1e-3f : 5e-4f;
  if (s_.min_lr == 0.0f) s_.min_lr = s_.lr / 10;
  (void)attention_kernel_from_name(s_.attention);  // checked before anything starts
  if (!resume_ && !s_.overwrite && !latest_checkpoint(s_.out).empty())
    throw std::invalid_argument(s_.out +
                                " already holds checkpoints: continue the run with --resume "
                                "latest, choose another --out or pass --overwrite true");
  if (resume_ && resume_->step() > s_.steps)
    throw std::invalid_argument(resume_->path("trainer_state.json") +
                                ": the checkpoint is at step " + std::to_string(resume_->step()) +
                                ", beyond --steps " + std::to_string(s_.steps));
}

// The weights to start from: the checkpoint's (base weights, adapters and head as trained) or
// --init, fully validated; the row length and the data's vocabulary against them.
GptWeights FinetuneJob::open_weights() {
  weights_from_ = resume_ ? resume_->dir() : s_.init;
  GptWeights weights = load_weights(weights_from_);
  const int context = weights.config.max_seq_len;
  if (s_.seq_len == 0) s_.seq_len = std::min(256, context);
  if (s_.seq_len > context)
    throw std::invalid_argument("seq_len " + std::to_string(s_.seq_len) +
                                " exceeds the model's context of " + std::to_string(context));
  const long micro = static_cast<long>(s_.batch_size) * s_.seq_len;
  if (s_.total_batch_tokens % micro != 0)
    throw std::invalid_argument("total_batch_tokens must be a multiple of batch_size * seq_len (" +
                                std::to_string(micro) + ")");
  return weights;
}

void FinetuneJob::open_data(int vocab, int32_t eot) {
  FinetuneLoaderOptions fo;
  fo.B = s_.batch_size;
  fo.T = s_.seq_len;
  fo.vocab_size = vocab;
  fo.pad_token = eot;
  fo.layout = s_.layout == "packed" ? FinetuneLayout::kPacked : FinetuneLayout::kPadded;
  fo.long_examples = s_.truncate ? LongExamples::kTruncate : LongExamples::kError;
  fo.seed = static_cast<uint64_t>(s_.seed);
  fo.trim = s_.trim_rows && fo.layout == FinetuneLayout::kPadded;
  if (s_.group_by_length && fo.layout != FinetuneLayout::kPadded)
    throw std::invalid_argument("--group-by-length needs --layout padded");
  if (s_.task == "lm") {
    lm_train_ = std::make_unique<TrainLoader>(s_.train_data, s_.batch_size, s_.seq_len, vocab,
                                              s_.shuffle, static_cast<uint64_t>(s_.seed));
    if (!s_.val_data.empty())
      lm_val_ = std::make_unique<ValidationSet>(s_.val_data, s_.batch_size, s_.seq_len, vocab);
  } else {
    fo.shuffle = s_.shuffle;
    fo.group_by_length = s_.group_by_length;
    ft_train_ = std::make_unique<FinetuneLoader>(s_.train_data, fo);
    if (!s_.val_data.empty()) {
      FinetuneLoaderOptions vo = fo;
      vo.shuffle = false;
      vo.group_by_length = false;
      vo.layout = FinetuneLayout::kPadded;
      vo.trim = true;
      ft_val_ = std::make_unique<FinetuneLoader>(s_.val_data, vo);
    }
  }
  num_classes_ = ft_train_ ? ft_train_->num_classes() : 0;
  if (s_.task == "classify" && ft_train_ && num_classes_ == 0 && s_.metric == "accuracy")
    throw std::invalid_argument(
        "--metric accuracy needs class-id data (a class head); this data uses label words");
  if (s_.task != "classify" && num_classes_ > 0)
    throw std::invalid_argument(s_.train_data + ": class-id data needs --task classify");
  if (s_.replay_ratio > 0)
    replay_ = std::make_unique<TrainLoader>(s_.replay_data, s_.batch_size, s_.seq_len, vocab, true,
                                            static_cast<uint64_t>(s_.seed) + 1);
  metric_ = s_.metric == "auto" ? (num_classes_ > 0 ? "accuracy" : "val_loss") : s_.metric;
  if (metric_ == "accuracy" && num_classes_ == 0)
    throw std::invalid_argument(
        "--metric accuracy needs a class head (class-id classification data)");
}

// The model through the loader, with its class head and adapters, what --method trains, and the
// optimizer over that.
void FinetuneJob::build_model(GptWeights weights) {
  LoadOptions load;
  load.max_batch = s_.batch_size;
  load.max_seq = s_.seq_len;
  loaded_ = load_model(std::move(weights), weights_from_, run_->backend(), load);
  LanguageModel& model = *loaded_.model;
  if (num_classes_ > 0) {
    if (loaded_.has_class_head && model.num_classes() != num_classes_)
      throw std::invalid_argument(weights_from_ + ": its class head has " +
                                  std::to_string(model.num_classes()) + " classes, the data " +
                                  std::to_string(num_classes_));
    if (!loaded_.has_class_head)
      model.enable_class_head(num_classes_, static_cast<uint64_t>(s_.seed));
  }
  if (s_.method == "lora") {
    if (loaded_.has_adapter && !resume_)
      throw std::invalid_argument(s_.init + ": already has LoRA adapters; merge them first");
    if (resume_ && !loaded_.has_adapter)
      throw std::invalid_argument(resume_->dir() +
                                  ": --method lora, but the checkpoint has no adapter.safetensors");
    if (!loaded_.has_adapter) model.enable_lora(lora_cfg_, static_cast<uint64_t>(s_.seed));
  }
  apply_trainable(model, finetune_method(s_, lora_cfg_));
  if (model.num_trainable_parameters() == 0)
    throw std::invalid_argument("nothing to train: every parameter is frozen");
  dp_ = &run_->make_optimizer(model.parameters());
}

// Batches: the task's loader, with replay batches mixed in deterministically (train/replay.h),
// and the loaders a checkpoint keeps, by name.
void FinetuneJob::make_batches() {
  mix_ = std::make_unique<ReplayMix>(
      [this](int32_t* t, int32_t* g) {
        if (lm_train_) {
          lm_train_->next_batch(t, g);
          return s_.seq_len;
        }
        ft_train_->next_batch(t, g);
        return ft_train_->last_batch_T();
      },
      std::move(replay_), s_.replay_ratio, static_cast<uint64_t>(s_.seed), s_.batch_size,
      s_.seq_len, num_classes_ > 0);
  if (TrainLoader* l = lm_train_.get())
    loaders_.push_back({"train", s_.train_data, l->num_samples(), [l] { return l->state(); },
                        [l](const LoaderState& st) { l->set_state(st); }});
  if (FinetuneLoader* l = ft_train_.get())
    loaders_.push_back({"train", s_.train_data, l->num_examples(), [l] { return l->state(); },
                        [l](const LoaderState& st) { l->set_state(st); }});
  if (TrainLoader* l = mix_->replay()) {
    loaders_.push_back({"replay", s_.replay_data, l->num_samples(), [l] { return l->state(); },
                        [l](const LoaderState& st) { l->set_state(st); }});
    replay_rng_ = &mix_->rng();
  }
}

// --resume: the optimizer and every loader where the checkpoint left them.
void FinetuneJob::restore() {
  const std::string state_path = resume_->path("trainer_state.json");
  run_->load_optimizer_state(*resume_);
  if (dp_->optimizer().step_count() != resume_->step())
    throw std::runtime_error(
        resume_->dir() + ": optimizer step " + std::to_string(dp_->optimizer().step_count()) +
        " differs from the checkpoint's step " + std::to_string(resume_->step()));
  finetune_state_from_json(resume_->field("finetune_state"), loaders_, best_, replay_rng_,
                           state_path);
  if (s_.patience > 0 && best_.bad_validations() >= s_.patience)
    throw std::invalid_argument(resume_->dir() + ": this run stopped early (" + metric_ +
                                " did not improve for " + std::to_string(best_.bad_validations()) +
                                " validations; best at step " + std::to_string(best_.best_step()) +
                                "): raise --patience to train on");
}

void FinetuneJob::open() {
  check_resume();
  check_settings();
  // The job's ranks, this rank's device and backend (train/run.h).
  run_ = std::make_unique<TrainingRun>("gpt-finetune", s_, hooks_);
  GptWeights weights = open_weights();
  const int vocab = weights.config.vocab_size;
  const nlohmann::json meta = read_meta_beside(s_.train_data);
  if (meta.contains("vocab_size") && meta["vocab_size"].get<int>() > vocab)
    throw std::invalid_argument(fs::path(s_.train_data).parent_path().string() +
                                "/meta.json: the data's vocabulary (" +
                                std::to_string(meta["vocab_size"].get<int>()) +
                                ") is larger than the model's (" + std::to_string(vocab) + ")");
  open_data(vocab, meta.value("eot_token", vocab - 1));
  build_model(std::move(weights));
  make_batches();
  if (resume_) restore();
}

// ---- start --------------------------------------------------------------------------------------
void FinetuneJob::start(const nlohmann::json& resolved) {
  resolved_ = resolved;
  run_->prepare_outputs(resolved, resume_ ? resume_->step() : -1, !resume_ && s_.overwrite);
  vt_.assign(static_cast<size_t>(s_.batch_size) * s_.seq_len, 0);
  vg_.assign(vt_.size(), 0);
  tokenizer_files_ = finetune_tokenizer_files(s_.train_data, s_.init);
  retention_.keep_last = s_.keep_last;
  const TrainerConfig tc = run_->trainer_config(s_.seq_len, s_.lr, s_.min_lr);
  trainable_ = std::make_unique<ReplayHeadSwitch>(*loaded_.model, *mix_);
  const bool has_val = lm_val_ || ft_val_;
  trainer_ = std::make_unique<Trainer>(
      *trainable_, *dp_, tc, [this](int32_t* t, int32_t* g) { return mix_->next_batch(t, g); },
      has_val ? Trainer::EvalFn([this] { return evaluate(); }) : Trainer::EvalFn());
  trainer_->set_after_step([this](const StepRecord& r) { return after_step(r); });
}

// ---- validation: mean loss over every target; accuracy for a class head -------------------------
namespace {

// The class of row b of a batch of rows of T (-1: none): its one target.
int32_t row_label(const std::vector<int32_t>& targets, int b, int T) {
  int32_t label = -1;
  for (int t = 0; t < T; ++t) label = std::max(label, targets[static_cast<size_t>(b) * T + t]);
  return label;
}

}  // namespace

void FinetuneJob::read_validation_batch(int64_t i) {
  if (lm_val_) {
    val_count_ += lm_val_->batch(i, vt_.data(), vg_.data());
    return;
  }
  val_count_ += ft_val_->next_batch(vt_.data(), vg_.data());
  val_T_ = ft_val_->last_batch_T();
  if (num_classes_ > 0)
    for (int b = 0; b < s_.batch_size; ++b) val_examples_ += row_label(vg_, b, val_T_) >= 0;
}

// values[0]: the batch's loss sum, values[1]: its correct predictions.
void FinetuneJob::run_validation_batch(double* values) {
  LanguageModel& model = *loaded_.model;
  values[0] = model.forward(vt_.data(), vg_.data(), s_.batch_size, val_T_);
  if (num_classes_ == 0) return;
  const std::vector<float> logits = model.class_logits_to_host(s_.batch_size);
  for (int b = 0; b < s_.batch_size; ++b) {
    const int32_t label = row_label(vg_, b, val_T_);
    if (label < 0) continue;
    const float* row = logits.data() + static_cast<size_t>(b) * num_classes_;
    values[1] += static_cast<int>(std::max_element(row, row + num_classes_) - row) == label;
  }
}

EvalResult FinetuneJob::evaluate() {
  EvalResult r;
  val_count_ = val_examples_ = 0;
  val_T_ = s_.seq_len;
  if (ft_val_) ft_val_->set_state(LoaderState{});
  int64_t nb = lm_val_ ? lm_val_->num_batches() : ft_val_->batches_per_epoch();
  if (s_.val_max_batches > 0) nb = std::min<int64_t>(nb, s_.val_max_batches);
  const std::vector<double> sums = rank_split_sums(
      run_->comm(), nb, 2, [this](int64_t i) { read_validation_batch(i); },
      [this](int64_t, double* v) { run_validation_batch(v); });
  const int64_t correct = static_cast<int64_t>(sums[1]);
  r.loss = val_count_ > 0 ? sums[0] / static_cast<double>(val_count_) : 0.0;
  last_accuracy_ =
      val_examples_ > 0 ? static_cast<double>(correct) / static_cast<double>(val_examples_) : -1;
  if (last_accuracy_ >= 0)
    run_->print("validation accuracy %.4f (%lld examples)\n", last_accuracy_,
                static_cast<long long>(val_examples_));
  return r;
}

// ---- checkpoints: the best by the chosen metric (lower is better: val_loss, or 1 - accuracy) ----
std::string FinetuneJob::save(const StepRecord& r, double score) {
  LanguageModel& model = *loaded_.model;
  CheckpointContents c;
  if (run_->is_main()) {  // every rank holds the same weights
    c.tensor_files.emplace_back("model.safetensors", model.weights_to_safetensors());
    if (model.lora_enabled())
      c.tensor_files.emplace_back("adapter.safetensors", lora_to_safetensors(model));
    if (model.num_classes() > 0)
      c.tensor_files.emplace_back("head.safetensors", class_head_to_safetensors(model));
  }
  run_->add_optimizer_state(c);  // collective: every rank's shard, on rank 0
  c.copy_files = tokenizer_files_;
  nlohmann::json& st = c.state;
  st["train_loss"] = r.train_loss;
  if (std::isfinite(score)) st["val_loss"] = score;  // the selection score: lower is better
  if (r.has_val) st["val_lm_loss"] = r.val.loss;
  if (last_accuracy_ >= 0 && r.has_val) st["val_accuracy"] = last_accuracy_;
  st["metric"] = metric_;
  // Everything a resumed run needs beyond the weights and the optimizer (this step's state: the
  // trainer fetches a step's batches at its start, so nothing is read ahead).
  st["finetune_state"] = finetune_state_to_json(loaders_, best_, replay_rng_);
  st["finetune"] = {{"task", s_.task}, {"method", s_.method}, {"num_classes", num_classes_}};
  st["model_config"] = model.config_json();
  st["config"] = resolved_;
  return run_->save_checkpoint(s_.out, r.step, c, retention_);
}

StepAction FinetuneJob::after_step(const StepRecord& r) {
  LanguageModel& model = *loaded_.model;
  last_ = r;
  if (r.has_val) {
    const double score = metric_ == "accuracy" ? 1.0 - last_accuracy_ : r.val.loss;
    if (last_accuracy_ >= 0 && run_->is_main()) {
      std::ofstream(s_.out + "/log.jsonl", std::ios::app)
          << nlohmann::json{{"step", r.step}, {"val_accuracy", last_accuracy_}}.dump() << "\n";
    }
    const BestTracker::Verdict verdict = best_.offer(score, r.step, s_.patience);
    if (verdict == BestTracker::Verdict::improved) {
      save(r, score);
      if (model.lora_enabled() && run_->is_main())
        write_safetensors(s_.out + "/adapter.safetensors", lora_to_safetensors(model));
    } else if (verdict == BestTracker::Verdict::stop) {
      stop_reason_ = "early stopping: " + metric_ + " has not improved for " +
                     std::to_string(s_.patience) + " validations (best at step " +
                     std::to_string(best_.best_step()) + ")";
      return StepAction::stop;
    }
  }
  if (s_.save_every > 0 && r.step % s_.save_every == 0 && r.step != best_.best_step())
    save(r, INFINITY);
  if (run_->stop_requested() && r.step < s_.steps) {
    stop_reason_ = std::string("gpt-finetune: ") + run_->stop_signal_name() +
                   ": stopped after step " + std::to_string(r.step) + "/" +
                   std::to_string(s_.steps);
    return StepAction::stop;
  }
  return StepAction::keep_going;
}

bool FinetuneJob::train() {
  trainer_->run();
  return stop_reason_.empty();
}

// ---- finish -------------------------------------------------------------------------------------
void FinetuneJob::finish() {
  const long best_step = best_.best_step();
  std::string last_dir = best_step >= 0 && last_ && last_->step == best_step
                             ? s_.out + "/" + checkpoint_dir_name(best_step)
                             : "";
  if (last_ && last_->step != best_step) last_dir = save(*last_, INFINITY);
  if (stop_signal() != 0 && !stop_reason_.empty())
    stop_reason_ +=
        "; last checkpoint " + last_dir +
        (best_step >= 0 ? "; best " + s_.out + "/best (step " + std::to_string(best_step) + ")"
                        : "");
}

std::string FinetuneJob::write_final_files() {
  LanguageModel& model = *loaded_.model;
  if (!(lm_val_ || ft_val_) && model.lora_enabled())
    write_safetensors(s_.out + "/adapter.safetensors", lora_to_safetensors(model));
  if (!s_.merge_lora || !model.lora_enabled()) return "";
  // Fold the best adapters (or the last, without validation) into the base and save it whole.
  LoraMerge merge;
  merge.out = s_.out;
  merge.best_step = best_.best_step();
  merge.steps = s_.steps;
  merge.tokenizer_files = tokenizer_files_;
  merge.task = s_.task;
  merge.num_classes = num_classes_;
  merge.config = resolved_;
  return merge_lora_and_save(model, merge);
}

}  // namespace gpt
