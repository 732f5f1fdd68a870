#include "kernels/swiglu.h"

#include <cmath>
#include <cstddef>

namespace gpt::cpu {

template <typename F>
void swiglu_forward(F* out, const F* inp, int N, int H) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; ++n) {
    const F* g = inp + static_cast<size_t>(n) * 2 * H;
    const F* u = g + H;
    F* y = out + static_cast<size_t>(n) * H;
    for (int j = 0; j < H; ++j) {
      const F sigma = F(1) / (F(1) + std::exp(-g[j]));
      y[j] = g[j] * sigma * u[j];
    }
  }
}

template <typename F>
void swiglu_backward(F* dinp, const F* inp, const F* dout, int N, int H) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; ++n) {
    const F* g = inp + static_cast<size_t>(n) * 2 * H;
    const F* u = g + H;
    const F* dy = dout + static_cast<size_t>(n) * H;
    F* dg = dinp + static_cast<size_t>(n) * 2 * H;
    F* du = dg + H;
    for (int j = 0; j < H; ++j) {
      const F gj = g[j];  // read both before writing: dinp may alias inp
      const F uj = u[j];
      const F sigma = F(1) / (F(1) + std::exp(-gj));
      dg[j] = dy[j] * uj * sigma * (F(1) + gj * (F(1) - sigma));
      du[j] = dy[j] * gj * sigma;
    }
  }
}

template void swiglu_forward<float>(float*, const float*, int, int);
template void swiglu_forward<double>(double*, const double*, int, int);
template void swiglu_backward<float>(float*, const float*, const float*, int, int);
template void swiglu_backward<double>(double*, const double*, const double*, int, int);

}  // namespace gpt::cpu
