#include "engine/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace gpt {

namespace {

using Clock = std::chrono::steady_clock;

}  // namespace

std::string format_exact(double v) {
  char buf[40];
  for (int digits = 6; digits <= 17; ++digits) {
    std::snprintf(buf, sizeof(buf), "%.*g", digits, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

Trainer::Trainer(TrainableModel& model, AdamW& optimizer, const TrainerConfig& config,
                 BatchFn next_batch, EvalFn evaluate)
    : model_(model),
      optimizer_(optimizer),
      config_(config),
      next_batch_(std::move(next_batch)),
      evaluate_(std::move(evaluate)) {
  init();
}

Trainer::Trainer(TrainableModel& model, DataParallel& dp, const TrainerConfig& config,
                 BatchFn next_batch, EvalFn evaluate)
    : model_(model),
      optimizer_(dp.optimizer()),
      dp_(&dp),
      config_(config),
      next_batch_(std::move(next_batch)),
      evaluate_(std::move(evaluate)) {
  init();
}

void Trainer::init() {
  const long micro = static_cast<long>(config_.batch_size) * config_.seq_len;
  if (micro <= 0) throw std::invalid_argument("batch_size and seq_len must be positive");
  const int world = dp_ ? dp_->comm().world_size() : 1;
  if (config_.total_batch_tokens == 0) config_.total_batch_tokens = micro * world;
  if (config_.total_batch_tokens % micro != 0) {
    throw std::invalid_argument(
        "total_batch_tokens (" + std::to_string(config_.total_batch_tokens) +
        ") must be a multiple of batch_size * seq_len (" + std::to_string(micro) + ")");
  }
  grad_accum_ = static_cast<int>(config_.total_batch_tokens / micro);
  if (grad_accum_ % world != 0) {
    throw std::invalid_argument(
        "total_batch_tokens (" + std::to_string(config_.total_batch_tokens) + ") is " +
        std::to_string(grad_accum_) + " micro-batches of batch_size * seq_len (" +
        std::to_string(micro) + "), not a multiple of the " + std::to_string(world) +
        " ranks: make it a multiple of " + std::to_string(micro * world));
  }
  tokens_.resize(static_cast<size_t>(config_.total_batch_tokens));
  targets_.resize(static_cast<size_t>(config_.total_batch_tokens));
}

StepRecord Trainer::train_step() {
  const auto t0 = Clock::now();
  const int B = config_.batch_size, T = config_.seq_len;
  const size_t micro = static_cast<size_t>(B) * T;
  micro_T_.assign(static_cast<size_t>(grad_accum_), T);
  int64_t count = 0, positions = 0;
  for (int k = 0; k < grad_accum_; ++k) {
    int32_t* g = targets_.data() + k * micro;
    const int Tk = next_batch_(tokens_.data() + k * micro, g);
    if (Tk <= 0 || Tk > T)
      throw std::logic_error("batch function returned row length " + std::to_string(Tk) +
                             " outside [1, " + std::to_string(T) + "]");
    micro_T_[static_cast<size_t>(k)] = Tk;
    for (size_t i = 0; i < static_cast<size_t>(B) * Tk; ++i) count += g[i] >= 0;
    positions += static_cast<int64_t>(B) * Tk;
  }
  const long step_index = optimizer_.step_count();  // 0-based index of the step being taken
  StepRecord r;
  r.step = step_index + 1;
  if (count == 0)
    throw std::runtime_error("step " + std::to_string(r.step) + ": every target is masked");

  const float dloss = static_cast<float>(1.0 / static_cast<double>(count));
  double loss_sum = 0.0;
  CommStats comm_before;
  if (dp_ == nullptr) {
    model_.zero_grad();
    for (int k = 0; k < grad_accum_; ++k) {
      loss_sum += model_.forward_backward(tokens_.data() + k * micro, targets_.data() + k * micro,
                                          B, micro_T_[static_cast<size_t>(k)], dloss);
    }
  } else {
    // Round i: this rank runs micro-batch i·N + rank. With host buffers each round's gradients are
    // reduced at once (the sum then runs in micro-batch order, as in one process); with device
    // buffers the rank accumulates its micro-batches and reduces once.
    Communicator& comm = dp_->comm();
    comm_before = comm.stats();
    const int N = comm.world_size();
    const bool every_round = dp_->reduce_every_round();
    std::vector<double> unit_loss(static_cast<size_t>(grad_accum_), 0.0);
    if (!every_round) model_.zero_grad();
    for (int i = 0; i < grad_accum_ / N; ++i) {
      const int k = i * N + comm.rank();
      if (every_round) model_.zero_grad();
      unit_loss[static_cast<size_t>(k)] =
          model_.forward_backward(tokens_.data() + k * micro, targets_.data() + k * micro, B,
                                  micro_T_[static_cast<size_t>(k)], dloss);
      if (every_round) dp_->reduce_round(i == 0);
    }
    if (!every_round) dp_->reduce_round(true);
    // Each entry is one rank's value plus zeros: exact, and then added in micro-batch order.
    comm.all_reduce_sum(unit_loss.data(), unit_loss.size());
    for (double l : unit_loss) loss_sum += l;
  }
  r.train_loss = loss_sum / static_cast<double>(count);
  if (test_nonfinite("loss", r.step)) r.train_loss = std::nan("");
  r.lr = learning_rate(step_index, config_.steps, config_.warmup_steps, config_.lr, config_.min_lr);
  // A non-finite loss or norm: every rank sees the same value (both are reduced), so every rank
  // takes the same branch.
  auto nonfinite = [&](const std::string& what) {
    if (config_.on_nonfinite == "skip") {
      r.skipped = what;
      return true;
    }
    throw std::runtime_error(what + " at step " + std::to_string(r.step) +
                             " (--on-nonfinite skip would drop such steps)");
  };
  bool skip = false;
  if (!std::isfinite(r.train_loss)) {
    skip = nonfinite("non-finite training loss (" + format_exact(r.train_loss) + ")");
  } else {
    if (test_nonfinite("grad", r.step)) poison_gradient();
    r.grad_norm = dp_ ? dp_->grad_norm() : optimizer_.grad_norm();
    if (!std::isfinite(r.grad_norm)) {
      std::string where = dp_ ? dp_->first_nonfinite_gradient() : "";
      if (!dp_)
        for (const ParamGroup& p : optimizer_.groups())
          if (p.trainable && !std::isfinite(model_.backend().sum_of_squares(p.grad))) {
            where = p.name;
            break;
          }
      skip = nonfinite("non-finite gradient norm (" + format_exact(r.grad_norm) + ")" +
                       (where.empty() ? "" : ", first in the gradient of '" + where + "'"));
    }
    if (!skip)
      r.grad_norm = dp_ ? dp_->apply(r.lr, r.grad_norm) : optimizer_.step(r.lr, r.grad_norm);
  }
  model_.backend().synchronize();
  if (dp_) {
    r.comm_bytes = dp_->comm().stats().bytes - comm_before.bytes;
    r.comm_ms = (dp_->comm().stats().seconds - comm_before.seconds) * 1000.0;
  }
  r.step_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  r.tokens_per_s = static_cast<double>(positions) / (r.step_ms / 1000.0);
  return r;
}

bool Trainer::test_nonfinite(const char* kind, long step) {
  // GPT_TEST_NONFINITE=KIND:STEP[+],... (the fault tests): make the loss (kind
  // "loss") or a gradient ("grad") of the attempt at STEP non-finite, once, or
  // with + at every attempt from STEP.
  const char* env = std::getenv("GPT_TEST_NONFINITE");
  if (env == nullptr) return false;
  std::string rest = env;
  int index = 0;
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    const std::string item = rest.substr(0, comma);
    rest = comma == std::string::npos ? "" : rest.substr(comma + 1);
    const size_t colon = item.find(':');
    if (colon != std::string::npos && item.substr(0, colon) == kind) {
      const bool from = item.back() == '+';
      const long at = std::atol(item.substr(colon + 1).c_str());
      const bool fired =
          std::find(test_fired_.begin(), test_fired_.end(), index) != test_fired_.end();
      if ((from && step >= at) || (!from && step == at && !fired)) {
        test_fired_.push_back(index);
        return true;
      }
    }
    ++index;
  }
  return false;
}

void Trainer::poison_gradient() {
  if (dp_) {
    dp_->poison_gradient_for_test();
    return;
  }
  for (const ParamGroup& g : optimizer_.groups()) {
    if (!g.trainable || g.grad.numel() == 0) continue;
    Backend& b = model_.backend();
    if (g.grad.dtype == DType::f32) {
      const float nan = std::nanf("");
      b.copy_from_host(g.grad.data, &nan, sizeof(nan));
    } else {
      const uint16_t nan = 0x7FC0;  // bf16 quiet NaN
      b.copy_from_host(g.grad.data, &nan, sizeof(nan));
    }
    return;
  }
}

void Trainer::log(const StepRecord& r) {
  if (config_.out_dir.empty()) return;
  nlohmann::ordered_json j;
  j["step"] = r.step;
  if (!r.skipped.empty()) {
    j["skipped"] = r.skipped;
  } else if (r.step > 0 || !r.has_val) {
    j["train_loss"] = r.train_loss;
    j["lr"] = r.lr;
    j["grad_norm"] = r.grad_norm;
    j["tokens_per_s"] = r.tokens_per_s;
    if (dp_ && dp_->comm().world_size() > 1) {
      j["comm_bytes"] = r.comm_bytes;
      j["comm_ms"] = r.comm_ms;
    }
  }
  if (r.has_val) {
    j["val_loss"] = r.val.loss;
    if (r.val.bits_per_byte > 0) j["val_bpb"] = r.val.bits_per_byte;
  }
  std::ofstream out(config_.out_dir + "/log.jsonl", std::ios::app);
  if (!out) throw std::runtime_error(config_.out_dir + "/log.jsonl: cannot write the log");
  out << j.dump() << "\n";
  if (!out.flush())
    throw std::runtime_error(config_.out_dir + "/log.jsonl: write failed (disk full?)");
}

void Trainer::run() {
  ProgressLine progress(config_.print ? config_.progress : ProgressMode::none);
  std::string last_val;   // the progress line's tail: the latest validation
  std::string step_line;  // the latest step's part of it
  bool first_line =
      true;  // plain mode prints the first step of every invocation (also a resumed one)
  auto print_val = [&](long step, const EvalResult& v) {
    if (!config_.print) return;
    if (v.bits_per_byte > 0)
      print_stderr("step %5ld/%ld | val loss %.4f | val bpb %.4f\n", step, config_.steps, v.loss,
                   v.bits_per_byte);
    else
      print_stderr("step %5ld/%ld | val loss %.4f\n", step, config_.steps, v.loss);
    char tail[64];
    std::snprintf(tail, sizeof(tail), " | val %.4f @ %ld", v.loss, step);
    last_val = tail;
    if (progress.in_place() && !step_line.empty()) progress.update(step_line + last_val, true);
  };
  if (optimizer_.step_count() == 0 && evaluate_) {
    StepRecord r0;
    r0.step = 0;
    r0.has_val = true;
    r0.val = evaluate_();
    print_val(0, r0.val);
    log(r0);
    history_.push_back(r0);
  }
  double time_sum = 0.0;
  long timed = 0;
  int skipped_in_a_row = 0;
  while (optimizer_.step_count() < config_.steps) {
    StepRecord r = train_step();
    if (!r.skipped.empty()) {
      ++skipped_in_a_row;
      if (config_.print)
        print_stderr("step %5ld/%ld | skipped (%d in a row): %s\n", r.step, config_.steps,
                     skipped_in_a_row, r.skipped.c_str());
      log(r);
      if (skipped_in_a_row >= config_.max_skipped_steps)
        throw std::runtime_error(
            std::to_string(skipped_in_a_row) +
            " steps in a row skipped (--max-skipped-steps), the last at step " +
            std::to_string(r.step) + ": " + r.skipped);
      continue;  // the same step again, with the next batches
    }
    skipped_in_a_row = 0;
    if (r.step > 1) {  // the first step warms caches up; keep it out of the ETA
      time_sum += r.step_ms;
      ++timed;
    }
    const double mean_ms = timed ? time_sum / timed : r.step_ms;
    const double eta = mean_ms * static_cast<double>(config_.steps - r.step) / 1000.0;
    char mfu[32] = "";
    if (config_.flops_per_token > 0 && config_.peak_flops > 0) {
      std::snprintf(mfu, sizeof(mfu), " | MFU %4.1f%%",
                    100.0 * r.tokens_per_s * config_.flops_per_token / config_.peak_flops);
    }
    char comm[48] = "";
    if (dp_ && dp_->comm().world_size() > 1)
      std::snprintf(comm, sizeof(comm), " | comm %6.1f ms", r.comm_ms);
    const bool last = r.step == config_.steps;
    if (config_.print) {
      char line[256];
      std::snprintf(
          line, sizeof(line),
          "step %5ld/%ld | loss %.4f | lr %.2e | norm %6.3f | %8.0f tok/s | %7.1f ms%s%s | "
          "ETA %s",
          r.step, config_.steps, r.train_loss, r.lr, r.grad_norm, r.tokens_per_s, r.step_ms, comm,
          mfu, format_duration(eta).c_str());
      step_line = line;
      if (progress.in_place())
        progress.update(step_line + last_val, last);
      else if (first_line || last || (config_.log_every > 0 && r.step % config_.log_every == 0))
        print_stderr("%s\n", line);
      first_line = false;
    }
    if (evaluate_ && ((config_.eval_every > 0 && r.step % config_.eval_every == 0) || last)) {
      r.has_val = true;
      r.val = evaluate_();
      print_val(r.step, r.val);
    }
    log(r);
    history_.push_back(r);
    if (after_step_ && after_step_(r) == StepAction::stop) break;
  }
}

}  // namespace gpt
