// The CPU evaluates the tanh form through the identity 0.5 · (1 + tanh(u)) = σ(2u), with
// σ(z) = 1 / (1 + exp(-z)): exp is several times faster than tanh, and the MLP
// applies GELU to 4·C values per token. In terms of σ = σ(2u), 1 - tanh²(u) = 4σ(1 - σ), so
//   gelu(x)  = x · σ
//   gelu'(x) = σ + 2 · x · σ · (1 - σ) · sqrt(2/π) · (1 + 3 · 0.044715 · x²)
// exp is exp_approx (kernels/cpu_fast_math.h), which the compiler vectorises for float (glibc's
// expf would keep the loop scalar) and which is std::exp for double. For very negative x, exp
// saturates at about 2e38 in float (σ becomes about 4e-39 instead of underflowing) and overflows to
// +inf in double (σ is exactly 0): no NaN is produced either way.
#include "kernels/gelu.h"

#include <cmath>
#include <cstddef>

#include "kernels/cpu_fast_math.h"

namespace gpt::cpu {
namespace {
constexpr double kSqrt2OverPi = 0.79788456080286535588;  // sqrt(2/π)
constexpr double kCubic = 0.044715;
}  // namespace

// The loops below run over chunks of kChunk elements in three passes each: u, then exp, then the
// result, with the exp arguments in a small stack buffer. One loop doing all three per element
// vectorises as well, but its chain of dependent vector instructions (about 25, through the
// polynomial and a division) is longer than the processor's scheduler can overlap across
// iterations, so it runs at the latency of that chain; three short loops run at the throughput of
// the arithmetic units, about twice as fast. Each element's arithmetic is the same either way.
constexpr size_t kChunk = 256;

// t[i] = exp(-2 · sqrt(2/π) · (x + 0.044715 · x³)) for the n <= kChunk elements of x, so that
// σ(2u) = 1 / (1 + t).
template <typename F>
void gelu_exp_terms(F* t, const F* x, size_t n) {
  const F s = static_cast<F>(kSqrt2OverPi);
  const F a = static_cast<F>(kCubic);
  for (size_t i = 0; i < n; ++i) t[i] = -2 * (s * (x[i] + a * x[i] * x[i] * x[i]));
  for (size_t i = 0; i < n; ++i) t[i] = exp_approx(t[i]);
}

// body(x, t, i0, n) for each chunk [i0, i0 + n) of the N elements, in parallel, with t the
// chunk's exp terms.
template <typename F, typename Body>
void for_each_chunk(const F* inp, size_t N, Body body) {
  const size_t num_chunks = (N + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static)
  for (size_t chunk = 0; chunk < num_chunks; ++chunk) {
    const size_t i0 = chunk * kChunk;
    const size_t n = N - i0 < kChunk ? N - i0 : kChunk;
    F t[kChunk];
    gelu_exp_terms(t, inp + i0, n);
    body(inp + i0, t, i0, n);
  }
}

template <typename F>
void gelu_forward(F* out, const F* inp, size_t N) {
  for_each_chunk(inp, N, [&](const F* x, const F* t, size_t i0, size_t n) {
    F* y = out + i0;
    for (size_t i = 0; i < n; ++i) y[i] = x[i] / (F(1) + t[i]);  // x · σ
  });
}

template <typename F>
void gelu_backward(F* dinp, const F* inp, const F* dout, size_t N) {
  const F s = static_cast<F>(kSqrt2OverPi);
  const F a3 = static_cast<F>(3 * kCubic);
  for_each_chunk(inp, N, [&](const F* x, const F* t, size_t i0, size_t n) {
    const F* dy = dout + i0;
    F* dx = dinp + i0;  // dinp may alias dout: same index, read before write
    for (size_t i = 0; i < n; ++i) {
      const F sigma = F(1) / (F(1) + t[i]);
      const F grad = sigma + 2 * x[i] * sigma * (F(1) - sigma) * s * (F(1) + a3 * x[i] * x[i]);
      dx[i] = dy[i] * grad;
    }
  });
}

template void gelu_forward<float>(float*, const float*, size_t);
template void gelu_forward<double>(double*, const double*, size_t);
template void gelu_backward<float>(float*, const float*, const float*, size_t);
template void gelu_backward<double>(double*, const double*, const double*, size_t);

}  // namespace gpt::cpu
