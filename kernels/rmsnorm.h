// RMSNorm over the last dimension (C), as in Llama, Qwen2/3 and SmolLM2 (Hugging Face's
// LlamaRMSNorm; eps from the model's config, e.g. 1e-5 or 1e-6). No mean, no bias:
//
//   forward:  rstd_i = 1 / sqrt((1/C) sum_c x_ic^2 + eps),   xhat_ic = x_ic · rstd_i
//             out_ic = xhat_ic · w_c;   rstd is saved for the backward.
//   backward: with g_ic = dout_ic · w_c,
//             dx_ic += rstd_i · (g_ic - xhat_ic · mean_c'(g_ic' · xhat_ic'))
//             dw_c  += sum_i dout_ic · xhat_ic
//
// Gradient rule: dinp ACCUMULATES (+=), as LayerNorm's does (kernels/layernorm.h): the input of the
// blocks' norms is the residual stream (QK-norm, below, whose input is not, overwrites instead).
// dweight accumulates like every parameter gradient. Either pointer may be null.
//
// Shapes: inp, out (N, C); weight (C); rstd (N).
//
// Fused with the residual add before it (the blocks' second norm): sum = a + b, out =
// RMSNorm(sum) · w, in one pass over each row; sum is written too (the residual stream the next
// add and the backward read) and may alias a. Bitwise the residual add followed by
// rmsnorm_forward (sum rounded to F first, then normalised). No backward of its own: the add's is
// the identity, the norm's is rmsnorm_backward on sum.
// Determinism: rows are independent; dweight is reduced over rows in a fixed order (per column,
// rows in order), independent of the thread count.
//
// QK-norm (Qwen3; Hugging Face's Qwen3RMSNorm on q_norm and k_norm) is the same RMSNorm over each
// head of head_dim (HD) values of the queries and keys, before RoPE, on the fused qkv rows the
// attention reads: N tokens of W = (NH + 2·NKV)·HD values, [q heads | k heads | v heads]. Every
// query head is normalised with q_weight (HD), every key head with k_weight (HD); the value heads
// pass through. Per token, rstd holds NH + NKV values (the q heads, then the k heads).
//
//   forward:  out = the q and k heads normalised as above, the v heads copied (out must not alias
//             inp: the model keeps the projection's output for the backward).
//   backward: dinp = each q and k head's RMSNorm input gradient of dout (OVERWRITES: qkv is a
//             matmul's output, not a residual stream), the v heads' dout copied; dinp may alias
//             dout. dq_weight += Σ over tokens and q heads dout · xhat, dk_weight likewise over the
//             k heads; either may be null (frozen).
// Determinism: the weight gradients are reduced per column over (token, head) in order.
#pragma once

namespace gpt::cpu {

template <typename F>
void rmsnorm_forward(F* out, F* rstd, const F* inp, const F* weight, int N, int C, double eps);

// sum, out, a, b (N, C); sum may alias a.
template <typename F>
void residual_rmsnorm_forward(F* sum, F* out, F* rstd, const F* a, const F* b, const F* weight,
                              int N, int C, double eps);

template <typename F>
void rmsnorm_backward(F* dinp, F* dweight, const F* dout, const F* inp, const F* weight,
                      const F* rstd, int N, int C);

// inp, out (N, W) with W = (n_head + 2·n_kv_head)·head_dim; rstd (N, n_head + n_kv_head).
template <typename F>
void qk_norm_forward(F* out, F* rstd, const F* inp, const F* q_weight, const F* k_weight, int N,
                     int n_head, int n_kv_head, int head_dim, double eps);

template <typename F>
void qk_norm_backward(F* dinp, F* dq_weight, F* dk_weight, const F* dout, const F* inp,
                      const F* q_weight, const F* k_weight, const F* rstd, int N, int n_head,
                      int n_kv_head, int head_dim);

}  // namespace gpt::cpu
