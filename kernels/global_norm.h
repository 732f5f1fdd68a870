// Global gradient norm, for clipping: norm = sqrt(sum_i g_i²) over all gradients of the model.
//
// The sum is accumulated in double over fixed chunks of kNormChunk elements; the partial sums are
// added in chunk order, so the result is bitwise identical whatever the number of OpenMP threads
// (an OpenMP reduction(+) would add in thread-arrival order and is therefore not used).
//
// Clipping: scale = grad_clip / norm when norm > grad_clip, else 1 (clip_scale below); the scale is
// handed to AdamW as grad_scale, so clipping costs no extra pass over the gradients.
#pragma once

#include <cstddef>

namespace gpt::cpu {

constexpr size_t kNormChunk = 1 << 14;

template <typename F>
double sum_of_squares(const F* x, size_t n);

// Returns the factor that brings `norm` down to `grad_clip` (1 when no clipping is needed or when
// grad_clip <= 0, which disables clipping).
double clip_scale(double norm, double grad_clip);

template <typename F>
void scale_inplace(F* x, size_t n, F scale);

}  // namespace gpt::cpu
