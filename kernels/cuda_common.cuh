// Shared pieces of the CUDA kernels (device code): the compute types and their cuBLAS data types,
// 16-byte packed loads and stores, warp and block reductions, and the stochastic-rounding hash.
//
// Precision: kernels are templated on the storage type F of parameters, gradients and activations,
// either float (the fp32 mode, compared with the CPU backend at fp32 tolerance) or __nv_bfloat16
// (mixed precision). Arithmetic is always fp32 (to_float / from_float at the loads and stores);
// statistics (LayerNorm mean/rstd, attention logsumexp, losses) are always fp32.
//
// Memory-bound kernels move data in 16-byte packets (Packed128<F>: 8 bf16 or 4 floats), the widest
// load a thread can issue; the checked entry points (engine/cuda_backend.cu) assert that the
// pointers are 16-byte aligned and the vectorised dimension is a multiple of the packet.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kernels/cuda_check.h"
#include "kernels/stochastic_rounding.h"

namespace gpt::cuda {

using bf16 = __nv_bfloat16;

constexpr int kWarpSize = 32;

template <typename T>
__host__ __device__ constexpr T ceil_div(T a, T b) {
  return (a + b - 1) / b;
}

// ---- conversions --------------------------------------------------------------------------------
__device__ __forceinline__ float to_float(float x) {
  return x;
}
__device__ __forceinline__ float to_float(bf16 x) {
  return __bfloat162float(x);
}

template <typename F>
__device__ __forceinline__ F from_float(float x);
template <>
__device__ __forceinline__ float from_float<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ bf16 from_float<bf16>(float x) {
  return __float2bfloat16_rn(x);
}

// The cuBLAS / cuBLASLt data type of a storage type.
template <typename F>
constexpr cudaDataType_t data_type();
template <>
constexpr cudaDataType_t data_type<float>() {
  return CUDA_R_32F;
}
template <>
constexpr cudaDataType_t data_type<bf16>() {
  return CUDA_R_16BF;
}

// ---- 16-byte packets ----------------------------------------------------------------------------
template <typename T>
struct alignas(16) Packed128 {
  static constexpr int kSize = 16 / static_cast<int>(sizeof(T));
  T v[kSize];
  __device__ __forceinline__ T& operator[](int i) { return v[i]; }
  __device__ __forceinline__ const T& operator[](int i) const { return v[i]; }
};

// Elements of F per 16-byte packet (8 for bf16, 4 for float).
template <typename F>
__host__ __device__ constexpr int pack_size() {
  return Packed128<F>::kSize;
}

// Plain load: cached in L1 and L2 (data read again soon, e.g. a LayerNorm row read three times).
template <typename T>
__device__ __forceinline__ Packed128<T> load128(const T* p) {
  Packed128<T> r;
  *reinterpret_cast<int4*>(&r) = *reinterpret_cast<const int4*>(p);
  return r;
}
// Streaming load (cache-streaming hint): data read once; spare the cache for what is reused.
template <typename T>
__device__ __forceinline__ Packed128<T> load128cs(const T* p) {
  Packed128<T> r;
  *reinterpret_cast<int4*>(&r) = __ldcs(reinterpret_cast<const int4*>(p));
  return r;
}
template <typename T>
__device__ __forceinline__ void store128(T* p, const Packed128<T>& v) {
  *reinterpret_cast<int4*>(p) = *reinterpret_cast<const int4*>(&v);
}
template <typename T>
__device__ __forceinline__ void store128cs(T* p, const Packed128<T>& v) {
  __stcs(reinterpret_cast<int4*>(p), *reinterpret_cast<const int4*>(&v));
}

inline bool is_aligned16(const void* p) {
  return (reinterpret_cast<uintptr_t>(p) & 15u) == 0;
}

// ---- reductions (fixed order: the same inputs give the same bits) -------------------------------
template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2)
    v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2)
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// Sum over the block; every thread gets the result. `shared` holds one T per warp (32 is enough
// for any block). Warps are combined in warp order by every thread, so no broadcast is needed.
template <typename T>
__device__ T block_sum(T v, T* shared) {
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  const int num_warps = blockDim.x / kWarpSize;
  v = warp_sum(v);
  __syncthreads();  // `shared` may still be read from a previous call
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  T total = shared[0];
  for (int w = 1; w < num_warps; ++w) total += shared[w];
  return total;
}

// ---- stochastic rounding ------------------------------------------------------------------------
// The random bits come from stochastic_rounding_bits(seed, index) (kernels/stochastic_rounding.h,
// shared with the host): a counter-based hash, so the bits of element i do not depend on which
// thread handles it, and results are reproducible for a given seed.

// fp32 -> bf16 rounding up with probability equal to the discarded fraction: add 16 random bits to
// the 16 bits that bf16 drops, then truncate. Unbiased in expectation, which keeps small AdamW
// updates from vanishing in bf16 parameters. Inf and NaN are converted with round-to-nearest.
__device__ __forceinline__ bf16 stochastic_round_bf16(float x, uint32_t random) {
  const uint32_t bits = __float_as_uint(x);
  if ((bits & 0x7F800000u) == 0x7F800000u) return __float2bfloat16_rn(x);
  const uint32_t rounded = (bits + (random & 0xFFFFu)) & 0xFFFF0000u;
  return __ushort_as_bfloat16(static_cast<unsigned short>(rounded >> 16));
}

}  // namespace gpt::cuda
