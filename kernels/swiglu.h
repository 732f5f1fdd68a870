// SwiGLU, the gated MLP activation of Llama, Qwen2/3 and SmolLM2 (Hugging Face's LlamaMLP:
// down_proj(silu(gate_proj(x)) · up_proj(x))). The gate and up projections run as one matmul whose
// output rows hold the gate half, then the up half: inp (N, 2H) = [g | u].
//
//   silu(g)  = g · σ(g),   σ(g) = 1 / (1 + exp(-g))
//   forward:  out_j = silu(g_j) · u_j                            out (N, H)
//   backward: dg_j = dout_j · u_j · σ(g_j) · (1 + g_j · (1 - σ(g_j)))
//             du_j = dout_j · silu(g_j)                          (activation gradient: OVERWRITES)
//
// Elementwise over N·H pairs; memory bound; dinp may alias inp (each pair is read before it is
// written). For very negative g, exp overflows to +inf and σ is exactly 0: no NaN.
#pragma once

#include <cstddef>

namespace gpt::cpu {

template <typename F>
void swiglu_forward(F* out, const F* inp, int N, int H);

// dinp (N, 2H) =
template <typename F>
void swiglu_backward(F* dinp, const F* inp, const F* dout, int N, int H);

}  // namespace gpt::cpu
