// Token + position embedding ("encoder").
//
//   forward:  out[b,t,:] = wte[tokens[b,t], :] + wpe[t, :]
//   backward: dwte[tokens[b,t], :] += dout[b,t,:]      (parameter gradients accumulate: +=)
//             dwpe[t, :]           += sum_b dout[b,t,:]
//
// Shapes: tokens (B,T) int32 in [0, V); wte (Vp, C); wpe (maxT, C) with T <= maxT; out (B,T,C).
// wpe may be null: token embeddings only (the Llama family, whose positions come from RoPE).
// Either of dwte, dwpe may be null to skip it (frozen embeddings).
// Memory traffic: forward reads 2·B·T·C and writes B·T·C values; it is purely memory bound.
// The backward is deterministic: several tokens can hit the same row of dwte, so the CPU version
// parallelises over channels (each thread owns a slice of C for every row) and walks (b,t) in
// order; no two threads ever add into the same element, and the order of additions is fixed.
#pragma once

#include <cstdint>

namespace gpt::cpu {

template <typename F>
void encoder_forward(F* out, const int32_t* tokens, const F* wte, const F* wpe, int B, int T,
                     int C);

template <typename F>
void encoder_backward(F* dwte, F* dwpe, const F* dout, const int32_t* tokens, int B, int T, int C);

}  // namespace gpt::cpu
