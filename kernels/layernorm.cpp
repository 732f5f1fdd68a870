// Sums (row statistics, parameter gradients) are accumulated in double: a few extra conversions on
// memory-bound loops, for sums that stay accurate over long rows and many rows. A row's sums run in
// independent double lanes (lane_sum, kernels/cpu_fast_math.h). The elementwise loops that write
// out and dinp are simple enough for the compiler to vectorise.
#include "kernels/layernorm.h"

#include <cmath>
#include <cstddef>

#include "kernels/cpu_fast_math.h"

namespace gpt::cpu {

template <typename F>
void layernorm_forward(F* out, F* mean, F* rstd, const F* inp, const F* weight, const F* bias,
                       int N, int C) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < N; ++i) {
    const F* x = inp + static_cast<size_t>(i) * C;
    F* y = out + static_cast<size_t>(i) * C;
    const double m = lane_sum(C, [&](int c) { return static_cast<double>(x[c]); }) / C;
    const double sum_sq = lane_sum(C, [&](int c) {
      const double d = x[c] - m;
      return d * d;
    });
    const F mean_i = static_cast<F>(m);
    const F rstd_i = static_cast<F>(1.0 / std::sqrt(sum_sq / C + kLayerNormEps));
    for (int c = 0; c < C; ++c) y[c] = (x[c] - mean_i) * rstd_i * weight[c] + bias[c];
    mean[i] = mean_i;
    rstd[i] = rstd_i;
  }
}

template <typename F>
void layernorm_backward(F* dinp, F* dweight, F* dbias, const F* dout, const F* inp, const F* weight,
                        const F* mean, const F* rstd, int N, int C) {
  if (dinp != nullptr) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < N; ++i) {
      const F* dy = dout + static_cast<size_t>(i) * C;
      const F* x = inp + static_cast<size_t>(i) * C;
      F* dx = dinp + static_cast<size_t>(i) * C;
      const F mean_i = mean[i];
      const F rstd_i = rstd[i];
      // mean_c(g_c) and mean_c(g_c · xhat_c), with g = dout · w
      double lane_g[kSumLanes] = {};
      double lane_g_xhat[kSumLanes] = {};
      for_each_lane(C, [&](int c, int l) {
        const F g = dy[c] * weight[c];
        const F xhat = (x[c] - mean_i) * rstd_i;
        lane_g[l] += g;
        lane_g_xhat[l] += g * xhat;
      });
      const double sum_g = combine_lanes(lane_g);
      const double sum_g_xhat = combine_lanes(lane_g_xhat);
      const F mean_g = static_cast<F>(sum_g / C);
      const F mean_g_xhat = static_cast<F>(sum_g_xhat / C);
      for (int c = 0; c < C; ++c) {
        const F g = dy[c] * weight[c];
        const F xhat = (x[c] - mean_i) * rstd_i;
        dx[c] += rstd_i * (g - mean_g - xhat * mean_g_xhat);
      }
    }
  }
  if (dweight == nullptr && dbias == nullptr) return;
  // Parameter gradients: each thread owns a block of columns and walks the rows in order, so the
  // sums do not depend on the thread count.
  constexpr int kBlock = 16;
  const int num_blocks = (C + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static)
  for (int blk = 0; blk < num_blocks; ++blk) {
    const int c0 = blk * kBlock;
    const int width = C - c0 < kBlock ? C - c0 : kBlock;
    double sum_dw[kBlock] = {};
    double sum_db[kBlock] = {};
    for (int i = 0; i < N; ++i) {
      const F* dy = dout + static_cast<size_t>(i) * C + c0;
      const F* x = inp + static_cast<size_t>(i) * C + c0;
      const F mean_i = mean[i];
      const F rstd_i = rstd[i];
      for (int c = 0; c < width; ++c) {
        sum_dw[c] += dy[c] * ((x[c] - mean_i) * rstd_i);
        sum_db[c] += dy[c];
      }
    }
    for (int c = 0; c < width; ++c) {
      if (dweight != nullptr) dweight[c0 + c] += sum_dw[c];
      if (dbias != nullptr) dbias[c0 + c] += sum_db[c];
    }
  }
}

template void layernorm_forward<float>(float*, float*, float*, const float*, const float*,
                                       const float*, int, int);
template void layernorm_forward<double>(double*, double*, double*, const double*, const double*,
                                        const double*, int, int);
template void layernorm_backward<float>(float*, float*, float*, const float*, const float*,
                                        const float*, const float*, const float*, int, int);
template void layernorm_backward<double>(double*, double*, double*, const double*, const double*,
                                         const double*, const double*, const double*, int, int);

}  // namespace gpt::cpu
