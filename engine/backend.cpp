// Portable defaults of the Backend's optional ops: host round trips through the CPU kernels.
#include "engine/backend.h"

#include <cstdint>
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
  throw std::invalid_argument("unknown attention kernel '" + name +
                              "' (expected fused or unfused)");
}

RopeDims check_rope(const Tensor& qkv, const Tensor& cos, const Tensor& sin, int n_heads,
                    int head_dim, int pos0, const char* op) {
  const std::string name = op;
  if (qkv.shape.ndim() != 3) throw ShapeError(name + ": qkv must be (B, T, W), got " + qkv.str());
  if (head_dim <= 0 || head_dim % 2 != 0 || n_heads <= 0)
    throw ShapeError(name + ": head_dim " + std::to_string(head_dim) +
                     " must be even and positive, n_heads " + std::to_string(n_heads) +
                     " positive");
  RopeDims d;
  d.B = static_cast<int>(qkv.shape[0]);
  d.T = static_cast<int>(qkv.shape[1]);
  d.W = static_cast<int>(qkv.shape[2]);
  if (static_cast<int64_t>(n_heads) * head_dim > d.W)
    throw ShapeError(name + ": " + std::to_string(n_heads) + " heads of " +
                     std::to_string(head_dim) + " do not fit rows of " + std::to_string(d.W));
  if (cos.shape.ndim() != 2 || cos.shape[1] != head_dim / 2 || cos.shape[0] < pos0 + d.T ||
      pos0 < 0)
    throw ShapeError(name + ": cos " + cos.str() + " does not cover positions " +
                     std::to_string(pos0) + ".." + std::to_string(pos0 + d.T - 1) +
                     " of head_dim " + std::to_string(head_dim));
  check_shape(sin, cos.shape, (name + " sin").c_str());
  return d;
}

cpu::AttentionShape check_attention(const Tensor& qkv, const Tensor& out, const Tensor& lse,
                                    int n_head, int n_kv_head, const char* op) {
  const std::string name = op;
  if (qkv.shape.ndim() != 3)
    throw ShapeError(name + ": qkv must be (B, T, (NH + 2·NKV)·HS), got " + qkv.str());
  if (n_head <= 0 || n_kv_head <= 0 || n_head % n_kv_head != 0)
    throw ShapeError(name + ": " + std::to_string(n_head) + " query heads do not share " +
                     std::to_string(n_kv_head) + " key/value heads evenly");
  cpu::AttentionShape a;
  a.B = static_cast<int>(qkv.shape[0]);
  a.T = static_cast<int>(qkv.shape[1]);
  a.n_head = n_head;
  a.n_kv_head = n_kv_head;
  const int64_t out_width = out.shape.cols();
  if (out_width % n_head != 0 || out_width == 0)
    throw ShapeError(name + ": out " + out.str() + " does not split into " +
                     std::to_string(n_head) + " heads");
  a.head_size = static_cast<int>(out_width / n_head);
  if (qkv.shape[2] != a.row_width())
    throw ShapeError(name + ": qkv " + qkv.str() + " rows are not " + std::to_string(n_head) +
                     " query and 2 x " + std::to_string(n_kv_head) + " key/value heads of " +
                     std::to_string(a.head_size));
  if (out.shape.ndim() == 3)
    check_shape(out, Shape{a.B, a.T, out_width}, (name + " out").c_str());
  else
    check_shape(out, Shape{a.B, out_width}, (name + " out").c_str());
  if (!lse.empty()) check_shape(lse, Shape{a.B, n_head, a.T}, (name + " lse").c_str());
  return a;
}

cpu::AttentionShape check_attention_decode(const Tensor& out, const Tensor& q,
                                           const Tensor& kv_cache, int pos, int n_head,
                                           int n_kv_head, const char* op) {
  const std::string name = op;
  if (n_head <= 0 || n_kv_head <= 0 || n_head % n_kv_head != 0)
    throw ShapeError(name + ": " + std::to_string(n_head) + " query heads do not share " +
                     std::to_string(n_kv_head) + " key/value heads evenly");
  if (out.shape.ndim() != 2 || out.shape[1] % n_head != 0 || out.shape[1] == 0)
    throw ShapeError(name + ": out " + out.str() + " is not (B, NH·HS)");
  cpu::AttentionShape a;
  a.B = static_cast<int>(out.shape[0]);
  a.n_head = n_head;
  a.n_kv_head = n_kv_head;
  a.head_size = static_cast<int>(out.shape[1] / n_head);
  if (q.shape.ndim() != 2 || q.shape[0] != a.B || q.shape[1] < out.shape[1])
    throw ShapeError(name + ": q " + q.str() + " must be (B, >= " + std::to_string(out.shape[1]) +
                     ")");
  if (kv_cache.shape.ndim() != 3 || kv_cache.shape[0] != a.B ||
      kv_cache.shape[2] != 2 * static_cast<int64_t>(n_kv_head) * a.head_size)
    throw ShapeError(name + ": kv_cache " + kv_cache.str() + " is not (B, Tmax, 2 x " +
                     std::to_string(n_kv_head) + " heads of " + std::to_string(a.head_size) + ")");
  a.T = static_cast<int>(kv_cache.shape[1]);
  if (pos < 0 || pos >= a.T) throw ShapeError(name + ": position outside the cache");
  return a;
}

SwigluDims check_swiglu(const Tensor& inp, const Tensor& half, const char* op) {
  const std::string name = op;
  if (inp.shape.cols() % 2 != 0) throw ShapeError(name + ": inp " + inp.str() + " must be (N, 2H)");
  SwigluDims d;
  d.N = static_cast<int>(inp.shape.rows());
  d.H = static_cast<int>(inp.shape.cols() / 2);
  check_shape(half, Shape{d.N, d.H}, (name + " (N, H) tensor").c_str());
  return d;
}

namespace {

QkNormDims check_qk_norm(const Tensor& inp, const Tensor& q_weight, const Tensor& k_weight,
                         const Tensor& rstd, int n_head, int n_kv_head, const std::string& op) {
  if (inp.shape.ndim() != 3) throw ShapeError(op + ": inp must be (B, T, W), got " + inp.str());
  if (n_head <= 0 || n_kv_head <= 0)
    throw ShapeError(op + ": n_head " + std::to_string(n_head) + " and n_kv_head " +
                     std::to_string(n_kv_head) + " must be positive");
  const int heads = n_head + 2 * n_kv_head;
  if (inp.shape[2] % heads != 0 || inp.shape[2] == 0)
    throw ShapeError(op + ": inp " + inp.str() + " rows do not split into " +
                     std::to_string(n_head) + " query and 2 x " + std::to_string(n_kv_head) +
                     " key/value heads");
  QkNormDims d;
  if (inp.shape[0] * inp.shape[1] * heads > INT32_MAX)  // the kernels count heads in int
    throw ShapeError(op + ": inp " + inp.str() + " has too many heads");
  d.N = static_cast<int>(inp.shape[0] * inp.shape[1]);
  d.HD = static_cast<int>(inp.shape[2] / heads);
  check_shape(q_weight, Shape{d.HD}, (op + " q_weight").c_str());
  check_shape(k_weight, Shape{d.HD}, (op + " k_weight").c_str());
  check_shape(rstd, Shape{inp.shape[0], inp.shape[1], n_head + n_kv_head}, (op + " rstd").c_str());
  return d;
}

}  // namespace

QkNormDims check_qk_norm_forward(const Tensor& out, const Tensor& rstd, const Tensor& inp,
                                 const Tensor& q_weight, const Tensor& k_weight, int n_head,
                                 int n_kv_head) {
  const QkNormDims d =
      check_qk_norm(inp, q_weight, k_weight, rstd, n_head, n_kv_head, "qk_norm_forward");
  check_shape(out, inp.shape, "qk_norm_forward out");
  if (out.data == inp.data) throw ShapeError("qk_norm_forward: out must not alias inp");
  return d;
}

QkNormDims check_qk_norm_backward(const Tensor& dinp, const Tensor& dq_weight,
                                  const Tensor& dk_weight, const Tensor& dout, const Tensor& inp,
                                  const Tensor& q_weight, const Tensor& k_weight,
                                  const Tensor& rstd, int n_head, int n_kv_head) {
  const QkNormDims d =
      check_qk_norm(inp, q_weight, k_weight, rstd, n_head, n_kv_head, "qk_norm_backward");
  check_shape(dout, inp.shape, "qk_norm_backward dout");
  check_shape(dinp, inp.shape, "qk_norm_backward dinp");
  if (!dq_weight.empty()) check_shape(dq_weight, Shape{d.HD}, "qk_norm_backward dq_weight");
  if (!dk_weight.empty()) check_shape(dk_weight, Shape{d.HD}, "qk_norm_backward dk_weight");
  return d;
}

void Backend::scale(Tensor out, const Tensor& in, float s) {
  check_shape(out, in.shape, "scale out");
  std::vector<float> host = to_host(*this, in);
  for (float& x : host) x *= s;
  upload_f32(out, host.data());
}

void Backend::attention_decode(Tensor out, const Tensor& q, const Tensor& kv_cache, int pos,
                               int n_head, int n_kv_head) {
  const cpu::AttentionShape a =
      check_attention_decode(out, q, kv_cache, pos, n_head, n_kv_head, "attention_decode");
  const std::vector<float> q_host = to_host(*this, q), cache = to_host(*this, kv_cache);
  std::vector<float> host(static_cast<size_t>(out.numel()));
  cpu::attention_decode<float>(host.data(), q_host.data(), static_cast<int>(q.shape.cols()),
                               cache.data(), a.T, pos, a);
  upload_f32(out, host.data());
}

std::unique_ptr<Backend> make_backend_from_names(const std::string& device,
                                                 const std::string& dtype) {
  DType dt;
  if (dtype == "auto") {
    const bool cuda = device == "cuda" || (device == "auto" && cuda_available());
    dt = cuda ? DType::bf16 : DType::f32;
  } else {
    dt = dtype_from_name(dtype);
  }
  return make_backend(device, dt);
}

}  // namespace gpt
