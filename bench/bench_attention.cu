// Fused causal attention throughput (kernels/flash_attention.h): forward, backward and
// forward+backward TFLOP/s for T = 512 .. 4096 and head sizes 64 and 128, bf16, with the device's
// tensor-core ceiling measured in the same run (a large cuBLAS bf16 GEMM) for the fraction column.
//
// FLOPs are counted as the FlashAttention papers count causal attention: forward 4·B·NH·T²·HS / 2
// (two products, half of each masked), backward 2.5x the forward. Shapes keep B·T = --tokens
// (default 16384) and C = --channels (default 768, GPT-2 124M): NH = C / HS, B = tokens / T, so
// T = 1024, HS = 64 is GPT-2 124M's attention at batch 16.
//
// Timing: CUDA events around each call after warm-up, the L2 cache flushed (a memset larger than
// it) before every timed call, the median of --repeats runs. --json prints one JSON object per
// configuration instead of the table; bench/bench_attention_torch.py reads that to print ours and
// PyTorch's SDPA (FlashAttention-2, cuDNN) side by side.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <string>
#include <vector>

#include "kernels/cuda_common.cuh"
#include "kernels/flash_attention.h"

namespace {

using gpt::cuda::bf16;

struct Options {
  int tokens = 16384;
  int channels = 768;
  int repeats = 20;
  bool json = false;
  std::vector<int> lengths = {512, 1024, 2048, 4096};
  std::vector<int> head_sizes = {64, 128};
};

std::vector<int> parse_list(const char* s) {
  std::vector<int> v;
  for (const char* p = s; *p;) {
    v.push_back(std::atoi(p));
    while (*p && *p != ',') ++p;
    if (*p == ',') ++p;
  }
  return v;
}

void usage() {
  std::printf(
      "bench_attention [--tokens N] [--channels C] [--lengths 512,1024,...] [--head-sizes 64,128]\n"
      "                [--repeats N] [--json]\n"
      "  --tokens      B·T of every configuration (default 16384)\n"
      "  --channels    C = NH·HS (default 768)\n"
      "  --lengths     sequence lengths T (default 512,1024,2048,4096)\n"
      "  --head-sizes  head sizes (default 64,128)\n"
      "  --repeats     timed runs per measurement, median reported (default 20)\n"
      "  --json        one JSON object per configuration instead of the table\n");
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--tokens") {
      o.tokens = std::atoi(value());
    } else if (a == "--channels") {
      o.channels = std::atoi(value());
    } else if (a == "--repeats") {
      o.repeats = std::max(1, std::atoi(value()));
    } else if (a == "--lengths") {
      o.lengths = parse_list(value());
    } else if (a == "--head-sizes") {
      o.head_sizes = parse_list(value());
    } else if (a == "--json") {
      o.json = true;
    } else if (a == "--help" || a == "-h") {
      usage();
      std::exit(0);
    } else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      usage();
      std::exit(2);
    }
  }
  return o;
}

// Fills a bf16 buffer with uniform values in [-1, 1) (a counter hash: no host round trip).
__global__ void fill_uniform(bf16* x, size_t n, uint32_t seed) {
  const size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  uint32_t h = static_cast<uint32_t>(i) * 2654435761u ^ seed;
  h ^= h >> 16;
  h *= 0x7feb352du;
  h ^= h >> 15;
  x[i] = __float2bfloat16(static_cast<float>(h >> 8) / 8388608.0f - 1.0f);
}
void fill(bf16* x, size_t n, uint32_t seed) {
  fill_uniform<<<static_cast<unsigned>((n + 255) / 256), 256>>>(x, n, seed);
  GPT_CUDA_CHECK_LAUNCH();
}

class Timer {
 public:
  explicit Timer(size_t flush_bytes) : flush_bytes_(flush_bytes) {
    GPT_CUDA_CHECK(cudaMalloc(&flush_, flush_bytes_));
    GPT_CUDA_CHECK(cudaEventCreate(&start_));
    GPT_CUDA_CHECK(cudaEventCreate(&stop_));
  }
  ~Timer() {
    cudaFree(flush_);
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
  }
  // Median milliseconds of `repeats` calls of fn, each after an L2 flush.
  double median_ms(const std::function<void()>& fn, int repeats) {
    for (int i = 0; i < 3; ++i) fn();  // warm-up (also sets the kernels' attributes)
    std::vector<double> ms;
    for (int i = 0; i < repeats; ++i) {
      GPT_CUDA_CHECK(cudaMemsetAsync(flush_, i & 0xff, flush_bytes_));
      GPT_CUDA_CHECK(cudaEventRecord(start_));
      fn();
      GPT_CUDA_CHECK(cudaEventRecord(stop_));
      GPT_CUDA_CHECK(cudaEventSynchronize(stop_));
      float t = 0;
      GPT_CUDA_CHECK(cudaEventElapsedTime(&t, start_, stop_));
      ms.push_back(t);
    }
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
  }

 private:
  void* flush_ = nullptr;
  size_t flush_bytes_;
  cudaEvent_t start_{}, stop_{};
};

// The tensor-core ceiling: a 8192³ bf16 GEMM with fp32 accumulation through cuBLAS.
double gemm_ceiling_tflops(Timer& timer) {
  const int n = 8192;
  bf16 *a = nullptr, *b = nullptr, *c = nullptr;
  const size_t elems = static_cast<size_t>(n) * n;
  GPT_CUDA_CHECK(cudaMalloc(&a, elems * sizeof(bf16)));
  GPT_CUDA_CHECK(cudaMalloc(&b, elems * sizeof(bf16)));
  GPT_CUDA_CHECK(cudaMalloc(&c, elems * sizeof(bf16)));
  fill(a, elems, 1);
  fill(b, elems, 2);
  cublasHandle_t handle;
  GPT_CUDA_CHECK(cublasCreate(&handle));
  const float one = 1.0f, zero = 0.0f;
  const double ms = timer.median_ms(
      [&] {
        GPT_CUDA_CHECK(cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, a, CUDA_R_16BF,
                                    n, b, CUDA_R_16BF, n, &zero, c, CUDA_R_16BF, n,
                                    CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
      },
      10);
  GPT_CUDA_CHECK(cublasDestroy(handle));
  GPT_CUDA_CHECK(cudaFree(a));
  GPT_CUDA_CHECK(cudaFree(b));
  GPT_CUDA_CHECK(cudaFree(c));
  return 2.0 * n * n * static_cast<double>(n) / (ms * 1e-3) / 1e12;
}

}  // namespace

int run(const Options& opt) {
  int device = 0;
  GPT_CUDA_CHECK(cudaGetDevice(&device));
  cudaDeviceProp props{};
  GPT_CUDA_CHECK(cudaGetDeviceProperties(&props, device));
  Timer timer(std::max<size_t>(static_cast<size_t>(props.l2CacheSize) * 4, size_t{256} << 20));
  const double ceiling = gemm_ceiling_tflops(timer);

  if (!opt.json) {
    std::printf(
        "fused causal attention, bf16, %s; tensor-core ceiling (cuBLAS bf16 GEMM 8192^3) "
        "%.0f TFLOP/s\n",
        props.name, ceiling);
    std::printf("%6s %4s %4s %4s | %9s %7s | %9s %7s | %9s %7s %6s\n", "T", "HS", "B", "NH",
                "fwd ms", "TFLOP/s", "bwd ms", "TFLOP/s", "f+b ms", "TFLOP/s", "ceil%");
  } else {
    std::printf("{\"impl\": \"gemm_ceiling\", \"device\": \"%s\", \"tflops\": %.2f}\n", props.name,
                ceiling);
  }
  for (int HS : opt.head_sizes) {
    for (int T : opt.lengths) {
      const int B = std::max(1, opt.tokens / T);
      const int C = opt.channels;
      const int NH = C / HS;
      if (C % HS != 0 || !gpt::cuda::flash_attention_supported(HS)) {
        std::fprintf(stderr, "skipping HS=%d C=%d: unsupported\n", HS, C);
        continue;
      }
      const size_t n_qkv = static_cast<size_t>(B) * T * 3 * C,
                   n_out = static_cast<size_t>(B) * T * C;
      bf16 *qkv, *out, *dout, *dqkv;
      float* lse;
      void* ws;
      const size_t ws_bytes = gpt::cuda::flash_attention_backward_workspace_bytes(B, T, C, NH);
      GPT_CUDA_CHECK(cudaMalloc(&qkv, n_qkv * sizeof(bf16)));
      GPT_CUDA_CHECK(cudaMalloc(&dqkv, n_qkv * sizeof(bf16)));
      GPT_CUDA_CHECK(cudaMalloc(&out, n_out * sizeof(bf16)));
      GPT_CUDA_CHECK(cudaMalloc(&dout, n_out * sizeof(bf16)));
      GPT_CUDA_CHECK(cudaMalloc(&lse, static_cast<size_t>(B) * NH * T * sizeof(float)));
      GPT_CUDA_CHECK(cudaMalloc(&ws, ws_bytes));
      fill(qkv, n_qkv, 3);
      fill(dout, n_out, 4);

      auto forward = [&] { gpt::cuda::flash_attention_forward(out, lse, qkv, B, T, C, NH, 0); };
      auto backward = [&] {
        gpt::cuda::flash_attention_backward(dqkv, dout, qkv, out, lse, B, T, C, NH, ws, ws_bytes,
                                            0);
      };
      forward();
      const double fwd_ms = timer.median_ms(forward, opt.repeats);
      const double bwd_ms = timer.median_ms(backward, opt.repeats);
      const double both_ms = timer.median_ms(
          [&] {
            forward();
            backward();
          },
          opt.repeats);
      const double fwd_flops = 4.0 * B * NH * static_cast<double>(T) * T * HS / 2.0;
      auto tflops = [](double flops, double ms) { return flops / (ms * 1e-3) / 1e12; };
      const double f = tflops(fwd_flops, fwd_ms), b = tflops(2.5 * fwd_flops, bwd_ms),
                   fb = tflops(3.5 * fwd_flops, both_ms);
      if (opt.json) {
        std::printf(
            "{\"impl\": \"ours\", \"device\": \"%s\", \"T\": %d, \"HS\": %d, \"B\": %d, \"NH\": "
            "%d, "
            "\"fwd_ms\": %.4f, \"bwd_ms\": %.4f, \"fwdbwd_ms\": %.4f, \"fwd_tflops\": %.2f, "
            "\"bwd_tflops\": %.2f, \"fwdbwd_tflops\": %.2f, \"ceiling_tflops\": %.2f}\n",
            props.name, T, HS, B, NH, fwd_ms, bwd_ms, both_ms, f, b, fb, ceiling);
      } else {
        std::printf("%6d %4d %4d %4d | %9.3f %7.1f | %9.3f %7.1f | %9.3f %7.1f %5.1f%%\n", T, HS, B,
                    NH, fwd_ms, f, bwd_ms, b, both_ms, fb, 100.0 * fb / ceiling);
      }
      std::fflush(stdout);
      GPT_CUDA_CHECK(cudaFree(qkv));
      GPT_CUDA_CHECK(cudaFree(dqkv));
      GPT_CUDA_CHECK(cudaFree(out));
      GPT_CUDA_CHECK(cudaFree(dout));
      GPT_CUDA_CHECK(cudaFree(lse));
      GPT_CUDA_CHECK(cudaFree(ws));
    }
  }
  return 0;
}

int main(int argc, char** argv) {
  const Options opt = parse(argc, argv);
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    std::fprintf(stderr, "bench_attention: no CUDA device\n");
    return 1;
  }
  try {
    return run(opt);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_attention: %s\n", e.what());
    return 1;
  }
}
