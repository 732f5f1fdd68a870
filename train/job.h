// A training job in named phases. Pretraining (train/pretrain.h) and fine-tuning
// (train/finetune.h) are each one; gpt-pretrain and gpt-finetune call the phases in order and
// print between them:
//
//   open    validate the settings; open the weights and the data, or resume from a checkpoint;
//           start the run set-up (train/run.h), build the model and the optimizer and restore the
//           run's state. Everything that can fail on bad input fails here: nothing is printed or
//           written yet.
//   start   prepare OUT (its lock, config.json, log.jsonl) and the trainer.
//   train   the trainer's loop to --steps, or until a signal or early stopping stops it; the
//           trainer calls evaluate at each validation and the job saves checkpoints as they fall
//           due.
//   finish  the last checkpoint and the run's final files.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "engine/trainer.h"

namespace gpt {

class TrainingJob {
 public:
  virtual ~TrainingJob() = default;
  virtual void open() = 0;
  virtual void start(const nlohmann::json& resolved_settings) = 0;
  // Returns false when the run stopped before --steps (stop_message() says why).
  virtual bool train() = 0;
  // Validation: the mean loss over the validation set (rank-split, train/validation.h).
  virtual EvalResult evaluate() = 0;
  // A checkpoint of the step just taken; returns its directory.
  virtual std::string save(const StepRecord& record) = 0;
  virtual void finish() = 0;
  virtual const std::string& stop_message() const = 0;
};

}  // namespace gpt
