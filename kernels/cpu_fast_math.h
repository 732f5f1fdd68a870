// Elementwise math and row sums for the CPU kernels' inner loops, written so that the compiler
// vectorises them.
//
// glibc's expf is a function call per element: a loop that calls it stays scalar. exp_approx below
// is branch-free arithmetic (a range reduction, a polynomial and an exponent built from bits), so a
// loop over it becomes SIMD code. For float it is Cephes' expf (relative error about 1e-7, i.e. an
// ulp or two); for double it is std::exp, so that the f64 instantiations the gradient checks run
// keep full double precision.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace gpt::cpu {

// exp(x), for any x that is not NaN. Inputs are clamped to [-87.3, 88.3], where 2^n below stays a
// normal float: below, the result is 2^-126 (about 1e-38) instead of a smaller number or 0; above,
// it is about 2e38 instead of a larger number or +inf. Callers pass differences s - max <= 0 (a
// softmax), or feed the result to 1 / (1 + exp(x)) (GELU), where neither difference shows.
inline float exp_approx(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693359375f;  // ln 2 split in two so that n · kLn2Hi is exact
  constexpr float kLn2Lo = -2.12194440e-4f;
  x = x < -87.3365447f ? -87.3365447f : x;
  x = x > 88.3f ? 88.3f : x;
  // x = n · ln 2 + r with |r| <= ln(2) / 2
  // n = x · log2(e) rounded to nearest: adding and subtracting 1.5 · 2^23 drops the fraction
  // (std::floor would be a call that keeps the loop scalar).
  constexpr float kRound = 12582912.0f;
  const float n = (x * kLog2e + kRound) - kRound;
  const float r = (x - n * kLn2Hi) - n * kLn2Lo;
  // exp(r) = 1 + r + r² · P(r), P of degree 5 (Cephes)
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float exp_r = (p * (r * r) + r) + 1.0f;
  // 2^n from its bits: n in [-126, 127] here, so the biased exponent n + 127 is in [1, 254]
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float two_n;
  std::memcpy(&two_n, &bits, sizeof two_n);
  return exp_r * two_n;
}

inline double exp_approx(double x) {
  return std::exp(x);
}

// Sums over a row in kSumLanes double lanes, lane l taking the terms l, l + kSumLanes, ..., added
// in a fixed order at the end: the order depends on the row's length alone (the bits do not depend
// on the thread count), and the lanes are independent, so the loop vectorises and no addition waits
// for the one before (one accumulator makes a chain of n dependent adds; the compiler may not
// reorder floating-point sums on its own).
constexpr int kSumLanes = 8;

// The lanes' total, pairwise in a fixed order (float lanes too: attention's row sums).
template <typename T>
T combine_lanes(const T lane[kSumLanes]) {
  return ((lane[0] + lane[4]) + (lane[1] + lane[5])) + ((lane[2] + lane[6]) + (lane[3] + lane[7]));
}

// add(c, l) for c in [0, n), with l the lane of c (add accumulates into lane arrays of its own).
template <typename Add>
void for_each_lane(int n, Add add) {
  int c = 0;
  for (; c + kSumLanes <= n; c += kSumLanes)
    for (int l = 0; l < kSumLanes; ++l) add(c + l, l);
  for (int l = 0; c < n; ++c, ++l) add(c, l);
}

// term(c) summed over c in [0, n) in lanes.
template <typename Term>
double lane_sum(int n, Term term) {
  double lane[kSumLanes] = {};
  for_each_lane(n, [&](int c, int l) { lane[l] += term(c); });
  return combine_lanes(lane);
}

}  // namespace gpt::cpu
