// Row sums and parameter gradients are accumulated in double, as in kernels/layernorm.cpp. RMSNorm
// and QK-norm share the code of one row and the weight gradient's column reduction; they differ in
// where their rows lie (QK-norm's are the heads of wider token rows).
#include "kernels/rmsnorm.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "kernels/cpu_fast_math.h"

namespace gpt::cpu {

namespace {

// y = x · rstd · w over one row of C values; returns rstd.
template <typename F>
F forward_row(F* y, const F* x, const F* weight, int C, double eps) {
  const double sum_sq = lane_sum(C, [&](int c) { return static_cast<double>(x[c]) * x[c]; });
  const F rstd = static_cast<F>(1.0 / std::sqrt(sum_sq / C + eps));
  for (int c = 0; c < C; ++c) y[c] = x[c] * rstd * weight[c];
  return rstd;
}

// One row's input gradient, added to dx (kAccumulate) or written over it. dx may alias dy: every
// element of dy is read before the element of dx at the same place is written.
template <bool kAccumulate, typename F>
void backward_row(F* dx, const F* dy, const F* x, const F* weight, F rstd, int C) {
  // sum_c g_c · xhat_c, with g = dout · w
  const double sum_g_xhat = lane_sum(C, [&](int c) { return (dy[c] * weight[c]) * (x[c] * rstd); });
  const F mean_g_xhat = static_cast<F>(sum_g_xhat / C);
  for (int c = 0; c < C; ++c) {
    const F xhat = x[c] * rstd;
    const F grad = rstd * (dy[c] * weight[c] - xhat * mean_g_xhat);
    dx[c] = kAccumulate ? dx[c] + grad : grad;
  }
}

// dweight_c += sum over rows i in order of dout_ic · x_ic · rstd_i, where row i of dout and inp
// starts at offset_of(i) and its rstd is rstd[stat_of(i)]. Each thread owns a block of columns and
// walks the rows in order: sums independent of the thread count.
template <typename F, typename OffsetOf, typename StatOf>
void weight_gradient(F* dweight, const F* dout, const F* inp, const F* rstd, int64_t rows, int C,
                     OffsetOf offset_of, StatOf stat_of) {
  constexpr int kBlock = 16;
  const int num_blocks = (C + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static)
  for (int blk = 0; blk < num_blocks; ++blk) {
    const int c0 = blk * kBlock;
    const int width = std::min(C - c0, kBlock);
    double sum_dw[kBlock] = {};
    for (int64_t i = 0; i < rows; ++i) {
      const size_t offset = offset_of(i) + c0;
      const F* dy = dout + offset;
      const F* x = inp + offset;
      const F rstd_i = rstd[stat_of(i)];
      for (int c = 0; c < width; ++c) sum_dw[c] += dy[c] * (x[c] * rstd_i);
    }
    for (int c = 0; c < width; ++c) dweight[c0 + c] += sum_dw[c];
  }
}

}  // namespace

template <typename F>
void rmsnorm_forward(F* out, F* rstd, const F* inp, const F* weight, int N, int C, double eps) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < N; ++i) {
    const size_t offset = static_cast<size_t>(i) * C;
    rstd[i] = forward_row(out + offset, inp + offset, weight, C, eps);
  }
}

template <typename F>
void residual_rmsnorm_forward(F* sum, F* out, F* rstd, const F* a, const F* b, const F* weight,
                              int N, int C, double eps) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < N; ++i) {
    const size_t offset = static_cast<size_t>(i) * C;
    for (int c = 0; c < C; ++c) sum[offset + c] = a[offset + c] + b[offset + c];
    rstd[i] = forward_row(out + offset, sum + offset, weight, C, eps);
  }
}

template <typename F>
void rmsnorm_backward(F* dinp, F* dweight, const F* dout, const F* inp, const F* weight,
                      const F* rstd, int N, int C) {
  if (dinp != nullptr) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < N; ++i) {
      const size_t offset = static_cast<size_t>(i) * C;
      backward_row<true>(dinp + offset, dout + offset, inp + offset, weight, rstd[i], C);
    }
  }
  if (dweight == nullptr) return;
  weight_gradient(
      dweight, dout, inp, rstd, N, C, [C](int64_t i) { return static_cast<size_t>(i) * C; },
      [](int64_t i) { return static_cast<size_t>(i); });
}

template <typename F>
void qk_norm_forward(F* out, F* rstd, const F* inp, const F* q_weight, const F* k_weight, int N,
                     int n_head, int n_kv_head, int head_dim, double eps) {
  const int heads = n_head + 2 * n_kv_head;  // per token row
  const int normed = n_head + n_kv_head;     // the q and k heads
  const size_t W = static_cast<size_t>(heads) * head_dim;
#pragma omp parallel for schedule(static)
  for (int t = 0; t < N; ++t) {
    for (int h = 0; h < normed; ++h) {
      const size_t offset = t * W + static_cast<size_t>(h) * head_dim;
      rstd[static_cast<size_t>(t) * normed + h] =
          forward_row(out + offset, inp + offset, h < n_head ? q_weight : k_weight, head_dim, eps);
    }
    const size_t v = t * W + static_cast<size_t>(normed) * head_dim;
    std::copy(inp + v, inp + (t + 1) * W, out + v);
  }
}

template <typename F>
void qk_norm_backward(F* dinp, F* dq_weight, F* dk_weight, const F* dout, const F* inp,
                      const F* q_weight, const F* k_weight, const F* rstd, int N, int n_head,
                      int n_kv_head, int head_dim) {
  const int heads = n_head + 2 * n_kv_head;
  const int normed = n_head + n_kv_head;
  const size_t W = static_cast<size_t>(heads) * head_dim;
  // The weight gradients first: dinp may alias dout. Row i of a weight's rows is head first + i %
  // count of token i / count.
  auto reduce = [&](F* dweight, int first, int count) {
    if (dweight == nullptr) return;
    weight_gradient(
        dweight, dout, inp, rstd, static_cast<int64_t>(N) * count, head_dim,
        [&](int64_t i) {
          return (i / count) * W + static_cast<size_t>(first + i % count) * head_dim;
        },
        [&](int64_t i) { return static_cast<size_t>(i / count) * normed + first + i % count; });
  };
  reduce(dq_weight, 0, n_head);
  reduce(dk_weight, n_head, n_kv_head);
#pragma omp parallel for schedule(static)
  for (int t = 0; t < N; ++t) {
    for (int h = 0; h < normed; ++h) {
      const size_t offset = t * W + static_cast<size_t>(h) * head_dim;
      backward_row<false>(dinp + offset, dout + offset, inp + offset,
                          h < n_head ? q_weight : k_weight,
                          rstd[static_cast<size_t>(t) * normed + h], head_dim);
    }
    const size_t v = t * W + static_cast<size_t>(normed) * head_dim;
    if (dinp != dout) std::copy(dout + v, dout + (t + 1) * W, dinp + v);
  }
}

template void rmsnorm_forward<float>(float*, float*, const float*, const float*, int, int, double);
template void rmsnorm_forward<double>(double*, double*, const double*, const double*, int, int,
                                      double);
template void residual_rmsnorm_forward<float>(float*, float*, float*, const float*, const float*,
                                              const float*, int, int, double);
template void residual_rmsnorm_forward<double>(double*, double*, double*, const double*,
                                               const double*, const double*, int, int, double);
template void rmsnorm_backward<float>(float*, float*, const float*, const float*, const float*,
                                      const float*, int, int);
template void rmsnorm_backward<double>(double*, double*, const double*, const double*,
                                       const double*, const double*, int, int);
template void qk_norm_forward<float>(float*, float*, const float*, const float*, const float*, int,
                                     int, int, int, double);
template void qk_norm_forward<double>(double*, double*, const double*, const double*, const double*,
                                      int, int, int, int, double);
template void qk_norm_backward<float>(float*, float*, float*, const float*, const float*,
                                      const float*, const float*, const float*, int, int, int, int);
template void qk_norm_backward<double>(double*, double*, double*, const double*, const double*,
                                       const double*, const double*, const double*, int, int, int,
                                       int);

}  // namespace gpt::cpu
