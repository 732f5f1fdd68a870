#include "kernels/global_norm.h"

#include <cstddef>
#include <vector>

namespace gpt::cpu {

template <typename F>
double sum_of_squares(const F* x, size_t n) {
  const size_t num_chunks = (n + kNormChunk - 1) / kNormChunk;
  thread_local std::vector<double> partial;  // grows once, then reused: no allocation per step
  if (partial.size() < num_chunks) partial.resize(num_chunks);
  double* partial_data = partial.data();
#pragma omp parallel for schedule(static)
  for (size_t chunk = 0; chunk < num_chunks; ++chunk) {
    const size_t begin = chunk * kNormChunk;
    const size_t end = begin + kNormChunk < n ? begin + kNormChunk : n;
    // 16 interleaved partial sums (four vectors of doubles with AVX2): enough independent
    // additions in flight that the loop runs at memory speed rather than at the latency of one
    // chain of adds. Their order is fixed by the index alone.
    constexpr size_t kLanes = 16;
    double lane[kLanes] = {};
    size_t i = begin;
    for (; i + kLanes <= end; i += kLanes) {
      for (size_t l = 0; l < kLanes; ++l) {
        const double xi = x[i + l];
        lane[l] += xi * xi;
      }
    }
    for (size_t l = 0; i < end; ++i, ++l) {
      const double xi = x[i];
      lane[l] += xi * xi;
    }
    for (size_t width = kLanes / 2; width > 0; width /= 2)
      for (size_t l = 0; l < width; ++l) lane[l] += lane[l + width];
    partial_data[chunk] = lane[0];
  }
  double total = 0.0;
  for (size_t chunk = 0; chunk < num_chunks; ++chunk) total += partial_data[chunk];
  return total;
}

double clip_scale(double norm, double grad_clip) {
  if (grad_clip > 0.0 && norm > grad_clip) return grad_clip / norm;
  return 1.0;
}

template <typename F>
void scale_inplace(F* x, size_t n, F scale) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) x[i] *= scale;
}

template double sum_of_squares<float>(const float*, size_t);
template double sum_of_squares<double>(const double*, size_t);
template void scale_inplace<float>(float*, size_t, float);
template void scale_inplace<double>(double*, size_t, double);

}  // namespace gpt::cpu
