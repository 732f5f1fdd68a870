// The fused classifier on the GPU: softmax, cross-entropy and dlogits in one kernel, one block per
// row (math and gradient rule: kernels/crossentropy.h). The probabilities are never stored.
//
//   pass 1: every thread walks its 16-byte packets of the row's real columns (j < V) keeping an
//           online (max, sum of exp) pair; the pairs are merged across the warp, then across the
//           warps in warp order (every thread merges the same values the same way), giving lse.
//   pass 2: (training) dlogits_j = dloss · (exp(x_j - max) / sum - [j == target]) for j < V and 0
//           for the padded columns, written over the logits in place.
// Traffic: the row is read twice (the second read mostly from L2) and written once: about
// 3 · N · Vp · sizeof(F) bytes. The target's logit is read before the first barrier, so no thread
// can have overwritten it yet. Ignored rows (target == -1) get a zero loss and a zero gradient
// row. A target outside [0, V) cannot throw here: its loss is NaN so the step's loss shows it.
#include <cfloat>

#include "kernels/crossentropy.h"
#include "kernels/cuda_kernels.cuh"

namespace gpt::cuda {
namespace {

constexpr int kBlock = 512;

struct MaxSum {
  float max;
  float sum;
};

__device__ __forceinline__ MaxSum merge(MaxSum a, MaxSum b) {
  const float m = fmaxf(a.max, b.max);
  return {m, a.sum * expf(a.max - m) + b.sum * expf(b.max - m)};
}

template <typename F>
__global__ void crossentropy_kernel(float* losses, F* dlogits, const F* logits,
                                    const int32_t* targets, int V, int Vp, float dloss) {
  constexpr int x = pack_size<F>();
  __shared__ MaxSum warp_results[kBlock / kWarpSize];
  const int row = blockIdx.x;
  const int64_t offset = static_cast<int64_t>(row) * Vp;
  const int target = targets[row];
  const int num_packs = Vp / x;

  if (target == cpu::kIgnoreIndex || target < 0 || target >= V) {
    if (threadIdx.x == 0)
      losses[row] = target == cpu::kIgnoreIndex ? 0.0f : __int_as_float(0x7fc00000);
    if (dlogits != nullptr) {
      Packed128<F> zero;
#pragma unroll
      for (int k = 0; k < x; ++k) zero[k] = from_float<F>(0.0f);
      for (int p = threadIdx.x; p < num_packs; p += blockDim.x)
        store128(dlogits + offset + p * x, zero);
    }
    return;
  }

  const float x_target = to_float(logits[offset + target]);
  // -FLT_MAX rather than -inf: merging two empty partials must not compute exp(-inf + inf).
  MaxSum acc{-FLT_MAX, 0.0f};
  for (int p = threadIdx.x; p < num_packs; p += blockDim.x) {
    const Packed128<F> v = load128(logits + offset + p * x);
#pragma unroll
    for (int k = 0; k < x; ++k) {
      if (p * x + k < V) {
        const float xj = to_float(v[k]);
        if (xj > acc.max) {
          acc.sum = acc.sum * expf(acc.max - xj) + 1.0f;
          acc.max = xj;
        } else {
          acc.sum += expf(xj - acc.max);
        }
      }
    }
  }
  for (int o = kWarpSize / 2; o > 0; o /= 2) {
    const MaxSum other{__shfl_xor_sync(0xffffffffu, acc.max, o),
                       __shfl_xor_sync(0xffffffffu, acc.sum, o)};
    acc = merge(acc, other);
  }
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  if (lane == 0) warp_results[warp] = acc;
  __syncthreads();
  MaxSum total = warp_results[0];
  for (int w = 1; w < static_cast<int>(blockDim.x) / kWarpSize; ++w)
    total = merge(total, warp_results[w]);

  if (threadIdx.x == 0) losses[row] = logf(total.sum) + total.max - x_target;
  if (dlogits == nullptr) return;
  const float scale = dloss / total.sum;
  for (int p = threadIdx.x; p < num_packs; p += blockDim.x) {
    const Packed128<F> v = load128cs(logits + offset + p * x);
    Packed128<F> d;
#pragma unroll
    for (int k = 0; k < x; ++k) {
      const int j = p * x + k;
      float g = 0.0f;
      if (j < V) {
        g = expf(to_float(v[k]) - total.max) * scale;
        if (j == target) g -= dloss;
      }
      d[k] = from_float<F>(g);
    }
    store128(dlogits + offset + p * x, d);
  }
}

}  // namespace

template <typename F>
void crossentropy_forward_backward(float* losses, F* dlogits, const F* logits,
                                   const int32_t* targets, int N, int V, int Vp, float dloss,
                                   cudaStream_t stream) {
  if (N == 0) return;
  crossentropy_kernel<F><<<N, kBlock, 0, stream>>>(losses, dlogits, logits, targets, V, Vp, dloss);
  GPT_CUDA_CHECK_LAUNCH();
}

template void crossentropy_forward_backward<float>(float*, float*, const float*, const int32_t*,
                                                   int, int, int, float, cudaStream_t);
template void crossentropy_forward_backward<bf16>(float*, bf16*, const bf16*, const int32_t*, int,
                                                  int, int, float, cudaStream_t);

}  // namespace gpt::cuda
