// gpt-plan's memory plan against the real allocations: the same set-up on the CPU backend (real
// memory) must reach exactly the bytes the sizing backend counted, category by category; and the
// fine-tuning set-up never holds a full gradient arena it does not need.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "engine/backend.h"
#include "engine/data_parallel.h"
#include "engine/sizing.h"
#include "models/gpt.h"
#include "models/memory_plan.h"

namespace gpt {
namespace {

GptConfig tiny_config() {
  GptConfig c;
  c.n_layer = 3;
  c.n_head = 2;
  c.n_embd = 32;
  c.max_seq_len = 32;
  c.vocab_size = 100;
  return c;
}

PlanRequest cpu_request(const std::string& task, const std::string& method = "lora") {
  PlanRequest r;
  r.model = tiny_config();
  r.task = task;
  r.method.method = method;
  r.method.lora.fc = true;  // three targets: qkv, attproj, fc
  r.method.train_top = 1;
  r.num_classes = 3;
  r.batch = 3;
  r.seq_len = 16;
  r.device = DeviceKind::cpu;
  r.dtype = DType::f32;
  return r;
}

// What gpt-pretrain / gpt-finetune do to set up a run, on a real backend.
struct RealRun {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<GptModel> model;
  std::unique_ptr<SizingCommunicator>
      comm;  // knows its rank; DataParallel's set-up communicates nothing
  std::unique_ptr<DataParallel> dp;
};

RealRun real_setup(const PlanRequest& r) {
  RealRun run;
  run.backend = make_backend("cpu", r.dtype);
  run.model = std::make_unique<GptModel>(r.model, *run.backend, r.batch, r.seq_len);
  run.model->init_weights(7);
  FinetuneMethod m = r.method;
  if (r.task == "pretrain" || r.task == "full") m.method = "full";
  if (r.task == "lora" || r.task == "freeze") m.method = r.task;
  if (r.task == "classify") run.model->enable_class_head(r.num_classes, 7);
  if (m.method == "lora") run.model->enable_lora(m.lora, 7);
  apply_trainable(*run.model, m);
  run.comm = std::make_unique<SizingCommunicator>(r.world_size, r.rank, false);
  run.dp = std::make_unique<DataParallel>(*run.comm, *run.backend, run.model->parameters(),
                                          AdamWConfig{}, zero_enabled(r.zero, r.world_size));
  return run;
}

void expect_plan_matches_real(const PlanRequest& r) {
  const MemoryPlan plan = plan_memory(r);
  RealRun run = real_setup(r);
  // A training step allocates nothing: the peak stays where the set-up left it.
  std::vector<int32_t> tokens(static_cast<size_t>(r.batch) * r.seq_len, 1),
      targets(tokens.size(), -1);
  for (int b = 0; b < r.batch; ++b) targets[static_cast<size_t>(b) * r.seq_len + r.seq_len - 1] = 1;
  run.model->zero_grad();
  run.model->forward_backward(tokens.data(), targets.data(), r.batch, r.seq_len, 1.0f);

  const GptModel::MemoryUse use = run.model->memory_use();
  EXPECT_EQ(plan.parameters, use.parameters);
  EXPECT_EQ(plan.gradients, use.gradients);
  EXPECT_EQ(plan.activations, use.activations);
  EXPECT_EQ(plan.optimizer_state + plan.master_weights,
            allocation_bytes(run.dp->optimizer_bytes()));
  EXPECT_EQ(plan.reduction_buffers,
            run.dp->buffer_bytes() ? allocation_bytes(run.dp->buffer_bytes()) : 0);
  EXPECT_EQ(plan.workspace, 0u);
  EXPECT_EQ(plan.peak, run.backend->peak_bytes()) << "task " << r.task;
  EXPECT_EQ(plan.total(), plan.peak);
  EXPECT_EQ(plan.trainable_parameters, run.model->num_trainable_parameters());
}

TEST(MemoryPlan, PretrainEqualsTheCpuBackendsBytes) {
  expect_plan_matches_real(cpu_request("pretrain"));
}
TEST(MemoryPlan, FullFineTuneEqualsTheCpuBackendsBytes) {
  expect_plan_matches_real(cpu_request("full"));
}
TEST(MemoryPlan, LoraEqualsTheCpuBackendsBytes) {
  expect_plan_matches_real(cpu_request("lora"));
}
TEST(MemoryPlan, FreezeEqualsTheCpuBackendsBytes) {
  expect_plan_matches_real(cpu_request("freeze"));
}
TEST(MemoryPlan, ClassifyEqualsTheCpuBackendsBytes) {
  expect_plan_matches_real(cpu_request("classify", "lora"));
  expect_plan_matches_real(cpu_request("classify", "freeze"));
  expect_plan_matches_real(cpu_request("classify", "full"));
}

TEST(MemoryPlan, ZeroShardsEqualTheCpuBackendsBytes) {
  for (int rank = 0; rank < 3; ++rank) {
    PlanRequest r = cpu_request("pretrain");
    r.world_size = 3;
    r.rank = rank;
    expect_plan_matches_real(r);
    r.zero = 0;
    expect_plan_matches_real(r);
  }
  PlanRequest r = cpu_request("pretrain");
  r.world_size = 4;
  const MemoryPlan sharded = plan_memory(r);
  r.zero = 0;
  const MemoryPlan full = plan_memory(r);
  EXPECT_TRUE(sharded.zero);
  EXPECT_FALSE(full.zero);
  EXPECT_LT(sharded.optimizer_state * 3, full.optimizer_state);  // about a quarter
}

// The categories are what they say: parameters are the tensors' bytes (plus alignment), the
// optimizer keeps m and v per trainable element, bf16 on CUDA adds fp32 master weights.
TEST(MemoryPlan, CategoriesHaveTheExpectedSizes) {
  PlanRequest r = cpu_request("pretrain");
  const MemoryPlan p = plan_memory(r);
  const size_t param_bytes = static_cast<size_t>(p.num_parameters) * 4;
  EXPECT_GE(p.parameters, param_bytes);
  EXPECT_LT(p.parameters, param_bytes + 16 * 256 + 256);  // 16 tensors, each 256-aligned
  EXPECT_EQ(p.gradients, p.parameters);
  EXPECT_GE(p.optimizer_state, 2 * param_bytes);
  EXPECT_EQ(p.master_weights, 0u);

  r.device = DeviceKind::cuda;
  r.dtype = DType::bf16;
  const MemoryPlan g = plan_memory(r);
  EXPECT_EQ(g.workspace, kCudaMatmulWorkspaceBytes);
  EXPECT_EQ(g.reduction_buffers, 0u);  // one GPU: the optimizer works on the model's gradients
  EXPECT_LT(g.parameters, p.parameters * 6 / 10);  // bf16: about half
  EXPECT_EQ(g.master_weights, static_cast<size_t>(p.num_parameters) * 4);
  EXPECT_GE(g.optimizer_state, p.optimizer_state);  // m, v stay fp32 (plus the masters' alignment)
  EXPECT_LT(g.optimizer_state, p.optimizer_state + 16 * 256);
}

// Before, a LoRA set-up first allocated the full gradient arena at construction and dropped it
// later; now gradients exist only for what trains, so nothing transient raises the peak above
// what the run holds.
TEST(MemoryPlan, LoraNeverHoldsTheFullGradientArena) {
  const PlanRequest r = cpu_request("lora");
  RealRun run = real_setup(r);
  const GptModel::MemoryUse use = run.model->memory_use();
  const size_t held = use.parameters + use.gradients + use.activations +
                      allocation_bytes(run.dp->optimizer_bytes()) +
                      allocation_bytes(run.dp->buffer_bytes());
  EXPECT_EQ(run.backend->peak_bytes(), held);
  const MemoryPlan pretrain = plan_memory(cpu_request("pretrain"));
  EXPECT_LT(use.gradients * 4, pretrain.gradients);
  auto backend = make_backend("cpu", DType::f32);
  GptModel model(r.model, *backend, r.batch, r.seq_len);  // as gpt-eval and gpt-generate build it
  EXPECT_EQ(model.memory_use().gradients, 0u);
  EXPECT_EQ(backend->peak_bytes(), model.memory_use().parameters + model.memory_use().activations);
}

TEST(MemoryPlan, LargestBatchIsTheLastThatFits) {
  PlanRequest r = cpu_request("pretrain");
  r.batch = 1;
  const size_t budget = plan_memory(r).peak * 5;
  const int b = largest_fitting_batch(r, budget);
  ASSERT_GT(b, 1);
  r.batch = b;
  EXPECT_LE(plan_memory(r).peak, budget);
  r.batch = b + 1;
  EXPECT_GT(plan_memory(r).peak, budget);
  r.batch = 1;
  EXPECT_EQ(largest_fitting_batch(r, 1000), 0);
  EXPECT_EQ(largest_fitting_batch(r, size_t{1} << 60, 100), 100);
}

TEST(MemoryPlan, RejectsBadRequests) {
  PlanRequest r = cpu_request("pretrain");
  r.task = "distill";
  EXPECT_THROW(plan_memory(r), std::invalid_argument);
  r = cpu_request("pretrain");
  r.batch = 0;
  EXPECT_THROW(plan_memory(r), std::invalid_argument);
  r = cpu_request("pretrain");
  r.seq_len = 33;  // beyond max_seq_len
  EXPECT_THROW(plan_memory(r), std::invalid_argument);
  r = cpu_request("pretrain");
  r.dtype = DType::bf16;  // the CPU backend has no bf16
  EXPECT_THROW(plan_memory(r), std::invalid_argument);
}

TEST(MemoryPlan, ParsesByteSizes) {
  EXPECT_EQ(parse_byte_size("80GB", "--m"), 80'000'000'000u);
  EXPECT_EQ(parse_byte_size("80 GiB", "--m"), size_t{80} << 30);
  EXPECT_EQ(parse_byte_size("512MiB", "--m"), size_t{512} << 20);
  EXPECT_EQ(parse_byte_size("1.5tb", "--m"), 1'500'000'000'000u);
  EXPECT_EQ(parse_byte_size("24G", "--m"), 24'000'000'000u);
  EXPECT_EQ(parse_byte_size("4096B", "--m"), 4096u);
  for (const char* bad : {"80", "GB", "-1GB", "80XB", "nanGB", "", "0GB"}) {
    try {
      parse_byte_size(bad, "--device-memory");
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("--device-memory"), std::string::npos) << e.what();
    }
  }
}

TEST(MemoryPlan, EstimatesTime) {
  PlanRequest r = cpu_request("pretrain");
  r.world_size = 2;
  const double flops = r.model.flops_per_token(r.seq_len);
  TimeRequest t;
  t.steps = 10;  // the global batch: B x T x ranks = 3 x 16 x 2
  TimeEstimate e = estimate_time(r, t);
  EXPECT_EQ(e.flops_per_token, flops);
  EXPECT_EQ(e.tokens, 960.0);
  EXPECT_EQ(e.seconds, 0.0);  // no rate given
  t.total_batch_tokens = 1000;
  t.tokens_per_s = 100.0;
  e = estimate_time(r, t);
  EXPECT_EQ(e.tokens, 10000.0);
  EXPECT_EQ(e.seconds, 100.0);
  t.tokens = 5e6;  // over the steps
  t.tokens_per_s.reset();
  t.mfu = 0.5;
  t.peak_tflops = 1.0;
  e = estimate_time(r, t);
  EXPECT_EQ(e.tokens_per_s, 2 * 0.5 * 1e12 / flops);
  EXPECT_EQ(e.seconds, 5e6 / e.tokens_per_s);
}

TEST(MemoryPlan, RefusesBadTimeRequests) {
  auto refused = [](const TimeRequest& t, const std::string& flag) {
    try {
      check_time_request(t);
      ADD_FAILURE() << "accepted a bad " << flag;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(flag), std::string::npos) << e.what();
    }
  };
  TimeRequest t;
  t.tokens = 0.0;
  refused(t, "--tokens");
  t = TimeRequest{};
  t.mfu = 1.5;
  t.peak_tflops = 100.0;
  refused(t, "--mfu");
  t.mfu = 0.5;
  t.peak_tflops.reset();
  refused(t, "--peak-tflops");
  t.peak_tflops = 100.0;
  t.tokens_per_s = 1e5;
  refused(t, "--tokens-per-s");
  EXPECT_THROW(estimate_time(cpu_request("pretrain"), t), std::invalid_argument);
}

}  // namespace
}  // namespace gpt
