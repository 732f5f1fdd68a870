// The random bits of stochastic rounding (bf16 parameters, kernels/adamw.cu): which bits element
// `index` of parameter tensor `tensor` receives at optimizer step `step`. Plain C++, shared by the
// CUDA kernel, the optimizer on the host (engine/optimizer.cpp) and the CPU tests
// (tests/test_kernels.cpp), so the mapping is tested without a GPU.
//
//   seed = stochastic_rounding_seed(step, tensor) = combine(combine(0, step), tensor)
//   bits = stochastic_rounding_bits(seed, index)  = low 32 bits of combine(seed, index)
//   combine(key, counter) = mix(key ^ mix(counter + gamma))
//
// mix is splitmix64's finaliser and gamma its golden-ratio increment (Steele, Lea & Flood, "Fast
// splittable pseudorandom number generators", 2014): mix(gamma · k) is the k-th output of
// splitmix64 started at 0. The seed is a pure function of (step, tensor), so a run resumed at step
// s draws the same bits as one that never stopped; the bits of an element do not depend on which
// thread computes it.
//
// Why two rounds of mixing. The first version used seed = step · gamma + tensor and
// bits = mix(seed + gamma · (index + 1)): the state of element e at step s + 1 equals that of
// element e + 1 at step s, so every step reused the previous step's bits shifted by one element
// (and tensors overlapped in the same way). Hashing only the seed would leave the streams as
// segments of one Weyl sequence, which still overlap, at random offsets, when two seeds fall within
// a tensor's length of each other. With the index mixed before it meets the seed, two different
// (seed, index) pairs give the same 64-bit value only as two independent random draws would: no
// run of elements is ever shared, whatever the steps, tensors and offsets.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define GPT_SR_HD __host__ __device__ __forceinline__
#else
#define GPT_SR_HD inline
#endif

namespace gpt {

// splitmix64's increment, 2^64 / phi rounded to odd.
constexpr uint64_t kSplitmixGamma = 0x9E3779B97F4A7C15ull;

// splitmix64's finaliser: a bijection on 64-bit words in which every input bit flips about half
// of the output bits.
GPT_SR_HD uint64_t splitmix64_mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// A hash of (key, counter); for a fixed key a bijection of the counter, and the other way round.
GPT_SR_HD uint64_t stochastic_rounding_combine(uint64_t key, uint64_t counter) {
  return splitmix64_mix(key ^ splitmix64_mix(counter + kSplitmixGamma));
}

// The seed of parameter tensor `tensor` (its index among the optimizer's groups) at optimizer step
// `step` (1-based, as AdamW counts).
GPT_SR_HD uint64_t stochastic_rounding_seed(uint64_t step, uint64_t tensor) {
  return stochastic_rounding_combine(stochastic_rounding_combine(0, step), tensor);
}

// The random bits of element `index` for a seed. Stochastic rounding to bf16 uses the low 16.
GPT_SR_HD uint32_t stochastic_rounding_bits(uint64_t seed, uint64_t index) {
  return static_cast<uint32_t>(stochastic_rounding_combine(seed, index));
}

}  // namespace gpt

#undef GPT_SR_HD
