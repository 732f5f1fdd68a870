// Fine-tuning as a job (train/job.h): a pretrained model adapted to a task (lm, sft, classify) by
// a method (full, lora, freeze), validated every --eval-every steps with early stopping on
// --metric, the best kept as OUT/best, replay batches mixed in against forgetting, and a resume
// with the same bits as a run that never stopped. gpt-finetune is its option table and printing.
#pragma once

#include <cmath>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/finetune_loader.h"
#include "data/loader.h"
#include "engine/checkpoint.h"
#include "models/loader.h"
#include "models/trainability.h"
#include "train/early_stopping.h"
#include "train/job.h"
#include "train/replay.h"
#include "train/run.h"
#include "train/run_state.h"
#include "train/settings.h"

namespace gpt {

struct FinetuneSettings : TrainSettings {
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

class FinetuneJob : public TrainingJob {
 public:
  // resume: the checkpoint --resume opened (its settings already applied to s).
  FinetuneJob(FinetuneSettings& s, std::optional<Checkpoint> resume, const RunHooks& hooks);
  void open() override;
  void start(const nlohmann::json& resolved_settings) override;
  bool train() override;
  // Also prints the accuracy with a class head.
  EvalResult evaluate() override;
  std::string save(const StepRecord& record) override { return save(record, INFINITY); }
  // The last checkpoint (every rank); stop_message() gets where it and the best are.
  void finish() override;
  // Rank 0, after finish: OUT/adapter.safetensors without validation, and with --merge-lora the
  // merged checkpoint. Returns the merged checkpoint's directory ("" without).
  std::string write_final_files();
  const std::string& stop_message() const override { return stop_reason_; }

  // For the app's printing.
  TrainingRun& run() { return *run_; }
  const std::optional<Checkpoint>& resumed() const { return resume_; }
  LanguageModel& model() { return *loaded_.model; }
  const std::string& model_format() const { return loaded_.format; }
  const std::string& weights_from() const { return weights_from_; }
  int num_classes() const { return num_classes_; }
  const std::string& metric() const { return metric_; }
  const BestTracker& best() const { return best_; }
  long last_step() const { return last_ ? last_->step : 0L; }

 private:
  void check_resume();
  void check_settings();
  GptWeights open_weights();
  void open_data(int vocab, int32_t eot);
  void build_model(GptWeights weights);
  void make_batches();
  void restore();
  std::string save(const StepRecord& r, double score);
  StepAction after_step(const StepRecord& r);
  void read_validation_batch(int64_t i);
  void run_validation_batch(double* values);

  FinetuneSettings& s_;
  std::optional<Checkpoint> resume_;
  RunHooks hooks_;
  LoraConfig lora_cfg_;
  std::unique_ptr<TrainingRun> run_;
  std::string weights_from_;
  std::unique_ptr<TrainLoader> lm_train_, replay_;
  std::unique_ptr<ValidationSet> lm_val_;
  std::unique_ptr<FinetuneLoader> ft_train_, ft_val_;
  int num_classes_ = 0;
  std::string metric_;
  LoadedModel loaded_;
  DataParallel* dp_ = nullptr;
  std::unique_ptr<ReplayMix> mix_;
  std::vector<LoaderSlot> loaders_;
  Rng* replay_rng_ = nullptr;
  BestTracker best_;  // lower is better: val_loss, or 1 - accuracy
  nlohmann::json resolved_;
  std::vector<int32_t> vt_, vg_;
  int val_T_ = 0;
  int64_t val_count_ = 0, val_examples_ = 0;
  double last_accuracy_ = -1;
  std::vector<std::string> tokenizer_files_;
  RetentionPolicy retention_;
  std::unique_ptr<ReplayHeadSwitch> trainable_;
  std::unique_ptr<Trainer> trainer_;
  std::optional<StepRecord> last_;
  std::string stop_reason_;
};

}  // namespace gpt
