// LayerNorm over the last dimension (C), as in GPT-2 (eps = 1e-5, biased variance).
//
//   forward:  mean_i = (1/C) sum_c x_ic,   rstd_i = 1 / sqrt((1/C) sum_c (x_ic - mean_i)^2 + eps)
//             xhat_ic = (x_ic - mean_i) · rstd_i,   out_ic = xhat_ic · w_c + b_c
//             mean and rstd are saved for the backward.
//   backward: with g_ic = dout_ic · w_c,
//             dx_ic  += rstd_i · (g_ic - mean_c'(g_ic') - xhat_ic · mean_c'(g_ic' · xhat_ic'))
//             dw_c   += sum_i dout_ic · xhat_ic
//             db_c   += sum_i dout_ic
//
// Gradient rule: dinp ACCUMULATES (+=): the input of every LayerNorm in a pre-LN GPT is the
// residual stream, whose gradient is the sum of the skip path and the LayerNorm path.
// dweight and dbias accumulate like every parameter gradient. Any gradient pointer may be
// null to skip it (frozen parameters).
//
// Shapes: inp, out (N, C); weight, bias (C); mean, rstd (N).
// Determinism: rows are independent; dweight/dbias are reduced over rows in a fixed order (per
// column, rows in order), independent of the thread count.
#pragma once

namespace gpt::cpu {

constexpr double kLayerNormEps = 1e-5;

template <typename F>
void layernorm_forward(F* out, F* mean, F* rstd, const F* inp, const F* weight, const F* bias,
                       int N, int C);

template <typename F>
void layernorm_backward(F* dinp, F* dweight, F* dbias, const F* dout, const F* inp, const F* weight,
                        const F* mean, const F* rstd, int N, int C);

}  // namespace gpt::cpu
