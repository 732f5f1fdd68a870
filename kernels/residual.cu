// Residual add on the GPU (kernels/residual.h): out = a + b, one thread per 16-byte packet.
// Memory bound: reads 2, writes 1 value per element. out may alias a or b (each element is read
// and written by the same thread). Also used to add a bias-gradient scratch vector into dbias.
#include "kernels/cuda_kernels.cuh"

namespace gpt::cuda {
namespace {

constexpr int kBlock = 256;

template <typename F>
__global__ void residual_forward_kernel(F* out, const F* a, const F* b, size_t n) {
  constexpr int x = pack_size<F>();
  const size_t i = (static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x) * x;
  if (i + x <= n) {
    const Packed128<F> va = load128cs(a + i);
    const Packed128<F> vb = load128cs(b + i);
    Packed128<F> o;
#pragma unroll
    for (int k = 0; k < x; ++k) o[k] = from_float<F>(to_float(va[k]) + to_float(vb[k]));
    store128(out + i, o);
  } else {
    for (size_t j = i; j < n; ++j) out[j] = from_float<F>(to_float(a[j]) + to_float(b[j]));
  }
}

}  // namespace

template <typename F>
void residual_forward(F* out, const F* a, const F* b, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  const unsigned grid =
      static_cast<unsigned>(ceil_div<size_t>(ceil_div<size_t>(n, pack_size<F>()), kBlock));
  residual_forward_kernel<F><<<grid, kBlock, 0, stream>>>(out, a, b, n);
  GPT_CUDA_CHECK_LAUNCH();
}

template void residual_forward<float>(float*, const float*, const float*, size_t, cudaStream_t);
template void residual_forward<bf16>(bf16*, const bf16*, const bf16*, size_t, cudaStream_t);

}  // namespace gpt::cuda
