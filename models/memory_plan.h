// gpt-plan's library: the device memory a training run will hold, counted by running the run's own
// set-up code (the model, its fine-tuning mode, DataParallel with ZeRO-1, AdamW) on the sizing
// backend (engine/sizing.h), which counts allocations and allocates nothing. The bytes are
// therefore those gpt-pretrain and gpt-finetune allocate, arena by arena, with no second formula
// to drift from them (tests/test_memory_plan.cpp builds the same models on the CPU backend and
// compares). Not counted: memory a backend sizes inside an op at run time (the CUDA backend's
// scratch), the CUDA context, host memory. Beside it, the run's time from its training FLOPs per
// token and a throughput (estimate_time).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "engine/backend.h"
#include "models/gpt.h"
#include "models/trainability.h"

namespace gpt {

struct PlanRequest {
  GptConfig model;
  // pretrain (gpt-pretrain), full | lora | freeze (gpt-finetune --method, LM head), classify
  // (gpt-finetune --task classify: a class head, with method.method full, lora or freeze).
  std::string task = "pretrain";
  FinetuneMethod method;
  int num_classes = 2;  // classify
  int batch = 16;       // micro-batch B (the model's activation arena is sized for it)
  int seq_len = 1024;   // T
  DeviceKind device = DeviceKind::cuda;
  DType dtype = DType::bf16;
  int world_size = 1;
  int rank = 0;   // whose share of the optimizer state (rank 0 holds a full shard)
  int zero = -1;  // as --zero: -1 shards with several ranks
};

struct MemoryPlan {
  // Bytes per category, each allocation rounded as the backend rounds it.
  size_t parameters = 0;       // base weights, LoRA adapters, class head
  size_t gradients = 0;        // the trainable tensors' gradients
  size_t optimizer_state = 0;  // AdamW m and v (this rank's shard under ZeRO-1)
  size_t master_weights = 0;   // fp32 copies of bf16 parameters (this rank's shard)
  size_t activations = 0;      // forward/backward buffers for (B, T), LoRA's and the head's
  size_t reduction_buffers =
      0;                 // data parallel: flat send buffer, shard accumulator, full gradient
  size_t workspace = 0;  // what the backend holds from the start (cuBLASLt workspace)
  size_t peak = 0;       // the largest total live at once during the set-up
  size_t total() const {
    return parameters + gradients + optimizer_state + master_weights + activations +
           reduction_buffers + workspace;
  }
  int64_t num_parameters =
      0;  // every element of every parameter tensor (padded vocabulary rows too)
  int64_t trainable_parameters = 0;
  bool zero = false;
  int64_t flat_elements = 0;   // trainable elements in the data-parallel flat space
  int64_t shard_elements = 0;  // elements this rank updates
};

// Throws std::invalid_argument for an unknown task or method, a bad shape, B or T.
MemoryPlan plan_memory(const PlanRequest& request);

// The largest micro-batch B (<= limit) whose planned peak fits in budget bytes; 0 when B = 1 does
// not fit. The peak grows with B (activations), so a doubling then bisection search finds it.
int largest_fitting_batch(PlanRequest request, size_t budget, int limit = 1 << 16);

// The time side of a plan: how many tokens, and how fast (gpt-plan --tokens, --steps,
// --total-batch-tokens, --tokens-per-s, --mfu, --peak-tflops).
struct TimeRequest {
  std::optional<double> tokens;            // training tokens; unset: steps x the global batch
  long steps = 0;                          // optimizer steps (for tokens unset)
  long total_batch_tokens = 0;             // the global batch in tokens (0: B x T x ranks)
  std::optional<double> tokens_per_s;      // the throughput of the whole job, or ...
  std::optional<double> mfu, peak_tflops;  // ... model FLOPs utilisation and one device's peak
};

// Throws std::invalid_argument naming the flag: a rate or count that is not positive, an MFU
// outside (0, 1], --mfu without --peak-tflops (or the reverse), or both kinds of rate.
void check_time_request(const TimeRequest& request);

struct TimeEstimate {
  double flops_per_token = 0.0;  // training: 6 x matmul parameters + the attention's
  double tokens = 0.0;           // 0 when neither tokens nor steps are known
  double tokens_per_s = 0.0;     // 0 when no rate was given
  double seconds = 0.0;          // tokens / tokens_per_s; 0 when either is unknown
};

// The training FLOPs per token of the run's model at its T, and the time of `time.tokens` (else
// steps x the global batch) at the given rate; with MFU, the rate is world_size x mfu x peak /
// FLOPs per token.
TimeEstimate estimate_time(const PlanRequest& run, const TimeRequest& time);

// "80GB", "80 GiB", "512MiB", "1.5TB" (k/M/G/T: powers of 1000; Ki/Mi/Gi/Ti: of 1024; B optional
// after a prefix, a bare number is refused). Throws std::invalid_argument naming `flag`.
size_t parse_byte_size(const std::string& text, const std::string& flag);

}  // namespace gpt
