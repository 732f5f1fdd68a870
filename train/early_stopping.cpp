#include "train/early_stopping.h"

#include <cmath>

namespace gpt {

BestTracker::BestTracker(bool first_counts)
    : first_counts_(first_counts), best_score_(first_counts ? std::nan("") : INFINITY) {}

BestTracker::Verdict BestTracker::offer(double score, long step, int patience) {
  if ((first_counts_ && best_step_ < 0) || score < best_score_) {
    best_score_ = score;
    best_step_ = step;
    bad_validations_ = 0;
    return Verdict::improved;
  }
  if (patience > 0 && ++bad_validations_ >= patience) return Verdict::stop;
  return Verdict::not_improved;
}

void BestTracker::set(double best_score, long best_step, int bad_validations) {
  best_score_ = best_score;
  best_step_ = best_step;
  bad_validations_ = bad_validations;
}

nlohmann::json BestTracker::to_json() const {
  nlohmann::json j = {{"best_step", best_step_}, {"bad_validations", bad_validations_}};
  if (best_step_ >= 0) j["best_score"] = best_score_;
  return j;
}

void BestTracker::from_json(const nlohmann::json& j) {
  best_step_ = j.at("best_step").get<long>();
  if (best_step_ >= 0) best_score_ = j.at("best_score").get<double>();
  bad_validations_ = j.at("bad_validations").get<int>();
}

}  // namespace gpt
