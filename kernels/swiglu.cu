// SwiGLU on the GPU (math: kernels/swiglu.h). One thread per 16-byte packet of the output: it
// reads the matching packets of the gate half and the up half of its row. H must be a multiple of
// the packet size (the backend checks), so a packet never straddles the two halves or two rows.
// The backward reads the gate and up packets before writing dgate and dup: dinp may alias inp.
#include "kernels/cuda_kernels.cuh"

namespace gpt::cuda {
namespace {

constexpr int kBlock = 256;

template <typename F>
__global__ void swiglu_forward_kernel(F* out, const F* inp, int N, int H) {
  constexpr int x = pack_size<F>();
  const int64_t i = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) * x;
  if (i >= static_cast<int64_t>(N) * H) return;
  const int64_t row = i / H;
  const int64_t j = i % H;
  const Packed128<F> g = load128cs(inp + row * 2 * H + j);
  const Packed128<F> u = load128cs(inp + row * 2 * H + H + j);
  Packed128<F> o;
#pragma unroll
  for (int k = 0; k < x; ++k) {
    const float gk = to_float(g[k]);
    o[k] = from_float<F>(gk / (1.0f + expf(-gk)) * to_float(u[k]));
  }
  store128(out + i, o);
}

template <typename F>
__global__ void swiglu_backward_kernel(F* dinp, const F* inp, const F* dout, int N, int H) {
  constexpr int x = pack_size<F>();
  const int64_t i = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) * x;
  if (i >= static_cast<int64_t>(N) * H) return;
  const int64_t row = i / H;
  const int64_t j = i % H;
  const Packed128<F> g = load128cs(inp + row * 2 * H + j);
  const Packed128<F> u = load128cs(inp + row * 2 * H + H + j);
  const Packed128<F> dy = load128cs(dout + i);
  Packed128<F> dg;
  Packed128<F> du;
#pragma unroll
  for (int k = 0; k < x; ++k) {
    const float gk = to_float(g[k]);
    const float sigma = 1.0f / (1.0f + expf(-gk));
    const float d = to_float(dy[k]);
    dg[k] = from_float<F>(d * to_float(u[k]) * sigma * (1.0f + gk * (1.0f - sigma)));
    du[k] = from_float<F>(d * gk * sigma);
  }
  store128(dinp + row * 2 * H + j, dg);
  store128(dinp + row * 2 * H + H + j, du);
}

unsigned grid_for(int N, int H, int pack) {
  return static_cast<unsigned>(ceil_div<int64_t>(static_cast<int64_t>(N) * H / pack, kBlock));
}

}  // namespace

template <typename F>
void swiglu_forward(F* out, const F* inp, int N, int H, cudaStream_t stream) {
  if (static_cast<int64_t>(N) * H == 0) return;
  swiglu_forward_kernel<F><<<grid_for(N, H, pack_size<F>()), kBlock, 0, stream>>>(out, inp, N, H);
  GPT_CUDA_CHECK_LAUNCH();
}

template <typename F>
void swiglu_backward(F* dinp, const F* inp, const F* dout, int N, int H, cudaStream_t stream) {
  if (static_cast<int64_t>(N) * H == 0) return;
  swiglu_backward_kernel<F>
      <<<grid_for(N, H, pack_size<F>()), kBlock, 0, stream>>>(dinp, inp, dout, N, H);
  GPT_CUDA_CHECK_LAUNCH();
}

template void swiglu_forward<float>(float*, const float*, int, int, cudaStream_t);
template void swiglu_forward<bf16>(bf16*, const bf16*, int, int, cudaStream_t);
template void swiglu_backward<float>(float*, const float*, const float*, int, int, cudaStream_t);
template void swiglu_backward<bf16>(bf16*, const bf16*, const bf16*, int, int, cudaStream_t);

}  // namespace gpt::cuda
