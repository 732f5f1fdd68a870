// AdamW over a model's parameter groups, with global-norm gradient clipping, and the learning-rate
// schedule (linear warmup, then cosine decay to min_lr).
//
// State: m and v (and fp32 master weights when parameters are bf16) for every trainable group, in
// one arena allocated at construction; frozen groups (trainable = false) get none. Weight decay
// applies only to groups with weight_decay = true (2-D weight matrices).
#pragma once

#include <memory>
#include <vector>

#include "engine/arena.h"
#include "engine/backend.h"
#include "engine/model_interface.h"

namespace gpt {

struct AdamWConfig {
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float weight_decay = 0.1f;
  float grad_clip = 1.0f;  // <= 0 disables clipping
};

class AdamW {
 public:
  AdamW(Backend& backend, std::vector<ParamGroup> groups, const AdamWConfig& config);
  ~AdamW();

  // The global L2 norm of all trainable gradients (deterministic).
  double grad_norm();
  // One update with learning rate lr: clips by the global norm (computed here), then AdamW on
  // every trainable group. Returns the gradient norm before clipping. Increments step().
  double step(float lr);
  // The same with the global gradient norm computed by the caller (data parallel: over every
  // rank's shard, engine/data_parallel.h). Throws std::runtime_error for a non-finite norm.
  double step(float lr, double norm);
  long step_count() const { return step_; }
  void set_step_count(long s) { step_ = s; }
  const std::vector<ParamGroup>& groups() const { return groups_; }
  // Bytes of optimizer state (m, v, master weights).
  size_t state_bytes() const;
  // The part of state_bytes() that is fp32 master weights (0 unless the parameters are bf16).
  size_t master_bytes() const;
  Arena* state_arena() { return state_.get(); }
  // m, v, master views of group i (empty for frozen groups; master empty unless bf16).
  Tensor m(int i) const;
  Tensor v(int i) const;
  Tensor master(int i) const;
  const AdamWConfig& config() const { return config_; }
  Backend& backend() const { return backend_; }

 private:
  Backend& backend_;
  std::vector<ParamGroup> groups_;
  AdamWConfig config_;
  std::unique_ptr<Arena> state_;
  std::vector<int> m_index_, v_index_, master_index_;
  long step_ = 0;
};

// Linear warmup over warmup_steps (lr·(s+1)/warmup), then cosine decay from lr to min_lr at
// total_steps. s is the 0-based step being taken.
float learning_rate(long s, long total_steps, long warmup_steps, float lr, float min_lr);

}  // namespace gpt
