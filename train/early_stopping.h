// Best tracking and early stopping: the best validation score so far (lower is better), the step
// it was reached at and the validations since without improvement.
#pragma once

#include <nlohmann/json.hpp>

namespace gpt {

class BestTracker {
 public:
  enum class Verdict { improved, not_improved, stop };
  // first_counts: the first score offered is the best whatever it is (gpt-pretrain's rule);
  // otherwise a score counts only below the best, which starts at +inf (gpt-finetune's).
  explicit BestTracker(bool first_counts = false);
  // A validation's score at `step`. With patience > 0, the patience-th validation in a row without
  // improvement says stop (patience 0: never).
  Verdict offer(double score, long step, int patience = 0);

  bool has_best() const { return best_step_ >= 0; }
  double best_score() const { return best_score_; }
  long best_step() const { return best_step_; }
  int bad_validations() const { return bad_validations_; }
  // Restored from a checkpoint.
  void set(double best_score, long best_step, int bad_validations);

  // gpt-finetune's "early_stopping" block of a checkpoint: {best_step, bad_validations,
  // best_score (with a best)}; from_json throws nlohmann's exceptions on a malformed block.
  nlohmann::json to_json() const;
  void from_json(const nlohmann::json& j);

 private:
  bool first_counts_;
  double best_score_;
  long best_step_ = -1;
  int bad_validations_ = 0;
};

}  // namespace gpt
