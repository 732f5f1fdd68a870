// The CPU backend: host memory, the reference kernels of kernels/*.cpp, in f32 (training) or f64
// (gradient checks). It is the oracle the CUDA kernels are compared with, and what CI runs.
#pragma once

#include <mutex>
#include <unordered_map>

#include "engine/backend.h"

namespace gpt {

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(DType dtype);
  ~CpuBackend() override;

  DeviceKind device() const override { return DeviceKind::cpu; }
  DType dtype() const override { return dtype_; }
  DType stat_dtype() const override { return dtype_; }
  std::string description() const override;

  void* allocate(size_t bytes) override;
  void release(void* ptr) override;
  void copy_from_host(void* dst, const void* host_src, size_t bytes) override;
  void copy_to_host(void* host_dst, const void* src, size_t bytes) override;
  void copy(void* dst, const void* src, size_t bytes) override;
  void fill_zero(void* dst, size_t bytes) override;
  void synchronize() override {}
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
  void crossentropy(Tensor losses, Tensor logits, const Tensor& targets, int vocab_size,
                    float dloss, LossGrad grad) override;
  void scale(Tensor out, const Tensor& in, float s) override;
  void attention_decode(Tensor out, const Tensor& q, const Tensor& kv_cache, int pos, int n_head,
                        int n_kv_head) override;
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

 private:
  DType dtype_;
  std::mutex mutex_;
  std::unordered_map<void*, size_t> sizes_;
  size_t live_bytes_ = 0;
  size_t peak_bytes_ = 0;
};

}  // namespace gpt
