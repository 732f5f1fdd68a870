// A training run's state in a checkpoint beyond the weights and the optimizer: where each data
// loader stands, the best validation and early stopping, the replay generator. Assembled when a
// checkpoint is saved and restored on --resume, so that the resumed run has the same bits as one
// that never stopped (docs/checkpoints.md).
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/loader.h"
#include "engine/rng.h"
#include "train/early_stopping.h"

namespace gpt {

// A loader's place in its data, for a checkpoint: where it stands and how many samples (or
// examples) it had, so that a resume over changed data is refused.
nlohmann::json loader_json(const LoaderState& state, int64_t samples);
// Throws std::runtime_error naming finetune_state.loaders.<what> and `data` when the sample count
// differs; nlohmann's exceptions on a malformed entry.
LoaderState loader_from_json(const nlohmann::json& j, int64_t samples, const std::string& what,
                             const std::string& data);

// One of a run's loaders, by name ("train", "replay"): its data (for messages), its size, and how
// to read and set its position.
struct LoaderSlot {
  std::string name;
  std::string data;
  int64_t samples = 0;
  std::function<LoaderState()> get;
  std::function<void(const LoaderState&)> set;
};

// gpt-finetune's "finetune_state": {"loaders": {name: loader_json}, "early_stopping": ...,
// "replay_rng" (when replay_rng is not null)}.
nlohmann::json finetune_state_to_json(const std::vector<LoaderSlot>& loaders,
                                      const BestTracker& best, const Rng* replay_rng);
// Restores it from a checkpoint's trainer state (state_path names trainer_state.json in errors):
// every loader, then the replay generator, then the early stopping. Throws std::runtime_error
// starting with state_path.
void finetune_state_from_json(const nlohmann::json& finetune_state,
                              const std::vector<LoaderSlot>& loaders, BestTracker& best,
                              Rng* replay_rng, const std::string& state_path);

// gpt-pretrain's best validation in its trainer state: "best_val_loss" and "best_val_step", both
// present once there is a best.
void best_val_to_json(const BestTracker& best, nlohmann::json& state);
void best_val_from_json(const nlohmann::json& state, BestTracker& best);

}  // namespace gpt
