// Replay mixing, a data source: each micro-batch is, with probability `ratio`, a batch of
// pretraining text from the replay loader instead of the task's, to limit forgetting. The draws
// come from a generator of its own (seeded from the run's seed and saved in checkpoints), so a
// resumed run mixes exactly as one that never stopped.
//
// With a class head a classification row has one target; a replayed row keeps
// kReplayTargetsPerRowWithClassHead of its targets (at random positions), so that replay does not
// drown the task in the step's mean loss, and trains the language-model head and the body: the
// trainer fetches a step's micro-batches first and runs them later (with data parallelism, only
// this rank's), so the source remembers for each micro-batch's buffer whether it was replayed, and
// ReplayHeadSwitch picks the head from that.
#pragma once

#include <cstdint>
#include <map>
#include <memory>

#include "data/loader.h"
#include "engine/model_interface.h"
#include "engine/rng.h"
#include "engine/trainer.h"
#include "models/model.h"

namespace gpt {

constexpr int kReplayTargetsPerRowWithClassHead = 8;

class ReplayMix {
 public:
  // replay may be null (no mixing: every batch is the task's). B, T: the replay rows' shape.
  ReplayMix(Trainer::BatchFn task, std::unique_ptr<TrainLoader> replay, double ratio, uint64_t seed,
            int B, int T, bool class_head);
  // The trainer's BatchFn: fills one micro-batch and returns its row length.
  int next_batch(int32_t* tokens, int32_t* targets);
  // Whether the micro-batch last fetched into this buffer was replayed.
  bool replayed(const int32_t* tokens) const;

  TrainLoader* replay() { return replay_.get(); }
  Rng& rng() { return rng_; }
  const Rng& rng() const { return rng_; }

 private:
  Trainer::BatchFn task_;
  std::unique_ptr<TrainLoader> replay_;
  double ratio_;
  Rng rng_;
  int B_, T_;
  bool class_head_;
  std::map<const int32_t*, bool> kinds_;
};

// The model as the trainer sees it when replay is mixed into a class-head task: a replayed
// micro-batch trains with the class head off (the language-model head), the others with it on.
class ReplayHeadSwitch : public TrainableModel {
 public:
  ReplayHeadSwitch(LanguageModel& model, const ReplayMix& mix) : model_(model), mix_(mix) {}
  Backend& backend() override { return model_.backend(); }
  double forward(const int32_t* tokens, const int32_t* targets, int B, int T) override {
    return model_.forward(tokens, targets, B, T);
  }
  double forward_backward(const int32_t* tokens, const int32_t* targets, int B, int T,
                          float dloss) override;
  void zero_grad() override { model_.zero_grad(); }
  std::vector<ParamGroup> parameters() override { return model_.parameters(); }

 private:
  LanguageModel& model_;
  const ReplayMix& mix_;
};

}  // namespace gpt
