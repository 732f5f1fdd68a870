#include "train/replay.h"

#include <algorithm>
#include <vector>

namespace gpt {

ReplayMix::ReplayMix(Trainer::BatchFn task, std::unique_ptr<TrainLoader> replay, double ratio,
                     uint64_t seed, int B, int T, bool class_head)
    : task_(std::move(task)),
      replay_(std::move(replay)),
      ratio_(ratio),
      rng_(seed ^ 0x5245504Cull),
      B_(B),
      T_(T),
      class_head_(class_head) {}

int ReplayMix::next_batch(int32_t* t, int32_t* g) {
  const bool use_replay = replay_ && rng_.uniform() < ratio_;
  kinds_[t] = use_replay;
  if (!use_replay) return task_(t, g);
  replay_->next_batch(t, g);
  if (class_head_) {  // keep a few targets per row (see kReplayTargetsPerRowWithClassHead)
    for (int b = 0; b < B_; ++b) {
      int32_t* row = g + static_cast<size_t>(b) * T_;
      std::vector<int32_t> keep(row, row + T_);
      std::fill(row, row + T_, -1);
      for (int k = 0; k < kReplayTargetsPerRowWithClassHead; ++k) {
        const int pos = static_cast<int>(rng_.below(static_cast<uint64_t>(T_)));
        row[pos] = keep[pos];
      }
    }
  }
  return T_;
}

bool ReplayMix::replayed(const int32_t* tokens) const {
  const auto it = kinds_.find(tokens);
  return it != kinds_.end() && it->second;
}

double ReplayHeadSwitch::forward_backward(const int32_t* tokens, const int32_t* targets, int B,
                                          int T, float dloss) {
  model_.set_class_head_active(!mix_.replayed(tokens));
  const double loss = model_.forward_backward(tokens, targets, B, T, dloss);
  model_.set_class_head_active(true);
  return loss;
}

}  // namespace gpt
