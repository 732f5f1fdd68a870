// AdamW on the GPU, fused: one pass over each parameter tensor (math: kernels/adamw.h).
//
// Per element: g = grad · grad_scale; m, v updated; w -= lr · (m̂ / (sqrt(v̂) + eps) + wd · w).
// fp32 mode: w is the fp32 parameter. bf16 mode: w is the fp32 master copy, and the bf16 parameter
// receives w stochastically rounded (cuda_common.cuh), so that updates smaller than half a bf16
// step still move the parameter in expectation. On the first step the master copy does not exist
// yet: it is read from the bf16 parameter (MasterInit::from_params) and written as usual.
// The random bits of element i are stochastic_rounding_bits(seed, i), with a seed the optimizer
// hashes from the step and the tensor index (kernels/stochastic_rounding.h).
// The weight-decay mask is the caller's: weight_decay is 0 for tensors that are not decayed.
//
// One thread per 16-byte packet of the parameter (8 bf16 or 4 fp32 values); m, v and the master
// copy are fp32 and read as 16-byte packets too. Memory bound: bf16 mode moves 2+2+4+4+4 bytes in
// and 2+4+4+4 bytes out per parameter.
#include <type_traits>

#include "kernels/cuda_kernels.cuh"

namespace gpt::cuda {
namespace {

constexpr int kBlock = 256;

__device__ __forceinline__ float adamw_element(float w, float g_raw, float& m, float& v,
                                               const AdamWArgs& a) {
  const float g = g_raw * a.grad_scale;
  m = a.beta1 * m + (1.0f - a.beta1) * g;
  v = a.beta2 * v + (1.0f - a.beta2) * g * g;
  const float m_hat = m / a.bias_correction1;
  const float v_hat = v / a.bias_correction2;
  return w - a.lr * (m_hat / (sqrtf(v_hat) + a.eps) + a.weight_decay * w);
}

template <typename F>
__device__ __forceinline__ void store_param(F* params, float* master, size_t i, float w,
                                            uint64_t seed);
template <>
__device__ __forceinline__ void store_param<float>(float* params, float*, size_t i, float w,
                                                   uint64_t) {
  params[i] = w;
}
template <>
__device__ __forceinline__ void store_param<bf16>(bf16* params, float* master, size_t i, float w,
                                                  uint64_t seed) {
  master[i] = w;
  params[i] = stochastic_round_bf16(w, stochastic_rounding_bits(seed, i));
}

// Element i: reads the fp32 weight from master (bf16 mode, MasterInit::keep) or from params.
template <typename F>
__device__ __forceinline__ float load_weight(const F* params, const float* master, size_t i,
                                             MasterInit init) {
  if (master != nullptr && init == MasterInit::keep) return master[i];
  return to_float(params[i]);
}

template <typename F>
__global__ void adamw_kernel(F* params, float* master, const F* grads, float* m, float* v, size_t n,
                             AdamWArgs args, MasterInit init) {
  constexpr int x = pack_size<F>();
  const size_t i0 = (static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x) * x;
  if (i0 >= n) return;
  if (i0 + x > n) {  // the tail, element by element
    for (size_t i = i0; i < n; ++i) {
      float mi = m[i], vi = v[i];
      const float w =
          adamw_element(load_weight(params, master, i, init), to_float(grads[i]), mi, vi, args);
      m[i] = mi;
      v[i] = vi;
      store_param<F>(params, master, i, w, args.seed);
    }
    return;
  }
  const Packed128<F> g = load128cs(grads + i0);
  const Packed128<F> p = load128(params + i0);
  float w[x], mm[x], vv[x];
#pragma unroll
  for (int q = 0; q < x; q += 4) {
    const Packed128<float> m4 = load128cs(m + i0 + q);
    const Packed128<float> v4 = load128cs(v + i0 + q);
    Packed128<float> w4;
    if (master != nullptr && init == MasterInit::keep) {
      w4 = load128cs(master + i0 + q);
    } else {
#pragma unroll
      for (int k = 0; k < 4; ++k) w4[k] = to_float(p[q + k]);
    }
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      mm[q + k] = m4[k];
      vv[q + k] = v4[k];
      w[q + k] = w4[k];
    }
  }
  Packed128<F> p_out;
#pragma unroll
  for (int k = 0; k < x; ++k) {
    w[k] = adamw_element(w[k], to_float(g[k]), mm[k], vv[k], args);
    if constexpr (std::is_same_v<F, bf16>) {
      p_out[k] = stochastic_round_bf16(w[k], stochastic_rounding_bits(args.seed, i0 + k));
    } else {
      p_out[k] = w[k];
    }
  }
#pragma unroll
  for (int q = 0; q < x; q += 4) {
    Packed128<float> m4, v4, w4;
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      m4[k] = mm[q + k];
      v4[k] = vv[q + k];
      w4[k] = w[q + k];
    }
    store128cs(m + i0 + q, m4);
    store128cs(v + i0 + q, v4);
    if (master != nullptr) store128cs(master + i0 + q, w4);
  }
  store128(params + i0, p_out);
}

}  // namespace

template <typename F>
void adamw_update(F* params, float* master, const F* grads, float* m, float* v, size_t n,
                  const AdamWArgs& args, MasterInit init, cudaStream_t stream) {
  if (n == 0) return;
  if (std::is_same_v<F, float> != (master == nullptr))
    throw std::invalid_argument(
        "adamw_update: master weights are for bf16 parameters only (and required there)");
  const unsigned grid =
      static_cast<unsigned>(ceil_div<size_t>(ceil_div<size_t>(n, pack_size<F>()), kBlock));
  adamw_kernel<F><<<grid, kBlock, 0, stream>>>(params, master, grads, m, v, n, args, init);
  GPT_CUDA_CHECK_LAUNCH();
}

template void adamw_update<float>(float*, float*, const float*, float*, float*, size_t,
                                  const AdamWArgs&, MasterInit, cudaStream_t);
template void adamw_update<bf16>(bf16*, float*, const bf16*, float*, float*, size_t,
                                 const AdamWArgs&, MasterInit, cudaStream_t);

}  // namespace gpt::cuda
