#include "engine/optimizer.h"

#include <cmath>
#include <stdexcept>

#include "kernels/stochastic_rounding.h"

namespace gpt {

AdamW::AdamW(Backend& backend, std::vector<ParamGroup> groups, const AdamWConfig& config)
    : backend_(backend), groups_(std::move(groups)), config_(config) {
  ArenaLayout layout;
  const DType sd = backend_.stat_dtype();
  const bool need_master = backend_.dtype() != sd;
  for (const ParamGroup& g : groups_) {
    if (!g.trainable) {
      m_index_.push_back(-1);
      v_index_.push_back(-1);
      master_index_.push_back(-1);
      continue;
    }
    m_index_.push_back(layout.add(g.name + ".m", sd, g.param.shape));
    v_index_.push_back(layout.add(g.name + ".v", sd, g.param.shape));
    master_index_.push_back(need_master ? layout.add(g.name + ".master", sd, g.param.shape) : -1);
  }
  state_ = std::make_unique<Arena>(backend_, std::move(layout));
  // Master weights start as a copy of the parameters (the CUDA backend converts on first update
  // when it sees step == 1; the CPU backend never has master weights).
}

AdamW::~AdamW() = default;

Tensor AdamW::m(int i) const {
  return m_index_.at(i) < 0 ? Tensor() : (*state_)[m_index_[i]];
}
Tensor AdamW::v(int i) const {
  return v_index_.at(i) < 0 ? Tensor() : (*state_)[v_index_[i]];
}
Tensor AdamW::master(int i) const {
  return master_index_.at(i) < 0 ? Tensor() : (*state_)[master_index_[i]];
}

size_t AdamW::state_bytes() const {
  return state_->bytes();
}

size_t AdamW::master_bytes() const {
  size_t bytes = 0;
  for (int i : master_index_)
    if (i >= 0) bytes += static_cast<size_t>((*state_)[i].bytes());
  return bytes;
}

double AdamW::grad_norm() {
  // Sum of per-tensor sums in group order: deterministic.
  double total = 0.0;
  for (const ParamGroup& g : groups_)
    if (g.trainable) total += backend_.sum_of_squares(g.grad);
  return std::sqrt(total);
}

double AdamW::step(float lr) {
  return step(lr, grad_norm());
}

double AdamW::step(float lr, double norm) {
  if (!std::isfinite(norm)) {
    throw std::runtime_error("non-finite gradient norm (" + std::to_string(norm) + ")");
  }
  float scale = 1.0f;
  if (config_.grad_clip > 0.0f && norm > config_.grad_clip) {
    scale = static_cast<float>(config_.grad_clip / norm);
  }
  ++step_;
  for (size_t i = 0; i < groups_.size(); ++i) {
    const ParamGroup& g = groups_[i];
    if (!g.trainable) continue;
    AdamWStep s;
    s.lr = lr;
    s.beta1 = config_.beta1;
    s.beta2 = config_.beta2;
    s.eps = config_.eps;
    s.weight_decay = g.weight_decay ? config_.weight_decay : 0.0f;
    s.grad_scale = scale;
    s.step = step_;
    // A hash of (step, tensor): no two steps or tensors share a stream of rounding bits, and a
    // resumed run (same step count) draws the same bits (kernels/stochastic_rounding.h).
    s.seed = stochastic_rounding_seed(static_cast<uint64_t>(step_), i);
    backend_.adamw_update(g.param, g.grad, m(static_cast<int>(i)), v(static_cast<int>(i)),
                          master(static_cast<int>(i)), s);
  }
  return norm;
}

float learning_rate(long s, long total_steps, long warmup_steps, float lr, float min_lr) {
  if (s < warmup_steps) return lr * static_cast<float>(s + 1) / static_cast<float>(warmup_steps);
  if (total_steps <= warmup_steps) return lr;
  double progress =
      static_cast<double>(s - warmup_steps) / static_cast<double>(total_steps - warmup_steps);
  if (progress > 1.0) progress = 1.0;
  const double coeff = 0.5 * (1.0 + std::cos(M_PI * progress));
  return static_cast<float>(min_lr + coeff * (lr - min_lr));
}

}  // namespace gpt
