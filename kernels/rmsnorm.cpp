// Row sums and parameter gradients are accumulated in double, as in kernels/layernorm.cpp.
#include "kernels/rmsnorm.h"

#include <cmath>
#include <cstddef>

namespace gpt::cpu {

template <typename F>
void rmsnorm_forward(F* out, F* rstd, const F* inp, const F* weight, int N, int C, double eps) {
#pragma omp parallel for schedule(static)
  for (int i = 0; i < N; ++i) {
    const F* x = inp + static_cast<size_t>(i) * C;
    F* y = out + static_cast<size_t>(i) * C;
    double sum_sq = 0.0;
    for (int c = 0; c < C; ++c) sum_sq += static_cast<double>(x[c]) * x[c];
    const F rstd_i = static_cast<F>(1.0 / std::sqrt(sum_sq / C + eps));
    for (int c = 0; c < C; ++c) y[c] = x[c] * rstd_i * weight[c];
    rstd[i] = rstd_i;
  }
}

template <typename F>
void rmsnorm_backward(F* dinp, F* dweight, const F* dout, const F* inp, const F* weight,
                      const F* rstd, int N, int C) {
  if (dinp != nullptr) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < N; ++i) {
      const F* dy = dout + static_cast<size_t>(i) * C;
      const F* x = inp + static_cast<size_t>(i) * C;
      F* dx = dinp + static_cast<size_t>(i) * C;
      const F rstd_i = rstd[i];
      double sum_g_xhat = 0.0;  // sum_c g_c · xhat_c, with g = dout · w
      for (int c = 0; c < C; ++c) sum_g_xhat += (dy[c] * weight[c]) * (x[c] * rstd_i);
      const F mean_g_xhat = static_cast<F>(sum_g_xhat / C);
      for (int c = 0; c < C; ++c) {
        const F xhat = x[c] * rstd_i;
        dx[c] += rstd_i * (dy[c] * weight[c] - xhat * mean_g_xhat);
      }
    }
  }
  if (dweight == nullptr) return;
  // Each thread owns a block of columns and walks the rows in order: sums independent of the
  // thread count.
  constexpr int kBlock = 16;
  const int num_blocks = (C + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static)
  for (int blk = 0; blk < num_blocks; ++blk) {
    const int c0 = blk * kBlock;
    const int width = C - c0 < kBlock ? C - c0 : kBlock;
    double sum_dw[kBlock] = {};
    for (int i = 0; i < N; ++i) {
      const F* dy = dout + static_cast<size_t>(i) * C + c0;
      const F* x = inp + static_cast<size_t>(i) * C + c0;
      const F rstd_i = rstd[i];
      for (int c = 0; c < width; ++c) sum_dw[c] += dy[c] * (x[c] * rstd_i);
    }
    for (int c = 0; c < width; ++c) dweight[c0 + c] += sum_dw[c];
  }
}

template void rmsnorm_forward<float>(float*, float*, const float*, const float*, int, int, double);
template void rmsnorm_forward<double>(double*, double*, const double*, const double*, int, int,
                                      double);
template void rmsnorm_backward<float>(float*, float*, const float*, const float*, const float*,
                                      const float*, int, int);
template void rmsnorm_backward<double>(double*, double*, const double*, const double*,
                                       const double*, const double*, int, int);

}  // namespace gpt::cpu
