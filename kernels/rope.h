// Rotary position embedding (RoPE) in Hugging Face's rotate-half layout (LlamaRotaryEmbedding and
// apply_rotary_pos_emb), so that imported q_proj/k_proj weights need no permutation. A head of
// size D is split into halves; element i < D/2 pairs with element i + D/2:
//
//   inv_freq_i = theta^(-2i/D)   (then Llama 3's frequency scaling, below, when configured)
//   angle(p, i) = p · inv_freq_i for the token at position p
//   forward:  y_i       = x_i · cos - x_{i+D/2} · sin
//             y_{i+D/2} = x_{i+D/2} · cos + x_i · sin
//   backward: the inverse rotation (the transpose): dx_i = dy_i · cos + dy_{i+D/2} · sin,
//             dx_{i+D/2} = dy_{i+D/2} · cos - dy_i · sin      (activation gradient: OVERWRITES)
//
// Both run in place on the query and key heads of the fused qkv rows: each row (one token) holds
// row_stride values, the first n_heads · D of which are rotated (the query heads, then the key
// heads); the rest (the value heads) is untouched. Row t of a sequence of T is at position
// pos0 + t (pos0 > 0 when decoding with a KV cache).
//
// Llama 3's scaling ("rope_type": "llama3"): with wavelength λ_i = 2π / inv_freq_i,
// λ_low = original_context / low_freq_factor and λ_high = original_context / high_freq_factor:
// λ_i < λ_high keeps inv_freq_i; λ_i > λ_low divides it by factor; in between it is blended,
// (1 - s) · inv_freq_i / factor + s · inv_freq_i with
// s = (original_context / λ_i - low_freq_factor) / (high_freq_factor - low_freq_factor).
#pragma once

#include <vector>

namespace gpt::cpu {

struct RopeScaling {
  double factor = 0.0;  // 0: no scaling
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int original_context = 8192;
};

// inv_freq_i for i < head_dim / 2, in double. head_dim must be even and positive.
std::vector<double> rope_inverse_frequencies(int head_dim, double theta,
                                             const RopeScaling& scaling);

// The tables the kernels read: cos and sin of angle(p, i), (max_T, head_dim / 2), row-major.
template <typename F>
void rope_table(F* cos, F* sin, int max_T, int head_dim, double theta, const RopeScaling& scaling);

// x: (B·T rows of row_stride values), rotated in place; cos, sin from rope_table covering
// positions pos0 .. pos0 + T - 1.
template <typename F>
void rope_forward(F* x, const F* cos, const F* sin, int B, int T, int n_heads, int head_dim,
                  int row_stride, int pos0);

template <typename F>
void rope_backward(F* dx, const F* cos, const F* sin, int B, int T, int n_heads, int head_dim,
                   int row_stride, int pos0);

}  // namespace gpt::cpu
