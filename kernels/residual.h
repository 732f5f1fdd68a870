// Residual add: out[i] = a[i] + b[i]. Its backward is the identity on both inputs: the model passes
// the residual stream's gradient straight to both branches (the stream's gradient buffer
// accumulates), so no backward kernel is needed. out may alias a or b.
#pragma once

#include <cstddef>

namespace gpt::cpu {

template <typename F>
void residual_forward(F* out, const F* a, const F* b, size_t N);

}  // namespace gpt::cpu
