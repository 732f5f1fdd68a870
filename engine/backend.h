// The Backend interface: one method per op (forward and backward) plus memory management. The
// model (models/) is written once against it; the CPU backend (engine/cpu_backend.*) runs the
// reference kernels of kernels/*.cpp, the CUDA backend runs kernels/*.cu.
//
// Every op method is a checked entry point: it asserts the shapes and dtypes of its tensors and
// throws ShapeError naming the argument that was wrong, then calls the kernel.
//
// dtypes: a backend has one compute dtype (f32 or f64 on the CPU; bf16 or f32 on CUDA) used by
// parameters, gradients and activations, and a statistics dtype (LayerNorm mean/rstd, attention
// logsumexp, per-token losses): f32, or f64 when the compute dtype is f64. Tokens and targets are
// i32. Optimizer state (m, v, master weights) is always in the statistics dtype.
//
// Gradient rule (the kernels' headers say it per op): parameter gradients accumulate (+=);
// activation gradients are overwritten (=), except the residual stream's, which accumulates.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "engine/tensor.h"
#include "kernels/attention.h"

namespace gpt {

enum class DeviceKind { cpu, cuda };

// What a backend reserves, and counts in peak_bytes(), for an allocation of `bytes`: rounded up to
// 256 (a zero-byte request still takes 256). Shared by the backends and the memory planner
// (engine/sizing.h), so that a plan counts the bytes a run counts.
constexpr size_t kAllocationGranule = 256;
constexpr size_t allocation_bytes(size_t bytes) {
  return bytes == 0 ? kAllocationGranule
                    : (bytes + kAllocationGranule - 1) / kAllocationGranule * kAllocationGranule;
}
// The cuBLASLt workspace the CUDA backend allocates when it starts (part of its peak_bytes()).
constexpr size_t kCudaMatmulWorkspaceBytes = size_t{32} << 20;

// Which attention kernel a GPU backend uses: the hand-written fused (flash-style) kernel, or the
// unfused reference (batched matmuls + softmax). The CPU backend has one implementation.
enum class AttentionKernel { fused, unfused };
AttentionKernel attention_kernel_from_name(const std::string& name);  // throws for others

// Whether the fused classifier also writes dlogits (training) or only the losses (evaluation).
enum class LossGrad { none, write };

struct AdamWStep {
  float lr = 0.0f;
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;
  float grad_scale = 1.0f;  // gradient clipping factor, applied to the gradient before the moments
  long step = 1;            // 1-based, for bias correction
  uint64_t seed = 0;        // stochastic rounding (bf16 only): kernels/stochastic_rounding.h
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual DeviceKind device() const = 0;
  virtual DType dtype() const = 0;              // compute dtype
  virtual DType stat_dtype() const = 0;         // statistics and optimizer-state dtype
  virtual std::string description() const = 0;  // one line for the start-up log

  // ---- memory ---------------------------------------------------------------------------------
  virtual void* allocate(size_t bytes) = 0;  // zero-filled; throws std::bad_alloc-like on failure
  virtual void release(void* ptr) = 0;
  virtual void copy_from_host(void* dst, const void* host_src, size_t bytes) = 0;
  virtual void copy_to_host(void* host_dst, const void* src, size_t bytes) = 0;
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;  // device to device
  virtual void fill_zero(void* dst, size_t bytes) = 0;
  virtual void synchronize() = 0;
  // Converts between the compute dtype and host fp32 (initialisation, checkpoints, logits).
  virtual void upload_f32(Tensor dst, const float* host_src) = 0;
  virtual void download_f32(float* host_dst, const Tensor& src) = 0;
  // Selects the attention kernel (no-op where there is only one).
  virtual void set_attention_kernel(AttentionKernel) {}
  // Largest number of bytes allocated at once so far (peak memory report).
  virtual size_t peak_bytes() const = 0;

  // ---- ops (see kernels/<op>.h for the math) --------------------------------------------------
  // out (B,T,C) = wte[tokens] + wpe[:T]; tokens (B,T) i32; wte (Vp,C); wpe (maxT,C) or empty
  // (token embeddings only)
  virtual void encoder_forward(Tensor out, const Tensor& tokens, const Tensor& wte,
                               const Tensor& wpe) = 0;
  // dwte, dwpe += (either may be empty to skip)
  virtual void encoder_backward(Tensor dwte, Tensor dwpe, const Tensor& dout,
                                const Tensor& tokens) = 0;

  // inp, out (N,C); weight, bias (C); mean, rstd (N) in stat dtype
  virtual void layernorm_forward(Tensor out, Tensor mean, Tensor rstd, const Tensor& inp,
                                 const Tensor& weight, const Tensor& bias) = 0;
  // dinp +=, dweight +=, dbias += (dweight/dbias may be empty)
  virtual void layernorm_backward(Tensor dinp, Tensor dweight, Tensor dbias, const Tensor& dout,
                                  const Tensor& inp, const Tensor& weight, const Tensor& mean,
                                  const Tensor& rstd) = 0;

  // out (N,OC) = inp (N,C) · weightᵀ (OC,C) + bias (OC, may be empty)
  virtual void matmul_forward(Tensor out, const Tensor& inp, const Tensor& weight,
                              const Tensor& bias) = 0;
  // dinp =, dweight +=, dbias += (each may be empty)
  virtual void matmul_backward(Tensor dinp, Tensor dweight, Tensor dbias, const Tensor& dout,
                               const Tensor& inp, const Tensor& weight) = 0;

  virtual void gelu_forward(Tensor out, const Tensor& inp) = 0;
  // dinp = dout · gelu'(inp)
  virtual void gelu_backward(Tensor dinp, const Tensor& inp, const Tensor& dout) = 0;

  // out = a + b
  virtual void residual_forward(Tensor out, const Tensor& a, const Tensor& b) = 0;

  // Causal attention with n_head query heads sharing n_kv_head key/value heads (n_kv_head divides
  // n_head; equal for GPT-2's multi-head attention): qkv (B, T, (NH + 2·NKV)·HS) rows
  // [q | k | v]; out (B, T, NH·HS), which fixes the head size HS; lse (B, NH, T) in stat dtype.
  virtual void attention_forward(Tensor out, Tensor lse, const Tensor& qkv, int n_head,
                                 int n_kv_head) = 0;
  // dqkv (like qkv) =
  virtual void attention_backward(Tensor dqkv, const Tensor& dout, const Tensor& qkv,
                                  const Tensor& out, const Tensor& lse, int n_head,
                                  int n_kv_head) = 0;

  // logits (N,Vp), targets (N) i32 (kIgnoreIndex = -1 masks), losses (N) stat dtype.
  // With LossGrad::write, dlogits are written in place of the logits, scaled by dloss.
  virtual void crossentropy(Tensor losses, Tensor logits, const Tensor& targets, int vocab_size,
                            float dloss, LossGrad grad) = 0;

  // ---- the Llama family's ops (kernels/rmsnorm.h with QK-norm, rope.h, swiglu.h) -------------
  // inp, out (N,C); weight (C); rstd (N) in stat dtype; eps from the model's config.
  virtual void rmsnorm_forward(Tensor out, Tensor rstd, const Tensor& inp, const Tensor& weight,
                               float eps) = 0;
  // sum (N,C) = a + b; out (N,C) = RMSNorm(sum) · weight; rstd (N) stat dtype. sum may alias a
  // (in place on the residual stream). The backward is rmsnorm_backward's (the add's is identity).
  virtual void residual_rmsnorm_forward(Tensor sum, Tensor out, Tensor rstd, const Tensor& a,
                                        const Tensor& b, const Tensor& weight, float eps) = 0;
  // dinp +=, dweight += (either may be empty)
  virtual void rmsnorm_backward(Tensor dinp, Tensor dweight, const Tensor& dout, const Tensor& inp,
                                const Tensor& weight, const Tensor& rstd) = 0;
  // QK-norm (Qwen3) on qkv rows inp (B, T, W), W = (n_head + 2·n_kv_head)·HD: out (B, T, W) = the
  // q heads of inp normalised with q_weight (HD), the k heads with k_weight (HD), the v heads
  // copied; rstd (B, T, n_head + n_kv_head) in stat dtype. out must not alias inp.
  virtual void qk_norm_forward(Tensor out, Tensor rstd, const Tensor& inp, const Tensor& q_weight,
                               const Tensor& k_weight, int n_head, int n_kv_head, float eps) = 0;
  // dinp (B, T, W) = (q and k heads: the RMSNorm input gradient of dout; v heads: dout copied);
  // dinp may alias dout. dq_weight +=, dk_weight += (either may be empty: frozen).
  virtual void qk_norm_backward(Tensor dinp, Tensor dq_weight, Tensor dk_weight, const Tensor& dout,
                                const Tensor& inp, const Tensor& q_weight, const Tensor& k_weight,
                                const Tensor& rstd, int n_head, int n_kv_head) = 0;
  // In place on qkv (B, T, W): the first n_heads heads of head_dim values of each row (the query
  // heads, then the key heads) rotated; row t at position pos0 + t. cos, sin (maxT, head_dim / 2)
  // in stat dtype (cpu::rope_table). The backward rotates dqkv back (=, in place).
  virtual void rope_forward(Tensor qkv, const Tensor& cos, const Tensor& sin, int n_heads,
                            int head_dim, int pos0) = 0;
  virtual void rope_backward(Tensor dqkv, const Tensor& cos, const Tensor& sin, int n_heads,
                             int head_dim, int pos0) = 0;
  // out (N,H) = silu(gate) · up with inp (N,2H) = [gate | up]
  virtual void swiglu_forward(Tensor out, const Tensor& inp) = 0;
  // dinp (N,2H) = (may alias inp)
  virtual void swiglu_backward(Tensor dinp, const Tensor& inp, const Tensor& dout) = 0;

  // Sum of squares of x (any length, compute dtype), in double on the host. Deterministic.
  virtual double sum_of_squares(const Tensor& x) = 0;
  // Sum of x (stat dtype, e.g. per-token losses), in double on the host. Deterministic.
  virtual double sum(const Tensor& x) = 0;

  // ---- ops with a portable default ------------------------------------------------------------
  // These have a host fallback (copy to the host, run the CPU kernel in f32, copy back) so that a
  // backend works before it has its own kernel; backends override them with device kernels.

  // out = s · in (any shape; out may alias in). Used by LoRA's scaled low-rank path.
  virtual void scale(Tensor out, const Tensor& in, float s);
  // One generation step with a KV cache of key/value heads only: out (B, NH·HS) for the queries
  // at the start of each row of q (B, >= NH·HS; a qkv row as it is) against kv_cache
  // (B, Tmax, 2·NKV·HS) rows [k | v], attending positions 0..pos (kernels/attention.h).
  virtual void attention_decode(Tensor out, const Tensor& q, const Tensor& kv_cache, int pos,
                                int n_head, int n_kv_head);

  // One AdamW step on one parameter tensor. m, v (and master, used when the compute dtype is bf16)
  // are in the stat dtype and have the parameter's element count.
  virtual void adamw_update(Tensor params, const Tensor& grads, Tensor m, Tensor v, Tensor master,
                            const AdamWStep& step) = 0;
};

// Shape checks of the ops both backends share (engine/backend.cpp); each throws ShapeError naming
// the op and the argument. rope: qkv (B, T, W) with n_heads · head_dim <= W, head_dim even, cos and
// sin (maxT, head_dim / 2) with pos0 + T <= maxT. swiglu: inp (N, 2H), the other (N, H).
struct RopeDims {
  int B = 0, T = 0, W = 0;
};
RopeDims check_rope(const Tensor& qkv, const Tensor& cos, const Tensor& sin, int n_heads,
                    int head_dim, int pos0, const char* op);
// attention: qkv (B, T, (NH + 2·NKV)·HS) with NKV dividing NH, out (B, T, NH·HS) (decode: (B,
// NH·HS)), lse (B, NH, T) when not empty. The shape in the CPU kernels' terms.
cpu::AttentionShape check_attention(const Tensor& qkv, const Tensor& out, const Tensor& lse,
                                    int n_head, int n_kv_head, const char* op);
// attention_decode: q (B, >= NH·HS), kv_cache (B, Tmax, 2·NKV·HS), out (B, NH·HS), 0 <= pos < Tmax;
// the shape's T is Tmax.
cpu::AttentionShape check_attention_decode(const Tensor& out, const Tensor& q,
                                           const Tensor& kv_cache, int pos, int n_head,
                                           int n_kv_head, const char* op);
struct SwigluDims {
  int N = 0, H = 0;
};
SwigluDims check_swiglu(const Tensor& inp, const Tensor& half, const char* op);
// qk_norm: inp (B, T, W) with W = (n_head + 2·n_kv_head)·HD; q_weight, k_weight (HD); rstd (B, T,
// n_head + n_kv_head). Forward: out shaped as inp and not aliasing it. Backward: dout and dinp
// (may alias dout) shaped as inp, dq_weight and dk_weight (when not empty) as the weights.
struct QkNormDims {
  int N = 0, HD = 0;  // N = B·T token rows
};
QkNormDims check_qk_norm_forward(const Tensor& out, const Tensor& rstd, const Tensor& inp,
                                 const Tensor& q_weight, const Tensor& k_weight, int n_head,
                                 int n_kv_head);
QkNormDims check_qk_norm_backward(const Tensor& dinp, const Tensor& dq_weight,
                                  const Tensor& dk_weight, const Tensor& dout, const Tensor& inp,
                                  const Tensor& q_weight, const Tensor& k_weight,
                                  const Tensor& rstd, int n_head, int n_kv_head);

// Creates a backend: "cpu" (dtype f32 or f64), "cuda" (bf16 or f32), "auto" (cuda when a device is
// present and the build has CUDA, else cpu). Throws std::invalid_argument for an unknown device or
// a dtype the device does not support, std::runtime_error when CUDA is asked for and absent.
std::unique_ptr<Backend> make_backend(const std::string& device, DType dtype);
// The same from the apps' --device and --dtype: dtype "auto" is bf16 on CUDA (device "cuda", or
// "auto" with a device present) and f32 on the CPU; else a dtype name (f32, bf16, f64). Throws
// std::invalid_argument for an unknown device or dtype.
std::unique_ptr<Backend> make_backend_from_names(const std::string& device,
                                                 const std::string& dtype);
// Whether a CUDA device is usable from this build.
bool cuda_available();
// The GPU that make_backend("cuda"/"auto") uses from now on (data parallel: the local rank).
void set_cuda_device(int index);
int cuda_device();

}  // namespace gpt
