// What the CPU kernel tests share (tests/test_kernels.cpp, tests/test_llama_ops.cpp): random
// vectors, relative errors against a double reference, central finite differences in double, and
// bitwise comparison. Test-only code.
#pragma once

#include <omp.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <vector>

namespace gpt::numeric_check {

using Vec = std::vector<double>;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kGradTol = 1e-6;     // finite differences against analytic gradients, in double
constexpr double kDoubleTol = 1e-12;  // double kernel against a double reference
constexpr double kFloatTol = 1e-5;    // float kernel against a double reference

inline Vec random_vector(size_t n, std::mt19937_64& rng, double lo = -1.0, double hi = 1.0) {
  std::uniform_real_distribution<double> dist(lo, hi);
  Vec v(n);
  for (double& x : v) x = dist(rng);
  return v;
}

inline std::vector<float> to_float(const Vec& v) {
  return std::vector<float>(v.begin(), v.end());
}

// ‖a − ref‖ / ‖ref‖ (‖a‖ when ref is all zeros); infinity when a holds a NaN or sizes differ.
template <typename T>
double rel_error(const std::vector<T>& a, const Vec& ref) {
  if (a.size() != ref.size()) return std::numeric_limits<double>::infinity();
  double diff = 0.0;
  double norm = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double ai = static_cast<double>(a[i]);
    if (std::isnan(ai)) return std::numeric_limits<double>::infinity();
    diff += (ai - ref[i]) * (ai - ref[i]);
    norm += ref[i] * ref[i];
  }
  return norm > 0.0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

inline double dot(const Vec& a, const Vec& b) {
  double s = 0.0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

inline Vec minus(const Vec& a, const Vec& b) {
  Vec d(a.size());
  for (size_t i = 0; i < a.size(); ++i) d[i] = a[i] - b[i];
  return d;
}

// Central finite differences of loss() with respect to each element of x (restored afterwards).
// The many small forward calls run on one thread: opening thousands of tiny parallel regions is
// slow on a loaded machine, and the reference gains nothing from threads.
inline Vec numeric_gradient(Vec& x, const std::function<double()>& loss, double h = 1e-5) {
  const int saved_threads = omp_get_max_threads();
  omp_set_num_threads(1);
  Vec grad(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double saved = x[i];
    x[i] = saved + h;
    const double plus = loss();
    x[i] = saved - h;
    const double minus_ = loss();
    x[i] = saved;
    grad[i] = (plus - minus_) / (2.0 * h);
  }
  omp_set_num_threads(saved_threads);
  return grad;
}

template <typename T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

}  // namespace gpt::numeric_check
