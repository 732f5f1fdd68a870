// The CUDA launchers: one per op (forward and backward), taking raw device pointers, sizes and a
// stream. The math and the gradient rule (= or +=) of each op are those of the CPU reference
// declared in kernels/<op>.h; the kernels live in kernels/<op>.cu. The checked entry points that
// assert shapes, dtypes and alignment are the methods of engine/cuda_backend.cu: call those, not
// these, unless you checked the arguments yourself.
//
// F is the storage type: float (fp32 mode) or __nv_bfloat16 (mixed precision). Statistics (mean,
// rstd, lse, losses) are float. Vectorised dimensions (C, head size, padded vocabulary, element
// counts of elementwise ops are exempt) must be multiples of pack_size<F>() and pointers 16-byte
// aligned. No launcher allocates: the ones that need scratch memory say how much.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/attention.h"
#include "kernels/cuda_common.cuh"

namespace gpt::cuda {

// ---- encoder (kernels/encoder.h) ----------------------------------------------------------------
template <typename F>
void encoder_forward(F* out, const int32_t* tokens, const F* wte, const F* wpe, int B, int T, int C,
                     cudaStream_t stream);
// Scratch for encoder_backward with B·T tokens and a table of `rows` rows (the radix sort's keys,
// values and temporary storage).
size_t encoder_backward_scratch_bytes(int BT, int rows);
// dwte (rows, C) +=, dwpe (maxT, C) += ; either may be null. Deterministic (no atomics).
template <typename F>
void encoder_backward(F* dwte, F* dwpe, const F* dout, const int32_t* tokens, int B, int T, int C,
                      int rows, void* scratch, size_t scratch_bytes, cudaStream_t stream);

// ---- layernorm (kernels/layernorm.h) ------------------------------------------------------------
template <typename F>
void layernorm_forward(F* out, float* mean, float* rstd, const F* inp, const F* weight,
                       const F* bias, int N, int C, cudaStream_t stream);
size_t layernorm_backward_scratch_bytes(int N, int C);
// dinp +=, dweight +=, dbias += ; any may be null.
template <typename F>
void layernorm_backward(F* dinp, F* dweight, F* dbias, const F* dout, const F* inp, const F* weight,
                        const float* mean, const float* rstd, int N, int C, void* scratch,
                        cudaStream_t stream);

// The parameter gradients of a norm (kernels/layernorm.cu): dweight += Σ_rows dout · xhat and
// dbias += Σ_rows dout with xhat = (inp - mean) · rstd; mean null for RMSNorm (no centring); either
// gradient may be null. Deterministic: a fixed row chunking, partial sums added in order.
size_t norm_backward_params_scratch_bytes(int N, int C);
template <typename F>
void norm_backward_params(F* dweight, F* dbias, const F* dout, const F* inp, const float* mean,
                          const float* rstd, int N, int C, void* scratch, cudaStream_t stream);
// The rows of a norm over some heads of C values of wider token rows (QK-norm): row i is head
// first + i % count of token i / count, whose row holds row_heads heads; its rstd is at
// (i / count) · stat_heads + first + i % count.
struct NormHeads {
  int count = 0, first = 0, row_heads = 0, stat_heads = 0;
  __host__ __device__ int64_t offset(int i, int C) const {
    return (static_cast<int64_t>(i / count) * row_heads + first + i % count) * C;
  }
  __host__ __device__ int64_t stat(int i) const {
    return static_cast<int64_t>(i / count) * stat_heads + first + i % count;
  }
};
// dweight += Σ_rows dout · inp · rstd over the N rows that `heads` places (RMSNorm's weight
// gradient, as norm_backward_params with no mean). Scratch: norm_backward_params_scratch_bytes(N,
// C).
template <typename F>
void norm_backward_weight_heads(F* dweight, const F* dout, const F* inp, const float* rstd,
                                const NormHeads& heads, int N, int C, void* scratch,
                                cudaStream_t stream);

// ---- the Llama family's ops (kernels/rmsnorm.h, kernels/rope.h, kernels/swiglu.h) --------------
template <typename F>
void rmsnorm_forward(F* out, float* rstd, const F* inp, const F* weight, int N, int C, float eps,
                     cudaStream_t stream);
// sum = a + b (sum may alias a), out = RMSNorm(sum) · weight.
template <typename F>
void residual_rmsnorm_forward(F* sum, F* out, float* rstd, const F* a, const F* b, const F* weight,
                              int N, int C, float eps, cudaStream_t stream);
// dinp +=, dweight += ; either may be null. Scratch: norm_backward_params_scratch_bytes(N, C).
template <typename F>
void rmsnorm_backward(F* dinp, F* dweight, const F* dout, const F* inp, const F* weight,
                      const float* rstd, int N, int C, void* scratch, cudaStream_t stream);
// QK-norm on N token rows of qkv (out, inp (N, (n_head + 2·n_kv_head)·head_dim), rstd (N, n_head +
// n_kv_head)); out must not alias inp.
template <typename F>
void qk_norm_forward(F* out, float* rstd, const F* inp, const F* q_weight, const F* k_weight, int N,
                     int n_head, int n_kv_head, int head_dim, float eps, cudaStream_t stream);
// dinp = (may alias dout), dq_weight +=, dk_weight += (either may be null). Scratch:
// norm_backward_params_scratch_bytes(N · n_head, head_dim) when a weight gradient is asked for.
template <typename F>
void qk_norm_backward(F* dinp, F* dq_weight, F* dk_weight, const F* dout, const F* inp,
                      const F* q_weight, const F* k_weight, const float* rstd, int N, int n_head,
                      int n_kv_head, int head_dim, void* scratch, cudaStream_t stream);
// In place on the first n_heads heads of each of the B·T rows of x (row_stride values a row).
template <typename F>
void rope_forward(F* x, const float* cos, const float* sin, int B, int T, int n_heads, int head_dim,
                  int row_stride, int pos0, cudaStream_t stream);
template <typename F>
void rope_backward(F* dx, const float* cos, const float* sin, int B, int T, int n_heads,
                   int head_dim, int row_stride, int pos0, cudaStream_t stream);
// out (N,H) = silu(gate) · up of inp (N,2H) = [gate | up]; dinp (N,2H) = (may alias inp).
template <typename F>
void swiglu_forward(F* out, const F* inp, int N, int H, cudaStream_t stream);
template <typename F>
void swiglu_backward(F* dinp, const F* inp, const F* dout, int N, int H, cudaStream_t stream);

// ---- matmul through cuBLASLt (kernels/matmul.h) -------------------------------------------------
// How the bias gradient is computed: fused into the weight-gradient matmul as cuBLASLt's BGRADB
// epilogue (written to scratch, then added), or by a separate deterministic column-sum kernel.
enum class BiasGradPath { cublaslt_epilogue, kernel };

// cuBLASLt descriptors and heuristic results, cached per problem (shape, dtype, epilogue, pointer
// alignments); kernels/matmul.cu.
struct MatmulAlgoCache;
MatmulAlgoCache* create_matmul_algo_cache();
void destroy_matmul_algo_cache(MatmulAlgoCache* cache);

struct MatmulContext {
  cublasLtHandle_t lt = nullptr;
  void* workspace = nullptr;  // cuBLASLt workspace
  size_t workspace_bytes = 0;
  MatmulAlgoCache* cache = nullptr;
  cudaStream_t stream = nullptr;
};

// out (N,OC) = inp (N,C) · weightᵀ + bias (bias may be null; fused as the BIAS epilogue).
template <typename F>
void matmul_forward(const MatmulContext& ctx, F* out, const F* inp, const F* weight, const F* bias,
                    int N, int C, int OC);
size_t matmul_backward_scratch_bytes(int N, int OC);
// dinp =, dweight +=, dbias += (each may be null). Returns the bias-gradient path actually taken:
// the epilogue falls back to the kernel when cuBLASLt offers no algorithm for it (or dweight is
// null).
template <typename F>
BiasGradPath matmul_backward(const MatmulContext& ctx, F* dinp, F* dweight, F* dbias, const F* dout,
                             const F* inp, const F* weight, int N, int C, int OC, BiasGradPath path,
                             void* scratch);

// ---- gelu, residual (kernels/gelu.h, kernels/residual.h) ----------------------------------------
template <typename F>
void gelu_forward(F* out, const F* inp, size_t n, cudaStream_t stream);
// dinp = dout · gelu'(inp); dinp may alias dout.
template <typename F>
void gelu_backward(F* dinp, const F* inp, const F* dout, size_t n, cudaStream_t stream);
// out = a + b; out may alias a or b.
template <typename F>
void residual_forward(F* out, const F* a, const F* b, size_t n, cudaStream_t stream);

// ---- attention (kernels/attention.h) ------------------------------------------------------------
// Unfused: batched cuBLAS products over (batch, key/value head), each covering the group of query
// heads that share the key/value head, plus causal-softmax kernels, through a T×T score matrix per
// query head. Batches are processed in chunks whose fp32 score matrices fit in chunk_limit_bytes
// (at least one batch per chunk). HS must be a multiple of pack_size<F>().
enum class AttentionPass { forward, backward };
int attention_batch_chunk(int B, int T, int NH, size_t chunk_limit_bytes);
size_t attention_scratch_bytes(AttentionPass pass, const cpu::AttentionShape& shape,
                               size_t elem_bytes, size_t chunk_limit_bytes);
template <typename F>
void attention_forward(cublasHandle_t handle, F* out, float* lse, const F* qkv,
                       const cpu::AttentionShape& shape, void* scratch, size_t chunk_limit_bytes,
                       cudaStream_t stream);
// dqkv = (overwrites).
template <typename F>
void attention_backward(cublasHandle_t handle, F* dqkv, const F* dout, const F* qkv, const F* out,
                        const float* lse, const cpu::AttentionShape& shape, void* scratch,
                        size_t chunk_limit_bytes, cudaStream_t stream);
// One generation step (kernels/attention.h: attention_decode): out (B, NH·HS) = attention of the
// queries at the start of each row of q (row stride q_stride) over positions 0..pos of cache
// (B, Tmax, 2·NKV·HS) rows [k | v]; shape.T is the cache length Tmax. scratch:
// attention_decode_scratch_bytes(shape) bytes (the scores).
size_t attention_decode_scratch_bytes(const cpu::AttentionShape& shape);
template <typename F>
void attention_decode(F* out, const F* q, int q_stride, const F* cache, int pos,
                      const cpu::AttentionShape& shape, void* scratch, cudaStream_t stream);

// ---- fused classifier (kernels/crossentropy.h) --------------------------------------------------
// losses (N) =; dlogits (N,Vp) = (may alias logits; null: losses only). A target outside [0, V)
// that is not the ignore index gives a NaN loss (the kernel cannot throw), which the trainer's
// non-finite check reports.
template <typename F>
void crossentropy_forward_backward(float* losses, F* dlogits, const F* logits,
                                   const int32_t* targets, int N, int V, int Vp, float dloss,
                                   cudaStream_t stream);

// ---- reductions for the global norm and the loss sum (kernels/global_norm.h) --------------------
enum class Reduction { sum, sum_of_squares };
// Scratch for reduce(): per-block partial sums plus the result, in doubles.
size_t reduce_scratch_bytes();
// *result (device, double) = sum_i x_i or sum_i x_i². Two passes in a fixed order: deterministic.
template <typename F>
void reduce(double* result, const F* x, size_t n, Reduction op, double* scratch,
            cudaStream_t stream);

// ---- AdamW (kernels/adamw.h) --------------------------------------------------------------------
// Where the fp32 value of a bf16 parameter comes from: the master copy (every step but the first),
// or the bf16 parameter itself (the first step initialises the master copy).
enum class MasterInit { keep, from_params };
struct AdamWArgs {
  float lr = 0.0f;
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;
  float grad_scale = 1.0f;
  float bias_correction1 = 1.0f;  // 1 - beta1^step, computed in double on the host
  float bias_correction2 = 1.0f;  // 1 - beta2^step
  uint64_t seed = 0;              // stochastic rounding (bf16 parameters)
};
// fp32 mode (F = float): master must be null; params are the fp32 weights.
// bf16 mode: master (fp32) is updated and params receive it stochastically rounded.
template <typename F>
void adamw_update(F* params, float* master, const F* grads, float* m, float* v, size_t n,
                  const AdamWArgs& args, MasterInit init, cudaStream_t stream);

}  // namespace gpt::cuda
