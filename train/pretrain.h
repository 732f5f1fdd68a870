// Pretraining as a job (train/job.h): a GPT-2 style model on token shards, from scratch, from
// given weights (--init) or from a checkpoint (--resume), with checkpoints that resume bit for
// bit. gpt-pretrain is its option table and its printing.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/loader.h"
#include "engine/checkpoint.h"
#include "models/gpt.h"
#include "models/gpt_interop.h"
#include "models/model.h"
#include "train/early_stopping.h"
#include "train/job.h"
#include "train/run.h"
#include "train/settings.h"

namespace gpt {

struct PretrainSettings : TrainSettings {
  PretrainSettings() { out = "runs/pretrain"; }
  std::string train_data;
  std::string val_data;
  int seq_len = 256;
  float lr = 1e-3f;
  float min_lr = 1e-4f;
  int n_layer = 12;
  int n_head = 12;
  int n_embd = 768;
  int max_seq_len = 1024;
  int vocab_size = 0;
  // The model family and the Llama family's fields (models/gpt.h GptConfig; 0: the default).
  std::string family = "gpt2";
  int n_kv_head = 0;
  int head_dim = 0;
  int mlp_hidden = 0;
  float norm_eps = 1e-5f;
  float rope_theta = 10000.0f;
  bool qkv_bias = false;
  bool qk_norm = false;
  bool tied_head = true;
  int keep_last = 0;
  std::string resume;
  std::string init;
};

class PretrainJob : public TrainingJob {
 public:
  // resume: the checkpoint --resume opened (its settings already applied to s). given(key): whether
  // a setting was given on the command line (with --init, only those must match the weights).
  PretrainJob(PretrainSettings& s, std::optional<Checkpoint> resume,
              std::function<bool(const std::string&)> given, const RunHooks& hooks);
  void open() override;
  void start(const nlohmann::json& resolved_settings) override;
  bool train() override;
  EvalResult evaluate() override;
  std::string save(const StepRecord& record) override;
  void finish() override;
  const std::string& stop_message() const override { return stop_message_; }

  // For the app's printing.
  TrainingRun& run() { return *run_; }
  const std::optional<Checkpoint>& resumed() const { return resume_; }
  const GptConfig& model_config() const { return mc_; }
  const TrainLoader& loader() const { return *loader_; }
  const ValidationSet* validation() const { return val_.get(); }
  long tokens_base() const { return tokens_base_; }
  long step_tokens() const { return step_tokens_; }
  long first_step() const { return first_step_; }
  int grad_accum() const { return trainer_->grad_accum(); }
  const Trainer& trainer() const { return *trainer_; }
  double seconds() const { return seconds_; }
  const std::string& final_dir() const { return final_dir_; }

 private:
  void open_weights();
  void check_settings();
  void build_model();
  void restore();
  StepAction after_step(const StepRecord& r);

  PretrainSettings& s_;
  std::optional<Checkpoint> resume_;
  std::function<bool(const std::string&)> given_;
  RunHooks hooks_;
  nlohmann::json meta_, resolved_;
  int data_vocab_ = 0;
  std::optional<GptWeights> start_weights_;  // --init or --resume
  std::string weights_source_;
  long step_tokens_ = 0;
  GptConfig mc_;
  std::unique_ptr<TrainLoader> loader_;
  std::unique_ptr<ValidationSet> val_;
  std::unique_ptr<TrainingRun> run_;
  std::unique_ptr<LanguageModel> model_;
  DataParallel* dp_ = nullptr;
  long tokens_base_ = 0, step_base_ = 0;
  BestTracker best_{/*first_counts=*/true};
  double bytes_per_token_ = 0.0;
  std::vector<int32_t> vt_, vg_;
  std::vector<std::string> tokenizer_files_;
  RetentionPolicy retention_;
  long last_saved_ = -1;
  std::unique_ptr<Trainer> trainer_;
  std::optional<StepRecord> last_record_;
  std::string stop_message_, final_dir_;
  long first_step_ = 0;
  double seconds_ = 0.0;
};

}  // namespace gpt
