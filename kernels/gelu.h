// GELU, tanh approximation (GPT-2's "gelu_new"):
//
//   gelu(x)  = 0.5 · x · (1 + tanh(u)),     u = sqrt(2/π) · (x + 0.044715 · x³)
//   gelu'(x) = 0.5 · (1 + tanh(u)) + 0.5 · x · (1 - tanh²(u)) · sqrt(2/π) · (1 + 3 · 0.044715 · x²)
//
//   backward: dinp[i] = dout[i] · gelu'(inp[i])          (activation gradient: OVERWRITES, =)
//
// Elementwise over N values; memory bound. dinp may alias dout. The CPU version evaluates the same
// function through 0.5 · (1 + tanh(u)) = 1 / (1 + exp(-2u)): expf is much cheaper than tanhf.
#pragma once

#include <cstddef>

namespace gpt::cpu {

template <typename F>
void gelu_forward(F* out, const F* inp, size_t N);

template <typename F>
void gelu_backward(F* dinp, const F* inp, const F* dout, size_t N);

}  // namespace gpt::cpu
