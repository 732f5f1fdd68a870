// One row at a time: (1) the max of the real logits, (2) exp(x - max) summed in double and, when a
// gradient is wanted, written straight into dlogits, (3) dlogits scaled into dloss · (p - onehot).
// exp runs once per element, and the target's logit is read before (2) because dlogits may alias
// the logits.
#include "kernels/crossentropy.h"

#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <string>

namespace gpt::cpu {

template <typename F>
void crossentropy_forward_backward(F* losses, F* dlogits, const F* logits, const int32_t* targets,
                                   int N, int V, int Vp, F dloss) {
  // Validate every target first: nothing may throw inside the parallel region.
  for (int i = 0; i < N; ++i) {
    const int32_t target = targets[i];
    if (target != kIgnoreIndex && (target < 0 || target >= V)) {
      throw std::out_of_range("crossentropy: target " + std::to_string(target) + " of row " +
                              std::to_string(i) + " is outside [0, " + std::to_string(V) +
                              ") and is not the ignore index " + std::to_string(kIgnoreIndex));
    }
  }
#pragma omp parallel for schedule(static)
  for (int i = 0; i < N; ++i) {
    const F* x = logits + static_cast<size_t>(i) * Vp;
    F* dx = dlogits != nullptr ? dlogits + static_cast<size_t>(i) * Vp : nullptr;
    const int32_t target = targets[i];
    if (target == kIgnoreIndex) {
      losses[i] = 0;
      if (dx != nullptr) {
        for (int j = 0; j < Vp; ++j) dx[j] = 0;
      }
      continue;
    }
    F max_x = x[0];
    for (int j = 1; j < V; ++j) max_x = x[j] > max_x ? x[j] : max_x;
    const F x_target = x[target];
    double sum = 0.0;
    if (dx != nullptr) {
      for (int j = 0; j < V; ++j) {
        const F e = std::exp(x[j] - max_x);
        dx[j] = e;
        sum += e;
      }
    } else {
      for (int j = 0; j < V; ++j) sum += std::exp(x[j] - max_x);
    }
    losses[i] = static_cast<F>(std::log(sum) + (static_cast<double>(max_x) - x_target));
    if (dx != nullptr) {
      const F scale = static_cast<F>(dloss / sum);
      for (int j = 0; j < V; ++j) dx[j] *= scale;
      dx[target] -= dloss;
      for (int j = V; j < Vp; ++j) dx[j] = 0;
    }
  }
}

template void crossentropy_forward_backward<float>(float*, float*, const float*, const int32_t*,
                                                   int, int, int, float);
template void crossentropy_forward_backward<double>(double*, double*, const double*, const int32_t*,
                                                    int, int, int, double);

}  // namespace gpt::cpu
