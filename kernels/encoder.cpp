#include "kernels/encoder.h"

#include <cstddef>

namespace gpt::cpu {

template <typename F>
void encoder_forward(F* out, const int32_t* tokens, const F* wte, const F* wpe, int B, int T,
                     int C) {
#pragma omp parallel for schedule(static)
  for (int bt = 0; bt < B * T; ++bt) {
    const int t = bt % T;
    F* out_bt = out + static_cast<size_t>(bt) * C;
    const F* wte_row = wte + static_cast<size_t>(tokens[bt]) * C;
    if (wpe == nullptr) {
      for (int c = 0; c < C; ++c) out_bt[c] = wte_row[c];
      continue;
    }
    const F* wpe_row = wpe + static_cast<size_t>(t) * C;
    for (int c = 0; c < C; ++c) out_bt[c] = wte_row[c] + wpe_row[c];
  }
}

template <typename F>
void encoder_backward(F* dwte, F* dwpe, const F* dout, const int32_t* tokens, int B, int T, int C) {
  // Each thread owns a block of channels of every row of dwte and dwpe and walks (b,t) in order, so
  // every element receives its additions in the same order whatever the thread count.
  constexpr int kBlock = 16;
  const int num_blocks = (C + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static)
  for (int blk = 0; blk < num_blocks; ++blk) {
    const int c0 = blk * kBlock;
    const int c1 = c0 + kBlock < C ? c0 + kBlock : C;
    for (int bt = 0; bt < B * T; ++bt) {
      const F* dout_bt = dout + static_cast<size_t>(bt) * C;
      if (dwte != nullptr) {
        F* dwte_row = dwte + static_cast<size_t>(tokens[bt]) * C;
        for (int c = c0; c < c1; ++c) dwte_row[c] += dout_bt[c];
      }
      if (dwpe != nullptr) {
        F* dwpe_row = dwpe + static_cast<size_t>(bt % T) * C;
        for (int c = c0; c < c1; ++c) dwpe_row[c] += dout_bt[c];
      }
    }
  }
}

template void encoder_forward<float>(float*, const int32_t*, const float*, const float*, int, int,
                                     int);
template void encoder_forward<double>(double*, const int32_t*, const double*, const double*, int,
                                      int, int);
template void encoder_backward<float>(float*, float*, const float*, const int32_t*, int, int, int);
template void encoder_backward<double>(double*, double*, const double*, const int32_t*, int, int,
                                       int);

}  // namespace gpt::cpu
