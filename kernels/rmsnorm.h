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
// blocks' norms is the residual stream. Callers whose input is not (QK-norm on q and k) clear dinp
// first. dweight accumulates like every parameter gradient. Either pointer may be null.
//
// Shapes: inp, out (N, C); weight (C); rstd (N).
// Determinism: rows are independent; dweight is reduced over rows in a fixed order (per column,
// rows in order), independent of the thread count.
#pragma once

namespace gpt::cpu {

template <typename F>
void rmsnorm_forward(F* out, F* rstd, const F* inp, const F* weight, int N, int C, double eps);

template <typename F>
void rmsnorm_backward(F* dinp, F* dweight, const F* dout, const F* inp, const F* weight,
                      const F* rstd, int N, int C);

}  // namespace gpt::cpu
