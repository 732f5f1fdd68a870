// GELU (tanh approximation) on the GPU (math and gradient rule: kernels/gelu.h).
//
// Elementwise: one thread per 16-byte packet, memory bound (forward reads 1, writes 1 value per
// element; backward reads 2, writes 1). The last thread handles a partial packet element by
// element. As on the CPU, 0.5 · (1 + tanh(u)) is evaluated as the logistic σ(2u) = 1 / (1 +
// exp(-2u)), and 1 - tanh²(u) as 4σ(1 - σ): no cancellation where tanh(u) is close to ±1 (1 +
// tanh(u) for very negative x), and for very negative x exp overflows to +inf and σ is exactly 0,
// never NaN. expf, not a fast approximation: the fp32 mode is compared with the CPU at fp32
// tolerance, and the kernel is limited by memory, not arithmetic.
#include "kernels/cuda_kernels.cuh"

namespace gpt::cuda {
namespace {

constexpr int kBlock = 256;
constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kCubic = 0.044715f;

// σ(2u) = 0.5 · (1 + tanh(u)), u = sqrt(2/π) · (x + 0.044715 · x³)
__device__ __forceinline__ float gelu_sigma(float x) {
  const float u = kSqrt2OverPi * (x + kCubic * x * x * x);
  return 1.0f / (1.0f + expf(-2.0f * u));
}

__device__ __forceinline__ float gelu(float x) {
  return x * gelu_sigma(x);
}

// gelu'(x) = σ + 2 · x · σ · (1 - σ) · sqrt(2/π) · (1 + 3 · 0.044715 · x²)
__device__ __forceinline__ float gelu_grad(float x) {
  const float sigma = gelu_sigma(x);
  const float du = kSqrt2OverPi * (1.0f + 3.0f * kCubic * x * x);
  return sigma + 2.0f * x * sigma * (1.0f - sigma) * du;
}

template <typename F>
__global__ void gelu_forward_kernel(F* out, const F* inp, size_t n) {
  constexpr int x = pack_size<F>();
  const size_t i = (static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x) * x;
  if (i + x <= n) {
    const Packed128<F> in = load128cs(inp + i);
    Packed128<F> o;
#pragma unroll
    for (int k = 0; k < x; ++k) o[k] = from_float<F>(gelu(to_float(in[k])));
    store128(out + i, o);
  } else {
    for (size_t j = i; j < n; ++j) out[j] = from_float<F>(gelu(to_float(inp[j])));
  }
}

template <typename F>
__global__ void gelu_backward_kernel(F* dinp, const F* inp, const F* dout, size_t n) {
  constexpr int x = pack_size<F>();
  const size_t i = (static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x) * x;
  if (i + x <= n) {
    const Packed128<F> in = load128cs(inp + i);
    const Packed128<F> d = load128cs(dout + i);
    Packed128<F> o;
#pragma unroll
    for (int k = 0; k < x; ++k) o[k] = from_float<F>(to_float(d[k]) * gelu_grad(to_float(in[k])));
    store128(dinp + i, o);
  } else {
    for (size_t j = i; j < n; ++j)
      dinp[j] = from_float<F>(to_float(dout[j]) * gelu_grad(to_float(inp[j])));
  }
}

template <typename F>
unsigned grid_for(size_t n) {
  return static_cast<unsigned>(ceil_div<size_t>(ceil_div<size_t>(n, pack_size<F>()), kBlock));
}

}  // namespace

template <typename F>
void gelu_forward(F* out, const F* inp, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  gelu_forward_kernel<F><<<grid_for<F>(n), kBlock, 0, stream>>>(out, inp, n);
  GPT_CUDA_CHECK_LAUNCH();
}

template <typename F>
void gelu_backward(F* dinp, const F* inp, const F* dout, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  gelu_backward_kernel<F><<<grid_for<F>(n), kBlock, 0, stream>>>(dinp, inp, dout, n);
  GPT_CUDA_CHECK_LAUNCH();
}

template void gelu_forward<float>(float*, const float*, size_t, cudaStream_t);
template void gelu_forward<bf16>(bf16*, const bf16*, size_t, cudaStream_t);
template void gelu_backward<float>(float*, const float*, const float*, size_t, cudaStream_t);
template void gelu_backward<bf16>(bf16*, const bf16*, const bf16*, size_t, cudaStream_t);

}  // namespace gpt::cuda
