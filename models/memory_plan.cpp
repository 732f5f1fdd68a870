#include "models/memory_plan.h"

#include <cctype>
#include <cmath>
#include <stdexcept>

#include "engine/data_parallel.h"
#include "engine/sizing.h"
#include "models/gpt_io.h"
#include "models/model.h"

namespace gpt {

MemoryPlan plan_memory(const PlanRequest& r) {
  const std::string& task = r.task;
  if (task != "pretrain" && task != "full" && task != "lora" && task != "freeze" &&
      task != "classify")
    throw std::invalid_argument("--task '" + task +
                                "': expected pretrain, full, lora, freeze or classify");
  if (r.batch <= 0)
    throw std::invalid_argument("--batch must be positive, got " + std::to_string(r.batch));
  if (r.seq_len <= 0)
    throw std::invalid_argument("--seq-len must be positive, got " + std::to_string(r.seq_len));
  if (r.world_size < 1)
    throw std::invalid_argument("--world-size must be at least 1, got " +
                                std::to_string(r.world_size));
  if (r.zero < -1 || r.zero > 1) throw std::invalid_argument("--zero must be -1, 0 or 1");
  FinetuneMethod method = r.method;
  if (task == "pretrain" || task == "full") method.method = "full";
  if (task == "lora" || task == "freeze") method.method = task;

  // The set-up of gpt-pretrain / gpt-finetune, in their order, on a backend that only counts.
  SizingBackend backend(r.device, r.dtype);
  const std::unique_ptr<LanguageModel> model_ptr = make_model(
      r.model.family, gpt_config_to_json(r.model), "the model", backend, r.batch, r.seq_len);
  LanguageModel& model = *model_ptr;
  if (task == "classify") model.enable_class_head(r.num_classes, 0);
  if (method.method == "lora") model.enable_lora(method.lora, 0);
  apply_trainable(model, method);
  if (model.num_trainable_parameters() == 0)
    throw std::invalid_argument("nothing to train: every parameter is frozen");
  // Several GPUs talk over NCCL (device buffers); CPU ranks over MPI (host buffers).
  SizingCommunicator comm(r.world_size, r.rank, r.device == DeviceKind::cuda && r.world_size > 1);
  DataParallel dp(comm, backend, model.parameters(), AdamWConfig{},
                  zero_enabled(r.zero, r.world_size));
  model.allocate_activations();  // what the first training step allocates

  MemoryPlan p;
  const MemoryUse use = model.memory_use();
  p.parameters = use.parameters;
  p.gradients = use.gradients;
  p.activations = use.activations;
  const size_t state = dp.optimizer_bytes() > 0 ? allocation_bytes(dp.optimizer_bytes()) : 0;
  p.master_weights = dp.optimizer().master_bytes();
  p.optimizer_state = state - p.master_weights;
  p.reduction_buffers = dp.buffer_bytes() > 0 ? allocation_bytes(dp.buffer_bytes()) : 0;
  p.workspace = backend.startup_bytes();
  p.peak = backend.peak_bytes();
  for (const ParamGroup& g : model.parameters()) p.num_parameters += g.param.numel();
  p.trainable_parameters = model.num_trainable_parameters();
  p.zero = dp.zero();
  p.flat_elements = dp.flat_elements();
  p.shard_elements = dp.shard_elements();
  if (p.total() != backend.live_bytes())
    throw std::logic_error("gpt-plan: the categories (" + std::to_string(p.total()) +
                           " bytes) do not add up to the live bytes (" +
                           std::to_string(backend.live_bytes()) + ")");
  return p;
}

int largest_fitting_batch(PlanRequest request, size_t budget, int limit) {
  auto fits = [&](int b) {
    request.batch = b;
    return plan_memory(request).peak <= budget;
  };
  if (!fits(1)) return 0;
  int lo = 1, hi = 2;  // fits(lo); hi is the first candidate above it
  while (hi <= limit && fits(hi)) {
    lo = hi;
    hi = hi > limit / 2 ? limit + 1 : hi * 2;
  }
  if (hi > limit) hi = limit + 1;
  while (hi - lo > 1) {  // fits(lo), !fits(hi) (or hi beyond the limit)
    const int mid = lo + (hi - lo) / 2;
    if (fits(mid))
      lo = mid;
    else
      hi = mid;
  }
  return lo;
}

void check_time_request(const TimeRequest& t) {
  if (t.tokens && !(*t.tokens > 0)) throw std::invalid_argument("--tokens must be positive");
  if (t.tokens_per_s && !(*t.tokens_per_s > 0))
    throw std::invalid_argument("--tokens-per-s must be positive");
  if (t.mfu && !(*t.mfu > 0 && *t.mfu <= 1)) throw std::invalid_argument("--mfu must be in (0, 1]");
  if (t.peak_tflops && !(*t.peak_tflops > 0))
    throw std::invalid_argument("--peak-tflops must be positive");
  if (t.mfu.has_value() != t.peak_tflops.has_value())
    throw std::invalid_argument("--mfu and --peak-tflops go together");
  if (t.tokens_per_s && t.mfu)
    throw std::invalid_argument("give --tokens-per-s or --mfu/--peak-tflops, not both");
}

TimeEstimate estimate_time(const PlanRequest& r, const TimeRequest& t) {
  check_time_request(t);
  TimeEstimate e;
  e.flops_per_token = r.model.flops_per_token(r.seq_len);
  const long global_batch = t.total_batch_tokens > 0
                                ? t.total_batch_tokens
                                : static_cast<long>(r.batch) * r.seq_len * r.world_size;
  e.tokens = t.tokens ? *t.tokens : static_cast<double>(t.steps) * global_batch;
  if (t.tokens_per_s) e.tokens_per_s = *t.tokens_per_s;
  if (t.mfu) e.tokens_per_s = r.world_size * *t.mfu * *t.peak_tflops * 1e12 / e.flops_per_token;
  e.seconds = e.tokens_per_s > 0 && e.tokens > 0 ? e.tokens / e.tokens_per_s : 0.0;
  return e;
}

size_t parse_byte_size(const std::string& text, const std::string& flag) {
  const std::string usage =
      flag + " '" + text + "': expected a size with a unit, e.g. 80GB, 80GiB, 512MiB";
  size_t pos = 0;
  double value = 0.0;
  try {
    value = std::stod(text, &pos);
  } catch (const std::exception&) {
    throw std::invalid_argument(usage);
  }
  if (!std::isfinite(value) || value <= 0) throw std::invalid_argument(usage + " (positive)");
  std::string unit;
  for (size_t i = pos; i < text.size(); ++i)
    if (!std::isspace(static_cast<unsigned char>(text[i])))
      unit += static_cast<char>(std::toupper(static_cast<unsigned char>(text[i])));
  if (unit.size() > 1 && unit.back() == 'B') unit.pop_back();
  double scale = 0.0;
  if (unit == "B")
    scale = 1.0;
  else if (unit == "K")
    scale = 1e3;
  else if (unit == "M")
    scale = 1e6;
  else if (unit == "G")
    scale = 1e9;
  else if (unit == "T")
    scale = 1e12;
  else if (unit == "KI")
    scale = 1024.0;
  else if (unit == "MI")
    scale = 1024.0 * 1024.0;
  else if (unit == "GI")
    scale = 1024.0 * 1024.0 * 1024.0;
  else if (unit == "TI")
    scale = 1024.0 * 1024.0 * 1024.0 * 1024.0;
  else
    throw std::invalid_argument(usage);
  const double bytes = value * scale;
  if (bytes < 1.0 || bytes > 1e18) throw std::invalid_argument(usage + " (out of range)");
  return static_cast<size_t>(std::llround(bytes));
}

}  // namespace gpt
