#include "engine/cpu_backend.h"

#include <omp.h>

#include <cstdlib>
#include <cstring>
#include <new>
#include <sstream>

#include "kernels/adamw.h"
#include "kernels/attention.h"
#include "kernels/crossentropy.h"
#include "kernels/encoder.h"
#include "kernels/gelu.h"
#include "kernels/global_norm.h"
#include "kernels/layernorm.h"
#include "kernels/matmul.h"
#include "kernels/residual.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"

namespace gpt {

namespace {

// Calls fn(float tag) or fn(double tag) for the backend's dtype.
template <typename Fn>
void dispatch(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::f32:
      fn(float{});
      return;
    case DType::f64:
      fn(double{});
      return;
    default:
      throw ShapeError(std::string("CPU backend: unsupported dtype ") + dtype_name(dtype));
  }
}

template <typename F>
F* p(const Tensor& t) {
  return static_cast<F*>(t.data);
}

int as_int(int64_t v, const char* what) {
  if (v > INT32_MAX) throw ShapeError(std::string(what) + ": dimension too large");
  return static_cast<int>(v);
}

}  // namespace

CpuBackend::CpuBackend(DType dtype) : dtype_(dtype) {
  if (dtype != DType::f32 && dtype != DType::f64) {
    throw std::invalid_argument(std::string("the CPU backend runs f32 or f64, not ") +
                                dtype_name(dtype));
  }
}

CpuBackend::~CpuBackend() = default;

std::string CpuBackend::description() const {
  std::ostringstream os;
  os << "cpu " << dtype_name(dtype_) << ", " << omp_get_max_threads()
     << " OpenMP threads, matmul: " << cpu::cpu_blas_description();
  return os.str();
}

void* CpuBackend::allocate(size_t bytes) {
  // 256-byte aligned, zero-filled.
  const size_t rounded = allocation_bytes(bytes);
  void* ptr = std::aligned_alloc(kAllocationGranule, rounded);
  if (!ptr) throw std::bad_alloc();
  std::memset(ptr, 0, rounded);
  std::lock_guard<std::mutex> lock(mutex_);
  sizes_[ptr] = rounded;
  live_bytes_ += rounded;
  if (live_bytes_ > peak_bytes_) peak_bytes_ = live_bytes_;
  return ptr;
}

void CpuBackend::release(void* ptr) {
  if (!ptr) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = sizes_.find(ptr);
    if (it != sizes_.end()) {
      live_bytes_ -= it->second;
      sizes_.erase(it);
    }
  }
  std::free(ptr);
}

void CpuBackend::copy_from_host(void* dst, const void* src, size_t bytes) {
  if (bytes) std::memcpy(dst, src, bytes);
}
void CpuBackend::copy_to_host(void* dst, const void* src, size_t bytes) {
  if (bytes) std::memcpy(dst, src, bytes);
}
void CpuBackend::copy(void* dst, const void* src, size_t bytes) {
  if (bytes) std::memmove(dst, src, bytes);
}
void CpuBackend::fill_zero(void* dst, size_t bytes) {
  if (bytes) std::memset(dst, 0, bytes);
}

void CpuBackend::upload_f32(Tensor dst, const float* src) {
  const int64_t n = dst.numel();
  if (n == 0) return;  // an absent tensor (a zero in its shape) may come with a null pointer
  if (dst.dtype == DType::f32) {
    std::memcpy(dst.data, src, n * sizeof(float));
  } else if (dst.dtype == DType::f64) {
    double* d = p<double>(dst);
    for (int64_t i = 0; i < n; ++i) d[i] = src[i];
  } else {
    throw ShapeError("upload_f32: unsupported destination " + dst.str());
  }
}

void CpuBackend::download_f32(float* dst, const Tensor& src) {
  const int64_t n = src.numel();
  if (n == 0) return;
  if (src.dtype == DType::f32) {
    std::memcpy(dst, src.data, n * sizeof(float));
  } else if (src.dtype == DType::f64) {
    const double* s = p<double>(src);
    for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(s[i]);
  } else {
    throw ShapeError("download_f32: unsupported source " + src.str());
  }
}

// ---- ops --------------------------------------------------------------------------------------

void CpuBackend::encoder_forward(Tensor out, const Tensor& tokens, const Tensor& wte,
                                 const Tensor& wpe) {
  check_dtype(tokens, DType::i32, "encoder_forward tokens");
  check_dtype(out, dtype_, "encoder_forward out");
  const int B = as_int(tokens.shape.rows(), "tokens"), T = as_int(tokens.shape.cols(), "tokens");
  const int C = as_int(wte.shape.cols(), "wte");
  check_shape(out, Shape{B, T, C}, "encoder_forward out");
  if (!wpe.empty() && (wpe.shape.cols() != C || wpe.shape.rows() < T))
    throw ShapeError("encoder_forward: wpe " + wpe.str() +
                     " does not cover T=" + std::to_string(T));
  dispatch(dtype_, [&](auto tag) {
    using F = decltype(tag);
    cpu::encoder_forward<F>(p<F>(out), p<int32_t>(tokens), p<F>(wte), p<F>(wpe), B, T, C);
  });
}

void CpuBackend::encoder_backward(Tensor dwte, Tensor dwpe, const Tensor& dout,
                                  const Tensor& tokens) {
  check_dtype(tokens, DType::i32, "encoder_backward tokens");
  const int B = as_int(tokens.shape.rows(), "tokens"), T = as_int(tokens.shape.cols(), "tokens");
  const int C = as_int(dout.shape.cols(), "dout");
  check_shape(dout, Shape{B, T, C}, "encoder_backward dout");
  dispatch(dtype_, [&](auto tag) {
    using F = decltype(tag);
    cpu::encoder_backward<F>(p<F>(dwte), p<F>(dwpe), p<F>(dout), p<int32_t>(tokens), B, T, C);
  });
}

void CpuBackend::layernorm_forward(Tensor out, Tensor mean, Tensor rstd, const Tensor& inp,
                                   const Tensor& weight, const Tensor& bias) {
  const int N = as_int(inp.shape.rows(), "inp"), C = as_int(inp.shape.cols(), "inp");
  check_shape(out, inp.shape, "layernorm_forward out");
  check_shape(weight, Shape{C}, "layernorm_forward weight");
  check_shape(bias, Shape{C}, "layernorm_forward bias");
  check_shape(mean, Shape{N}, "layernorm_forward mean");
  check_shape(rstd, Shape{N}, "layernorm_forward rstd");
  dispatch(dtype_, [&](auto tag) {
    using F = decltype(tag);
    cpu::layernorm_forward<F>(p<F>(out), p<F>(mean), p<F>(rstd), p<F>(inp), p<F>(weight),
                              p<F>(bias), N, C);
  });
}

void CpuBackend::layernorm_backward(Tensor dinp, Tensor dweight, Tensor dbias, const Tensor& dout,
                                    const Tensor& inp, const Tensor& weight, const Tensor& mean,
                                    const Tensor& rstd) {
  const int N = as_int(inp.shape.rows(), "inp"), C = as_int(inp.shape.cols(), "inp");
  check_shape(dout, inp.shape, "layernorm_backward dout");
  check_shape(dinp, inp.shape, "layernorm_backward dinp");
  check_shape(mean, Shape{N}, "layernorm_backward mean");
  dispatch(dtype_, [&](auto tag) {
    using F = decltype(tag);
    cpu::layernorm_backward<F>(p<F>(dinp), p<F>(dweight), p<F>(dbias), p<F>(dout), p<F>(inp),
                               p<F>(weight), p<F>(mean), p<F>(rstd), N, C);
  });
}

void CpuBackend::matmul_forward(Tensor out, const Tensor& inp, const Tensor& weight,
                                const Tensor& bias) {
  const int N = as_int(inp.shape.rows(), "inp"), C = as_int(inp.shape.cols(), "inp");
  const int OC = as_int(weight.shape.rows(), "weight");
  check_shape(weight, Shape{OC, C}, "matmul_forward weight");
  check_shape(out, Shape{N, OC}, "matmul_forward out");
  if (!bias.empty()) check_shape(bias, Shape{OC}, "matmul_forward bias");
  dispatch(dtype_, [&](auto tag) {
    using F = decltype(tag);
    cpu::matmul_forward<F>(p<F>(out), p<F>(inp), p<F>(weight), p<F>(bias), N, C, OC);
  });
}

void CpuBackend::matmul_backward(Tensor dinp, Tensor dweight, Tensor dbias, const Tensor& dout,
                                 const Tensor& inp, const Tensor& weight) {
  const int N = as_int(inp.shape.rows(), "inp"), C = as_int(inp.shape.cols(), "inp");
  const int OC = as_int(weight.shape.rows(), "weight");
  check_shape(dout, Shape{N, OC}, "matmul_backward dout");
  if (!dinp.empty()) check_shape(dinp, Shape{N, C}, "matmul_backward dinp");
  if (!dweight.empty()) check_shape(dweight, Shape{OC, C}, "matmul_backward dweight");
  if (!dbias.empty()) check_shape(dbias, Shape{OC}, "matmul_backward dbias");
  dispatch(dtype_, [&](auto tag) {
    using F = decltype(tag);
    cpu::matmul_backward<F>(p<F>(dinp), p<F>(dweight), p<F>(dbias), p<F>(dout), p<F>(inp),
                            p<F>(weight), N, C, OC);
  });
}

void CpuBackend::gelu_forward(Tensor out, const Tensor& inp) {
  check_shape(out, inp.shape, "gelu_forward out");
  dispatch(dtype_, [&](auto tag) {
    using F = decltype(tag);
    cpu::gelu_forward<F>(p<F>(out), p<F>(inp), static_cast<size_t>(inp.numel()));
  });
}

void CpuBackend::gelu_backward(Tensor dinp, const Tensor& inp, const Tensor& dout) {
  check_shape(dinp, inp.shape, "gelu_backward dinp");
  check_shape(dout, inp.shape, "gelu_backward dout");
  dispatch(dtype_, [&](auto tag) {
    using F = decltype(tag);
    cpu::gelu_backward<F>(p<F>(dinp), p<F>(inp), p<F>(dout), static_cast<size_t>(inp.numel()));
  });
}

void CpuBackend::residual_forward(Tensor out, const Tensor& a, const Tensor& b) {
  check_shape(b, a.shape, "residual_forward b");
  check_shape(out, a.shape, "residual_forward out");
  dispatch(dtype_, [&](auto tag) {
    using F = decltype(tag);
    cpu::residual_forward<F>(p<F>(out), p<F>(a), p<F>(b), static_cast<size_t>(a.numel()));
  });
}

void CpuBackend::attention_forward(Tensor out, Tensor lse, const Tensor& qkv, int n_head,
                                   int n_kv_head) {
  const cpu::AttentionShape a =
      check_attention(qkv, out, lse, n_head, n_kv_head, "attention_forward");
  dispatch(dtype_, [&](auto tag) {
    using F = decltype(tag);
    cpu::attention_forward<F>(p<F>(out), p<F>(lse), p<F>(qkv), a);
  });
}

void CpuBackend::attention_backward(Tensor dqkv, const Tensor& dout, const Tensor& qkv,
                                    const Tensor& out, const Tensor& lse, int n_head,
                                    int n_kv_head) {
  const cpu::AttentionShape a =
      check_attention(qkv, out, lse, n_head, n_kv_head, "attention_backward");
  check_shape(dqkv, qkv.shape, "attention_backward dqkv");
  check_shape(dout, out.shape, "attention_backward dout");
  dispatch(dtype_, [&](auto tag) {
    using F = decltype(tag);
    cpu::attention_backward<F>(p<F>(dqkv), p<F>(dout), p<F>(qkv), p<F>(out), p<F>(lse), a);
  });
}

void CpuBackend::crossentropy(Tensor losses, Tensor logits, const Tensor& targets, int vocab_size,
                              float dloss, LossGrad grad) {
  check_dtype(targets, DType::i32, "crossentropy targets");
  const int N = as_int(logits.shape.rows(), "logits"), Vp = as_int(logits.shape.cols(), "logits");
  check_shape(targets, Shape{N}, "crossentropy targets");
  check_shape(losses, Shape{N}, "crossentropy losses");
  if (vocab_size <= 0 || vocab_size > Vp)
    throw ShapeError("crossentropy: vocab_size " + std::to_string(vocab_size) +
                     " outside (0, padded " + std::to_string(Vp) + "]");
  dispatch(dtype_, [&](auto tag) {
    using F = decltype(tag);
    F* dlogits = grad == LossGrad::write ? p<F>(logits) : nullptr;
    cpu::crossentropy_forward_backward<F>(p<F>(losses), dlogits, p<F>(logits), p<int32_t>(targets),
                                          N, vocab_size, Vp, static_cast<F>(dloss));
  });
}

void CpuBackend::rmsnorm_forward(Tensor out, Tensor rstd, const Tensor& inp, const Tensor& weight,
                                 float eps) {
  const int N = as_int(inp.shape.rows(), "inp"), C = as_int(inp.shape.cols(), "inp");
  check_shape(out, inp.shape, "rmsnorm_forward out");
  check_shape(weight, Shape{C}, "rmsnorm_forward weight");
  check_shape(rstd, Shape{N}, "rmsnorm_forward rstd");
  dispatch(dtype_, [&](auto tag) {
    using F = decltype(tag);
    cpu::rmsnorm_forward<F>(p<F>(out), p<F>(rstd), p<F>(inp), p<F>(weight), N, C, eps);
  });
}

void CpuBackend::residual_rmsnorm_forward(Tensor sum, Tensor out, Tensor rstd, const Tensor& a,
                                          const Tensor& b, const Tensor& weight, float eps) {
  const int N = as_int(a.shape.rows(), "a"), C = as_int(a.shape.cols(), "a");
  check_shape(b, a.shape, "residual_rmsnorm_forward b");
  check_shape(sum, a.shape, "residual_rmsnorm_forward sum");
  check_shape(out, a.shape, "residual_rmsnorm_forward out");
  check_shape(weight, Shape{C}, "residual_rmsnorm_forward weight");
  check_shape(rstd, Shape{N}, "residual_rmsnorm_forward rstd");
  dispatch(dtype_, [&](auto tag) {
    using F = decltype(tag);
    cpu::residual_rmsnorm_forward<F>(p<F>(sum), p<F>(out), p<F>(rstd), p<F>(a), p<F>(b),
                                     p<F>(weight), N, C, eps);
  });
}

void CpuBackend::rmsnorm_backward(Tensor dinp, Tensor dweight, const Tensor& dout,
                                  const Tensor& inp, const Tensor& weight, const Tensor& rstd) {
  const int N = as_int(inp.shape.rows(), "inp"), C = as_int(inp.shape.cols(), "inp");
  check_shape(dout, inp.shape, "rmsnorm_backward dout");
  if (!dinp.empty()) check_shape(dinp, inp.shape, "rmsnorm_backward dinp");
  if (!dweight.empty()) check_shape(dweight, Shape{C}, "rmsnorm_backward dweight");
  check_shape(weight, Shape{C}, "rmsnorm_backward weight");
  check_shape(rstd, Shape{N}, "rmsnorm_backward rstd");
  dispatch(dtype_, [&](auto tag) {
    using F = decltype(tag);
    cpu::rmsnorm_backward<F>(p<F>(dinp), p<F>(dweight), p<F>(dout), p<F>(inp), p<F>(weight),
                             p<F>(rstd), N, C);
  });
}

void CpuBackend::qk_norm_forward(Tensor out, Tensor rstd, const Tensor& inp, const Tensor& q_weight,
                                 const Tensor& k_weight, int n_head, int n_kv_head, float eps) {
  const QkNormDims d = check_qk_norm_forward(out, rstd, inp, q_weight, k_weight, n_head, n_kv_head);
  dispatch(dtype_, [&](auto tag) {
    using F = decltype(tag);
    cpu::qk_norm_forward<F>(p<F>(out), p<F>(rstd), p<F>(inp), p<F>(q_weight), p<F>(k_weight), d.N,
                            n_head, n_kv_head, d.HD, eps);
  });
}

void CpuBackend::qk_norm_backward(Tensor dinp, Tensor dq_weight, Tensor dk_weight,
                                  const Tensor& dout, const Tensor& inp, const Tensor& q_weight,
                                  const Tensor& k_weight, const Tensor& rstd, int n_head,
                                  int n_kv_head) {
  const QkNormDims d = check_qk_norm_backward(dinp, dq_weight, dk_weight, dout, inp, q_weight,
                                              k_weight, rstd, n_head, n_kv_head);
  dispatch(dtype_, [&](auto tag) {
    using F = decltype(tag);
    cpu::qk_norm_backward<F>(p<F>(dinp), p<F>(dq_weight), p<F>(dk_weight), p<F>(dout), p<F>(inp),
                             p<F>(q_weight), p<F>(k_weight), p<F>(rstd), d.N, n_head, n_kv_head,
                             d.HD);
  });
}

void CpuBackend::rope_forward(Tensor qkv, const Tensor& cos, const Tensor& sin, int n_heads,
                              int head_dim, int pos0) {
  const RopeDims d = check_rope(qkv, cos, sin, n_heads, head_dim, pos0, "rope_forward");
  dispatch(dtype_, [&](auto tag) {
    using F = decltype(tag);
    cpu::rope_forward<F>(p<F>(qkv), p<F>(cos), p<F>(sin), d.B, d.T, n_heads, head_dim, d.W, pos0);
  });
}

void CpuBackend::rope_backward(Tensor dqkv, const Tensor& cos, const Tensor& sin, int n_heads,
                               int head_dim, int pos0) {
  const RopeDims d = check_rope(dqkv, cos, sin, n_heads, head_dim, pos0, "rope_backward");
  dispatch(dtype_, [&](auto tag) {
    using F = decltype(tag);
    cpu::rope_backward<F>(p<F>(dqkv), p<F>(cos), p<F>(sin), d.B, d.T, n_heads, head_dim, d.W, pos0);
  });
}

void CpuBackend::swiglu_forward(Tensor out, const Tensor& inp) {
  const SwigluDims d = check_swiglu(inp, out, "swiglu_forward");
  dispatch(dtype_, [&](auto tag) {
    using F = decltype(tag);
    cpu::swiglu_forward<F>(p<F>(out), p<F>(inp), d.N, d.H);
  });
}

void CpuBackend::swiglu_backward(Tensor dinp, const Tensor& inp, const Tensor& dout) {
  const SwigluDims d = check_swiglu(inp, dout, "swiglu_backward");
  check_shape(dinp, inp.shape, "swiglu_backward dinp");
  dispatch(dtype_, [&](auto tag) {
    using F = decltype(tag);
    cpu::swiglu_backward<F>(p<F>(dinp), p<F>(inp), p<F>(dout), d.N, d.H);
  });
}

void CpuBackend::scale(Tensor out, const Tensor& in, float s) {
  check_shape(out, in.shape, "scale out");
  dispatch(dtype_, [&](auto tag) {
    using F = decltype(tag);
    const F* src = p<F>(in);
    F* dst = p<F>(out);
    const int64_t n = in.numel();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<F>(s) * src[i];
  });
}

void CpuBackend::attention_decode(Tensor out, const Tensor& q, const Tensor& kv_cache, int pos,
                                  int n_head, int n_kv_head) {
  const cpu::AttentionShape a =
      check_attention_decode(out, q, kv_cache, pos, n_head, n_kv_head, "attention_decode");
  dispatch(dtype_, [&](auto tag) {
    using F = decltype(tag);
    cpu::attention_decode<F>(p<F>(out), p<F>(q), static_cast<int>(q.shape.cols()), p<F>(kv_cache),
                             a.T, pos, a);
  });
}

double CpuBackend::sum_of_squares(const Tensor& x) {
  double result = 0.0;
  dispatch(x.dtype, [&](auto tag) {
    using F = decltype(tag);
    result = cpu::sum_of_squares<F>(p<F>(x), static_cast<size_t>(x.numel()));
  });
  return result;
}

double CpuBackend::sum(const Tensor& x) {
  // Small vectors (per-token losses): a sequential sum in double is deterministic and cheap.
  double result = 0.0;
  dispatch(x.dtype, [&](auto tag) {
    using F = decltype(tag);
    const F* v = p<F>(x);
    for (int64_t i = 0; i < x.numel(); ++i) result += static_cast<double>(v[i]);
  });
  return result;
}

void CpuBackend::adamw_update(Tensor params, const Tensor& grads, Tensor m, Tensor v, Tensor,
                              const AdamWStep& s) {
  check_shape(grads, params.shape, "adamw grads");
  check_shape(m, params.shape, "adamw m");
  check_shape(v, params.shape, "adamw v");
  cpu::AdamWHyper h;
  h.lr = s.lr;
  h.beta1 = s.beta1;
  h.beta2 = s.beta2;
  h.eps = s.eps;
  h.weight_decay = s.weight_decay;
  h.grad_scale = s.grad_scale;
  h.step = s.step;
  dispatch(dtype_, [&](auto tag) {
    using F = decltype(tag);
    cpu::adamw_update<F>(p<F>(params), p<F>(grads), p<F>(m), p<F>(v),
                         static_cast<size_t>(params.numel()), h);
  });
}

// ---- factory ----------------------------------------------------------------------------------

#ifndef GPT_HAVE_CUDA
bool cuda_available() {
  return false;
}
#endif

namespace {
int g_cuda_device = 0;
}
void set_cuda_device(int index) {
  g_cuda_device = index;
}
int cuda_device() {
  return g_cuda_device;
}

std::unique_ptr<Backend> make_cuda_backend(DType dtype);  // engine/cuda_backend.cu

std::unique_ptr<Backend> make_backend(const std::string& device, DType dtype) {
  if (device == "cpu") return std::make_unique<CpuBackend>(dtype);
  if (device == "cuda" || device == "auto") {
    // auto with f64 (gradient checks) stays on the CPU: the CUDA backend runs bf16 and f32 only.
    if (cuda_available() && (device == "cuda" || dtype != DType::f64)) {
#ifdef GPT_HAVE_CUDA
      return make_cuda_backend(dtype);
#endif
    }
    if (device == "auto")
      return std::make_unique<CpuBackend>(dtype == DType::bf16 ? DType::f32 : dtype);
    throw std::runtime_error(
        "--device cuda: no usable CUDA device (this build has CUDA: "
#ifdef GPT_HAVE_CUDA
        "yes"
#else
        "no"
#endif
        ")");
  }
  throw std::invalid_argument("unknown device '" + device + "' (expected cpu, cuda or auto)");
}

}  // namespace gpt
