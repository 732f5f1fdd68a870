// RMSNorm on the GPU (math and gradient rule: kernels/rmsnorm.h).
//
// Forward: one warp per row, two reads of the row in 16-byte packets (sum of squares -> rstd, then
// the output; the second read hits L1/L2).
// Backward: rows: one warp per row, Σ g·xhat with g = dout·w, then dinp += rstd · (g - xhat ·
// mean(g·xhat)); the weight gradient is LayerNorm's deterministic column reduction with no mean
// (norm_backward_params in kernels/layernorm.cu).
#include "kernels/cuda_kernels.cuh"

namespace gpt::cuda {
namespace {

constexpr int kBlock = 256;
constexpr int kWarpsPerBlock = kBlock / kWarpSize;

template <typename F>
__global__ void rmsnorm_forward_kernel(F* out, float* rstd, const F* inp, const F* weight, int N,
                                       int C, float eps) {
  constexpr int x = pack_size<F>();
  const int lane = threadIdx.x % kWarpSize;
  const int row = blockIdx.x * kWarpsPerBlock + threadIdx.x / kWarpSize;
  if (row >= N) return;
  const F* in_row = inp + static_cast<int64_t>(row) * C;
  F* out_row = out + static_cast<int64_t>(row) * C;

  float sum_sq = 0.0f;
  for (int c = lane * x; c < C; c += kWarpSize * x) {
    const Packed128<F> v = load128(in_row + c);
#pragma unroll
    for (int k = 0; k < x; ++k) sum_sq += to_float(v[k]) * to_float(v[k]);
  }
  const float s = rsqrtf(warp_sum(sum_sq) / C + eps);

  for (int c = lane * x; c < C; c += kWarpSize * x) {
    const Packed128<F> v = load128cs(in_row + c);
    const Packed128<F> w = load128(weight + c);
    Packed128<F> o;
#pragma unroll
    for (int k = 0; k < x; ++k) o[k] = from_float<F>(to_float(v[k]) * s * to_float(w[k]));
    store128(out_row + c, o);
  }
  if (lane == 0) rstd[row] = s;
}

template <typename F>
__global__ void rmsnorm_backward_rows_kernel(F* dinp, const F* dout, const F* inp, const F* weight,
                                             const float* rstd, int N, int C) {
  constexpr int x = pack_size<F>();
  const int lane = threadIdx.x % kWarpSize;
  const int row = blockIdx.x * kWarpsPerBlock + threadIdx.x / kWarpSize;
  if (row >= N) return;
  const int64_t offset = static_cast<int64_t>(row) * C;
  const float s = rstd[row];

  float sum_g_xhat = 0.0f;
  for (int c = lane * x; c < C; c += kWarpSize * x) {
    const Packed128<F> dy = load128(dout + offset + c);
    const Packed128<F> v = load128(inp + offset + c);
    const Packed128<F> w = load128(weight + c);
#pragma unroll
    for (int k = 0; k < x; ++k) sum_g_xhat += to_float(dy[k]) * to_float(w[k]) * to_float(v[k]) * s;
  }
  const float mean_g_xhat = warp_sum(sum_g_xhat) / C;

  for (int c = lane * x; c < C; c += kWarpSize * x) {
    const Packed128<F> dy = load128(dout + offset + c);
    const Packed128<F> v = load128(inp + offset + c);
    const Packed128<F> w = load128(weight + c);
    Packed128<F> dx = load128(dinp + offset + c);
#pragma unroll
    for (int k = 0; k < x; ++k) {
      const float g = to_float(dy[k]) * to_float(w[k]);
      const float xhat = to_float(v[k]) * s;
      dx[k] = from_float<F>(to_float(dx[k]) + s * (g - xhat * mean_g_xhat));
    }
    store128(dinp + offset + c, dx);
  }
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

template void rmsnorm_forward<float>(float*, float*, const float*, const float*, int, int, float,
                                     cudaStream_t);
template void rmsnorm_forward<bf16>(bf16*, float*, const bf16*, const bf16*, int, int, float,
                                    cudaStream_t);
template void rmsnorm_backward<float>(float*, float*, const float*, const float*, const float*,
                                      const float*, int, int, void*, cudaStream_t);
template void rmsnorm_backward<bf16>(bf16*, bf16*, const bf16*, const bf16*, const bf16*,
                                     const float*, int, int, void*, cudaStream_t);

}  // namespace gpt::cuda
