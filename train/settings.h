// The settings every training job takes alike.
#pragma once

#include <string>

namespace gpt {

// What every training app (gpt-pretrain, gpt-finetune) takes alike: the optimizer and its
// schedule, the batches, validation, checkpoints and the device. An app's settings derive from
// this and set their own defaults in their constructor; register_train_options adds these fields.
struct TrainSettings {
  std::string out;
  long steps = 1000;
  int batch_size = 8;
  long total_batch_tokens = 0;
  long warmup_steps = 100;
  float weight_decay = 0.1f;
  float grad_clip = 1.0f;
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  long eval_every = 100;
  int val_max_batches = 0;
  long save_every = 0;
  std::string device = "auto";
  std::string dtype = "auto";
  std::string attention = "fused";
  long seed = 1337;
  bool shuffle = true;
  int threads = 0;
  bool overwrite = false;
  // Data parallel (docs/distributed.md).
  std::string dist = "auto";
  std::string dist_init;
  float dist_timeout = 600.0f;
  int zero = -1;
  std::string on_nonfinite = "stop";
  int max_skipped_steps = 10;
  // Progress on stderr (engine/progress.h): auto (one line redrawn in place on a terminal, else
  // plain), line or plain (a line every log_every steps).
  std::string progress = "auto";
  long log_every = 1;
};

}  // namespace gpt
