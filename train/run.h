// The run set-up that gpt-pretrain and gpt-finetune share: the job's ranks and communicator, the
// backend on this rank's device, the data-parallel optimizer, the trainer settings, the outputs
// (config.json, log.jsonl, checkpoints written by rank 0 with every rank's optimizer shard), the
// stop on SIGINT/SIGTERM agreed by every rank, and the error path that names the failing rank and
// ends the whole job. The apps keep only what is theirs: data, model, task, metrics.
//
// With one process everything here is a world of one (the single communicator); the same code runs
// under mpirun or srun with N ranks (docs/distributed.md). models/ and kernels/ never see a rank.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/checkpoint.h"
#include "engine/communicator.h"
#include "engine/data_parallel.h"
#include "engine/progress.h"
#include "engine/trainer.h"
#include "train/settings.h"

namespace gpt {

// What the run set-up takes from the command line's floor: how it makes the backend (--device,
// --dtype) and where an error goes (the app's error handler: a data-parallel job names the rank and
// ends every rank; nullptr: back to the app's usual one-line error).
using RunErrorHandler = void (*)(const std::string& app, const std::string& what);
struct RunHooks {
  std::unique_ptr<Backend> (*make_backend)(const std::string& device,
                                           const std::string& dtype) = nullptr;
  void (*set_error_handler)(RunErrorHandler handler) = nullptr;
};

class TrainingRun {
 public:
  // Starts the communicator (--dist, --dist-init, --dist-timeout and the launcher's environment),
  // selects this rank's GPU (the local rank), creates the backend (--device, --dtype, --attention)
  // and installs the error handler and the SIGINT/SIGTERM handlers. Throws naming the flag.
  TrainingRun(const char* app, const TrainSettings& settings, const RunHooks& hooks);
  ~TrainingRun();

  Communicator& comm() { return *comm_; }
  Backend& backend() { return *backend_; }
  int rank() const { return comm_->rank(); }
  int world_size() const { return comm_->world_size(); }
  bool is_main() const { return comm_->rank() == 0; }
  // Whether item i (a validation batch) is this rank's: i ≡ rank (mod world size).
  bool mine(int64_t i) const { return i % comm_->world_size() == comm_->rank(); }

  // The optimizer over the model's trainable parameters, with gradients reduced over the ranks
  // (ZeRO-1 when --zero is 1, or -1 with several ranks).
  DataParallel& make_optimizer(std::vector<ParamGroup> groups);
  DataParallel& dp() { return *dp_; }
  // The trainer settings both apps share; rank 0 prints and logs.
  TrainerConfig trainer_config(int seq_len, float lr, float min_lr) const;

  // Collective, once per step: whether any rank received SIGINT/SIGTERM (every rank then stops
  // after the same step and takes part in the one checkpoint).
  bool stop_requested();
  const char* stop_signal_name() const;

  // Collective: adds the optimizer state to a checkpoint: one file, or with ZeRO one file per rank
  // ("optimizer-RRRRR-of-NNNNN.safetensors", all gathered on rank 0 so that the checkpoint is
  // complete before it exists), and the "optimizer" entry of its trainer state.
  void add_optimizer_state(CheckpointContents& contents);
  // Collective: rank 0 writes the checkpoint (engine/checkpoint.h: atomic), the others wait for it.
  // Returns the checkpoint's directory on every rank.
  std::string save_checkpoint(const std::string& root, long step, const CheckpointContents& c,
                              const RetentionPolicy& policy);
  // Restores the optimizer state written at any world size (shards are re-cut to this one).
  void load_optimizer_state(const Checkpoint& checkpoint);

  // Rank 0: creates OUT, writes OUT/config.json; log.jsonl is cut after resume_step (a resumed
  // run), or removed (resume_step < 0). Every rank waits for it.
  // Rank 0 first takes OUT/.lock (a second run on the same OUT is refused, naming the first's pid)
  // and, with start_over (--overwrite on a fresh run), removes an earlier run's checkpoints.
  void prepare_outputs(const nlohmann::json& resolved, long resume_step, bool start_over);
  // printf on rank 0's stderr only (through engine/progress.h: above an active progress line).
  void print(const char* format, ...) const __attribute__((format(printf, 2, 3)));
  // One line for the start-up log: ranks, communicator, launcher, ZeRO and the optimizer bytes.
  std::string describe() const;
  // Sums values over the ranks (each entry set by one rank, zero on the others: exact).
  void combine(std::vector<double>& values);

 private:
  const char* app_;
  const TrainSettings& s_;
  RunHooks hooks_;
  std::unique_ptr<Communicator> comm_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<DataParallel> dp_;
  RankInfo launcher_;
  ProgressMode progress_ = ProgressMode::plain;
  int stop_signal_ = 0;
  long steps_seen_ = 0;
  int lock_fd_ = -1;  // OUT/.lock, held (flock) for the life of the run on rank 0
  void lock_out_dir();
};

// ---- helpers both apps use ----------------------------------------------------------------------
// Keeps the lines of log.jsonl up to `step` (a line cut short by a crash ends it).
void truncate_log(const std::string& path, long step);
// meta.json beside the shards of a glob ({} when absent); throws naming it when malformed.
nlohmann::json read_meta_beside(const std::string& pattern);
}  // namespace gpt
