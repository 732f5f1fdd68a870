#include "kernels/residual.h"

#include <cstddef>

namespace gpt::cpu {

template <typename F>
void residual_forward(F* out, const F* a, const F* b, size_t N) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < N; ++i) out[i] = a[i] + b[i];
}

template void residual_forward<float>(float*, const float*, const float*, size_t);
template void residual_forward<double>(double*, const double*, const double*, size_t);

}  // namespace gpt::cpu
