// The training loop, independent of any particular model or data format: the app hands it a model,
// an optimizer and two callbacks (next training micro-batch, validation pass).
//
// One optimizer step = grad_accum micro-batches of (B, T), grad_accum = total_batch_tokens / (B·T).
// All micro-batches of a step are fetched first so that the number of unmasked targets of the whole
// step is known before any backward pass: each token's loss is scaled by 1 / (that count), which
// makes the step's loss the mean over all unmasked targets of the step (not a mean of per-micro-
// batch means), and gradient accumulation over micro-batches exactly equals one big batch.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "engine/data_parallel.h"
#include "engine/model_interface.h"
#include "engine/optimizer.h"
#include "engine/progress.h"

namespace gpt {

struct TrainerConfig {
  long steps = 1000;
  int batch_size = 8;
  int seq_len = 256;
  long total_batch_tokens = 0;  // the global batch; 0: one micro-batch per rank (B·T·world)
  float lr = 1e-3f;
  float min_lr = 1e-4f;
  long warmup_steps = 0;
  long eval_every = 0;  // 0: validate only at the start and the end
  std::string out_dir;  // log.jsonl goes here (empty: no log file)
  bool print = true;    // progress on stderr (data parallel: rank 0 only)
  // How (engine/progress.h): line redraws one line in place (step/total, loss, tokens/s, MFU, ETA,
  // the last validation) with validations as lines above it; plain prints a line for the first step
  // of the invocation, every log_every-th step and the last one.
  ProgressMode progress = ProgressMode::plain;
  long log_every = 1;
  double flops_per_token = 0.0;  // for MFU (0: not reported)
  double peak_flops = 0.0;       // device peak for MFU (0: not reported)
  // A step whose loss or gradient norm is NaN/inf: "stop" (an error naming the step and the first
  // tensor with a non-finite gradient) or "skip" (no update; the step's data is spent, the step is
  // taken again with the next batches, a line {"step", "skipped"} goes to log.jsonl), ending the
  // run after max_skipped_steps skipped in a row.
  std::string on_nonfinite = "stop";
  int max_skipped_steps = 10;
};

struct EvalResult {
  double loss = 0.0;           // mean over all targets of the validation set
  double bits_per_byte = 0.0;  // 0 when unknown
};

struct StepRecord {
  long step = 0;  // 1-based
  double train_loss = 0.0;
  float lr = 0.0f;
  double grad_norm = 0.0;
  double tokens_per_s = 0.0;  // token positions computed (B * T summed over micro-batches)
  double step_ms = 0.0;
  double comm_bytes = 0.0;  // data parallel: bytes this rank sent in the step's collectives
  double comm_ms = 0.0;     // and the time spent in them
  bool has_val = false;
  EvalResult val;
  std::string skipped;  // --on-nonfinite skip: why this step made no update (empty: it did)
};

// What run() does after a step's callback: go on, or return early
// (checkpoint-and-exit on a signal).
enum class StepAction { keep_going, stop };

class Trainer {
 public:
  // Fills one micro-batch of at most (B, seq_len) and returns its row length T <= seq_len: the
  // batch is B rows of T (row b at tokens + b * T), so a batch of short rows costs less.
  using BatchFn = std::function<int(int32_t* tokens, int32_t* targets)>;
  using EvalFn = std::function<EvalResult()>;
  // Called by run() after every step, once the step is logged (and validated, when due).
  using AfterStepFn = std::function<StepAction(const StepRecord&)>;

  Trainer(TrainableModel& model, AdamW& optimizer, const TrainerConfig& config, BatchFn next_batch,
          EvalFn evaluate);
  // Data parallel (engine/data_parallel.h): every rank fetches every micro-batch of the global
  // step (so the data order and the loader state do not depend on the world size), runs
  // micro-batches k = rank, rank + N, ... and the gradients are reduced through dp. The number of
  // micro-batches of a step must be a multiple of the world size N.
  Trainer(TrainableModel& model, DataParallel& dp, const TrainerConfig& config, BatchFn next_batch,
          EvalFn evaluate);
  int grad_accum() const { return grad_accum_; }
  // Runs from the optimizer's current step to config.steps (a resumed run continues where its
  // checkpoint stopped), or until the after-step callback says stop. Throws std::runtime_error
  // naming the step on a non-finite loss or gradient norm.
  void run();
  void set_after_step(AfterStepFn fn) { after_step_ = std::move(fn); }
  // One optimizer step (fetch, forward/backward, clip, AdamW). Returns its record.
  StepRecord train_step();
  const std::vector<StepRecord>& history() const { return history_; }

 private:
  void init();
  void log(const StepRecord& r);
  bool test_nonfinite(const char* kind, long step);
  void poison_gradient();
  std::vector<int> test_fired_;
  TrainableModel& model_;
  AdamW& optimizer_;
  DataParallel* dp_ = nullptr;
  TrainerConfig config_;
  BatchFn next_batch_;
  EvalFn evaluate_;
  AfterStepFn after_step_;
  int grad_accum_ = 1;
  std::vector<int32_t> tokens_, targets_;
  std::vector<int> micro_T_;  // row length of each micro-batch of the step being taken
  std::vector<StepRecord> history_;
};

// Formats a double so that it reads back exactly (17 significant digits, shortest form).
std::string format_exact(double v);

}  // namespace gpt
