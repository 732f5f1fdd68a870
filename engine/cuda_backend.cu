// The CUDA backend's checked entry points: each op asserts dtypes, shapes, alignment and the packet
// multiples its kernel relies on (throwing ShapeError that names the argument), then calls the
// launcher of kernels/<op>.cu on the backend's stream. See engine/cuda_backend.h.
#include <cmath>
#include <cstdio>
#include <initializer_list>
#include <sstream>
#include <vector>

#include "engine/cuda_backend.h"
#include "kernels/crossentropy.h"
#include "kernels/cuda_kernels.cuh"
#include "kernels/flash_attention.h"

namespace gpt {
namespace {

using cuda::bf16;

constexpr size_t kLtWorkspaceBytes = kCudaMatmulWorkspaceBytes;
constexpr size_t kScratchGranule = size_t{1} << 20;

// Calls fn(float{}) or fn(bf16{}) for the compute dtype.
template <typename Fn>
void dispatch(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::f32:
      fn(float{});
      return;
    case DType::bf16:
      fn(bf16{});
      return;
    default:
      throw ShapeError(std::string("CUDA backend: unsupported dtype ") + dtype_name(dtype));
  }
}

template <typename F>
F* dev(const Tensor& t) {
  return static_cast<F*>(t.data);
}

int as_int(int64_t v, const char* what) {
  if (v > INT32_MAX) throw ShapeError(std::string(what) + ": dimension too large");
  return static_cast<int>(v);
}

size_t pack_of(DType dtype) {
  return 16 / dtype_size(dtype);
}

void check_aligned(const Tensor& t, const char* what) {
  if (!t.empty() && !cuda::is_aligned16(t.data))
    throw ShapeError(std::string(what) + ": data must be 16-byte aligned for the CUDA kernels");
}

void check_aligned(std::initializer_list<const Tensor*> tensors, const char* what) {
  for (const Tensor* t : tensors) check_aligned(*t, what);
}

void check_multiple(int64_t value, size_t pack, const char* what) {
  if (value % static_cast<int64_t>(pack) != 0) {
    throw ShapeError(std::string(what) + " (" + std::to_string(value) + ") must be a multiple of " +
                     std::to_string(pack) + " for the CUDA kernels' 16-byte packets");
  }
}

// Not empty, of dtype `dtype` and shape `shape`.
void expect(const Tensor& t, DType dtype, const Shape& shape, const char* what) {
  check_not_empty(t, what);
  check_dtype(t, dtype, what);
  check_shape(t, shape, what);
}

cuda::BiasGradPath to_path(CudaBiasGrad g) {
  return g == CudaBiasGrad::kernel ? cuda::BiasGradPath::kernel
                                   : cuda::BiasGradPath::cublaslt_epilogue;
}

}  // namespace

// ---- construction -------------------------------------------------------------------------------

CudaBackend::CudaBackend(DType dtype, const CudaBackendOptions& options)
    : dtype_(dtype), options_(options) {
  if (dtype != DType::f32 && dtype != DType::bf16) {
    throw std::invalid_argument(std::string("the CUDA backend runs bf16 or f32, not ") +
                                dtype_name(dtype));
  }
  try {
    int count = 0;
    GPT_CUDA_CHECK(cudaGetDeviceCount(&count));
    if (options_.device < 0 || options_.device >= count) {
      throw std::runtime_error("CUDA device " + std::to_string(options_.device) +
                               " does not exist (" + std::to_string(count) + " found)");
    }
    GPT_CUDA_CHECK(cudaSetDevice(options_.device));
    GPT_CUDA_CHECK(cudaGetDeviceProperties(&props_, options_.device));
    // CUDA 13 dropped the clock fields of cudaDeviceProp: ask for them as attributes (kHz).
    GPT_CUDA_CHECK(cudaDeviceGetAttribute(&sm_clock_khz_, cudaDevAttrClockRate, options_.device));
    GPT_CUDA_CHECK(
        cudaDeviceGetAttribute(&memory_clock_khz_, cudaDevAttrMemoryClockRate, options_.device));
    GPT_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    GPT_CUDA_CHECK(cublasCreate(&cublas_));
    GPT_CUDA_CHECK(cublasSetStream(cublas_, stream_));
    GPT_CUDA_CHECK(cublasSetMathMode(cublas_, CUBLAS_DEFAULT_MATH));  // no TF32
    GPT_CUDA_CHECK(cublasLtCreate(&cublaslt_));
    GPT_CUDA_CHECK(cudaMalloc(&lt_workspace_, kLtWorkspaceBytes));
    lt_workspace_bytes_ = kLtWorkspaceBytes;
    live_bytes_ = peak_bytes_ = kLtWorkspaceBytes;
    GPT_CUDA_CHECK(cudaMallocHost(&host_result_, sizeof(double)));
    algo_cache_ = cuda::create_matmul_algo_cache();
  } catch (...) {
    destroy();
    throw;
  }
}

CudaBackend::~CudaBackend() {
  destroy();
}

void CudaBackend::destroy() noexcept {
  // No throwing here: failures are reported and the rest is still released.
  if (stream_) GPT_CUDA_WARN(cudaStreamSynchronize(stream_));
  cuda::destroy_matmul_algo_cache(algo_cache_);
  algo_cache_ = nullptr;
  if (scratch_) GPT_CUDA_WARN(cudaFree(scratch_));
  if (lt_workspace_) GPT_CUDA_WARN(cudaFree(lt_workspace_));
  if (host_result_) GPT_CUDA_WARN(cudaFreeHost(host_result_));
  if (cublaslt_) GPT_CUDA_WARN(cublasLtDestroy(cublaslt_));
  if (cublas_) GPT_CUDA_WARN(cublasDestroy(cublas_));
  if (stream_) GPT_CUDA_WARN(cudaStreamDestroy(stream_));
  scratch_ = lt_workspace_ = nullptr;
  host_result_ = nullptr;
  cublaslt_ = nullptr;
  cublas_ = nullptr;
  stream_ = nullptr;
}

std::string CudaBackend::description() const {
  int runtime = 0, driver = 0;
  GPT_CUDA_WARN(cudaRuntimeGetVersion(&runtime));
  GPT_CUDA_WARN(cudaDriverGetVersion(&driver));
  std::ostringstream os;
  os.precision(1);
  os << std::fixed << "cuda " << dtype_name(dtype_) << " (stat f32) on " << props_.name << ": sm_"
     << props_.major << props_.minor << ", " << props_.multiProcessorCount << " SMs, "
     << static_cast<double>(props_.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0) << " GiB, "
     << sm_clock_khz_ / 1000 << " MHz, memory " << props_.memoryBusWidth << "-bit at "
     << memory_clock_khz_ / 1000
     << " MHz ("
     // double data rate: two transfers per clock over the bus
     << 2.0 * memory_clock_khz_ * 1e3 * (props_.memoryBusWidth / 8) / 1e9 << " GB/s peak), runtime "
     << runtime / 1000 << "." << (runtime % 1000) / 10 << ", driver " << driver / 1000 << "."
     << (driver % 1000) / 10 << ", cuBLASLt " << cublasLtGetVersion();
  return os.str();
}

void CudaBackend::set_options(const CudaBackendOptions& options) {
  if (options.device != options_.device)
    throw std::invalid_argument("CudaBackend::set_options: the device cannot change");
  options_ = options;
}

// ---- memory -------------------------------------------------------------------------------------

void* CudaBackend::allocate(size_t bytes) {
  const size_t rounded = allocation_bytes(bytes);
  void* ptr = nullptr;
  const cudaError_t status = cudaMalloc(&ptr, rounded);
  if (status != cudaSuccess) {
    (void)cudaGetLastError();  // a failed allocation leaves a (non-sticky) error to clear
    size_t free_bytes = 0, total_bytes = 0;
    GPT_CUDA_WARN(cudaMemGetInfo(&free_bytes, &total_bytes));
    throw cuda::CudaError("cudaMalloc of " + std::to_string(rounded) + " bytes failed (" +
                          cudaGetErrorString(status) + "; " + std::to_string(free_bytes >> 20) +
                          " MiB free of " + std::to_string(total_bytes >> 20) + " MiB)");
  }
  GPT_CUDA_CHECK(cudaMemsetAsync(ptr, 0, rounded, stream_));
  std::lock_guard<std::mutex> lock(mutex_);
  sizes_[ptr] = rounded;
  live_bytes_ += rounded;
  if (live_bytes_ > peak_bytes_) peak_bytes_ = live_bytes_;
  return ptr;
}

void CudaBackend::release(void* ptr) {
  if (!ptr) return;
  // Called from destructors: report failures instead of throwing.
  GPT_CUDA_WARN(cudaStreamSynchronize(stream_));
  GPT_CUDA_WARN(cudaFree(ptr));
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = sizes_.find(ptr);
  if (it != sizes_.end()) {
    live_bytes_ -= it->second;
    sizes_.erase(it);
  }
}

void* CudaBackend::scratch(size_t bytes) {
  if (bytes <= scratch_bytes_) return scratch_;
  const size_t rounded = (bytes + kScratchGranule - 1) / kScratchGranule * kScratchGranule;
  if (scratch_) {
    GPT_CUDA_CHECK(cudaStreamSynchronize(stream_));  // earlier kernels may still use it
    GPT_CUDA_CHECK(cudaFree(scratch_));
    live_bytes_ -= scratch_bytes_;
    scratch_ = nullptr;
    scratch_bytes_ = 0;
  }
  GPT_CUDA_CHECK(cudaMalloc(&scratch_, rounded));
  scratch_bytes_ = rounded;
  live_bytes_ += rounded;
  if (live_bytes_ > peak_bytes_) peak_bytes_ = live_bytes_;
  return scratch_;
}

void CudaBackend::copy_from_host(void* dst, const void* host_src, size_t bytes) {
  if (bytes == 0) return;
  GPT_CUDA_CHECK(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, stream_));
  GPT_CUDA_CHECK(cudaStreamSynchronize(stream_));  // the host buffer may go away on return
}

void CudaBackend::copy_to_host(void* host_dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  GPT_CUDA_CHECK(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
  GPT_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::copy(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  GPT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_));
}

void CudaBackend::fill_zero(void* dst, size_t bytes) {
  if (bytes == 0) return;
  GPT_CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, stream_));
}

void CudaBackend::synchronize() {
  GPT_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::upload_f32(Tensor dst, const float* host_src) {
  const size_t n = static_cast<size_t>(dst.numel());
  if (dst.dtype == DType::f32) {
    copy_from_host(dst.data, host_src, n * sizeof(float));
  } else if (dst.dtype == DType::bf16) {
    std::vector<bf16> converted(n);
    for (size_t i = 0; i < n; ++i) converted[i] = __float2bfloat16_rn(host_src[i]);
    copy_from_host(dst.data, converted.data(), n * sizeof(bf16));
  } else {
    throw ShapeError("upload_f32: unsupported destination " + dst.str());
  }
}

void CudaBackend::download_f32(float* host_dst, const Tensor& src) {
  const size_t n = static_cast<size_t>(src.numel());
  if (src.dtype == DType::f32) {
    copy_to_host(host_dst, src.data, n * sizeof(float));
  } else if (src.dtype == DType::bf16) {
    std::vector<bf16> raw(n);
    copy_to_host(raw.data(), src.data, n * sizeof(bf16));
    for (size_t i = 0; i < n; ++i) host_dst[i] = __bfloat162float(raw[i]);
  } else {
    throw ShapeError("download_f32: unsupported source " + src.str());
  }
}

// ---- ops ----------------------------------------------------------------------------------------

void CudaBackend::encoder_forward(Tensor out, const Tensor& tokens, const Tensor& wte,
                                  const Tensor& wpe) {
  check_not_empty(tokens, "encoder_forward tokens");
  check_dtype(tokens, DType::i32, "encoder_forward tokens");
  const int B = as_int(tokens.shape.rows(), "tokens"), T = as_int(tokens.shape.cols(), "tokens");
  const int C = as_int(wte.shape.cols(), "wte");
  expect(out, dtype_, Shape{B, T, C}, "encoder_forward out");
  expect(wte, dtype_, wte.shape, "encoder_forward wte");
  if (!wpe.empty()) {  // empty: token embeddings only
    expect(wpe, dtype_, wpe.shape, "encoder_forward wpe");
    if (wpe.shape.cols() != C || wpe.shape.rows() < T)
      throw ShapeError("encoder_forward: wpe " + wpe.str() +
                       " does not cover T=" + std::to_string(T));
    check_aligned(wpe, "encoder_forward wpe");
  }
  check_multiple(C, pack_of(dtype_), "encoder_forward C");
  check_aligned(out, "encoder_forward out");
  check_aligned(wte, "encoder_forward wte");
  dispatch(dtype_, [&](auto tag) {
    using F = decltype(tag);
    cuda::encoder_forward<F>(dev<F>(out), dev<int32_t>(tokens), dev<F>(wte), dev<F>(wpe), B, T, C,
                             stream_);
  });
}

void CudaBackend::encoder_backward(Tensor dwte, Tensor dwpe, const Tensor& dout,
                                   const Tensor& tokens) {
  check_not_empty(tokens, "encoder_backward tokens");
  check_dtype(tokens, DType::i32, "encoder_backward tokens");
  const int B = as_int(tokens.shape.rows(), "tokens"), T = as_int(tokens.shape.cols(), "tokens");
  const int C = as_int(dout.shape.cols(), "dout");
  expect(dout, dtype_, Shape{B, T, C}, "encoder_backward dout");
  check_multiple(C, pack_of(dtype_), "encoder_backward C");
  check_aligned(dout, "encoder_backward dout");
  int rows = 0;
  if (!dwte.empty()) {
    check_dtype(dwte, dtype_, "encoder_backward dwte");
    if (dwte.shape.cols() != C)
      throw ShapeError("encoder_backward: dwte " + dwte.str() + " is not (V, C)");
    check_aligned(dwte, "encoder_backward dwte");
    rows = as_int(dwte.shape.rows(), "dwte");
  }
  if (!dwpe.empty()) {
    check_dtype(dwpe, dtype_, "encoder_backward dwpe");
    if (dwpe.shape.cols() != C || dwpe.shape.rows() < T)
      throw ShapeError("encoder_backward: dwpe " + dwpe.str() +
                       " does not cover T=" + std::to_string(T));
    check_aligned(dwpe, "encoder_backward dwpe");
  }
  const size_t scratch_bytes = dwte.empty() ? 0 : cuda::encoder_backward_scratch_bytes(B * T, rows);
  void* buffer = scratch_bytes ? scratch(scratch_bytes) : nullptr;
  dispatch(dtype_, [&](auto tag) {
    using F = decltype(tag);
    cuda::encoder_backward<F>(dev<F>(dwte), dev<F>(dwpe), dev<F>(dout), dev<int32_t>(tokens), B, T,
                              C, rows, buffer, scratch_bytes, stream_);
  });
}

void CudaBackend::layernorm_forward(Tensor out, Tensor mean, Tensor rstd, const Tensor& inp,
                                    const Tensor& weight, const Tensor& bias) {
  check_not_empty(inp, "layernorm_forward inp");
  const int N = as_int(inp.shape.rows(), "inp"), C = as_int(inp.shape.cols(), "inp");
  expect(inp, dtype_, inp.shape, "layernorm_forward inp");
  expect(out, dtype_, inp.shape, "layernorm_forward out");
  expect(weight, dtype_, Shape{C}, "layernorm_forward weight");
  expect(bias, dtype_, Shape{C}, "layernorm_forward bias");
  expect(mean, DType::f32, Shape{N}, "layernorm_forward mean");
  expect(rstd, DType::f32, Shape{N}, "layernorm_forward rstd");
  check_multiple(C, pack_of(dtype_), "layernorm_forward C");
  check_aligned({&out, &inp, &weight, &bias}, "layernorm_forward");
  dispatch(dtype_, [&](auto tag) {
    using F = decltype(tag);
    cuda::layernorm_forward<F>(dev<F>(out), dev<float>(mean), dev<float>(rstd), dev<F>(inp),
                               dev<F>(weight), dev<F>(bias), N, C, stream_);
  });
}

void CudaBackend::layernorm_backward(Tensor dinp, Tensor dweight, Tensor dbias, const Tensor& dout,
                                     const Tensor& inp, const Tensor& weight, const Tensor& mean,
                                     const Tensor& rstd) {
  check_not_empty(inp, "layernorm_backward inp");
  const int N = as_int(inp.shape.rows(), "inp"), C = as_int(inp.shape.cols(), "inp");
  expect(inp, dtype_, inp.shape, "layernorm_backward inp");
  expect(dout, dtype_, inp.shape, "layernorm_backward dout");
  expect(weight, dtype_, Shape{C}, "layernorm_backward weight");
  expect(mean, DType::f32, Shape{N}, "layernorm_backward mean");
  expect(rstd, DType::f32, Shape{N}, "layernorm_backward rstd");
  if (!dinp.empty()) expect(dinp, dtype_, inp.shape, "layernorm_backward dinp");
  if (!dweight.empty()) expect(dweight, dtype_, Shape{C}, "layernorm_backward dweight");
  if (!dbias.empty()) expect(dbias, dtype_, Shape{C}, "layernorm_backward dbias");
  check_multiple(C, pack_of(dtype_), "layernorm_backward C");
  check_aligned({&dinp, &dout, &inp, &weight}, "layernorm_backward");
  void* buffer = nullptr;
  if (!dweight.empty() || !dbias.empty())
    buffer = scratch(cuda::layernorm_backward_scratch_bytes(N, C));
  dispatch(dtype_, [&](auto tag) {
    using F = decltype(tag);
    cuda::layernorm_backward<F>(dev<F>(dinp), dev<F>(dweight), dev<F>(dbias), dev<F>(dout),
                                dev<F>(inp), dev<F>(weight), dev<float>(mean), dev<float>(rstd), N,
                                C, buffer, stream_);
  });
}

void CudaBackend::matmul_forward(Tensor out, const Tensor& inp, const Tensor& weight,
                                 const Tensor& bias) {
  check_not_empty(inp, "matmul_forward inp");
  check_not_empty(weight, "matmul_forward weight");
  const int N = as_int(inp.shape.rows(), "inp"), C = as_int(inp.shape.cols(), "inp");
  const int OC = as_int(weight.shape.rows(), "weight");
  expect(inp, dtype_, inp.shape, "matmul_forward inp");
  expect(weight, dtype_, Shape{OC, C}, "matmul_forward weight");
  expect(out, dtype_, Shape{N, OC}, "matmul_forward out");
  if (!bias.empty()) expect(bias, dtype_, Shape{OC}, "matmul_forward bias");
  const cuda::MatmulContext ctx{cublaslt_, lt_workspace_, lt_workspace_bytes_, algo_cache_,
                                stream_};
  dispatch(dtype_, [&](auto tag) {
    using F = decltype(tag);
    cuda::matmul_forward<F>(ctx, dev<F>(out), dev<F>(inp), dev<F>(weight), dev<F>(bias), N, C, OC);
  });
}

void CudaBackend::matmul_backward(Tensor dinp, Tensor dweight, Tensor dbias, const Tensor& dout,
                                  const Tensor& inp, const Tensor& weight) {
  check_not_empty(inp, "matmul_backward inp");
  check_not_empty(weight, "matmul_backward weight");
  const int N = as_int(inp.shape.rows(), "inp"), C = as_int(inp.shape.cols(), "inp");
  const int OC = as_int(weight.shape.rows(), "weight");
  expect(inp, dtype_, inp.shape, "matmul_backward inp");
  expect(weight, dtype_, Shape{OC, C}, "matmul_backward weight");
  expect(dout, dtype_, Shape{N, OC}, "matmul_backward dout");
  if (!dinp.empty()) expect(dinp, dtype_, Shape{N, C}, "matmul_backward dinp");
  if (!dweight.empty()) expect(dweight, dtype_, Shape{OC, C}, "matmul_backward dweight");
  void* buffer = nullptr;
  if (!dbias.empty()) {
    expect(dbias, dtype_, Shape{OC}, "matmul_backward dbias");
    // The bias-gradient kernels read dout in packets and add a packet-aligned scratch vector.
    check_multiple(OC, pack_of(dtype_), "matmul_backward OC (with a bias gradient)");
    check_aligned(dbias, "matmul_backward dbias");
    check_aligned(dout, "matmul_backward dout");
    buffer = scratch(cuda::matmul_backward_scratch_bytes(N, OC));
  }
  const cuda::MatmulContext ctx{cublaslt_, lt_workspace_, lt_workspace_bytes_, algo_cache_,
                                stream_};
  dispatch(dtype_, [&](auto tag) {
    using F = decltype(tag);
    const cuda::BiasGradPath taken = cuda::matmul_backward<F>(
        ctx, dev<F>(dinp), dev<F>(dweight), dev<F>(dbias), dev<F>(dout), dev<F>(inp),
        dev<F>(weight), N, C, OC, to_path(options_.bias_grad), buffer);
    if (!dbias.empty()) {
      last_bias_grad_ = taken == cuda::BiasGradPath::kernel ? CudaBiasGrad::kernel
                                                            : CudaBiasGrad::cublaslt_epilogue;
    }
  });
}

void CudaBackend::gelu_forward(Tensor out, const Tensor& inp) {
  expect(inp, dtype_, inp.shape, "gelu_forward inp");
  expect(out, dtype_, inp.shape, "gelu_forward out");
  check_aligned(inp, "gelu_forward inp");
  check_aligned(out, "gelu_forward out");
  dispatch(dtype_, [&](auto tag) {
    using F = decltype(tag);
    cuda::gelu_forward<F>(dev<F>(out), dev<F>(inp), static_cast<size_t>(inp.numel()), stream_);
  });
}

void CudaBackend::gelu_backward(Tensor dinp, const Tensor& inp, const Tensor& dout) {
  expect(inp, dtype_, inp.shape, "gelu_backward inp");
  expect(dinp, dtype_, inp.shape, "gelu_backward dinp");
  expect(dout, dtype_, inp.shape, "gelu_backward dout");
  check_aligned({&dinp, &inp, &dout}, "gelu_backward");
  dispatch(dtype_, [&](auto tag) {
    using F = decltype(tag);
    cuda::gelu_backward<F>(dev<F>(dinp), dev<F>(inp), dev<F>(dout),
                           static_cast<size_t>(inp.numel()), stream_);
  });
}

void CudaBackend::rmsnorm_forward(Tensor out, Tensor rstd, const Tensor& inp, const Tensor& weight,
                                  float eps) {
  check_not_empty(inp, "rmsnorm_forward inp");
  const int N = as_int(inp.shape.rows(), "inp"), C = as_int(inp.shape.cols(), "inp");
  expect(inp, dtype_, inp.shape, "rmsnorm_forward inp");
  expect(out, dtype_, inp.shape, "rmsnorm_forward out");
  expect(weight, dtype_, Shape{C}, "rmsnorm_forward weight");
  expect(rstd, DType::f32, Shape{N}, "rmsnorm_forward rstd");
  check_multiple(C, pack_of(dtype_), "rmsnorm_forward C");
  check_aligned({&out, &inp, &weight}, "rmsnorm_forward");
  dispatch(dtype_, [&](auto tag) {
    using F = decltype(tag);
    cuda::rmsnorm_forward<F>(dev<F>(out), dev<float>(rstd), dev<F>(inp), dev<F>(weight), N, C, eps,
                             stream_);
  });
}

void CudaBackend::residual_rmsnorm_forward(Tensor sum, Tensor out, Tensor rstd, const Tensor& a,
                                           const Tensor& b, const Tensor& weight, float eps) {
  check_not_empty(a, "residual_rmsnorm_forward a");
  const int N = as_int(a.shape.rows(), "a"), C = as_int(a.shape.cols(), "a");
  expect(a, dtype_, a.shape, "residual_rmsnorm_forward a");
  expect(b, dtype_, a.shape, "residual_rmsnorm_forward b");
  expect(sum, dtype_, a.shape, "residual_rmsnorm_forward sum");
  expect(out, dtype_, a.shape, "residual_rmsnorm_forward out");
  expect(weight, dtype_, Shape{C}, "residual_rmsnorm_forward weight");
  expect(rstd, DType::f32, Shape{N}, "residual_rmsnorm_forward rstd");
  check_multiple(C, pack_of(dtype_), "residual_rmsnorm_forward C");
  check_aligned({&sum, &out, &a, &b, &weight}, "residual_rmsnorm_forward");
  dispatch(dtype_, [&](auto tag) {
    using F = decltype(tag);
    cuda::residual_rmsnorm_forward<F>(dev<F>(sum), dev<F>(out), dev<float>(rstd), dev<F>(a),
                                      dev<F>(b), dev<F>(weight), N, C, eps, stream_);
  });
}

void CudaBackend::rmsnorm_backward(Tensor dinp, Tensor dweight, const Tensor& dout,
                                   const Tensor& inp, const Tensor& weight, const Tensor& rstd) {
  check_not_empty(inp, "rmsnorm_backward inp");
  const int N = as_int(inp.shape.rows(), "inp"), C = as_int(inp.shape.cols(), "inp");
  expect(inp, dtype_, inp.shape, "rmsnorm_backward inp");
  expect(dout, dtype_, inp.shape, "rmsnorm_backward dout");
  expect(weight, dtype_, Shape{C}, "rmsnorm_backward weight");
  expect(rstd, DType::f32, Shape{N}, "rmsnorm_backward rstd");
  if (!dinp.empty()) expect(dinp, dtype_, inp.shape, "rmsnorm_backward dinp");
  if (!dweight.empty()) expect(dweight, dtype_, Shape{C}, "rmsnorm_backward dweight");
  check_multiple(C, pack_of(dtype_), "rmsnorm_backward C");
  check_aligned({&dinp, &dweight, &dout, &inp, &weight}, "rmsnorm_backward");
  void* buffer =
      dweight.empty() ? nullptr : scratch(cuda::norm_backward_params_scratch_bytes(N, C));
  dispatch(dtype_, [&](auto tag) {
    using F = decltype(tag);
    cuda::rmsnorm_backward<F>(dev<F>(dinp), dev<F>(dweight), dev<F>(dout), dev<F>(inp),
                              dev<F>(weight), dev<float>(rstd), N, C, buffer, stream_);
  });
}

void CudaBackend::qk_norm_forward(Tensor out, Tensor rstd, const Tensor& inp,
                                  const Tensor& q_weight, const Tensor& k_weight, int n_head,
                                  int n_kv_head, float eps) {
  const QkNormDims d = check_qk_norm_forward(out, rstd, inp, q_weight, k_weight, n_head, n_kv_head);
  expect(inp, dtype_, inp.shape, "qk_norm_forward inp");
  expect(out, dtype_, inp.shape, "qk_norm_forward out");
  expect(q_weight, dtype_, q_weight.shape, "qk_norm_forward q_weight");
  expect(k_weight, dtype_, k_weight.shape, "qk_norm_forward k_weight");
  expect(rstd, DType::f32, rstd.shape, "qk_norm_forward rstd");
  check_multiple(d.HD, pack_of(dtype_), "qk_norm_forward head_dim");
  check_aligned({&out, &inp, &q_weight, &k_weight}, "qk_norm_forward");
  dispatch(dtype_, [&](auto tag) {
    using F = decltype(tag);
    cuda::qk_norm_forward<F>(dev<F>(out), dev<float>(rstd), dev<F>(inp), dev<F>(q_weight),
                             dev<F>(k_weight), d.N, n_head, n_kv_head, d.HD, eps, stream_);
  });
}

void CudaBackend::qk_norm_backward(Tensor dinp, Tensor dq_weight, Tensor dk_weight,
                                   const Tensor& dout, const Tensor& inp, const Tensor& q_weight,
                                   const Tensor& k_weight, const Tensor& rstd, int n_head,
                                   int n_kv_head) {
  const QkNormDims d = check_qk_norm_backward(dinp, dq_weight, dk_weight, dout, inp, q_weight,
                                              k_weight, rstd, n_head, n_kv_head);
  expect(inp, dtype_, inp.shape, "qk_norm_backward inp");
  expect(dout, dtype_, inp.shape, "qk_norm_backward dout");
  expect(dinp, dtype_, inp.shape, "qk_norm_backward dinp");
  expect(q_weight, dtype_, q_weight.shape, "qk_norm_backward q_weight");
  expect(k_weight, dtype_, k_weight.shape, "qk_norm_backward k_weight");
  expect(rstd, DType::f32, rstd.shape, "qk_norm_backward rstd");
  if (!dq_weight.empty()) expect(dq_weight, dtype_, q_weight.shape, "qk_norm_backward dq_weight");
  if (!dk_weight.empty()) expect(dk_weight, dtype_, k_weight.shape, "qk_norm_backward dk_weight");
  check_multiple(d.HD, pack_of(dtype_), "qk_norm_backward head_dim");
  check_aligned({&dinp, &dq_weight, &dk_weight, &dout, &inp, &q_weight, &k_weight},
                "qk_norm_backward");
  // The q heads outnumber the k heads: their reduction's scratch serves both.
  void* buffer = dq_weight.empty() && dk_weight.empty()
                     ? nullptr
                     : scratch(cuda::norm_backward_params_scratch_bytes(d.N * n_head, d.HD));
  dispatch(dtype_, [&](auto tag) {
    using F = decltype(tag);
    cuda::qk_norm_backward<F>(dev<F>(dinp), dev<F>(dq_weight), dev<F>(dk_weight), dev<F>(dout),
                              dev<F>(inp), dev<F>(q_weight), dev<F>(k_weight), dev<float>(rstd),
                              d.N, n_head, n_kv_head, d.HD, buffer, stream_);
  });
}

void CudaBackend::rope_forward(Tensor qkv, const Tensor& cos, const Tensor& sin, int n_heads,
                               int head_dim, int pos0) {
  rope(qkv, cos, sin, n_heads, head_dim, pos0, false);
}

void CudaBackend::rope_backward(Tensor dqkv, const Tensor& cos, const Tensor& sin, int n_heads,
                                int head_dim, int pos0) {
  rope(dqkv, cos, sin, n_heads, head_dim, pos0, true);
}

// Forward and backward differ only in the direction of the rotation.
void CudaBackend::rope(Tensor x, const Tensor& cos, const Tensor& sin, int n_heads, int head_dim,
                       int pos0, bool backward) {
  const char* op = backward ? "rope_backward" : "rope_forward";
  const RopeDims d = check_rope(x, cos, sin, n_heads, head_dim, pos0, op);
  expect(x, dtype_, x.shape, op);
  expect(cos, DType::f32, cos.shape, op);
  expect(sin, DType::f32, cos.shape, op);
  dispatch(dtype_, [&](auto tag) {
    using F = decltype(tag);
    const auto kernel = backward ? cuda::rope_backward<F> : cuda::rope_forward<F>;
    kernel(dev<F>(x), dev<float>(cos), dev<float>(sin), d.B, d.T, n_heads, head_dim, d.W, pos0,
           stream_);
  });
}

void CudaBackend::swiglu_forward(Tensor out, const Tensor& inp) {
  const SwigluDims d = check_swiglu(inp, out, "swiglu_forward");
  expect(inp, dtype_, inp.shape, "swiglu_forward inp");
  expect(out, dtype_, out.shape, "swiglu_forward out");
  check_multiple(d.H, pack_of(dtype_), "swiglu_forward H");
  check_aligned({&out, &inp}, "swiglu_forward");
  dispatch(dtype_, [&](auto tag) {
    using F = decltype(tag);
    cuda::swiglu_forward<F>(dev<F>(out), dev<F>(inp), d.N, d.H, stream_);
  });
}

void CudaBackend::swiglu_backward(Tensor dinp, const Tensor& inp, const Tensor& dout) {
  const SwigluDims d = check_swiglu(inp, dout, "swiglu_backward");
  expect(inp, dtype_, inp.shape, "swiglu_backward inp");
  expect(dinp, dtype_, inp.shape, "swiglu_backward dinp");
  expect(dout, dtype_, dout.shape, "swiglu_backward dout");
  check_multiple(d.H, pack_of(dtype_), "swiglu_backward H");
  check_aligned({&dinp, &inp, &dout}, "swiglu_backward");
  dispatch(dtype_, [&](auto tag) {
    using F = decltype(tag);
    cuda::swiglu_backward<F>(dev<F>(dinp), dev<F>(inp), dev<F>(dout), d.N, d.H, stream_);
  });
}

void CudaBackend::residual_forward(Tensor out, const Tensor& a, const Tensor& b) {
  expect(a, dtype_, a.shape, "residual_forward a");
  expect(b, dtype_, a.shape, "residual_forward b");
  expect(out, dtype_, a.shape, "residual_forward out");
  check_aligned({&out, &a, &b}, "residual_forward");
  dispatch(dtype_, [&](auto tag) {
    using F = decltype(tag);
    cuda::residual_forward<F>(dev<F>(out), dev<F>(a), dev<F>(b), static_cast<size_t>(a.numel()),
                              stream_);
  });
}

namespace {
// The shared shape check (engine/backend.cpp), then what the CUDA kernels need on top: the dtype,
// a head size that is a whole number of 16-byte packets, aligned tensors.
cpu::AttentionShape attention_shape(const Tensor& qkv, const Tensor& out, const Tensor& lse,
                                    int n_head, int n_kv_head, DType dtype, const char* what) {
  check_not_empty(qkv, what);
  const cpu::AttentionShape a = check_attention(qkv, out, lse, n_head, n_kv_head, what);
  check_dtype(qkv, dtype, what);
  check_dtype(out, dtype, what);
  if (!lse.empty()) check_dtype(lse, DType::f32, what);
  check_multiple(a.head_size, pack_of(dtype), "attention head size");
  check_aligned({&qkv, &out}, what);
  return a;
}
}  // namespace

bool CudaBackend::use_fused_attention(const cpu::AttentionShape& shape) {
  if (options_.attention != AttentionKernel::fused) return false;
  if (dtype_ == DType::bf16 && cuda::flash_attention_supported(shape.head_size)) return true;
  static bool noticed = false;
  if (!noticed) {
    std::fprintf(stderr,
                 "note: fused attention needs bf16 and head size 64 or 128 (have %s, %d): "
                 "using the unfused kernel\n",
                 dtype_name(dtype_), shape.head_size);
    noticed = true;
  }
  return false;
}

void CudaBackend::attention_forward(Tensor out, Tensor lse, const Tensor& qkv, int n_head,
                                    int n_kv_head) {
  const cpu::AttentionShape a =
      attention_shape(qkv, out, lse, n_head, n_kv_head, dtype_, "attention_forward");
  check_shape(out, Shape{a.B, a.T, a.n_head * a.head_size}, "attention_forward out");
  check_not_empty(lse, "attention_forward lse");
  if (use_fused_attention(a)) {
    cuda::flash_attention_forward(dev<__nv_bfloat16>(out), dev<float>(lse), dev<__nv_bfloat16>(qkv),
                                  a, stream_);
    return;
  }
  void* buffer = scratch(cuda::attention_scratch_bytes(
      cuda::AttentionPass::forward, a, dtype_size(dtype_), options_.attention_chunk_bytes));
  dispatch(dtype_, [&](auto tag) {
    using F = decltype(tag);
    cuda::attention_forward<F>(cublas_, dev<F>(out), dev<float>(lse), dev<F>(qkv), a, buffer,
                               options_.attention_chunk_bytes, stream_);
  });
}

void CudaBackend::attention_backward(Tensor dqkv, const Tensor& dout, const Tensor& qkv,
                                     const Tensor& out, const Tensor& lse, int n_head,
                                     int n_kv_head) {
  const cpu::AttentionShape a =
      attention_shape(qkv, out, lse, n_head, n_kv_head, dtype_, "attention_backward");
  check_shape(out, Shape{a.B, a.T, a.n_head * a.head_size}, "attention_backward out");
  check_not_empty(lse, "attention_backward lse");
  expect(dqkv, dtype_, qkv.shape, "attention_backward dqkv");
  expect(dout, dtype_, out.shape, "attention_backward dout");
  check_aligned({&dqkv, &dout}, "attention_backward");
  if (use_fused_attention(a)) {
    const size_t bytes = cuda::flash_attention_backward_workspace_bytes(a);
    cuda::flash_attention_backward(dev<__nv_bfloat16>(dqkv), dev<__nv_bfloat16>(dout),
                                   dev<__nv_bfloat16>(qkv), dev<__nv_bfloat16>(out),
                                   dev<float>(lse), a, scratch(bytes), bytes, stream_);
    return;
  }
  void* buffer = scratch(cuda::attention_scratch_bytes(
      cuda::AttentionPass::backward, a, dtype_size(dtype_), options_.attention_chunk_bytes));
  dispatch(dtype_, [&](auto tag) {
    using F = decltype(tag);
    cuda::attention_backward<F>(cublas_, dev<F>(dqkv), dev<F>(dout), dev<F>(qkv), dev<F>(out),
                                dev<float>(lse), a, buffer, options_.attention_chunk_bytes,
                                stream_);
  });
}

void CudaBackend::attention_decode(Tensor out, const Tensor& q, const Tensor& kv_cache, int pos,
                                   int n_head, int n_kv_head) {
  const cpu::AttentionShape a =
      check_attention_decode(out, q, kv_cache, pos, n_head, n_kv_head, "attention_decode");
  for (const Tensor* t : {static_cast<const Tensor*>(&out), &q, &kv_cache}) {
    check_not_empty(*t, "attention_decode");
    check_dtype(*t, dtype_, "attention_decode");
  }
  void* buffer = scratch(cuda::attention_decode_scratch_bytes(a));
  dispatch(dtype_, [&](auto tag) {
    using F = decltype(tag);
    cuda::attention_decode<F>(dev<F>(out), dev<F>(q), static_cast<int>(q.shape.cols()),
                              dev<F>(kv_cache), pos, a, buffer, stream_);
  });
}

void CudaBackend::crossentropy(Tensor losses, Tensor logits, const Tensor& targets, int vocab_size,
                               float dloss, LossGrad grad) {
  check_not_empty(logits, "crossentropy logits");
  const int N = as_int(logits.shape.rows(), "logits"), Vp = as_int(logits.shape.cols(), "logits");
  expect(logits, dtype_, logits.shape, "crossentropy logits");
  expect(targets, DType::i32, Shape{N}, "crossentropy targets");
  expect(losses, DType::f32, Shape{N}, "crossentropy losses");
  if (vocab_size <= 0 || vocab_size > Vp)
    throw ShapeError("crossentropy: vocab_size " + std::to_string(vocab_size) +
                     " outside (0, padded " + std::to_string(Vp) + "]");
  check_multiple(Vp, pack_of(dtype_), "crossentropy padded vocabulary");
  check_aligned(logits, "crossentropy logits");
  dispatch(dtype_, [&](auto tag) {
    using F = decltype(tag);
    F* dlogits = grad == LossGrad::write ? dev<F>(logits) : nullptr;
    cuda::crossentropy_forward_backward<F>(dev<float>(losses), dlogits, dev<F>(logits),
                                           dev<int32_t>(targets), N, vocab_size, Vp, dloss,
                                           stream_);
  });
}

double CudaBackend::reduce_to_host(const Tensor& x, cuda::Reduction op) {
  const char* what = op == cuda::Reduction::sum_of_squares ? "sum_of_squares" : "sum";
  check_not_empty(x, what);
  check_aligned(x, what);
  double* buffer = static_cast<double*>(scratch(cuda::reduce_scratch_bytes()));
  double* result = buffer;  // the partials follow the result
  dispatch(x.dtype, [&](auto tag) {
    using F = decltype(tag);
    cuda::reduce<F>(result, dev<F>(x), static_cast<size_t>(x.numel()), op, buffer + 1, stream_);
  });
  GPT_CUDA_CHECK(
      cudaMemcpyAsync(host_result_, result, sizeof(double), cudaMemcpyDeviceToHost, stream_));
  GPT_CUDA_CHECK(cudaStreamSynchronize(stream_));
  return *host_result_;
}

double CudaBackend::sum_of_squares(const Tensor& x) {
  return reduce_to_host(x, cuda::Reduction::sum_of_squares);
}
double CudaBackend::sum(const Tensor& x) {
  return reduce_to_host(x, cuda::Reduction::sum);
}

void CudaBackend::adamw_update(Tensor params, const Tensor& grads, Tensor m, Tensor v,
                               Tensor master, const AdamWStep& s) {
  expect(params, dtype_, params.shape, "adamw params");
  expect(grads, dtype_, params.shape, "adamw grads");
  expect(m, DType::f32, params.shape, "adamw m");
  expect(v, DType::f32, params.shape, "adamw v");
  check_aligned({&params, &grads, &m, &v}, "adamw");
  const bool has_master = dtype_ != DType::f32;
  if (has_master) {
    expect(master, DType::f32, params.shape, "adamw master");
    check_aligned(master, "adamw master");
  }
  if (s.step < 1) throw ShapeError("adamw: step counts from 1, got " + std::to_string(s.step));
  cuda::AdamWArgs args;
  args.lr = s.lr;
  args.beta1 = s.beta1;
  args.beta2 = s.beta2;
  args.eps = s.eps;
  args.weight_decay = s.weight_decay;
  args.grad_scale = s.grad_scale;
  // In double, as the CPU reference: beta2^step loses digits in float for large steps.
  args.bias_correction1 =
      static_cast<float>(1.0 - std::pow(static_cast<double>(s.beta1), static_cast<double>(s.step)));
  args.bias_correction2 =
      static_cast<float>(1.0 - std::pow(static_cast<double>(s.beta2), static_cast<double>(s.step)));
  args.seed = s.seed;
  const cuda::MasterInit init =
      s.step == 1 ? cuda::MasterInit::from_params : cuda::MasterInit::keep;
  dispatch(dtype_, [&](auto tag) {
    using F = decltype(tag);
    cuda::adamw_update<F>(dev<F>(params), has_master ? dev<float>(master) : nullptr, dev<F>(grads),
                          dev<float>(m), dev<float>(v), static_cast<size_t>(params.numel()), args,
                          init, stream_);
  });
}

// ---- factory hooks ------------------------------------------------------------------------------

bool cuda_available() {
  int count = 0;
  // A missing driver or device is an answer here, not an error: the status is the result.
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return count > 0;
}

std::unique_ptr<Backend> make_cuda_backend(DType dtype) {
  CudaBackendOptions options;
  options.device = cuda_device();
  return std::make_unique<CudaBackend>(dtype, options);
}

}  // namespace gpt
