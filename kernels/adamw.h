// AdamW (Loshchilov & Hutter) with bias correction and decoupled weight decay.
//
//   g   = grad · grad_scale                     (grad_scale carries gradient clipping)
//   m   = beta1 · m + (1 - beta1) · g
//   v   = beta2 · v + (1 - beta2) · g²
//   m̂   = m / (1 - beta1^step),  v̂ = v / (1 - beta2^step)          (step counts from 1)
//   p  -= lr · (m̂ / (sqrt(v̂) + eps) + weight_decay · p)
//
// Weight decay is applied by the caller only to 2-D weight matrices (the model's decay mask): it
// calls this once per parameter tensor with weight_decay = 0 for biases, LayerNorm parameters and
// position embeddings. Elementwise over n values; memory bound (reads p, g, m, v; writes p, m, v).
#pragma once

#include <cstddef>

namespace gpt::cpu {

struct AdamWHyper {
  float lr = 3e-4f;
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;
  float grad_scale = 1.0f;
  long step = 1;
};

template <typename F>
void adamw_update(F* params, const F* grads, F* m, F* v, size_t n, const AdamWHyper& h);

}  // namespace gpt::cpu
