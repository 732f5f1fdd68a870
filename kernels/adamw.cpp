#include "kernels/adamw.h"

#include <cmath>
#include <cstddef>

namespace gpt::cpu {

template <typename F>
void adamw_update(F* params, const F* grads, F* m, F* v, size_t n, const AdamWHyper& h) {
  // Bias corrections in double (beta2^step for a large step loses digits in float), then cast.
  const F bias_correction1 =
      static_cast<F>(1.0 - std::pow(static_cast<double>(h.beta1), static_cast<double>(h.step)));
  const F bias_correction2 =
      static_cast<F>(1.0 - std::pow(static_cast<double>(h.beta2), static_cast<double>(h.step)));
  const F lr = h.lr;
  const F beta1 = h.beta1;
  const F beta2 = h.beta2;
  const F eps = h.eps;
  const F weight_decay = h.weight_decay;
  const F grad_scale = h.grad_scale;
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) {
    const F g = grads[i] * grad_scale;
    const F m_i = beta1 * m[i] + (F(1) - beta1) * g;
    const F v_i = beta2 * v[i] + (F(1) - beta2) * g * g;
    const F m_hat = m_i / bias_correction1;
    const F v_hat = v_i / bias_correction2;
    m[i] = m_i;
    v[i] = v_i;
    params[i] -= lr * (m_hat / (std::sqrt(v_hat) + eps) + weight_decay * params[i]);
  }
}

template void adamw_update<float>(float*, const float*, float*, float*, size_t, const AdamWHyper&);
template void adamw_update<double>(double*, const double*, double*, double*, size_t,
                                   const AdamWHyper&);

}  // namespace gpt::cpu
