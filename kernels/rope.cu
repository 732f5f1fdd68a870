// RoPE on the GPU (math and layout: kernels/rope.h), in place on the q and k heads of qkv rows.
// One thread per rotated pair (row, head, i < D/2): it reads elements i and i + D/2 of its head and
// writes both back, so no two threads touch the same element. Consecutive threads take consecutive
// i, so each half of a head is read and written coalesced. The backward is the same kernel with
// the angle negated.
#include "kernels/cuda_kernels.cuh"

namespace gpt::cuda {
namespace {

constexpr int kBlock = 256;

template <typename F>
__global__ void rope_kernel(F* x, const float* cos, const float* sin, int BT, int T, int n_heads,
                            int head_dim, int row_stride, int pos0, float sign) {
  const int half = head_dim / 2;
  const int64_t pairs = static_cast<int64_t>(BT) * n_heads * half;
  const int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (p >= pairs) return;
  const int i = static_cast<int>(p % half);
  const int h = static_cast<int>(p / half % n_heads);
  const int row = static_cast<int>(p / half / n_heads);
  const int64_t table = static_cast<int64_t>(pos0 + row % T) * half + i;
  const float c = cos[table];
  const float s = sign * sin[table];
  F* head = x + static_cast<int64_t>(row) * row_stride + static_cast<int64_t>(h) * head_dim;
  const float a = to_float(head[i]);
  const float b = to_float(head[i + half]);
  head[i] = from_float<F>(a * c - b * s);
  head[i + half] = from_float<F>(b * c + a * s);
}

template <typename F>
void launch(F* x, const float* cos, const float* sin, int B, int T, int n_heads, int head_dim,
            int row_stride, int pos0, float sign, cudaStream_t stream) {
  const int64_t pairs = static_cast<int64_t>(B) * T * n_heads * (head_dim / 2);
  if (pairs == 0) return;
  rope_kernel<F><<<static_cast<unsigned>(ceil_div<int64_t>(pairs, kBlock)), kBlock, 0, stream>>>(
      x, cos, sin, B * T, T, n_heads, head_dim, row_stride, pos0, sign);
  GPT_CUDA_CHECK_LAUNCH();
}

}  // namespace

template <typename F>
void rope_forward(F* x, const float* cos, const float* sin, int B, int T, int n_heads, int head_dim,
                  int row_stride, int pos0, cudaStream_t stream) {
  launch(x, cos, sin, B, T, n_heads, head_dim, row_stride, pos0, 1.0f, stream);
}

template <typename F>
void rope_backward(F* dx, const float* cos, const float* sin, int B, int T, int n_heads,
                   int head_dim, int row_stride, int pos0, cudaStream_t stream) {
  launch(dx, cos, sin, B, T, n_heads, head_dim, row_stride, pos0, -1.0f, stream);
}

template void rope_forward<float>(float*, const float*, const float*, int, int, int, int, int, int,
                                  cudaStream_t);
template void rope_forward<bf16>(bf16*, const float*, const float*, int, int, int, int, int, int,
                                 cudaStream_t);
template void rope_backward<float>(float*, const float*, const float*, int, int, int, int, int, int,
                                   cudaStream_t);
template void rope_backward<bf16>(bf16*, const float*, const float*, int, int, int, int, int, int,
                                  cudaStream_t);

}  // namespace gpt::cuda
