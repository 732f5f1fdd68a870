// Every op of the CUDA backend against the CPU backend (the reference), in fp32 mode and in bf16
// mode. Skipped where no CUDA device is usable.
//
// Each check draws fresh random inputs, gives the CPU exactly the values the GPU holds (bf16 inputs
// are rounded once on upload and read back, so the comparison measures the kernel, not the input
// quantisation), poisons outputs with NaN before the kernel runs (an unwritten element fails) and
// pre-fills accumulated gradients with random values (an overwrite instead of += fails). Tolerances
// come from the dtype: relative error ‖gpu − cpu‖ / ‖cpu‖ below 1e-5 for elementwise ops and 1e-4
// for reductions and matmuls in fp32; 1e-2 in bf16.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <ostream>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "engine/backend.h"
#include "engine/cuda_backend.h"
#include "kernels/crossentropy.h"
#include "kernels/rope.h"

namespace gpt {

// How GoogleTest prints the dtype parameter.
void PrintTo(DType dtype, std::ostream* os) {
  *os << dtype_name(dtype);
}

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

struct Tolerance {
  double elementwise;
  double reduction;
};

Tolerance tolerance_for(DType dtype) {
  return dtype == DType::f32 ? Tolerance{1e-5, 1e-4} : Tolerance{1e-2, 1e-2};
}

// ‖a − ref‖ / ‖ref‖ (‖a‖ when ref is zero); infinity on a NaN or a size mismatch.
double rel_error(const std::vector<float>& a, const std::vector<float>& ref) {
  if (a.size() != ref.size()) return std::numeric_limits<double>::infinity();
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) || std::isnan(ref[i])) return std::numeric_limits<double>::infinity();
    const double d = static_cast<double>(a[i]) - ref[i];
    diff += d * d;
    norm += static_cast<double>(ref[i]) * ref[i];
  }
  return norm > 0.0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

std::vector<float> random_values(size_t n, std::mt19937_64& rng, float scale = 1.0f) {
  std::uniform_real_distribution<float> dist(-scale, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// One allocation of a backend, released on destruction. A guard of known bytes follows the
// tensor inside the same allocation: the backend rounds allocations up, so a kernel that writes a
// few elements past the end stays inside it and only the guard shows the fault.
class Buffer {
 public:
  static constexpr size_t kGuardBytes = 64;
  static constexpr unsigned char kGuardByte = 0x5A;

  Buffer(Backend& backend, DType dtype, Shape shape)
      : backend_(&backend), bytes_(static_cast<size_t>(shape.numel()) * dtype_size(dtype)) {
    tensor_ = Tensor(backend.allocate(bytes_ + kGuardBytes), dtype, shape);
    const std::vector<unsigned char> guard(kGuardBytes, kGuardByte);
    backend.copy_from_host(guard_address(), guard.data(), kGuardBytes);
  }
  ~Buffer() { backend_->release(tensor_.data); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  const Tensor& tensor() const { return tensor_; }

  // True while nothing has written past the tensor's last element.
  bool guard_intact() const {
    std::vector<unsigned char> guard(kGuardBytes);
    backend_->copy_to_host(guard.data(), guard_address(), kGuardBytes);
    for (unsigned char b : guard) {
      if (b != kGuardByte) return false;
    }
    return true;
  }

 private:
  void* guard_address() const { return static_cast<char*>(tensor_.data) + bytes_; }

  Backend* backend_;
  size_t bytes_;
  Tensor tensor_;
};

// What a pair holds: compute-dtype values, statistics (f32 on both) or int32 indices.
enum class Kind { compute, stat, index };

// The same logical tensor on the CPU (f32 / i32) and on the GPU (compute dtype / f32 / i32).
class Pair {
 public:
  Pair(Backend& cpu, Backend& gpu, Kind kind, Shape shape)
      : gpu_backend_(&gpu),
        cpu_backend_(&cpu),
        kind_(kind),
        cpu_(cpu, kind == Kind::index ? DType::i32 : DType::f32, shape),
        gpu_(gpu,
             kind == Kind::index  ? DType::i32
             : kind == Kind::stat ? DType::f32
                                  : gpu.dtype(),
             shape) {}

  const Tensor& cpu() const { return cpu_.tensor(); }
  const Tensor& gpu() const { return gpu_.tensor(); }
  size_t size() const { return static_cast<size_t>(cpu_.tensor().numel()); }

  // Uploads to the GPU, reads back what the GPU holds (bf16-rounded) and gives the CPU the same.
  void set(const std::vector<float>& values) {
    ASSERT_EQ(values.size(), size());
    gpu_backend_->upload_f32(gpu(), values.data());
    const std::vector<float> held = gpu_values();
    cpu_backend_->upload_f32(cpu(), held.data());
  }
  void set_indices(const std::vector<int32_t>& values) {
    ASSERT_EQ(kind_, Kind::index);
    ASSERT_EQ(values.size(), size());
    gpu_backend_->copy_from_host(gpu().data, values.data(), values.size() * sizeof(int32_t));
    cpu_backend_->copy_from_host(cpu().data, values.data(), values.size() * sizeof(int32_t));
  }
  void randomize(std::mt19937_64& rng, float scale = 1.0f) {
    set(random_values(size(), rng, scale));
  }
  void poison() {
    const std::vector<float> nan(size(), kNaN);
    gpu_backend_->upload_f32(gpu(), nan.data());
    cpu_backend_->upload_f32(cpu(), nan.data());
  }
  std::vector<float> gpu_values() const {
    std::vector<float> v(size());
    gpu_backend_->download_f32(v.data(), gpu());
    return v;
  }
  std::vector<float> cpu_values() const {
    std::vector<float> v(size());
    cpu_backend_->download_f32(v.data(), cpu());
    return v;
  }
  // The relative error of the GPU's values against the CPU's; also fails the test when the GPU
  // kernel wrote past the end of the tensor.
  double error() const {
    EXPECT_TRUE(gpu_.guard_intact()) << "a kernel wrote past the end of a tensor";
    return rel_error(gpu_values(), cpu_values());
  }

 private:
  Backend* gpu_backend_;
  Backend* cpu_backend_;
  Kind kind_;
  Buffer cpu_;
  Buffer gpu_;
};

class CudaOps : public ::testing::TestWithParam<DType> {
 protected:
  void SetUp() override {
    if (!cuda_available()) GTEST_SKIP() << "no usable CUDA device";
    cpu_ = make_backend("cpu", DType::f32);
    gpu_ = std::make_unique<CudaBackend>(GetParam());
    tol_ = tolerance_for(GetParam());
  }
  std::unique_ptr<Pair> make(Kind kind, Shape shape) {
    return std::make_unique<Pair>(*cpu_, *gpu_, kind, shape);
  }

  std::unique_ptr<Backend> cpu_;
  std::unique_ptr<CudaBackend> gpu_;
  Tolerance tol_{};
  std::mt19937_64 rng_{20240611};
};

std::vector<int32_t> random_indices(size_t n, int32_t bound, std::mt19937_64& rng) {
  std::uniform_int_distribution<int32_t> dist(0, bound - 1);
  std::vector<int32_t> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// ------------------------------------------------------------------------------------------------

TEST_P(CudaOps, EncoderForward) {
  const int B = 3, T = 40, C = 96, V = 50, Vp = 64, maxT = 64;
  auto tokens = make(Kind::index, {B, T});
  auto wte = make(Kind::compute, {Vp, C});
  auto wpe = make(Kind::compute, {maxT, C});
  auto out = make(Kind::compute, {B, T, C});
  tokens->set_indices(random_indices(B * T, V, rng_));
  wte->randomize(rng_);
  wpe->randomize(rng_);
  out->poison();
  cpu_->encoder_forward(out->cpu(), tokens->cpu(), wte->cpu(), wpe->cpu());
  gpu_->encoder_forward(out->gpu(), tokens->gpu(), wte->gpu(), wpe->gpu());
  EXPECT_LT(out->error(), tol_.elementwise);
}

// Tokens from a tiny vocabulary, one of them frequent: long runs of equal tokens (longer than a
// block, so the run-end search takes several windows) and rows hit many times.
TEST_P(CudaOps, EncoderBackwardAllTableCombinations) {
  const int B = 6, T = 100, C = 136, Vp = 16, maxT = 128;
  std::vector<int32_t> ids(B * T);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (auto& id : ids) id = u(rng_) < 0.6 ? 3 : static_cast<int32_t>(u(rng_) * 11);
  enum class Tables { both, wte_only, wpe_only };
  for (Tables tables : {Tables::both, Tables::wte_only, Tables::wpe_only}) {
    auto tokens = make(Kind::index, {B, T});
    auto dout = make(Kind::compute, {B, T, C});
    auto dwte = make(Kind::compute, {Vp, C});
    auto dwpe = make(Kind::compute, {maxT, C});
    tokens->set_indices(ids);
    dout->randomize(rng_);
    dwte->randomize(rng_);  // accumulated into
    dwpe->randomize(rng_);
    const bool with_wte = tables != Tables::wpe_only, with_wpe = tables != Tables::wte_only;
    cpu_->encoder_backward(with_wte ? dwte->cpu() : Tensor(), with_wpe ? dwpe->cpu() : Tensor(),
                           dout->cpu(), tokens->cpu());
    gpu_->encoder_backward(with_wte ? dwte->gpu() : Tensor(), with_wpe ? dwpe->gpu() : Tensor(),
                           dout->gpu(), tokens->gpu());
    EXPECT_LT(dwte->error(), tol_.reduction) << "tables " << static_cast<int>(tables);
    EXPECT_LT(dwpe->error(), tol_.reduction) << "tables " << static_cast<int>(tables);
  }
}

TEST_P(CudaOps, LayerNormForward) {
  const int N = 70, C = 264;  // rows not a multiple of the warps per block, C not of 32 packets
  auto inp = make(Kind::compute, {N, C});
  auto out = make(Kind::compute, {N, C});
  auto weight = make(Kind::compute, {C});
  auto bias = make(Kind::compute, {C});
  auto mean = make(Kind::stat, {N});
  auto rstd = make(Kind::stat, {N});
  std::vector<float> x = random_values(static_cast<size_t>(N) * C, rng_, 2.0f);
  for (float& v : x) v += 0.5f;  // a non-zero mean
  inp->set(x);
  weight->randomize(rng_);
  bias->randomize(rng_);
  out->poison();
  mean->poison();
  rstd->poison();
  cpu_->layernorm_forward(out->cpu(), mean->cpu(), rstd->cpu(), inp->cpu(), weight->cpu(),
                          bias->cpu());
  gpu_->layernorm_forward(out->gpu(), mean->gpu(), rstd->gpu(), inp->gpu(), weight->gpu(),
                          bias->gpu());
  EXPECT_LT(out->error(), tol_.reduction);
  EXPECT_LT(mean->error(), tol_.reduction);
  EXPECT_LT(rstd->error(), tol_.reduction);
}

TEST_P(CudaOps, LayerNormBackwardWithAndWithoutParameterGradients) {
  const int N = 300, C = 264;  // several row chunks of the parameter-gradient reduction
  for (bool with_params : {true, false}) {
    auto inp = make(Kind::compute, {N, C});
    auto dout = make(Kind::compute, {N, C});
    auto weight = make(Kind::compute, {C});
    auto mean = make(Kind::stat, {N});
    auto rstd = make(Kind::stat, {N});
    auto dinp = make(Kind::compute, {N, C});
    auto dweight = make(Kind::compute, {C});
    auto dbias = make(Kind::compute, {C});
    auto scratch_out = make(Kind::compute, {N, C});
    auto bias = make(Kind::compute, {C});
    inp->randomize(rng_, 2.0f);
    dout->randomize(rng_);
    weight->randomize(rng_);
    bias->randomize(rng_);
    // mean and rstd from the CPU forward, given to both
    cpu_->layernorm_forward(scratch_out->cpu(), mean->cpu(), rstd->cpu(), inp->cpu(), weight->cpu(),
                            bias->cpu());
    mean->set(mean->cpu_values());
    rstd->set(rstd->cpu_values());
    dinp->randomize(rng_);  // accumulated into
    dweight->randomize(rng_);
    dbias->randomize(rng_);
    cpu_->layernorm_backward(dinp->cpu(), with_params ? dweight->cpu() : Tensor(),
                             with_params ? dbias->cpu() : Tensor(), dout->cpu(), inp->cpu(),
                             weight->cpu(), mean->cpu(), rstd->cpu());
    gpu_->layernorm_backward(dinp->gpu(), with_params ? dweight->gpu() : Tensor(),
                             with_params ? dbias->gpu() : Tensor(), dout->gpu(), inp->gpu(),
                             weight->gpu(), mean->gpu(), rstd->gpu());
    EXPECT_LT(dinp->error(), tol_.reduction) << "with_params " << with_params;
    EXPECT_LT(dweight->error(), tol_.reduction) << "with_params " << with_params;
    EXPECT_LT(dbias->error(), tol_.reduction) << "with_params " << with_params;
  }
}

TEST_P(CudaOps, MatmulForwardWithAndWithoutBias) {
  const int N = 100, C = 72, OC = 200;
  for (bool with_bias : {true, false}) {
    auto inp = make(Kind::compute, {N, C});
    auto weight = make(Kind::compute, {OC, C});
    auto bias = make(Kind::compute, {OC});
    auto out = make(Kind::compute, {N, OC});
    inp->randomize(rng_);
    weight->randomize(rng_);
    bias->randomize(rng_);
    out->poison();
    cpu_->matmul_forward(out->cpu(), inp->cpu(), weight->cpu(), with_bias ? bias->cpu() : Tensor());
    gpu_->matmul_forward(out->gpu(), inp->gpu(), weight->gpu(), with_bias ? bias->gpu() : Tensor());
    EXPECT_LT(out->error(), tol_.reduction) << "with_bias " << with_bias;
  }
}

TEST_P(CudaOps, MatmulBackwardBothBiasGradientPaths) {
  const int N = 130, C = 72, OC = 200;
  for (CudaBiasGrad path : {CudaBiasGrad::cublaslt_epilogue, CudaBiasGrad::kernel}) {
    CudaBackendOptions options = gpu_->options();
    options.bias_grad = path;
    gpu_->set_options(options);
    auto inp = make(Kind::compute, {N, C});
    auto weight = make(Kind::compute, {OC, C});
    auto dout = make(Kind::compute, {N, OC});
    auto dinp = make(Kind::compute, {N, C});
    auto dweight = make(Kind::compute, {OC, C});
    auto dbias = make(Kind::compute, {OC});
    inp->randomize(rng_);
    weight->randomize(rng_);
    dout->randomize(rng_);
    dinp->poison();            // overwritten
    dweight->randomize(rng_);  // accumulated into
    dbias->randomize(rng_);
    cpu_->matmul_backward(dinp->cpu(), dweight->cpu(), dbias->cpu(), dout->cpu(), inp->cpu(),
                          weight->cpu());
    gpu_->matmul_backward(dinp->gpu(), dweight->gpu(), dbias->gpu(), dout->gpu(), inp->gpu(),
                          weight->gpu());
    const char* name = path == CudaBiasGrad::kernel ? "kernel" : "epilogue";
    EXPECT_LT(dinp->error(), tol_.reduction) << name;
    EXPECT_LT(dweight->error(), tol_.reduction) << name;
    EXPECT_LT(dbias->error(), tol_.reduction) << name;
    if (path == CudaBiasGrad::kernel) {
      EXPECT_EQ(gpu_->last_bias_grad(), CudaBiasGrad::kernel);
    } else if (gpu_->last_bias_grad() != CudaBiasGrad::cublaslt_epilogue) {
      std::printf("note: cuBLASLt offered no BGRADB algorithm; the kernel path ran instead\n");
    }
  }
}

// cuBLASLt's heuristic may offer an algorithm that cublasLtMatmul then refuses with NOT_SUPPORTED:
// the next candidate must run, for the plain product and both epilogues, and the plan keeps it
// (a second call gives the same bits). On a GPU the first candidate normally runs and this is one
// more matmul check; under the CPU emulation (tests/cuda_emu)
// GPT_CUDA_EMU_LT_FIRST_ALGO_UNSUPPORTED makes the emulated heuristic offer such an algorithm first
// for every problem, and the epilogue path must still be the one taken.
TEST_P(CudaOps, MatmulFallsThroughRefusedAlgorithms) {
  struct RefuseFirstAlgorithm {  // set for this test only, whichever way it ends
    RefuseFirstAlgorithm() { setenv("GPT_CUDA_EMU_LT_FIRST_ALGO_UNSUPPORTED", "1", 1); }
    ~RefuseFirstAlgorithm() { unsetenv("GPT_CUDA_EMU_LT_FIRST_ALGO_UNSUPPORTED"); }
  } refuse_first_algorithm;
  const int N = 96, C = 64, OC = 136;
  auto inp = make(Kind::compute, {N, C});
  auto weight = make(Kind::compute, {OC, C});
  auto bias = make(Kind::compute, {OC});
  auto out = make(Kind::compute, {N, OC});
  auto dout = make(Kind::compute, {N, OC});
  auto dinp = make(Kind::compute, {N, C});
  auto dweight = make(Kind::compute, {OC, C});
  auto dbias = make(Kind::compute, {OC});
  inp->randomize(rng_);
  weight->randomize(rng_);
  bias->randomize(rng_);
  dout->randomize(rng_);
  std::vector<float> first_out, first_dweight;
  for (int call = 0; call < 2; ++call) {
    out->poison();
    dinp->poison();
    dweight->set(std::vector<float>(dweight->size(), 0.0f));
    dbias->set(std::vector<float>(dbias->size(), 0.0f));
    cpu_->matmul_forward(out->cpu(), inp->cpu(), weight->cpu(), bias->cpu());
    gpu_->matmul_forward(out->gpu(), inp->gpu(), weight->gpu(), bias->gpu());
    cpu_->matmul_backward(dinp->cpu(), dweight->cpu(), dbias->cpu(), dout->cpu(), inp->cpu(),
                          weight->cpu());
    gpu_->matmul_backward(dinp->gpu(), dweight->gpu(), dbias->gpu(), dout->gpu(), inp->gpu(),
                          weight->gpu());
    EXPECT_LT(out->error(), tol_.reduction) << "call " << call;
    EXPECT_LT(dinp->error(), tol_.reduction) << "call " << call;
    EXPECT_LT(dweight->error(), tol_.reduction) << "call " << call;
    EXPECT_LT(dbias->error(), tol_.reduction) << "call " << call;
    if (call == 0) {
      first_out = out->gpu_values();
      first_dweight = dweight->gpu_values();
    } else {
      EXPECT_EQ(out->gpu_values(), first_out);
      EXPECT_EQ(dweight->gpu_values(), first_dweight);
    }
  }
  const bool emulated = std::strstr(gpu_->properties().name, "emulator") != nullptr;
  if (emulated) {
    EXPECT_EQ(gpu_->last_bias_grad(), CudaBiasGrad::cublaslt_epilogue);
  }
}

TEST_P(CudaOps, MatmulBackwardPartialGradients) {
  const int N = 64, C = 40, OC = 24;
  auto inp = make(Kind::compute, {N, C});
  auto weight = make(Kind::compute, {OC, C});
  auto dout = make(Kind::compute, {N, OC});
  auto dinp = make(Kind::compute, {N, C});
  auto dbias = make(Kind::compute, {OC});
  inp->randomize(rng_);
  weight->randomize(rng_);
  dout->randomize(rng_);
  dinp->poison();
  dbias->randomize(rng_);
  // No weight gradient (frozen weight, trainable bias): the bias takes the kernel path.
  cpu_->matmul_backward(dinp->cpu(), Tensor(), dbias->cpu(), dout->cpu(), inp->cpu(),
                        weight->cpu());
  gpu_->matmul_backward(dinp->gpu(), Tensor(), dbias->gpu(), dout->gpu(), inp->gpu(),
                        weight->gpu());
  EXPECT_LT(dinp->error(), tol_.reduction);
  EXPECT_LT(dbias->error(), tol_.reduction);
  EXPECT_EQ(gpu_->last_bias_grad(), CudaBiasGrad::kernel);
}

TEST_P(CudaOps, GeluForwardAndBackwardInPlace) {
  const size_t n = 1003;  // not a multiple of the packet: the tail path runs
  auto inp = make(Kind::compute, {static_cast<int64_t>(n)});
  auto out = make(Kind::compute, {static_cast<int64_t>(n)});
  auto grad = make(Kind::compute, {static_cast<int64_t>(n)});
  inp->randomize(rng_, 4.0f);
  out->poison();
  cpu_->gelu_forward(out->cpu(), inp->cpu());
  gpu_->gelu_forward(out->gpu(), inp->gpu());
  EXPECT_LT(out->error(), tol_.elementwise);
  grad->randomize(rng_);
  // dinp aliases dout, as in the model
  cpu_->gelu_backward(grad->cpu(), inp->cpu(), grad->cpu());
  gpu_->gelu_backward(grad->gpu(), inp->gpu(), grad->gpu());
  EXPECT_LT(grad->error(), tol_.elementwise);
}

TEST_P(CudaOps, ResidualForwardInPlace) {
  const int64_t n = 4099;
  auto a = make(Kind::compute, {n});
  auto b = make(Kind::compute, {n});
  auto out = make(Kind::compute, {n});
  a->randomize(rng_);
  b->randomize(rng_);
  out->poison();
  cpu_->residual_forward(out->cpu(), a->cpu(), b->cpu());
  gpu_->residual_forward(out->gpu(), a->gpu(), b->gpu());
  EXPECT_LT(out->error(), tol_.elementwise);
  // out aliases a
  cpu_->residual_forward(a->cpu(), a->cpu(), b->cpu());
  gpu_->residual_forward(a->gpu(), a->gpu(), b->gpu());
  EXPECT_LT(a->error(), tol_.elementwise);
}

// ---- the Llama family's ops ---------------------------------------------------------------------

TEST_P(CudaOps, RmsNormForwardAndBackward) {
  const int N = 77, C = 96;  // N not a multiple of the warps of a block
  const float eps = 1e-6f;
  auto inp = make(Kind::compute, {N, C});
  auto weight = make(Kind::compute, {C});
  auto out = make(Kind::compute, {N, C});
  auto rstd = make(Kind::stat, {N});
  inp->randomize(rng_, 2.0f);
  weight->randomize(rng_);
  out->poison();
  rstd->poison();
  cpu_->rmsnorm_forward(out->cpu(), rstd->cpu(), inp->cpu(), weight->cpu(), eps);
  gpu_->rmsnorm_forward(out->gpu(), rstd->gpu(), inp->gpu(), weight->gpu(), eps);
  EXPECT_LT(out->error(), tol_.reduction);
  EXPECT_LT(rstd->error(), tol_.reduction);

  rstd->set(rstd->cpu_values());  // the backward from the same statistics on both sides
  auto dout = make(Kind::compute, {N, C});
  auto dinp = make(Kind::compute, {N, C});
  auto dweight = make(Kind::compute, {C});
  dout->randomize(rng_);
  dinp->randomize(rng_);  // both accumulate
  dweight->randomize(rng_);
  cpu_->rmsnorm_backward(dinp->cpu(), dweight->cpu(), dout->cpu(), inp->cpu(), weight->cpu(),
                         rstd->cpu());
  gpu_->rmsnorm_backward(dinp->gpu(), dweight->gpu(), dout->gpu(), inp->gpu(), weight->gpu(),
                         rstd->gpu());
  EXPECT_LT(dinp->error(), tol_.reduction);
  EXPECT_LT(dweight->error(), tol_.reduction);
  // Without the weight gradient (frozen norm), only dinp.
  cpu_->rmsnorm_backward(dinp->cpu(), Tensor(), dout->cpu(), inp->cpu(), weight->cpu(),
                         rstd->cpu());
  gpu_->rmsnorm_backward(dinp->gpu(), Tensor(), dout->gpu(), inp->gpu(), weight->gpu(),
                         rstd->gpu());
  EXPECT_LT(dinp->error(), tol_.reduction);
  EXPECT_LT(dweight->error(), tol_.reduction);
}

// The residual add fused into RMSNorm (the blocks' second norm): into a separate sum, then in place
// on the residual stream (sum aliasing a), as in the model.
TEST_P(CudaOps, ResidualRmsNormForward) {
  const int N = 77, C = 96;
  const float eps = 1e-5f;
  auto a = make(Kind::compute, {N, C});
  auto b = make(Kind::compute, {N, C});
  auto weight = make(Kind::compute, {C});
  auto sum = make(Kind::compute, {N, C});
  auto out = make(Kind::compute, {N, C});
  auto rstd = make(Kind::stat, {N});
  a->randomize(rng_, 2.0f);
  b->randomize(rng_);
  weight->randomize(rng_);
  sum->poison();
  for (const bool in_place : {false, true}) {  // then sum aliasing a, as in the model
    SCOPED_TRACE(in_place ? "in place" : "separate sum");
    Pair& s = in_place ? *a : *sum;
    out->poison();
    rstd->poison();
    cpu_->residual_rmsnorm_forward(s.cpu(), out->cpu(), rstd->cpu(), a->cpu(), b->cpu(),
                                   weight->cpu(), eps);
    gpu_->residual_rmsnorm_forward(s.gpu(), out->gpu(), rstd->gpu(), a->gpu(), b->gpu(),
                                   weight->gpu(), eps);
    EXPECT_LT(s.error(), tol_.elementwise);
    EXPECT_LT(out->error(), tol_.reduction);
    EXPECT_LT(rstd->error(), tol_.reduction);
  }
}

// Qwen3's QK-norm on qkv rows, GQA ratio 3 and multi-query: the q and k heads normalised, the v
// heads copied; the backward into a separate dinp and in place (dinp aliasing dout).
TEST_P(CudaOps, QkNormForwardAndBackward) {
  const int B = 2, T = 19, D = 32;
  const float eps = 1e-6f;
  for (const auto& [n_q, n_kv] : {std::pair{6, 2}, std::pair{4, 1}}) {
    SCOPED_TRACE(std::to_string(n_q) + ":" + std::to_string(n_kv));
    const int W = (n_q + 2 * n_kv) * D;
    auto inp = make(Kind::compute, {B, T, W});
    auto q_weight = make(Kind::compute, {D});
    auto k_weight = make(Kind::compute, {D});
    auto out = make(Kind::compute, {B, T, W});
    auto rstd = make(Kind::stat, {B, T, n_q + n_kv});
    inp->randomize(rng_, 2.0f);
    q_weight->randomize(rng_);
    k_weight->randomize(rng_);
    out->poison();
    rstd->poison();
    cpu_->qk_norm_forward(out->cpu(), rstd->cpu(), inp->cpu(), q_weight->cpu(), k_weight->cpu(),
                          n_q, n_kv, eps);
    gpu_->qk_norm_forward(out->gpu(), rstd->gpu(), inp->gpu(), q_weight->gpu(), k_weight->gpu(),
                          n_q, n_kv, eps);
    EXPECT_LT(out->error(), tol_.reduction);
    EXPECT_LT(rstd->error(), tol_.reduction);
    const std::vector<float> x = inp->gpu_values(), y = out->gpu_values();
    for (int r = 0; r < B * T; ++r)  // the value heads copied, bit for bit
      for (int c = (n_q + n_kv) * D; c < W; ++c)
        ASSERT_EQ(y[static_cast<size_t>(r) * W + c], x[static_cast<size_t>(r) * W + c]);

    rstd->set(rstd->cpu_values());  // the backward from the same statistics on both sides
    auto dout = make(Kind::compute, {B, T, W});
    auto dinp = make(Kind::compute, {B, T, W});
    auto dq_weight = make(Kind::compute, {D});
    auto dk_weight = make(Kind::compute, {D});
    // The backward on both sides into `into` (dout itself: in place), with or without the weights'
    // gradients.
    auto backward = [&](const Pair& into, bool weights) {
      cpu_->qk_norm_backward(into.cpu(), weights ? dq_weight->cpu() : Tensor(),
                             weights ? dk_weight->cpu() : Tensor(), dout->cpu(), inp->cpu(),
                             q_weight->cpu(), k_weight->cpu(), rstd->cpu(), n_q, n_kv);
      gpu_->qk_norm_backward(into.gpu(), weights ? dq_weight->gpu() : Tensor(),
                             weights ? dk_weight->gpu() : Tensor(), dout->gpu(), inp->gpu(),
                             q_weight->gpu(), k_weight->gpu(), rstd->gpu(), n_q, n_kv);
    };
    dout->randomize(rng_);
    dinp->poison();              // overwritten
    dq_weight->randomize(rng_);  // accumulate
    dk_weight->randomize(rng_);
    backward(*dinp, true);
    EXPECT_LT(dinp->error(), tol_.reduction);
    EXPECT_LT(dq_weight->error(), tol_.reduction);
    EXPECT_LT(dk_weight->error(), tol_.reduction);
    // In place: the weight gradients still see dout, and dinp is the same, bit for bit.
    backward(*dout, true);
    EXPECT_LT(dq_weight->error(), tol_.reduction);
    EXPECT_LT(dk_weight->error(), tol_.reduction);
    EXPECT_EQ(dout->gpu_values(), dinp->gpu_values());
    // Frozen norms: no weight gradients.
    dout->randomize(rng_);
    backward(*dout, false);
    EXPECT_LT(dout->error(), tol_.reduction);
  }
  // Refused: out aliasing inp, a head size off the packet (GPU), rows that are not whole heads.
  auto qkv = make(Kind::compute, {1, 2, 4 * 8});
  auto w8 = make(Kind::compute, {8});
  auto r8 = make(Kind::stat, {1, 2, 3});
  EXPECT_THROW(
      cpu_->qk_norm_forward(qkv->cpu(), r8->cpu(), qkv->cpu(), w8->cpu(), w8->cpu(), 2, 1, eps),
      ShapeError);
  EXPECT_THROW(
      gpu_->qk_norm_forward(qkv->gpu(), r8->gpu(), qkv->gpu(), w8->gpu(), w8->gpu(), 2, 1, eps),
      ShapeError);
  auto out6 = make(Kind::compute, {1, 2, 4 * 6});
  auto qkv6 = make(Kind::compute, {1, 2, 4 * 6});
  auto w6 = make(Kind::compute, {6});
  EXPECT_THROW(
      gpu_->qk_norm_forward(out6->gpu(), r8->gpu(), qkv6->gpu(), w6->gpu(), w6->gpu(), 2, 1, eps),
      ShapeError);
  EXPECT_THROW(
      cpu_->qk_norm_forward(out6->cpu(), r8->cpu(), qkv6->cpu(), w6->cpu(), w6->cpu(), 3, 1, eps),
      ShapeError);
}

// Query and key heads of grouped-query qkv rows (3 query heads, 1 KV head): 4 heads rotated, the
// value head left alone, at positions from 5 on (a decode-like offset).
TEST_P(CudaOps, RopeForwardAndBackwardInPlace) {
  const int B = 2, T = 19, n_q = 3, n_kv = 1, D = 32, pos0 = 5, max_T = 30;
  const int W = (n_q + 2 * n_kv) * D;
  std::vector<double> cos_d(static_cast<size_t>(max_T) * D / 2), sin_d(cos_d.size());
  cpu::rope_table(cos_d.data(), sin_d.data(), max_T, D, 10000.0, cpu::RopeScaling{});
  auto cos = make(Kind::stat, {max_T, D / 2});
  auto sin = make(Kind::stat, {max_T, D / 2});
  cos->set(std::vector<float>(cos_d.begin(), cos_d.end()));
  sin->set(std::vector<float>(sin_d.begin(), sin_d.end()));
  auto qkv = make(Kind::compute, {B, T, W});
  qkv->randomize(rng_, 2.0f);
  const std::vector<float> before = qkv->gpu_values();
  cpu_->rope_forward(qkv->cpu(), cos->cpu(), sin->cpu(), n_q + n_kv, D, pos0);
  gpu_->rope_forward(qkv->gpu(), cos->gpu(), sin->gpu(), n_q + n_kv, D, pos0);
  EXPECT_LT(qkv->error(), tol_.elementwise);
  const std::vector<float> after = qkv->gpu_values();
  for (int r = 0; r < B * T; ++r)  // the value head is untouched, bit for bit
    for (int c = (n_q + n_kv) * D; c < W; ++c)
      ASSERT_EQ(after[static_cast<size_t>(r) * W + c], before[static_cast<size_t>(r) * W + c]);

  auto dqkv = make(Kind::compute, {B, T, W});
  dqkv->randomize(rng_);
  cpu_->rope_backward(dqkv->cpu(), cos->cpu(), sin->cpu(), n_q + n_kv, D, pos0);
  gpu_->rope_backward(dqkv->gpu(), cos->gpu(), sin->gpu(), n_q + n_kv, D, pos0);
  EXPECT_LT(dqkv->error(), tol_.elementwise);
}

TEST_P(CudaOps, SwiGluForwardAndBackward) {
  const int N = 37, H = 72;
  auto inp = make(Kind::compute, {N, 2 * H});
  auto out = make(Kind::compute, {N, H});
  inp->randomize(rng_, 4.0f);
  out->poison();
  cpu_->swiglu_forward(out->cpu(), inp->cpu());
  gpu_->swiglu_forward(out->gpu(), inp->gpu());
  EXPECT_LT(out->error(), tol_.elementwise);
  auto dout = make(Kind::compute, {N, H});
  auto dinp = make(Kind::compute, {N, 2 * H});
  dout->randomize(rng_);
  dinp->poison();  // overwritten
  cpu_->swiglu_backward(dinp->cpu(), inp->cpu(), dout->cpu());
  gpu_->swiglu_backward(dinp->gpu(), inp->gpu(), dout->gpu());
  EXPECT_LT(dinp->error(), tol_.elementwise);
  // In place (dinp aliases inp), as the model may run it.
  cpu_->swiglu_backward(inp->cpu(), inp->cpu(), dout->cpu());
  gpu_->swiglu_backward(inp->gpu(), inp->gpu(), dout->gpu());
  EXPECT_LT(inp->error(), tol_.elementwise);
}

// Forward and backward, in one chunk and in chunks of one batch.
TEST_P(CudaOps, AttentionForwardAndBackwardChunked) {
  const int B = 3, T = 67, NH = 3, HS = 16, C = NH * HS;
  for (size_t chunk_bytes : {size_t{1} << 30, size_t{1}}) {
    CudaBackendOptions options = gpu_->options();
    options.attention_chunk_bytes = chunk_bytes;
    gpu_->set_options(options);
    auto qkv = make(Kind::compute, {B, T, 3 * C});
    auto out = make(Kind::compute, {B, T, C});
    auto lse = make(Kind::stat, {B, NH, T});
    qkv->randomize(rng_, 2.0f);
    out->poison();
    lse->poison();
    cpu_->attention_forward(out->cpu(), lse->cpu(), qkv->cpu(), NH, NH);
    gpu_->attention_forward(out->gpu(), lse->gpu(), qkv->gpu(), NH, NH);
    EXPECT_LT(out->error(), tol_.reduction) << "chunk bytes " << chunk_bytes;
    EXPECT_LT(lse->error(), tol_.reduction) << "chunk bytes " << chunk_bytes;

    // Backward from the CPU's out and lse, given to both.
    out->set(out->cpu_values());
    lse->set(lse->cpu_values());
    auto dout = make(Kind::compute, {B, T, C});
    auto dqkv = make(Kind::compute, {B, T, 3 * C});
    dout->randomize(rng_);
    dqkv->poison();
    cpu_->attention_backward(dqkv->cpu(), dout->cpu(), qkv->cpu(), out->cpu(), lse->cpu(), NH, NH);
    gpu_->attention_backward(dqkv->gpu(), dout->gpu(), qkv->gpu(), out->gpu(), lse->gpu(), NH, NH);
    EXPECT_LT(dqkv->error(), tol_.reduction) << "chunk bytes " << chunk_bytes;
  }
}

// Grouped-query and multi-query attention: NH query heads sharing NKV key/value heads, rows
// [q (NH·HS) | k (NKV·HS) | v (NKV·HS)], head sizes free of any model width, odd lengths. Each
// shape runs through the unfused kernels (in one chunk and batch by batch) and through the fused
// ones (bf16 with HS 64 or 128; the fused choice falls back to the unfused kernels elsewhere).
struct GroupedCase {
  int B, T, NH, NKV, HS;
};
std::ostream& operator<<(std::ostream& os, const GroupedCase& c) {
  return os << "B=" << c.B << " T=" << c.T << " NH=" << c.NH << " NKV=" << c.NKV << " HS=" << c.HS;
}
const GroupedCase kGroupedCases[] = {
    {2, 37, 6, 2, 16},   // 3 query heads per key/value head
    {1, 29, 8, 2, 24},   // 4 per head, NH·HS = 192
    {2, 19, 3, 1, 32},   // multi-query
    {1, 70, 3, 1, 64},   // multi-query, HS 64 (fused in bf16): NH·HS = 192
    {1, 67, 4, 1, 128},  // HS 128 (fused in bf16), 2 key tiles with a tail
    {2, 41, 4, 4, 64},   // NH == NKV
};

TEST_P(CudaOps, AttentionGroupedQueryHeads) {
  struct Mode {
    AttentionKernel kernel;
    size_t chunk_bytes;  // of the unfused kernels' score matrices: 1 = one batch at a time
    const char* name;
  };
  for (const Mode& mode : {Mode{AttentionKernel::unfused, size_t{1} << 30, "unfused"},
                           Mode{AttentionKernel::unfused, 1, "unfused, chunks of one batch"},
                           Mode{AttentionKernel::fused, size_t{1} << 30, "fused"}}) {
    CudaBackendOptions options = gpu_->options();
    options.attention = mode.kernel;
    options.attention_chunk_bytes = mode.chunk_bytes;
    gpu_->set_options(options);
    for (const GroupedCase& c : kGroupedCases) {
      SCOPED_TRACE(::testing::Message() << c << " " << mode.name);
      const int W = (c.NH + 2 * c.NKV) * c.HS, C = c.NH * c.HS;
      auto qkv = make(Kind::compute, {c.B, c.T, W});
      auto out = make(Kind::compute, {c.B, c.T, C});
      auto lse = make(Kind::stat, {c.B, c.NH, c.T});
      qkv->randomize(rng_, 2.0f);
      out->poison();
      lse->poison();
      cpu_->attention_forward(out->cpu(), lse->cpu(), qkv->cpu(), c.NH, c.NKV);
      gpu_->attention_forward(out->gpu(), lse->gpu(), qkv->gpu(), c.NH, c.NKV);
      EXPECT_LT(out->error(), tol_.reduction) << "out";
      EXPECT_LT(lse->error(), tol_.reduction) << "lse";

      out->set(out->cpu_values());
      lse->set(lse->cpu_values());
      auto dout = make(Kind::compute, {c.B, c.T, C});
      auto dqkv = make(Kind::compute, {c.B, c.T, W});
      dout->randomize(rng_);
      dqkv->randomize(rng_);  // dqkv is overwritten: stale values must not leak into the result
      cpu_->attention_backward(dqkv->cpu(), dout->cpu(), qkv->cpu(), out->cpu(), lse->cpu(), c.NH,
                               c.NKV);
      gpu_->attention_backward(dqkv->gpu(), dout->gpu(), qkv->gpu(), out->gpu(), lse->gpu(), c.NH,
                               c.NKV);
      EXPECT_LT(dqkv->error(), tol_.reduction) << "dqkv";
    }
  }
}

// One generation step against the CPU: the query at pos attends positions 0..pos of the cache.
TEST_P(CudaOps, AttentionDecodeGroupedQueryHeads) {
  for (const GroupedCase& c : kGroupedCases) {
    SCOPED_TRACE(::testing::Message() << c);
    // The queries are read from the start of qkv-wide rows; the cache holds [k | v] only.
    const int W = (c.NH + 2 * c.NKV) * c.HS;
    auto q = make(Kind::compute, {c.B, W});
    auto cache = make(Kind::compute, {c.B, c.T, 2 * c.NKV * c.HS});
    auto out = make(Kind::compute, {c.B, c.NH * c.HS});
    q->randomize(rng_, 2.0f);
    cache->randomize(rng_, 2.0f);
    for (int pos : {0, c.T / 2, c.T - 1}) {
      out->poison();
      cpu_->attention_decode(out->cpu(), q->cpu(), cache->cpu(), pos, c.NH, c.NKV);
      gpu_->attention_decode(out->gpu(), q->gpu(), cache->gpu(), pos, c.NH, c.NKV);
      EXPECT_LT(out->error(), tol_.reduction) << "pos " << pos;
    }
  }
}

TEST_P(CudaOps, CrossEntropyLossesAndInPlaceGradient) {
  const int N = 37, V = 1000, Vp = 1024;
  std::vector<int32_t> ids = random_indices(N, V, rng_);
  for (int i = 0; i < N; i += 5) ids[i] = cpu::kIgnoreIndex;
  const float dloss = 1.0f / N;
  for (LossGrad grad : {LossGrad::none, LossGrad::write}) {
    auto logits = make(Kind::compute, {N, Vp});
    auto targets = make(Kind::index, {N});
    auto losses = make(Kind::stat, {N});
    logits->randomize(rng_, 3.0f);
    targets->set_indices(ids);
    losses->poison();
    cpu_->crossentropy(losses->cpu(), logits->cpu(), targets->cpu(), V, dloss, grad);
    gpu_->crossentropy(losses->gpu(), logits->gpu(), targets->gpu(), V, dloss, grad);
    EXPECT_LT(losses->error(), tol_.reduction);
    if (grad == LossGrad::write) {
      EXPECT_LT(logits->error(), tol_.reduction);
      const std::vector<float> d = logits->gpu_values();
      for (int i = 0; i < N; ++i) {
        for (int j = 0; j < Vp; ++j) {
          if (ids[i] == cpu::kIgnoreIndex || j >= V) {
            ASSERT_EQ(d[static_cast<size_t>(i) * Vp + j], 0.0f) << "row " << i << " col " << j;
          }
        }
      }
    } else {
      EXPECT_EQ(logits->error(), 0.0) << "LossGrad::none must leave the logits alone";
    }
  }
}

TEST_P(CudaOps, SumAndSumOfSquaresAreDeterministic) {
  const int64_t n = 3000001;  // more packets than the grid covers in one pass, and a tail
  auto x = make(Kind::compute, {n});
  auto losses = make(Kind::stat, {n});
  x->randomize(rng_);
  losses->randomize(rng_);
  const double gpu_sq = gpu_->sum_of_squares(x->gpu());
  const double cpu_sq = cpu_->sum_of_squares(x->cpu());
  EXPECT_LT(std::abs(gpu_sq - cpu_sq) / cpu_sq, tol_.reduction);
  const double gpu_sum = gpu_->sum(losses->gpu());
  const double cpu_sum = cpu_->sum(losses->cpu());
  // A sum of random signs is small: compare against the scale of its terms.
  EXPECT_LT(std::abs(gpu_sum - cpu_sum) / std::sqrt(cpu_->sum_of_squares(losses->cpu())),
            tol_.reduction);
  const double again_sq = gpu_->sum_of_squares(x->gpu());
  const double again_sum = gpu_->sum(losses->gpu());
  EXPECT_EQ(std::memcmp(&gpu_sq, &again_sq, sizeof(double)), 0);
  EXPECT_EQ(std::memcmp(&gpu_sum, &again_sum, sizeof(double)), 0);
}

TEST_P(CudaOps, AdamWMatchesCpuOverSteps) {
  const int64_t n = 1003;
  auto params = make(Kind::compute, {n});
  auto grads = make(Kind::compute, {n});
  auto m = make(Kind::stat, {n});
  auto v = make(Kind::stat, {n});
  auto master = make(Kind::stat, {n});
  params->randomize(rng_);
  m->set(std::vector<float>(n, 0.0f));
  v->set(std::vector<float>(n, 0.0f));
  master->poison();  // written on step 1 (bf16 mode), unused in fp32 mode
  const bool bf16 = GetParam() == DType::bf16;
  for (long step = 1; step <= 3; ++step) {
    grads->randomize(rng_, 0.1f);
    AdamWStep s;
    s.lr = 1e-2f;
    s.weight_decay = step == 2 ? 0.0f : 0.1f;  // a decayed and a non-decayed step
    s.grad_scale = 0.7f;
    s.step = step;
    s.seed = 1234 + step;
    cpu_->adamw_update(params->cpu(), grads->cpu(), m->cpu(), v->cpu(), Tensor(), s);
    gpu_->adamw_update(params->gpu(), grads->gpu(), m->gpu(), v->gpu(),
                       bf16 ? master->gpu() : Tensor(), s);
  }
  EXPECT_LT(m->error(), tol_.elementwise);
  EXPECT_LT(v->error(), tol_.elementwise);
  if (!bf16) {
    EXPECT_LT(params->error(), tol_.elementwise);
    return;
  }
  // bf16: the fp32 master copy follows the CPU's fp32 parameters; the bf16 parameters are the
  // master copy rounded down or up to a neighbouring bf16 value.
  const std::vector<float> w = master->gpu_values();
  EXPECT_LT(rel_error(w, params->cpu_values()), tol_.elementwise);
  const std::vector<float> p = params->gpu_values();
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, &w[i], sizeof(bits));
    float down, up;
    const uint32_t down_bits = bits & 0xFFFF0000u, up_bits = down_bits + 0x10000u;
    std::memcpy(&down, &down_bits, sizeof(down));
    std::memcpy(&up, &up_bits, sizeof(up));
    ASSERT_TRUE(p[i] == down || p[i] == up) << "element " << i << ": " << p[i] << " for " << w[i];
  }
}

// bf16 only: with lr = 0 the parameters become the master copy stochastically rounded. A value a
// quarter of a bf16 step above 1 must round up about a quarter of the time, the same seed must give
// the same bits, and another seed other bits.
TEST_P(CudaOps, StochasticRoundingIsUnbiasedAndSeeded) {
  if (GetParam() != DType::bf16) GTEST_SKIP() << "bf16 only";
  const int64_t n = 65536;
  const float value = 1.0f + 0.25f * 0.0078125f;  // 1 + ulp/4, ulp(1) = 2^-7 in bf16
  auto params = make(Kind::compute, {n});
  auto grads = make(Kind::compute, {n});
  auto m = make(Kind::stat, {n});
  auto v = make(Kind::stat, {n});
  auto master = make(Kind::stat, {n});
  auto round_with_seed = [&](uint64_t seed) {
    params->set(std::vector<float>(n, 1.0f));
    grads->set(std::vector<float>(n, 0.0f));
    m->set(std::vector<float>(n, 0.0f));
    v->set(std::vector<float>(n, 0.0f));
    master->set(std::vector<float>(n, value));
    AdamWStep s;
    s.lr = 0.0f;
    s.step = 2;  // keep the master copy
    s.seed = seed;
    gpu_->adamw_update(params->gpu(), grads->gpu(), m->gpu(), v->gpu(), master->gpu(), s);
    return params->gpu_values();
  };
  const std::vector<float> a = round_with_seed(7), b = round_with_seed(7), c = round_with_seed(8);
  int64_t up = 0;
  for (float x : a) up += x > 1.0f;
  const double fraction = static_cast<double>(up) / n;
  EXPECT_NEAR(fraction, 0.25, 0.02);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_LT(rel_error(master->gpu_values(), std::vector<float>(n, value)), 1e-7);
}

TEST_P(CudaOps, EntryPointsRejectBadArguments) {
  auto good = make(Kind::compute, {64});
  Buffer wrong_dtype(*gpu_, DType::f64, {64});
  EXPECT_THROW(gpu_->gelu_forward(good->gpu(), wrong_dtype.tensor()), ShapeError);
  // A view one element in: not 16-byte aligned.
  const Tensor& t = good->gpu();
  Tensor misaligned(static_cast<char*>(t.data) + dtype_size(t.dtype), t.dtype, {32});
  Tensor other(t.data, t.dtype, {32});
  EXPECT_THROW(gpu_->gelu_forward(other, misaligned), ShapeError);
  auto qkv = make(Kind::compute, {2, 4, 3 * 6});
  auto out = make(Kind::compute, {2, 4, 6});
  auto lse = make(Kind::stat, {2, 3, 4});
  // head size 2 is not a multiple of the packet
  EXPECT_THROW(gpu_->attention_forward(out->gpu(), lse->gpu(), qkv->gpu(), 3, 3), ShapeError);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CudaOps, ::testing::Values(DType::f32, DType::bf16),
                         [](const ::testing::TestParamInfo<DType>& info) {
                           return std::string(dtype_name(info.param));
                         });

}  // namespace
}  // namespace gpt
