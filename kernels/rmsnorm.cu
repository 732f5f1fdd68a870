// RMSNorm and QK-norm on the GPU (math and gradient rules: kernels/rmsnorm.h).
//
// Forward: one warp per row, two reads of the row in 16-byte packets (sum of squares -> rstd, then
// the output; the second read hits L1/L2). Fused with the residual add before it, the first pass
// reads a and b and writes sum = a + b, the second reads sum back: one launch and one pass over
// sum instead of the add's kernel plus the norm's two reads.
// Backward: rows: one warp per row, Σ g·xhat with g = dout·w, then dinp += rstd · (g - xhat ·
// mean(g·xhat)); the weight gradient is LayerNorm's deterministic column reduction with no mean
// (norm_backward_params in kernels/layernorm.cu).
// QK-norm runs the same row code with one warp per head of a qkv row (q and k heads normalised,
// v heads copied), so a head of HD values keeps HD / x lanes busy (x = 4 in fp32, 8 in bf16: 16 of
// 32 at HD = 128 in bf16). Its weight gradients are the same column reduction over the heads
// (norm_backward_weight_heads), computed before the rows kernel, which may overwrite dout.
#include "kernels/cuda_kernels.cuh"

namespace gpt::cuda {
namespace {

constexpr int kBlock = 256;
constexpr int kWarpsPerBlock = kBlock / kWarpSize;

// A row's rstd from each lane's partial sum of squares of its C values (on every lane).
__device__ float row_rstd(float sum_sq, int C, float eps) {
  return rsqrtf(warp_sum(sum_sq) / C + eps);
}

// out = inp · s · w over one row of C values, by one warp; each lane reads and writes the packets
// at lane · x + k · 32 · x, the same ones the sums of squares read.
template <typename F>
__device__ void scale_row(F* out, const F* inp, const F* weight, float s, int C, int lane) {
  constexpr int x = pack_size<F>();
  for (int c = lane * x; c < C; c += kWarpSize * x) {
    const Packed128<F> v = load128cs(inp + c);
    const Packed128<F> w = load128(weight + c);
    Packed128<F> o;
#pragma unroll
    for (int k = 0; k < x; ++k) o[k] = from_float<F>(to_float(v[k]) * s * to_float(w[k]));
    store128(out + c, o);
  }
}

// out = inp · rstd · w over one row of C values, by one warp; returns rstd (on every lane).
template <typename F>
__device__ float forward_row(F* out, const F* inp, const F* weight, int C, float eps, int lane) {
  constexpr int x = pack_size<F>();
  float sum_sq = 0.0f;
  for (int c = lane * x; c < C; c += kWarpSize * x) {
    const Packed128<F> v = load128(inp + c);
#pragma unroll
    for (int k = 0; k < x; ++k) sum_sq += to_float(v[k]) * to_float(v[k]);
  }
  const float s = row_rstd(sum_sq, C, eps);
  scale_row(out, inp, weight, s, C, lane);
  return s;
}

// One row's input gradient, by one warp, added to dinp (kAccumulate) or written over it. dinp may
// alias dout: the warp has read the whole row (the warp sum) before any lane writes, and each lane
// then reads its own packets of dout before it writes them.
template <bool kAccumulate, typename F>
__device__ void backward_row(F* dinp, const F* dout, const F* inp, const F* weight, float s, int C,
                             int lane) {
  constexpr int x = pack_size<F>();
  float sum_g_xhat = 0.0f;
  for (int c = lane * x; c < C; c += kWarpSize * x) {
    const Packed128<F> dy = load128(dout + c);
    const Packed128<F> v = load128(inp + c);
    const Packed128<F> w = load128(weight + c);
#pragma unroll
    for (int k = 0; k < x; ++k) sum_g_xhat += to_float(dy[k]) * to_float(w[k]) * to_float(v[k]) * s;
  }
  const float mean_g_xhat = warp_sum(sum_g_xhat) / C;

  for (int c = lane * x; c < C; c += kWarpSize * x) {
    const Packed128<F> dy = load128(dout + c);
    const Packed128<F> v = load128(inp + c);
    const Packed128<F> w = load128(weight + c);
    Packed128<F> dx{};
    if constexpr (kAccumulate) dx = load128(dinp + c);
#pragma unroll
    for (int k = 0; k < x; ++k) {
      const float g = to_float(dy[k]) * to_float(w[k]);
      const float xhat = to_float(v[k]) * s;
      const float grad = s * (g - xhat * mean_g_xhat);
      dx[k] = from_float<F>(kAccumulate ? to_float(dx[k]) + grad : grad);
    }
    store128(dinp + c, dx);
  }
}

// A row of C values copied by one warp (QK-norm's value heads).
template <typename F>
__device__ void copy_row(F* out, const F* inp, int C, int lane) {
  constexpr int x = pack_size<F>();
  for (int c = lane * x; c < C; c += kWarpSize * x) store128(out + c, load128(inp + c));
}

template <typename F>
__global__ void rmsnorm_forward_kernel(F* out, float* rstd, const F* inp, const F* weight, int N,
                                       int C, float eps) {
  const int lane = threadIdx.x % kWarpSize;
  const int row = blockIdx.x * kWarpsPerBlock + threadIdx.x / kWarpSize;
  if (row >= N) return;
  const int64_t offset = static_cast<int64_t>(row) * C;
  const float s = forward_row(out + offset, inp + offset, weight, C, eps, lane);
  if (lane == 0) rstd[row] = s;
}

// The residual add fused in: sum = a + b rounded to F and stored, its squares summed from the
// rounded values (as rmsnorm_forward_kernel would read them back), then the output from the row of
// sum each lane has just written (its own packets: no sync needed). sum may alias a: each lane
// reads its packets of a before it writes them.
template <typename F>
__global__ void residual_rmsnorm_forward_kernel(F* sum, F* out, float* rstd, const F* a, const F* b,
                                                const F* weight, int N, int C, float eps) {
  constexpr int x = pack_size<F>();
  const int lane = threadIdx.x % kWarpSize;
  const int row = blockIdx.x * kWarpsPerBlock + threadIdx.x / kWarpSize;
  if (row >= N) return;
  const int64_t offset = static_cast<int64_t>(row) * C;
  float sum_sq = 0.0f;
  for (int c = lane * x; c < C; c += kWarpSize * x) {
    const Packed128<F> va = load128cs(a + offset + c);
    const Packed128<F> vb = load128cs(b + offset + c);
    Packed128<F> v;
#pragma unroll
    for (int k = 0; k < x; ++k) {
      v[k] = from_float<F>(to_float(va[k]) + to_float(vb[k]));
      sum_sq += to_float(v[k]) * to_float(v[k]);
    }
    store128(sum + offset + c, v);
  }
  const float s = row_rstd(sum_sq, C, eps);
  scale_row(out + offset, sum + offset, weight, s, C, lane);
  if (lane == 0) rstd[row] = s;
}

template <typename F>
__global__ void rmsnorm_backward_rows_kernel(F* dinp, const F* dout, const F* inp, const F* weight,
                                             const float* rstd, int N, int C) {
  const int lane = threadIdx.x % kWarpSize;
  const int row = blockIdx.x * kWarpsPerBlock + threadIdx.x / kWarpSize;
  if (row >= N) return;
  const int64_t offset = static_cast<int64_t>(row) * C;
  backward_row<true>(dinp + offset, dout + offset, inp + offset, weight, rstd[row], C, lane);
}

// The head of qkv a warp of the QK-norm kernels takes, one warp per head of the N · (NH + 2·NKV)
// heads: head h of token t starts at (t · (NH + 2·NKV) + h) · HD, its rstd (q and k heads only) is
// at t · (NH + NKV) + h. False for the warps past the last head.
struct QkHead {
  int64_t offset = 0;
  int64_t stat = -1;  // -1: a value head (copied)
  bool query = false;
};

__device__ bool find_qk_head(QkHead* head, int N, int n_head, int n_kv_head, int head_dim) {
  const int heads = n_head + 2 * n_kv_head;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarpSize;
  if (i >= static_cast<int64_t>(N) * heads) return false;
  const int h = static_cast<int>(i % heads);
  head->offset = i * head_dim;
  head->query = h < n_head;
  if (h < n_head + n_kv_head) head->stat = i / heads * (n_head + n_kv_head) + h;
  return true;
}

template <typename F>
__global__ void qk_norm_forward_kernel(F* out, float* rstd, const F* inp, const F* q_weight,
                                       const F* k_weight, int N, int n_head, int n_kv_head,
                                       int head_dim, float eps) {
  const int lane = threadIdx.x % kWarpSize;
  QkHead head;
  if (!find_qk_head(&head, N, n_head, n_kv_head, head_dim)) return;
  F* y = out + head.offset;
  const F* x = inp + head.offset;
  if (head.stat < 0) {
    copy_row(y, x, head_dim, lane);
    return;
  }
  const float s = forward_row(y, x, head.query ? q_weight : k_weight, head_dim, eps, lane);
  if (lane == 0) rstd[head.stat] = s;
}

template <typename F>
__global__ void qk_norm_backward_rows_kernel(F* dinp, const F* dout, const F* inp,
                                             const F* q_weight, const F* k_weight,
                                             const float* rstd, int N, int n_head, int n_kv_head,
                                             int head_dim) {
  const int lane = threadIdx.x % kWarpSize;
  QkHead head;
  if (!find_qk_head(&head, N, n_head, n_kv_head, head_dim)) return;
  F* dx = dinp + head.offset;
  const F* dy = dout + head.offset;
  if (head.stat < 0) {
    copy_row(dx, dy, head_dim, lane);
    return;
  }
  backward_row<false>(dx, dy, inp + head.offset, head.query ? q_weight : k_weight, rstd[head.stat],
                      head_dim, lane);
}

}  // namespace

template <typename F>
void rmsnorm_forward(F* out, float* rstd, const F* inp, const F* weight, int N, int C, float eps,
                     cudaStream_t stream) {
  if (N == 0) return;
  rmsnorm_forward_kernel<F>
      <<<ceil_div(N, kWarpsPerBlock), kBlock, 0, stream>>>(out, rstd, inp, weight, N, C, eps);
  GPT_CUDA_CHECK_LAUNCH();
}

template <typename F>
void residual_rmsnorm_forward(F* sum, F* out, float* rstd, const F* a, const F* b, const F* weight,
                              int N, int C, float eps, cudaStream_t stream) {
  if (N == 0) return;
  residual_rmsnorm_forward_kernel<F>
      <<<ceil_div(N, kWarpsPerBlock), kBlock, 0, stream>>>(sum, out, rstd, a, b, weight, N, C, eps);
  GPT_CUDA_CHECK_LAUNCH();
}

template <typename F>
void rmsnorm_backward(F* dinp, F* dweight, const F* dout, const F* inp, const F* weight,
                      const float* rstd, int N, int C, void* scratch, cudaStream_t stream) {
  if (N == 0) return;
  if (dinp != nullptr) {
    rmsnorm_backward_rows_kernel<F>
        <<<ceil_div(N, kWarpsPerBlock), kBlock, 0, stream>>>(dinp, dout, inp, weight, rstd, N, C);
    GPT_CUDA_CHECK_LAUNCH();
  }
  norm_backward_params<F>(dweight, nullptr, dout, inp, nullptr, rstd, N, C, scratch, stream);
}

template <typename F>
void qk_norm_forward(F* out, float* rstd, const F* inp, const F* q_weight, const F* k_weight, int N,
                     int n_head, int n_kv_head, int head_dim, float eps, cudaStream_t stream) {
  const int64_t heads = static_cast<int64_t>(N) * (n_head + 2 * n_kv_head);
  if (heads == 0) return;
  qk_norm_forward_kernel<F>
      <<<static_cast<unsigned>(ceil_div<int64_t>(heads, kWarpsPerBlock)), kBlock, 0, stream>>>(
          out, rstd, inp, q_weight, k_weight, N, n_head, n_kv_head, head_dim, eps);
  GPT_CUDA_CHECK_LAUNCH();
}

template <typename F>
void qk_norm_backward(F* dinp, F* dq_weight, F* dk_weight, const F* dout, const F* inp,
                      const F* q_weight, const F* k_weight, const float* rstd, int N, int n_head,
                      int n_kv_head, int head_dim, void* scratch, cudaStream_t stream) {
  const int64_t heads = static_cast<int64_t>(N) * (n_head + 2 * n_kv_head);
  if (heads == 0) return;
  // The weight gradients read dout before the rows kernel overwrites it (dinp may alias dout).
  const int row_heads = n_head + 2 * n_kv_head, stat_heads = n_head + n_kv_head;
  if (dq_weight != nullptr) {
    norm_backward_weight_heads<F>(dq_weight, dout, inp, rstd,
                                  NormHeads{n_head, 0, row_heads, stat_heads}, N * n_head, head_dim,
                                  scratch, stream);
  }
  if (dk_weight != nullptr) {
    norm_backward_weight_heads<F>(dk_weight, dout, inp, rstd,
                                  NormHeads{n_kv_head, n_head, row_heads, stat_heads},
                                  N * n_kv_head, head_dim, scratch, stream);
  }
  qk_norm_backward_rows_kernel<F>
      <<<static_cast<unsigned>(ceil_div<int64_t>(heads, kWarpsPerBlock)), kBlock, 0, stream>>>(
          dinp, dout, inp, q_weight, k_weight, rstd, N, n_head, n_kv_head, head_dim);
  GPT_CUDA_CHECK_LAUNCH();
}

template void rmsnorm_forward<float>(float*, float*, const float*, const float*, int, int, float,
                                     cudaStream_t);
template void rmsnorm_forward<bf16>(bf16*, float*, const bf16*, const bf16*, int, int, float,
                                    cudaStream_t);
template void residual_rmsnorm_forward<float>(float*, float*, float*, const float*, const float*,
                                              const float*, int, int, float, cudaStream_t);
template void residual_rmsnorm_forward<bf16>(bf16*, bf16*, float*, const bf16*, const bf16*,
                                             const bf16*, int, int, float, cudaStream_t);
template void rmsnorm_backward<float>(float*, float*, const float*, const float*, const float*,
                                      const float*, int, int, void*, cudaStream_t);
template void rmsnorm_backward<bf16>(bf16*, bf16*, const bf16*, const bf16*, const bf16*,
                                     const float*, int, int, void*, cudaStream_t);
template void qk_norm_forward<float>(float*, float*, const float*, const float*, const float*, int,
                                     int, int, int, float, cudaStream_t);
template void qk_norm_forward<bf16>(bf16*, float*, const bf16*, const bf16*, const bf16*, int, int,
                                    int, int, float, cudaStream_t);
template void qk_norm_backward<float>(float*, float*, float*, const float*, const float*,
                                      const float*, const float*, const float*, int, int, int, int,
                                      void*, cudaStream_t);
template void qk_norm_backward<bf16>(bf16*, bf16*, bf16*, const bf16*, const bf16*, const bf16*,
                                     const bf16*, const float*, int, int, int, int, void*,
                                     cudaStream_t);

}  // namespace gpt::cuda
