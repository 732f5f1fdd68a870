// The whole model on the CUDA backend, GPT-2 and the Llama family (models/gpt.h). Skipped where no
// CUDA device is usable. Each check runs for GPT-2 (the plain name) and for the Llama family (the
// name with Llama: grouped-query attention with a head size unlike n_embd / n_head, q/k/v biases
// and an untied output layer; and multi-query attention with a tied one).
//
//   Fp32MatchesCpu          fp32 GPU against the CPU backend from identical weights and batches:
//                           logits, loss, every parameter gradient, then ten AdamW steps.
//   Bf16TracksFp32          bf16 training follows fp32 training on learnable data: the mean train
//                           loss over the last quarter of the steps within 0.03 nats.
//   RunsAreBitwiseIdentical two identical runs (bf16 and fp32) give identical bits.
//   ShorterRowsThanAllocated rows shorter than the model's allocation (fine-tuning trims each
//                           batch to its longest example): fp32 matches the CPU at several T, and
//                           bf16 with the fused attention matches a model allocated for exactly
//                           that T.
//   LlamaKvCacheMatchesCpu  generation: prefill and then decode, one token at a time with the KV
//                           cache, give the CPU's logits, and the full forward's.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/optimizer.h"
#include "engine/rng.h"
#include "models/gpt.h"

namespace gpt {
namespace {

// fp32 tolerance of reductions and matmuls (tests/test_cuda_ops.cpp), for outputs and gradients
// of the whole model.
constexpr double kFp32Tol = 1e-4;
// After ten AdamW steps: Adam's first updates are lr·sign(g) for each element, so an element whose
// gradient is zero up to rounding can step the other way; such rare elements move a tensor's
// relative error by ~1e-4, so the parameters get ten times the margin of the losses.
constexpr double kAfterStepsTol = 1e-3;

double rel_error(const std::vector<float>& a, const std::vector<float>& ref) {
  if (a.size() != ref.size()) return std::numeric_limits<double>::infinity();
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) || std::isnan(ref[i])) return std::numeric_limits<double>::infinity();
    diff += (static_cast<double>(a[i]) - ref[i]) * (static_cast<double>(a[i]) - ref[i]);
    norm += static_cast<double>(ref[i]) * ref[i];
  }
  return norm > 0.0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

std::vector<float> to_host(Backend& backend, const Tensor& t) {
  std::vector<float> v(static_cast<size_t>(t.numel()));
  backend.download_f32(v.data(), t);
  return v;
}

GptConfig small_config() {
  GptConfig c;
  c.n_layer = 2;
  c.n_head = 4;
  c.n_embd = 64;  // head size 16: a multiple of the kernels' packets
  c.max_seq_len = 32;
  c.vocab_size = 300;  // padded to 384: the padded columns are exercised
  return c;
}

// The Llama family at the same size: 4 query heads on 2 key/value heads, a head size (32) unlike
// n_embd / n_head (16), q/k/v biases, an untied output layer.
GptConfig llama_config() {
  GptConfig c = small_config();
  c.family = "llama";
  c.n_kv_head = 2;
  c.head_dim = 32;
  c.mlp_hidden = 96;
  c.qkv_bias = true;
  c.tied_head = false;
  c.rope_theta = 10000.0;
  c.norm_eps = 1e-5;
  return c;
}

// Multi-query attention (one key/value head) with the head size n_embd / n_head (16), no biases,
// the output layer tied to the token embedding.
GptConfig llama_mqa_config() {
  GptConfig c = llama_config();
  c.n_kv_head = 1;
  c.head_dim = 0;
  c.qkv_bias = false;
  c.tied_head = true;
  c.rope_theta = 500000.0;
  c.norm_eps = 1e-6;
  return c;
}

// Random weights larger than the init, so that every path (biases, the norms' weights, sharp
// attention and so RoPE's angles) carries signal; the same host values go to both backends.
void randomize(GptModel& model, uint64_t seed, double scale) {
  Rng rng(seed);
  for (int pi = 0; pi < kNumParams; ++pi) {
    const Param p = static_cast<Param>(pi);
    Tensor t = model.param(p);
    std::vector<float> host(static_cast<size_t>(t.numel()));
    for (auto& x : host) x = static_cast<float>(rng.normal() * scale);
    if (param_spec(p).init == ParamInit::ones)  // the norms' weights
      for (auto& x : host) x += 1.0f;
    model.backend().upload_f32(t, host.data());
  }
}

void random_batch(Rng& rng, int n, int vocab, double mask_fraction, std::vector<int32_t>& tokens,
                  std::vector<int32_t>& targets) {
  tokens.resize(n);
  targets.resize(n);
  for (int i = 0; i < n; ++i) {
    tokens[i] = static_cast<int32_t>(rng.below(vocab));
    targets[i] = rng.uniform() < mask_fraction ? -1 : static_cast<int32_t>(rng.below(vocab));
  }
}

class CudaModel : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda_available()) GTEST_SKIP() << "no usable CUDA device";
  }
};

void expect_fp32_matches_cpu(const GptConfig& cfg) {
  auto cpu = make_backend("cpu", DType::f32);
  auto gpu = make_backend("cuda", DType::f32);
  const int B = 4, T = 32, n = B * T;
  GptModel cpu_model(cfg, *cpu, B, T);
  GptModel gpu_model(cfg, *gpu, B, T);
  randomize(cpu_model, 5, 0.1);
  randomize(gpu_model, 5, 0.1);
  Rng rng(9);
  std::vector<int32_t> tokens, targets;
  random_batch(rng, n, cfg.vocab_size, 0.1, tokens, targets);
  int count = 0;
  for (int32_t t : targets) count += t >= 0;
  ASSERT_GT(count, 0);

  // Logits and loss.
  const double cpu_loss = cpu_model.forward(tokens.data(), targets.data(), B, T);
  const double gpu_loss = gpu_model.forward(tokens.data(), targets.data(), B, T);
  EXPECT_LT(std::abs(gpu_loss - cpu_loss) / std::abs(cpu_loss), kFp32Tol);
  EXPECT_LT(rel_error(gpu_model.logits_to_host(B, T), cpu_model.logits_to_host(B, T)), kFp32Tol);

  // Every gradient.
  cpu_model.zero_grad();
  gpu_model.zero_grad();
  const float dloss = 1.0f / count;
  cpu_model.forward_backward(tokens.data(), targets.data(), B, T, dloss);
  gpu_model.forward_backward(tokens.data(), targets.data(), B, T, dloss);
  for (int pi = 0; pi < kNumParams; ++pi) {
    const Param p = static_cast<Param>(pi);
    if (!cpu_model.has_param(p)) continue;
    EXPECT_LT(rel_error(to_host(*gpu, gpu_model.grad(p)), to_host(*cpu, cpu_model.grad(p))),
              kFp32Tol)
        << "gradient of " << param_name(p);
  }

  // Ten AdamW steps on fresh batches.
  AdamW cpu_opt(*cpu, cpu_model.parameters(), AdamWConfig{});
  AdamW gpu_opt(*gpu, gpu_model.parameters(), AdamWConfig{});
  for (int step = 0; step < 10; ++step) {
    random_batch(rng, n, cfg.vocab_size, 0.1, tokens, targets);
    count = 0;
    for (int32_t t : targets) count += t >= 0;
    ASSERT_GT(count, 0);
    cpu_model.zero_grad();
    gpu_model.zero_grad();
    const double cl = cpu_model.forward_backward(tokens.data(), targets.data(), B, T, 1.0f / count);
    const double gl = gpu_model.forward_backward(tokens.data(), targets.data(), B, T, 1.0f / count);
    EXPECT_LT(std::abs(gl - cl) / std::abs(cl), kFp32Tol) << "loss of step " << step;
    const double cn = cpu_opt.step(1e-3f);
    const double gn = gpu_opt.step(1e-3f);
    EXPECT_LT(std::abs(gn - cn) / cn, kFp32Tol) << "gradient norm of step " << step;
  }
  for (int pi = 0; pi < kNumParams; ++pi) {
    const Param p = static_cast<Param>(pi);
    if (!cpu_model.has_param(p)) continue;
    std::vector<float> g = to_host(*gpu, gpu_model.param(p));
    std::vector<float> c = to_host(*cpu, cpu_model.param(p));
    if (p == Param::qkv_b && !cfg.llama()) {
      // The key bias's gradient is zero in exact arithmetic (a bias added to every key shifts a
      // query's scores alike, and softmax ignores the shift), so each side's gradient there is
      // rounding noise that AdamW, dividing by its own magnitude, turns into steps of up to about
      // lr. The two sides may walk apart by at most that much; the rest must agree closely. (In
      // the Llama family RoPE turns the key bias by each key's own angle: a real gradient.)
      const size_t W = static_cast<size_t>(cfg.qkv_width());
      const size_t k_begin = static_cast<size_t>(cfg.attn_width());
      const size_t k_end = k_begin + static_cast<size_t>(cfg.kv_heads()) * cfg.head_size();
      std::vector<float> g_rest, c_rest;
      double key_walk = 0.0;
      for (size_t i = 0; i < g.size(); ++i) {
        if (i % W >= k_begin && i % W < k_end) {
          key_walk = std::max(key_walk, std::abs(static_cast<double>(g[i]) - c[i]));
        } else {
          g_rest.push_back(g[i]);
          c_rest.push_back(c[i]);
        }
      }
      EXPECT_LE(key_walk, 2 * 10 * 1e-3) << "key bias after ten steps";
      g.swap(g_rest);
      c.swap(c_rest);
    }
    EXPECT_LT(rel_error(g, c), kAfterStepsTol)
        << "parameter " << param_name(p) << " after ten steps";
  }
}

TEST_F(CudaModel, Fp32MatchesCpu) {
  expect_fp32_matches_cpu(small_config());
}

TEST_F(CudaModel, LlamaFp32MatchesCpu) {
  {
    SCOPED_TRACE("grouped-query attention, q/k/v biases, untied head");
    expect_fp32_matches_cpu(llama_config());
  }
  {
    SCOPED_TRACE("multi-query attention, tied head");
    expect_fp32_matches_cpu(llama_mqa_config());
  }
}

// Learnable but not trivial data: a Markov chain over the vocabulary whose next token is one of
// four successors of the current one, chosen uniformly, so the best achievable loss is ln 4.
void markov_batch(uint64_t seed, int n, int vocab, std::vector<int32_t>& tokens,
                  std::vector<int32_t>& targets) {
  Rng rng(seed);
  std::vector<int32_t> stream(static_cast<size_t>(n) + 1);
  stream[0] = static_cast<int32_t>(rng.below(vocab));
  for (int i = 1; i <= n; ++i) {
    stream[i] =
        static_cast<int32_t>((stream[i - 1] * 7 + 3 + 11 * static_cast<int>(rng.below(4))) % vocab);
  }
  tokens.assign(stream.begin(), stream.end() - 1);
  targets.assign(stream.begin() + 1, stream.end());
}

// A training run's model and batch shape.
struct TrainSetup {
  GptConfig cfg;
  int B, T;
};

TrainSetup gpt2_training() {
  GptConfig cfg;
  cfg.n_layer = 2;
  cfg.n_head = 4;
  cfg.n_embd = 128;
  cfg.max_seq_len = 64;
  cfg.vocab_size = 64;
  return {cfg, 8, 64};
}

// Smaller than GPT-2's (a quarter of the tokens a step), to keep the emulated runs short.
TrainSetup llama_training() {
  GptConfig cfg = llama_config();
  cfg.max_seq_len = 32;
  cfg.vocab_size = 64;
  cfg.mlp_hidden = 128;
  return {cfg, 4, 32};
}

struct TrainResult {
  std::vector<double> losses;
  std::vector<std::vector<uint8_t>> param_bytes;  // raw device bytes of every parameter
};

TrainResult train(const TrainSetup& setup, DType dtype, int steps) {
  auto backend = make_backend("cuda", dtype);
  const GptConfig& cfg = setup.cfg;
  const int B = setup.B, T = setup.T, n = B * T;
  GptModel model(cfg, *backend, B, T);
  model.init_weights(42);
  AdamW opt(*backend, model.parameters(), AdamWConfig{});
  TrainResult result;
  std::vector<int32_t> tokens, targets;
  for (int step = 0; step < steps; ++step) {
    markov_batch(1000 + step, n, cfg.vocab_size, tokens, targets);
    model.zero_grad();
    const double loss = model.forward_backward(tokens.data(), targets.data(), B, T, 1.0f / n) / n;
    opt.step(learning_rate(step, steps, 20, 3e-3f, 3e-4f));
    result.losses.push_back(loss);
  }
  for (int pi = 0; pi < kNumParams; ++pi) {
    const Tensor t = model.param(static_cast<Param>(pi));
    std::vector<uint8_t> bytes(t.bytes());
    backend->copy_to_host(bytes.data(), t.data, bytes.size());
    result.param_bytes.push_back(std::move(bytes));
  }
  return result;
}

double mean_loss(const std::vector<double>& losses, int begin, int end) {
  double sum = 0.0;
  for (int i = begin; i < end; ++i) sum += losses[i];
  return sum / (end - begin);
}

// GPT_TEST_SHAPES=small (the runs under the CPU emulation of CUDA, about a second per step):
// fewer training steps; the checks stay the same.
bool small_shapes() {
  const char* shapes = std::getenv("GPT_TEST_SHAPES");
  return shapes != nullptr && std::string(shapes) == "small";
}

void expect_bf16_tracks_fp32(const TrainSetup& setup, int steps) {
  const TrainResult fp32 = train(setup, DType::f32, steps);
  const TrainResult bf16 = train(setup, DType::bf16, steps);
  const double fp32_loss = mean_loss(fp32.losses, steps * 3 / 4, steps);
  const double bf16_loss = mean_loss(bf16.losses, steps * 3 / 4, steps);
  std::printf("%s: mean train loss over steps %d-%d: fp32 %.4f, bf16 %.4f (floor ln 4 = %.4f)\n",
              setup.cfg.family.c_str(), steps * 3 / 4, steps, fp32_loss, bf16_loss, std::log(4.0));
  EXPECT_LT(fp32_loss, 0.5 * fp32.losses.front()) << "the data must be learnable";
  EXPECT_LT(std::abs(bf16_loss - fp32_loss), 0.03);
}

TEST_F(CudaModel, Bf16TracksFp32) {
  expect_bf16_tracks_fp32(gpt2_training(), small_shapes() ? 100 : 200);
}

TEST_F(CudaModel, LlamaBf16TracksFp32) {
  expect_bf16_tracks_fp32(llama_training(), small_shapes() ? 100 : 200);
}

void expect_runs_bitwise_identical(const TrainSetup& setup) {
  for (DType dtype : {DType::bf16, DType::f32}) {
    const int steps = small_shapes() ? 5 : 15;
    const TrainResult a = train(setup, dtype, steps);
    const TrainResult b = train(setup, dtype, steps);
    ASSERT_EQ(a.losses.size(), b.losses.size());
    for (size_t i = 0; i < a.losses.size(); ++i) {
      EXPECT_EQ(std::memcmp(&a.losses[i], &b.losses[i], sizeof(double)), 0)
          << dtype_name(dtype) << " loss of step " << i;
    }
    for (int pi = 0; pi < kNumParams; ++pi) {
      EXPECT_TRUE(a.param_bytes[pi] == b.param_bytes[pi])
          << dtype_name(dtype) << " parameter " << param_name(static_cast<Param>(pi));
    }
  }
}

TEST_F(CudaModel, RunsAreBitwiseIdentical) {
  expect_runs_bitwise_identical(gpt2_training());
}

TEST_F(CudaModel, LlamaRunsAreBitwiseIdentical) {
  expect_runs_bitwise_identical(llama_training());
}

// fp32 against the CPU, one model allocated for (4, 32) run at T = 5, 17, 32, 9.
void expect_shorter_rows_match_cpu(const GptConfig& cfg) {
  auto cpu = make_backend("cpu", DType::f32);
  auto gpu = make_backend("cuda", DType::f32);
  const int B = 4, Tmax = 32;
  GptModel cpu_model(cfg, *cpu, B, Tmax);
  GptModel gpu_model(cfg, *gpu, B, Tmax);
  randomize(cpu_model, 15, 0.1);
  randomize(gpu_model, 15, 0.1);
  Rng rng(19);
  for (int T : {5, 17, 32, 9}) {
    std::vector<int32_t> tokens, targets;
    random_batch(rng, B * T, cfg.vocab_size, 0.1, tokens, targets);
    cpu_model.zero_grad();
    gpu_model.zero_grad();
    const double cl = cpu_model.forward_backward(tokens.data(), targets.data(), B, T, 0.01f);
    const double gl = gpu_model.forward_backward(tokens.data(), targets.data(), B, T, 0.01f);
    EXPECT_LT(std::abs(gl - cl) / std::abs(cl), kFp32Tol) << "loss at T = " << T;
    for (int pi = 0; pi < kNumParams; ++pi) {
      const Param p = static_cast<Param>(pi);
      if (!cpu_model.has_param(p)) continue;
      EXPECT_LT(rel_error(to_host(*gpu, gpu_model.grad(p)), to_host(*cpu, cpu_model.grad(p))),
                kFp32Tol)
          << "gradient of " << param_name(p) << " at T = " << T;
    }
  }
}

// bf16, fused attention (head size 64): allocated for (4, 64) vs for exactly (4, T).
void expect_shorter_rows_match_exact_allocation(const GptConfig& cfg, std::initializer_list<int> Ts,
                                                uint64_t seed) {
  const int B = 4;
  Rng rng(seed);
  for (int T : Ts) {
    auto wide_backend = make_backend("cuda", DType::bf16);
    auto exact_backend = make_backend("cuda", DType::bf16);
    wide_backend->set_attention_kernel(AttentionKernel::fused);
    exact_backend->set_attention_kernel(AttentionKernel::fused);
    GptModel wide(cfg, *wide_backend, B, 64);
    GptModel exact(cfg, *exact_backend, B, T);
    wide.init_weights(3);
    exact.init_weights(3);
    std::vector<int32_t> tokens, targets;
    random_batch(rng, B * T, cfg.vocab_size, 0.1, tokens, targets);
    wide.zero_grad();
    exact.zero_grad();
    const double lw = wide.forward_backward(tokens.data(), targets.data(), B, T, 0.01f);
    const double le = exact.forward_backward(tokens.data(), targets.data(), B, T, 0.01f);
    // Same shapes, so the same kernels and normally the same bits; a tolerance rather than bits,
    // because cuBLASLt may pick another algorithm for other pointer alignments. A wrong stride or a
    // read past T gives errors of order one.
    EXPECT_LT(std::abs(lw - le) / std::abs(le), 1e-3) << "bf16 loss at T = " << T;
    bool identical = std::memcmp(&lw, &le, sizeof(double)) == 0;
    for (int pi = 0; pi < kNumParams; ++pi) {
      const Param p = static_cast<Param>(pi);
      if (!wide.has_param(p)) continue;
      const std::vector<float> gw = to_host(*wide_backend, wide.grad(p));
      const std::vector<float> ge = to_host(*exact_backend, exact.grad(p));
      EXPECT_LT(rel_error(gw, ge), 1e-2) << "bf16 gradient of " << param_name(p) << " at T = " << T;
      identical = identical && gw == ge;
    }
    std::printf("%s bf16 fused, T = %d in a (4, 64) model vs a (4, %d) one: %s\n",
                cfg.family.c_str(), T, T,
                identical ? "identical bits" : "within tolerance, not bitwise");
  }
}

TEST_F(CudaModel, ShorterRowsThanAllocated) {
  expect_shorter_rows_match_cpu(small_config());
  GptConfig cfg;
  cfg.n_layer = 2;
  cfg.n_head = 4;
  cfg.n_embd = 256;
  cfg.max_seq_len = 64;
  cfg.vocab_size = 300;
  expect_shorter_rows_match_exact_allocation(cfg, {7, 40}, 23);
}

TEST_F(CudaModel, LlamaShorterRowsThanAllocated) {
  expect_shorter_rows_match_cpu(llama_config());
  // Grouped-query attention in the fused kernel: head size 64 (twice n_embd / n_head).
  GptConfig cfg = llama_config();
  cfg.head_dim = 64;
  cfg.max_seq_len = 64;
  expect_shorter_rows_match_exact_allocation(cfg, {40}, 29);
}

// Generation: the CPU and the GPU (fp32) from the same weights prefill the same prompt and then
// decode the same tokens (the CPU's greedy choices); at every position their next-token logits
// agree, and the GPU's equal its own full forward over the whole sequence.
void expect_kv_cache_matches_cpu(const GptConfig& cfg) {
  auto cpu = make_backend("cpu", DType::f32);
  auto gpu = make_backend("cuda", DType::f32);
  const int B = 2, Tmax = 16, P = 5, Vp = cfg.padded_vocab_size();
  GptModel cpu_model(cfg, *cpu, B, Tmax);
  GptModel gpu_model(cfg, *gpu, B, Tmax);
  randomize(cpu_model, 31, 0.1);
  randomize(gpu_model, 31, 0.1);
  Rng rng(37);
  // The rows' first P tokens are the prompts; the rest is replaced by the decoded tokens.
  std::vector<int32_t> seq, unused, prompt;
  random_batch(rng, B * Tmax, cfg.vocab_size, 0.0, seq, unused);
  for (int b = 0; b < B; ++b)
    prompt.insert(prompt.end(), seq.begin() + b * Tmax, seq.begin() + b * Tmax + P);

  // decoded[pos]: the GPU's logits (B, Vp) for the token after position pos.
  std::vector<std::vector<float>> decoded(Tmax);
  std::vector<float> cpu_logits = cpu_model.prefill(prompt.data(), B, P);
  decoded[P - 1] = gpu_model.prefill(prompt.data(), B, P);
  EXPECT_LT(rel_error(decoded[P - 1], cpu_logits), kFp32Tol) << "prefill";
  for (int pos = P; pos < Tmax; ++pos) {
    std::vector<int32_t> next(B);
    for (int b = 0; b < B; ++b) {
      const float* row = cpu_logits.data() + static_cast<size_t>(b) * Vp;
      next[b] = static_cast<int32_t>(std::max_element(row, row + cfg.vocab_size) - row);
      seq[static_cast<size_t>(b) * Tmax + pos] = next[b];
    }
    cpu_logits = cpu_model.decode(next.data(), B, pos);
    decoded[pos] = gpu_model.decode(next.data(), B, pos);
    EXPECT_LT(rel_error(decoded[pos], cpu_logits), kFp32Tol) << "decode at position " << pos;
  }
  gpu_model.forward(seq.data(), nullptr, B, Tmax);
  const std::vector<float> full = gpu_model.logits_to_host(B, Tmax);
  for (int pos = P - 1; pos < Tmax; ++pos) {
    std::vector<float> at_pos(static_cast<size_t>(B) * Vp);
    for (int b = 0; b < B; ++b)
      std::copy_n(full.begin() + (static_cast<size_t>(b) * Tmax + pos) * Vp, Vp,
                  at_pos.begin() + static_cast<size_t>(b) * Vp);
    EXPECT_LT(rel_error(decoded[pos], at_pos), kFp32Tol) << "full forward at position " << pos;
  }
}

TEST_F(CudaModel, LlamaKvCacheMatchesCpu) {
  {
    SCOPED_TRACE("grouped-query attention, q/k/v biases, untied head");
    expect_kv_cache_matches_cpu(llama_config());
  }
  {
    SCOPED_TRACE("multi-query attention, tied head");
    expect_kv_cache_matches_cpu(llama_mqa_config());
  }
}

}  // namespace
}  // namespace gpt
