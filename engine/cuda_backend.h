// The CUDA backend: device memory, one stream, cuBLAS/cuBLASLt, and the kernels of kernels/*.cu.
//
// dtype bf16 (mixed precision: bf16 parameters, gradients and activations; fp32 statistics,
// optimizer state and master weights) or f32 (everything fp32, so a GPU run can be compared with
// the CPU backend at fp32 tolerance). Every op method is a checked entry point: it asserts dtypes,
// shapes, 16-byte alignment and the packet multiples the kernels need, then launches on the
// backend's stream. Ops are asynchronous; sum, sum_of_squares, the host copies and synchronize()
// wait for the stream.
//
// Memory: allocate() is cudaMalloc plus a zero fill; the ops that need temporary memory (the
// encoder's sort, attention's score matrices, partial sums) share one grow-only scratch buffer,
// sized by the first step that needs it and counted in peak_bytes(). cuBLASLt gets a fixed 32 MiB
// workspace.
#pragma once

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "engine/backend.h"

namespace gpt {

namespace cuda {
struct MatmulAlgoCache;
enum class Reduction;
}  // namespace cuda

// How matmul_backward computes the bias gradient (see kernels/matmul.cu). Tests run both.
enum class CudaBiasGrad { cublaslt_epilogue, kernel };

struct CudaBackendOptions {
  int device = 0;
  CudaBiasGrad bias_grad = CudaBiasGrad::cublaslt_epilogue;
  // Attention processes batches in chunks whose fp32 T×T score matrices fit in this many bytes.
  size_t attention_chunk_bytes = size_t{1} << 30;
  // fused: the flash-style kernel (kernels/flash_attention.h) for bf16 with head size 64 or 128;
  // other cases fall back to the unfused path with a one-line notice.
  AttentionKernel attention = AttentionKernel::fused;
};

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(DType dtype, const CudaBackendOptions& options = {});
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  DeviceKind device() const override { return DeviceKind::cuda; }
  DType dtype() const override { return dtype_; }
  DType stat_dtype() const override { return DType::f32; }
  std::string description() const override;

  void* allocate(size_t bytes) override;
  void release(void* ptr) override;
  void copy_from_host(void* dst, const void* host_src, size_t bytes) override;
  void copy_to_host(void* host_dst, const void* src, size_t bytes) override;
  void copy(void* dst, const void* src, size_t bytes) override;
  void fill_zero(void* dst, size_t bytes) override;
  void synchronize() override;
  void upload_f32(Tensor dst, const float* host_src) override;
  void download_f32(float* host_dst, const Tensor& src) override;
  size_t peak_bytes() const override { return peak_bytes_; }

  void encoder_forward(Tensor out, const Tensor& tokens, const Tensor& wte,
                       const Tensor& wpe) override;
  void encoder_backward(Tensor dwte, Tensor dwpe, const Tensor& dout,
                        const Tensor& tokens) override;
  void layernorm_forward(Tensor out, Tensor mean, Tensor rstd, const Tensor& inp,
                         const Tensor& weight, const Tensor& bias) override;
  void layernorm_backward(Tensor dinp, Tensor dweight, Tensor dbias, const Tensor& dout,
                          const Tensor& inp, const Tensor& weight, const Tensor& mean,
                          const Tensor& rstd) override;
  void matmul_forward(Tensor out, const Tensor& inp, const Tensor& weight,
                      const Tensor& bias) override;
  void matmul_backward(Tensor dinp, Tensor dweight, Tensor dbias, const Tensor& dout,
                       const Tensor& inp, const Tensor& weight) override;
  void gelu_forward(Tensor out, const Tensor& inp) override;
  void gelu_backward(Tensor dinp, const Tensor& inp, const Tensor& dout) override;
  void residual_forward(Tensor out, const Tensor& a, const Tensor& b) override;
  void attention_forward(Tensor out, Tensor lse, const Tensor& qkv, int n_head,
                         int n_kv_head) override;
  void attention_backward(Tensor dqkv, const Tensor& dout, const Tensor& qkv, const Tensor& out,
                          const Tensor& lse, int n_head, int n_kv_head) override;
  void attention_decode(Tensor out, const Tensor& q, const Tensor& kv_cache, int pos, int n_head,
                        int n_kv_head) override;
  void crossentropy(Tensor losses, Tensor logits, const Tensor& targets, int vocab_size,
                    float dloss, LossGrad grad) override;
  void rmsnorm_forward(Tensor out, Tensor rstd, const Tensor& inp, const Tensor& weight,
                       float eps) override;
  void residual_rmsnorm_forward(Tensor sum, Tensor out, Tensor rstd, const Tensor& a,
                                const Tensor& b, const Tensor& weight, float eps) override;
  void rmsnorm_backward(Tensor dinp, Tensor dweight, const Tensor& dout, const Tensor& inp,
                        const Tensor& weight, const Tensor& rstd) override;
  void qk_norm_forward(Tensor out, Tensor rstd, const Tensor& inp, const Tensor& q_weight,
                       const Tensor& k_weight, int n_head, int n_kv_head, float eps) override;
  void qk_norm_backward(Tensor dinp, Tensor dq_weight, Tensor dk_weight, const Tensor& dout,
                        const Tensor& inp, const Tensor& q_weight, const Tensor& k_weight,
                        const Tensor& rstd, int n_head, int n_kv_head) override;
  void rope_forward(Tensor qkv, const Tensor& cos, const Tensor& sin, int n_heads, int head_dim,
                    int pos0) override;
  void rope_backward(Tensor dqkv, const Tensor& cos, const Tensor& sin, int n_heads, int head_dim,
                     int pos0) override;
  void swiglu_forward(Tensor out, const Tensor& inp) override;
  void swiglu_backward(Tensor dinp, const Tensor& inp, const Tensor& dout) override;
  double sum_of_squares(const Tensor& x) override;
  double sum(const Tensor& x) override;
  void adamw_update(Tensor params, const Tensor& grads, Tensor m, Tensor v, Tensor master,
                    const AdamWStep& step) override;

  // ---- CUDA specifics (tests, benchmarks) ---------------------------------------------------
  cudaStream_t stream() const { return stream_; }
  const cudaDeviceProp& properties() const { return props_; }
  const CudaBackendOptions& options() const { return options_; }
  void set_attention_kernel(AttentionKernel kernel) override { options_.attention = kernel; }
  void set_options(const CudaBackendOptions& options);
  // The bias-gradient path the last matmul_backward with a bias actually took (the epilogue
  // falls back to the kernel where cuBLASLt has no algorithm for it).
  CudaBiasGrad last_bias_grad() const { return last_bias_grad_; }

 private:
  void* scratch(size_t bytes);  // grow-only; valid until the next call
  bool use_fused_attention(const cpu::AttentionShape& shape);
  void destroy() noexcept;
  double reduce_to_host(const Tensor& x, cuda::Reduction op);
  void rope(Tensor x, const Tensor& cos, const Tensor& sin, int n_heads, int head_dim, int pos0,
            bool backward);

  DType dtype_;
  CudaBackendOptions options_;
  cudaDeviceProp props_{};
  int sm_clock_khz_ = 0;
  int memory_clock_khz_ = 0;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  cublasLtHandle_t cublaslt_ = nullptr;
  void* lt_workspace_ = nullptr;
  size_t lt_workspace_bytes_ = 0;
  cuda::MatmulAlgoCache* algo_cache_ = nullptr;
  void* scratch_ = nullptr;
  size_t scratch_bytes_ = 0;
  double* host_result_ = nullptr;  // pinned, for the reductions' result
  CudaBiasGrad last_bias_grad_ = CudaBiasGrad::kernel;

  std::mutex mutex_;
  std::unordered_map<void*, size_t> sizes_;
  size_t live_bytes_ = 0;
  size_t peak_bytes_ = 0;
};

// Defined here when the build has CUDA (declared in engine/backend.h and cpu_backend.cpp).
std::unique_ptr<Backend> make_cuda_backend(DType dtype);

}  // namespace gpt
