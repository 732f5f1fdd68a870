#include "train/run_state.h"

#include <stdexcept>

#include "engine/checkpoint.h"

namespace gpt {

nlohmann::json loader_json(const LoaderState& st, int64_t samples) {
  return {{"epoch", st.epoch}, {"position", st.position}, {"samples", samples}};
}

LoaderState loader_from_json(const nlohmann::json& j, int64_t samples, const std::string& what,
                             const std::string& data) {
  if (j.at("samples").get<int64_t>() != samples)
    throw std::runtime_error("field 'finetune_state.loaders." + what +
                             "': the checkpoint's data had " + j.at("samples").dump() +
                             " samples, '" + data + "' has " + std::to_string(samples) +
                             " (the data changed: start a new run with --init instead)");
  return LoaderState{j.at("epoch").get<int64_t>(), j.at("position").get<int64_t>()};
}

nlohmann::json finetune_state_to_json(const std::vector<LoaderSlot>& loaders,
                                      const BestTracker& best, const Rng* replay_rng) {
  nlohmann::json named = nlohmann::json::object();
  for (const LoaderSlot& l : loaders) named[l.name] = loader_json(l.get(), l.samples);
  nlohmann::json fst = {{"loaders", named}, {"early_stopping", best.to_json()}};
  if (replay_rng) fst["replay_rng"] = rng_state_to_json(*replay_rng);
  return fst;
}

void finetune_state_from_json(const nlohmann::json& fst, const std::vector<LoaderSlot>& loaders,
                              BestTracker& best, Rng* replay_rng, const std::string& state_path) {
  try {
    const nlohmann::json& named = fst.at("loaders");
    for (const LoaderSlot& l : loaders)
      l.set(loader_from_json(named.at(l.name), l.samples, l.name, l.data));
    if (replay_rng)
      rng_state_from_json(*replay_rng, fst.at("replay_rng"),
                          state_path + " (finetune_state.replay_rng)");
    best.from_json(fst.at("early_stopping"));
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(state_path + ": field 'finetune_state': " + e.what());
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(state_path + ": " + e.what());
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    if (what.rfind(state_path, 0) == 0) throw;
    throw std::runtime_error(state_path + ": " + what);
  }
}

void best_val_to_json(const BestTracker& best, nlohmann::json& st) {
  if (!best.has_best()) return;
  st["best_val_loss"] = best.best_score();
  st["best_val_step"] = best.best_step();
}

void best_val_from_json(const nlohmann::json& st, BestTracker& best) {
  if (st.contains("best_val_loss") && st["best_val_loss"].is_number())
    best.set(st["best_val_loss"].get<double>(), st.at("best_val_step").get<long>(), 0);
}

}  // namespace gpt
