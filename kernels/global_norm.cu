// Deterministic sums on the GPU: Σx (per-token losses) and Σx² (the global gradient norm, see
// kernels/global_norm.h), returned in double.
//
// Two passes in a fixed order, no atomics, so the same input gives the same bits on every run:
//   1. a grid whose size depends on n alone (at most kMaxBlocks blocks of 256 threads): thread i
//      accumulates packets i, i + stride, ... in fp32 (a few hundred values per thread), the block
//      adds its threads' sums in double through a fixed tree, one partial per block;
//   2. one block adds the partials in double, in the same fixed tree.
// Memory bound: one read of x, 16-byte packets. The tail (n not a multiple of the packet) is read
// element by element by the thread that owns the last packet.
#include "kernels/cuda_kernels.cuh"

namespace gpt::cuda {
namespace {

constexpr int kBlock = 256;
constexpr int kMaxBlocks = 1024;

template <Reduction op>
__device__ __forceinline__ float term(float v) {
  if constexpr (op == Reduction::sum_of_squares) {
    return v * v;
  } else {
    return v;
  }
}

template <typename F, Reduction op>
__global__ void partial_sums_kernel(double* partials, const F* x, size_t n) {
  constexpr int pack = pack_size<F>();
  __shared__ double shared[kBlock / kWarpSize];
  const size_t num_packs = ceil_div<size_t>(n, pack);
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  float acc = 0.0f;
  for (size_t p = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; p < num_packs;
       p += stride) {
    const size_t i = p * pack;
    if (i + pack <= n) {
      const Packed128<F> v = load128cs(x + i);
#pragma unroll
      for (int k = 0; k < pack; ++k) acc += term<op>(to_float(v[k]));
    } else {
      for (size_t j = i; j < n; ++j) acc += term<op>(to_float(x[j]));
    }
  }
  const double total = block_sum(static_cast<double>(acc), shared);
  if (threadIdx.x == 0) partials[blockIdx.x] = total;
}

__global__ void final_sum_kernel(double* result, const double* partials, int count) {
  __shared__ double shared[kBlock / kWarpSize];
  double acc = 0.0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) acc += partials[i];
  const double total = block_sum(acc, shared);
  if (threadIdx.x == 0) *result = total;
}

}  // namespace

size_t reduce_scratch_bytes() {
  return (kMaxBlocks + 1) * sizeof(double);
}

template <typename F>
void reduce(double* result, const F* x, size_t n, Reduction op, double* scratch,
            cudaStream_t stream) {
  const size_t num_packs = ceil_div<size_t>(n, pack_size<F>());
  const int blocks =
      static_cast<int>(num_packs == 0 ? 1
                                      : (ceil_div<size_t>(num_packs, kBlock) < kMaxBlocks
                                             ? ceil_div<size_t>(num_packs, kBlock)
                                             : kMaxBlocks));
  if (op == Reduction::sum_of_squares) {
    partial_sums_kernel<F, Reduction::sum_of_squares><<<blocks, kBlock, 0, stream>>>(scratch, x, n);
  } else {
    partial_sums_kernel<F, Reduction::sum><<<blocks, kBlock, 0, stream>>>(scratch, x, n);
  }
  GPT_CUDA_CHECK_LAUNCH();
  final_sum_kernel<<<1, kBlock, 0, stream>>>(result, scratch, blocks);
  GPT_CUDA_CHECK_LAUNCH();
}

template void reduce<float>(double*, const float*, size_t, Reduction, double*, cudaStream_t);
template void reduce<bf16>(double*, const bf16*, size_t, Reduction, double*, cudaStream_t);

}  // namespace gpt::cuda
