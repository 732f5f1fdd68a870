// Portable defaults of the Backend's optional ops: host round trips through the CPU kernels.
#include "engine/backend.h"

#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/attention.h"

namespace gpt {

namespace {

std::vector<float> to_host(Backend& backend, const Tensor& t) {
  std::vector<float> host(static_cast<size_t>(t.numel()));
  backend.download_f32(host.data(), t);
  return host;
}

}  // namespace

AttentionKernel attention_kernel_from_name(const std::string& name) {
  if (name == "fused") return AttentionKernel::fused;
  if (name == "unfused") return AttentionKernel::unfused;
  throw std::invalid_argument("unknown attention kernel '" + name + "' (expected fused or unfused)");
}

void Backend::scale(Tensor out, const Tensor& in, float s) {
  check_shape(out, in.shape, "scale out");
  std::vector<float> host = to_host(*this, in);
  for (float& x : host) x *= s;
  upload_f32(out, host.data());
}

void Backend::attention_decode(Tensor out, const Tensor& qkv_cache, int pos, int n_head) {
  if (qkv_cache.shape.ndim() != 3) throw ShapeError("attention_decode: cache must be (B, Tmax, 3C)");
  const int B = static_cast<int>(qkv_cache.shape[0]), Tmax = static_cast<int>(qkv_cache.shape[1]);
  const int C = static_cast<int>(qkv_cache.shape[2] / 3);
  if (pos < 0 || pos >= Tmax) throw ShapeError("attention_decode: position outside the cache");
  check_shape(out, Shape{B, C}, "attention_decode out");
  std::vector<float> cache = to_host(*this, qkv_cache);
  std::vector<float> host(static_cast<size_t>(B) * C);
  cpu::attention_decode<float>(host.data(), cache.data(), B, Tmax, C, n_head, pos);
  upload_f32(out, host.data());
}

}  // namespace gpt
