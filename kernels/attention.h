// Causal multi-head self-attention over packed QKV (the layout the model produces).
//
// qkv (B, T, 3C) holds, for each position, [q | k | v], each C = NH·HS wide and split into NH heads
// of HS channels. For each batch b, head h, query t:
//
//   s_tu   = (q_t · k_u) / sqrt(HS)               for u <= t (causal), -inf for u > t
//   lse_t  = log sum_u exp(s_tu)                   saved (B, NH, T) for the backward
//   p_tu   = exp(s_tu - lse_t)
//   out_t  = sum_u p_tu · v_u                      written to out (B, T, C), head h at
//                                                  [h·HS, (h+1)·HS)
//
// backward (recomputes p from q, k and the saved lse, like FlashAttention; no T×T matrix is kept
// between forward and backward):
//   dv_u   = sum_t p_tu · dout_t
//   dp_tu  = dout_t · v_u,   D_t = dout_t · out_t = sum_u p_tu dp_tu
//   ds_tu  = p_tu · (dp_tu - D_t)
//   dq_t   = sum_u ds_tu · k_u / sqrt(HS),   dk_u = sum_t ds_tu · q_t / sqrt(HS)
//
// Gradient rule: dqkv OVERWRITES (=) (it is an activation gradient and each element has one owner).
// FLOPs (causal, counted as the FlashAttention papers do): 2·B·NH·T²·HS forward (two matmuls, half
// of each masked), 2.5x that backward.
// CPU implementation: one (b, h) pair per OpenMP task; the score block for a tile of queries lives
// in a per-thread scratch buffer; the products go through the strided gemm of matmul.h, so each
// output element is reduced in a fixed order.
//
// Grouped-query and multi-query attention (the Llama family): NH query heads share NKV key/value
// heads (NH a multiple of NKV), query head h reading key/value head h / (NH / NKV); the head size
// HS is free of the width. qkv rows are then [q (NH·HS) | k (NKV·HS) | v (NKV·HS)], out rows
// NH·HS, lse (B, NH, T); dK and dV of a key/value head sum over its query heads, in head order.
// The (B, T, C, NH) entry points are the case NKV = NH, HS = C / NH.
#pragma once

#include <cstddef>

namespace gpt::cpu {

struct AttentionShape {
  int B = 0, T = 0;
  int n_head = 0;     // query heads NH
  int n_kv_head = 0;  // key/value heads NKV (divides NH)
  int head_size = 0;  // HS
  int row_width() const { return (n_head + 2 * n_kv_head) * head_size; }
  size_t key_offset(int kv) const { return static_cast<size_t>(n_head + kv) * head_size; }
  size_t value_offset(int kv) const {
    return static_cast<size_t>(n_head + n_kv_head + kv) * head_size;
  }
};

template <typename F>
void attention_forward(F* out, F* lse, const F* qkv, const AttentionShape& shape);
template <typename F>
void attention_backward(F* dqkv, const F* dout, const F* qkv, const F* out, const F* lse,
                        const AttentionShape& shape);
// One decoding step against a KV cache that holds the key and value heads only (never repeated per
// query head, no queries): q (B, q_stride) whose rows start with the NH·HS query values (a qkv row
// may be passed as it is), kv_cache (B, Tmax, 2·NKV·HS) rows [k | v], out (B, NH·HS); the query of
// row b attends positions 0..pos. shape.T is unused.
template <typename F>
void attention_decode(F* out, const F* q, int q_stride, const F* kv_cache, int Tmax, int pos,
                      const AttentionShape& shape);

template <typename F>
void attention_forward(F* out, F* lse, const F* qkv, int B, int T, int C, int NH);

template <typename F>
void attention_backward(F* dqkv, const F* dout, const F* qkv, const F* out, const F* lse, int B,
                        int T, int C, int NH);

}  // namespace gpt::cpu
