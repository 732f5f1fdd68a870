#include "kernels/rope.h"

#include <cmath>
#include <cstddef>
#include <stdexcept>

namespace gpt::cpu {

std::vector<double> rope_inverse_frequencies(int head_dim, double theta,
                                             const RopeScaling& scaling) {
  if (head_dim <= 0 || head_dim % 2 != 0)
    throw std::invalid_argument("rope: head_dim " + std::to_string(head_dim) +
                                " must be even and positive");
  const int half = head_dim / 2;
  std::vector<double> inv_freq(half);
  for (int i = 0; i < half; ++i) inv_freq[i] = 1.0 / std::pow(theta, 2.0 * i / head_dim);
  if (scaling.factor == 0.0) return inv_freq;
  const double kPi = 3.14159265358979323846;
  const double context = scaling.original_context;
  const double low_wavelength = context / scaling.low_freq_factor;
  const double high_wavelength = context / scaling.high_freq_factor;
  for (double& f : inv_freq) {
    const double wavelength = 2.0 * kPi / f;
    if (wavelength < high_wavelength) continue;
    if (wavelength > low_wavelength) {
      f /= scaling.factor;
    } else {
      const double s = (context / wavelength - scaling.low_freq_factor) /
                       (scaling.high_freq_factor - scaling.low_freq_factor);
      f = (1.0 - s) * f / scaling.factor + s * f;
    }
  }
  return inv_freq;
}

template <typename F>
void rope_table(F* cos, F* sin, int max_T, int head_dim, double theta, const RopeScaling& scaling) {
  const std::vector<double> inv_freq = rope_inverse_frequencies(head_dim, theta, scaling);
  const int half = head_dim / 2;
  for (int p = 0; p < max_T; ++p) {
    for (int i = 0; i < half; ++i) {
      const double angle = p * inv_freq[i];
      cos[static_cast<size_t>(p) * half + i] = static_cast<F>(std::cos(angle));
      sin[static_cast<size_t>(p) * half + i] = static_cast<F>(std::sin(angle));
    }
  }
}

namespace {

// Rotates the pairs of every head of every row by +angle (sign 1) or -angle (sign -1).
template <typename F>
void rotate(F* x, const F* cos, const F* sin, int B, int T, int n_heads, int head_dim,
            int row_stride, int pos0, F sign) {
  const int half = head_dim / 2;
  const int rows = B * T;
#pragma omp parallel for schedule(static)
  for (int r = 0; r < rows; ++r) {
    const size_t table_row = static_cast<size_t>(pos0 + r % T) * half;
    const F* c = cos + table_row;
    const F* s = sin + table_row;
    for (int h = 0; h < n_heads; ++h) {
      F* head = x + static_cast<size_t>(r) * row_stride + static_cast<size_t>(h) * head_dim;
      for (int i = 0; i < half; ++i) {
        const F a = head[i];
        const F b = head[i + half];
        const F si = sign * s[i];
        head[i] = a * c[i] - b * si;
        head[i + half] = b * c[i] + a * si;
      }
    }
  }
}

}  // namespace

template <typename F>
void rope_forward(F* x, const F* cos, const F* sin, int B, int T, int n_heads, int head_dim,
                  int row_stride, int pos0) {
  rotate(x, cos, sin, B, T, n_heads, head_dim, row_stride, pos0, F(1));
}

template <typename F>
void rope_backward(F* dx, const F* cos, const F* sin, int B, int T, int n_heads, int head_dim,
                   int row_stride, int pos0) {
  rotate(dx, cos, sin, B, T, n_heads, head_dim, row_stride, pos0, F(-1));
}

template void rope_table<float>(float*, float*, int, int, double, const RopeScaling&);
template void rope_table<double>(double*, double*, int, int, double, const RopeScaling&);
template void rope_forward<float>(float*, const float*, const float*, int, int, int, int, int, int);
template void rope_forward<double>(double*, const double*, const double*, int, int, int, int, int,
                                   int);
template void rope_backward<float>(float*, const float*, const float*, int, int, int, int, int,
                                   int);
template void rope_backward<double>(double*, const double*, const double*, int, int, int, int, int,
                                    int);

}  // namespace gpt::cpu
