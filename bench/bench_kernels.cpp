// Kernel benchmarks of the CUDA backend, one per op family (forward and backward), at the shapes of
// a GPT-2 training step (default: 124M, B=16, T=1024).
//
// For each family: first a validation against the CPU backend on a small shape (fresh random
// inputs, the same values on both; relative error must be under the dtype's tolerance), then the
// timing at the full shape: warm-up, then --reps runs each timed with CUDA events on the backend's
// stream, the L2 cache flushed before each run (a memset of twice its size), the median reported.
// Memory-bound kernels report GB/s of their minimal traffic (every input read once, every output
// written once) and the fraction of the device-to-device copy bandwidth measured in the same run;
// matmuls and attention report TFLOP/s (and the fraction of --peak-tflops when given).
//
//   bench_kernels [--only layernorm_forward] [--dtype bf16] [--reps 30] [--json results.jsonl|-]
//
// Prints a table; with --json, one JSON object per line as well. Exit status 1 when a validation
// fails.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/cuda_backend.h"
#include "kernels/cuda_check.h"

namespace {

using gpt::Backend;
using gpt::DType;
using gpt::Shape;
using gpt::Tensor;

struct Dims {
  int B, T, C, NH, V, Vp;
  int64_t N() const { return static_cast<int64_t>(B) * T; }
};

// What a tensor holds: compute-dtype values, fp32 statistics, or int32 token ids.
enum class Kind { compute, stat, index };

struct Spec {
  std::string name;
  Kind kind;
  Shape shape;
  float lo = -1.0f, hi = 1.0f;   // uniform values (compute, stat)
  int bound = 1;                 // ids in [0, bound) (index)
  double ignore_fraction = 0.0;  // fraction of ids set to -1 (targets)
};

using Tensors = std::map<std::string, Tensor>;

struct Family {
  std::string name;
  std::function<std::vector<Spec>(const Dims&)> specs;
  std::function<void(Backend&, Tensors&, const Dims&)> run;
  std::vector<std::string> outputs;                       // compared in the validation
  std::function<double(const Dims&, double elem)> bytes;  // minimal traffic (0: compute bound)
  std::function<double(const Dims&)> flops;               // 0: memory bound
};

// Allocations of one backend for one family, released on destruction.
class Workspace {
 public:
  Workspace(Backend& backend, const std::vector<Spec>& specs, uint64_t seed) : backend_(backend) {
    std::mt19937_64 rng(seed);
    for (const Spec& s : specs) {
      const DType dt = s.kind == Kind::index  ? DType::i32
                       : s.kind == Kind::stat ? DType::f32
                                              : backend.dtype();
      Tensor t(backend.allocate(static_cast<size_t>(s.shape.numel()) * gpt::dtype_size(dt)), dt,
               s.shape);
      tensors_[s.name] = t;
      const size_t n = static_cast<size_t>(s.shape.numel());
      if (s.kind == Kind::index) {
        std::uniform_int_distribution<int32_t> id(0, s.bound - 1);
        std::uniform_real_distribution<double> u(0.0, 1.0);
        std::vector<int32_t> v(n);
        for (auto& x : v) x = u(rng) < s.ignore_fraction ? -1 : id(rng);
        backend.copy_from_host(t.data, v.data(), n * sizeof(int32_t));
      } else {
        // A random block of at most kBlock values, tiled over the tensor by doubling device copies:
        // full-size inputs (the logits are 0.8 G values) fill in milliseconds, not minutes.
        constexpr size_t kBlock = size_t{1} << 20;
        std::uniform_real_distribution<float> dist(s.lo, s.hi);
        std::vector<float> v(std::min(n, kBlock));
        for (auto& x : v) x = dist(rng);
        backend.upload_f32(Tensor(t.data, dt, {static_cast<int64_t>(v.size())}), v.data());
        const size_t elem = gpt::dtype_size(dt);
        for (size_t filled = v.size(); filled < n; filled *= 2) {
          const size_t count = std::min(filled, n - filled);
          backend.copy(static_cast<char*>(t.data) + filled * elem, t.data, count * elem);
        }
      }
    }
  }
  ~Workspace() {
    for (auto& [name, t] : tensors_) backend_.release(t.data);
  }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  Tensors& tensors() { return tensors_; }

 private:
  Backend& backend_;
  Tensors tensors_;
};

std::vector<float> to_host(Backend& backend, const Tensor& t) {
  std::vector<float> v(static_cast<size_t>(t.numel()));
  if (t.dtype == DType::i32) {
    std::vector<int32_t> ids(v.size());
    backend.copy_to_host(ids.data(), t.data, ids.size() * sizeof(int32_t));
    std::copy(ids.begin(), ids.end(), v.begin());
  } else {
    backend.download_f32(v.data(), t);
  }
  return v;
}

double rel_error(const std::vector<float>& a, const std::vector<float>& ref) {
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) || std::isnan(ref[i])) return std::numeric_limits<double>::infinity();
    diff += (static_cast<double>(a[i]) - ref[i]) * (static_cast<double>(a[i]) - ref[i]);
    norm += static_cast<double>(ref[i]) * ref[i];
  }
  return norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

// Runs the family on both backends from the same inputs (the GPU's values, read back, feed the
// CPU) and returns the largest relative error over its outputs.
double validate(const Family& f, Backend& cpu, Backend& gpu, const Dims& d) {
  const std::vector<Spec> specs = f.specs(d);
  Workspace g(gpu, specs, 11);
  Workspace c(cpu, specs, 11);
  for (const Spec& s : specs) {
    const std::vector<float> held = to_host(gpu, g.tensors()[s.name]);
    Tensor& ct = c.tensors()[s.name];
    if (s.kind == Kind::index) {
      std::vector<int32_t> ids(held.begin(), held.end());
      cpu.copy_from_host(ct.data, ids.data(), ids.size() * sizeof(int32_t));
    } else {
      cpu.upload_f32(ct, held.data());
    }
  }
  f.run(cpu, c.tensors(), d);
  f.run(gpu, g.tensors(), d);
  double worst = 0.0;
  for (const std::string& out : f.outputs) {
    worst =
        std::max(worst, rel_error(to_host(gpu, g.tensors()[out]), to_host(cpu, c.tensors()[out])));
  }
  return worst;
}

// Median milliseconds of `reps` runs at the full shape, L2 flushed before each.
double time_family(const Family& f, gpt::CudaBackend& gpu, const Dims& d, int reps, void* flush,
                   size_t flush_bytes) {
  Workspace w(gpu, f.specs(d), 5);
  cudaStream_t stream = gpu.stream();
  for (int i = 0; i < 3; ++i) f.run(gpu, w.tensors(), d);
  cudaEvent_t start, stop;
  GPT_CUDA_CHECK(cudaEventCreate(&start));
  GPT_CUDA_CHECK(cudaEventCreate(&stop));
  std::vector<double> ms;
  for (int i = 0; i < reps; ++i) {
    GPT_CUDA_CHECK(cudaMemsetAsync(flush, i & 0xff, flush_bytes, stream));
    GPT_CUDA_CHECK(cudaEventRecord(start, stream));
    f.run(gpu, w.tensors(), d);
    GPT_CUDA_CHECK(cudaEventRecord(stop, stream));
    GPT_CUDA_CHECK(cudaEventSynchronize(stop));
    float elapsed = 0.0f;
    GPT_CUDA_CHECK(cudaEventElapsedTime(&elapsed, start, stop));
    ms.push_back(elapsed);
  }
  GPT_CUDA_CHECK(cudaEventDestroy(start));
  GPT_CUDA_CHECK(cudaEventDestroy(stop));
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

// Device-to-device copy bandwidth (bytes read + written per second) of a 1 GiB copy: the ceiling
// the memory-bound kernels are compared with.
double copy_bandwidth(gpt::CudaBackend& gpu, int reps) {
  const size_t bytes = size_t{1} << 30;
  void* a = gpu.allocate(bytes);
  void* b = gpu.allocate(bytes);
  cudaStream_t stream = gpu.stream();
  cudaEvent_t start, stop;
  GPT_CUDA_CHECK(cudaEventCreate(&start));
  GPT_CUDA_CHECK(cudaEventCreate(&stop));
  std::vector<double> ms;
  for (int i = 0; i < reps + 2; ++i) {
    GPT_CUDA_CHECK(cudaEventRecord(start, stream));
    GPT_CUDA_CHECK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, stream));
    GPT_CUDA_CHECK(cudaEventRecord(stop, stream));
    GPT_CUDA_CHECK(cudaEventSynchronize(stop));
    float elapsed = 0.0f;
    GPT_CUDA_CHECK(cudaEventElapsedTime(&elapsed, start, stop));
    if (i >= 2) ms.push_back(elapsed);
  }
  GPT_CUDA_CHECK(cudaEventDestroy(start));
  GPT_CUDA_CHECK(cudaEventDestroy(stop));
  gpu.release(a);
  gpu.release(b);
  std::sort(ms.begin(), ms.end());
  return 2.0 * static_cast<double>(bytes) / (ms[ms.size() / 2] * 1e-3);
}

Spec compute(const std::string& name, Shape s, float lo = -1.0f, float hi = 1.0f) {
  return Spec{name, Kind::compute, s, lo, hi, 1, 0.0};
}
Spec stat(const std::string& name, Shape s, float lo, float hi) {
  return Spec{name, Kind::stat, s, lo, hi, 1, 0.0};
}
Spec ids(const std::string& name, Shape s, int bound, double ignore = 0.0) {
  return Spec{name, Kind::index, s, 0.0f, 0.0f, bound, ignore};
}

// The Linear layers of a GPT block and the tied classifier: (name, in, out, has bias).
struct LinearShape {
  std::string name;
  int in, out;
  bool bias;
};
std::vector<LinearShape> linear_shapes(const Dims& d) {
  return {{"qkv", d.C, 3 * d.C, true},
          {"attproj", d.C, d.C, true},
          {"fc", d.C, 4 * d.C, true},
          {"fcproj", 4 * d.C, d.C, true},
          {"lm_head", d.C, d.Vp, false}};
}

// Attention heads of a benchmark: NH query heads sharing NKV key/value heads of HS channels.
struct Heads {
  int NH, NKV, HS;
  int64_t qkv_width() const { return static_cast<int64_t>(NH + 2 * NKV) * HS; }
  int64_t out_width() const { return static_cast<int64_t>(NH) * HS; }
};

// attention_forward<suffix> and attention_backward<suffix> with the heads heads_of(d). Causal
// attention FLOPs as in kernels/attention.h: 2·B·NH·T²·HS forward, 2.5x that backward (grouped
// heads share K and V, not the products).
void add_attention(std::vector<Family>& fs, const std::string& suffix,
                   std::function<Heads(const Dims&)> heads_of) {
  auto flops = [heads_of](const Dims& d) {
    const Heads h = heads_of(d);
    return 2.0 * d.B * h.NH * double(d.T) * d.T * h.HS;
  };
  fs.push_back({"attention_forward" + suffix,
                [heads_of](const Dims& d) {
                  const Heads h = heads_of(d);
                  return std::vector<Spec>{compute("qkv", {d.B, d.T, h.qkv_width()}),
                                           compute("out", {d.B, d.T, h.out_width()}),
                                           stat("lse", {d.B, h.NH, d.T}, 0, 0)};
                },
                [heads_of](Backend& b, Tensors& t, const Dims& d) {
                  const Heads h = heads_of(d);
                  b.attention_forward(t["out"], t["lse"], t["qkv"], h.NH, h.NKV);
                },
                {"out", "lse"},
                nullptr,
                flops});
  fs.push_back({"attention_backward" + suffix,
                [heads_of](const Dims& d) {
                  const Heads h = heads_of(d);
                  return std::vector<Spec>{compute("qkv", {d.B, d.T, h.qkv_width()}),
                                           compute("out", {d.B, d.T, h.out_width()}, -0.5f, 0.5f),
                                           stat("lse", {d.B, h.NH, d.T}, 2.0f, 4.0f),
                                           compute("dout", {d.B, d.T, h.out_width()}),
                                           compute("dqkv", {d.B, d.T, h.qkv_width()})};
                },
                [heads_of](Backend& b, Tensors& t, const Dims& d) {
                  const Heads h = heads_of(d);
                  b.attention_backward(t["dqkv"], t["dout"], t["qkv"], t["out"], t["lse"], h.NH,
                                       h.NKV);
                },
                {"dqkv"},
                nullptr,
                [flops](const Dims& d) { return 2.5 * flops(d); }});
}

std::vector<Family> families() {
  std::vector<Family> fs;
  fs.push_back({"encoder_forward",
                [](const Dims& d) {
                  return std::vector<Spec>{ids("tokens", {d.B, d.T}, d.V),
                                           compute("wte", {d.Vp, d.C}), compute("wpe", {d.T, d.C}),
                                           compute("out", {d.B, d.T, d.C})};
                },
                [](Backend& b, Tensors& t, const Dims&) {
                  b.encoder_forward(t["out"], t["tokens"], t["wte"], t["wpe"]);
                },
                {"out"},
                [](const Dims& d, double e) { return 3.0 * d.N() * d.C * e; },
                nullptr});
  fs.push_back(
      {"encoder_backward",
       [](const Dims& d) {
         return std::vector<Spec>{ids("tokens", {d.B, d.T}, d.V), compute("dout", {d.B, d.T, d.C}),
                                  compute("dwte", {d.Vp, d.C}), compute("dwpe", {d.T, d.C})};
       },
       [](Backend& b, Tensors& t, const Dims&) {
         b.encoder_backward(t["dwte"], t["dwpe"], t["dout"], t["tokens"]);
       },
       {"dwte", "dwpe"},
       // dout read once per table; the touched rows of dwte and all of dwpe read and written
       [](const Dims& d, double e) {
         return (2.0 * d.N() * d.C + 2.0 * std::min<double>(d.N(), d.V) * d.C + 2.0 * d.T * d.C) *
                e;
       },
       nullptr});
  fs.push_back({"layernorm_forward",
                [](const Dims& d) {
                  return std::vector<Spec>{compute("inp", {d.N(), d.C}, -2, 2),
                                           compute("w", {d.C}),
                                           compute("b", {d.C}),
                                           compute("out", {d.N(), d.C}),
                                           stat("mean", {d.N()}, 0, 0),
                                           stat("rstd", {d.N()}, 0, 0)};
                },
                [](Backend& b, Tensors& t, const Dims&) {
                  b.layernorm_forward(t["out"], t["mean"], t["rstd"], t["inp"], t["w"], t["b"]);
                },
                {"out", "mean", "rstd"},
                [](const Dims& d, double e) { return 2.0 * d.N() * d.C * e + 8.0 * d.N(); },
                nullptr});
  fs.push_back({"layernorm_backward",
                [](const Dims& d) {
                  return std::vector<Spec>{compute("inp", {d.N(), d.C}, -2, 2),
                                           compute("dout", {d.N(), d.C}),
                                           compute("w", {d.C}),
                                           stat("mean", {d.N()}, -0.1f, 0.1f),
                                           stat("rstd", {d.N()}, 0.5f, 1.5f),
                                           compute("dinp", {d.N(), d.C}),
                                           compute("dw", {d.C}),
                                           compute("db", {d.C})};
                },
                [](Backend& b, Tensors& t, const Dims&) {
                  b.layernorm_backward(t["dinp"], t["dw"], t["db"], t["dout"], t["inp"], t["w"],
                                       t["mean"], t["rstd"]);
                },
                {"dinp", "dw", "db"},
                [](const Dims& d, double e) { return 4.0 * d.N() * d.C * e + 8.0 * d.N(); },
                nullptr});
  fs.push_back({"gelu_forward",
                [](const Dims& d) {
                  return std::vector<Spec>{compute("inp", {d.N(), 4 * d.C}, -3, 3),
                                           compute("out", {d.N(), 4 * d.C})};
                },
                [](Backend& b, Tensors& t, const Dims&) { b.gelu_forward(t["out"], t["inp"]); },
                {"out"},
                [](const Dims& d, double e) { return 2.0 * d.N() * 4 * d.C * e; },
                nullptr});
  fs.push_back(
      {"gelu_backward",
       [](const Dims& d) {
         return std::vector<Spec>{compute("inp", {d.N(), 4 * d.C}, -3, 3),
                                  compute("dout", {d.N(), 4 * d.C}),
                                  compute("dinp", {d.N(), 4 * d.C})};
       },
       [](Backend& b, Tensors& t, const Dims&) { b.gelu_backward(t["dinp"], t["inp"], t["dout"]); },
       {"dinp"},
       [](const Dims& d, double e) { return 3.0 * d.N() * 4 * d.C * e; },
       nullptr});
  fs.push_back(
      {"residual_forward",
       [](const Dims& d) {
         return std::vector<Spec>{compute("a", {d.N(), d.C}), compute("b", {d.N(), d.C}),
                                  compute("out", {d.N(), d.C})};
       },
       [](Backend& b, Tensors& t, const Dims&) { b.residual_forward(t["out"], t["a"], t["b"]); },
       {"out"},
       [](const Dims& d, double e) { return 3.0 * d.N() * d.C * e; },
       nullptr});
  // The Llama family's ops at the same widths: RMSNorm over C, RoPE on the q and k heads of qkv
  // rows (in place; head size C / NH), SwiGLU over an MLP of width 4C.
  fs.push_back({"rmsnorm_forward",
                [](const Dims& d) {
                  return std::vector<Spec>{compute("inp", {d.N(), d.C}, -2, 2), compute("w", {d.C}),
                                           compute("out", {d.N(), d.C}),
                                           stat("rstd", {d.N()}, 0, 0)};
                },
                [](Backend& b, Tensors& t, const Dims&) {
                  b.rmsnorm_forward(t["out"], t["rstd"], t["inp"], t["w"], 1e-5f);
                },
                {"out", "rstd"},
                [](const Dims& d, double e) { return 2.0 * d.N() * d.C * e + 4.0 * d.N(); },
                nullptr});
  // The residual add fused into RMSNorm (the blocks' second norm), in place on the stream as in
  // the model: reads a and b, writes sum and out (the sum's reread hits the cache).
  fs.push_back(
      {"residual_rmsnorm_forward",
       [](const Dims& d) {
         return std::vector<Spec>{compute("a", {d.N(), d.C}, -2, 2), compute("b", {d.N(), d.C}),
                                  compute("w", {d.C}), compute("out", {d.N(), d.C}),
                                  stat("rstd", {d.N()}, 0, 0)};
       },
       [](Backend& b, Tensors& t, const Dims&) {
         b.residual_rmsnorm_forward(t["a"], t["out"], t["rstd"], t["a"], t["b"], t["w"], 1e-5f);
       },
       {"a", "out", "rstd"},
       [](const Dims& d, double e) { return 4.0 * d.N() * d.C * e + 4.0 * d.N(); },
       nullptr});
  fs.push_back({"rmsnorm_backward",
                [](const Dims& d) {
                  return std::vector<Spec>{compute("inp", {d.N(), d.C}, -2, 2),
                                           compute("dout", {d.N(), d.C}),
                                           compute("w", {d.C}),
                                           stat("rstd", {d.N()}, 0.5f, 1.5f),
                                           compute("dinp", {d.N(), d.C}),
                                           compute("dw", {d.C})};
                },
                [](Backend& b, Tensors& t, const Dims&) {
                  b.rmsnorm_backward(t["dinp"], t["dw"], t["dout"], t["inp"], t["w"], t["rstd"]);
                },
                {"dinp", "dw"},
                [](const Dims& d, double e) { return 4.0 * d.N() * d.C * e + 4.0 * d.N(); },
                nullptr});
  // QK-norm on qkv rows of NH query and NH key/value heads of C / NH.
  fs.push_back(
      {"qk_norm_forward",
       [](const Dims& d) {
         const int hd = d.C / d.NH;
         return std::vector<Spec>{compute("inp", {d.B, d.T, 3 * d.C}, -2, 2), compute("qw", {hd}),
                                  compute("kw", {hd}), compute("out", {d.B, d.T, 3 * d.C}),
                                  stat("rstd", {d.B, d.T, 2 * d.NH}, 0, 0)};
       },
       [](Backend& b, Tensors& t, const Dims& d) {
         b.qk_norm_forward(t["out"], t["rstd"], t["inp"], t["qw"], t["kw"], d.NH, d.NH, 1e-6f);
       },
       {"out", "rstd"},
       [](const Dims& d, double e) { return 2.0 * d.N() * 3 * d.C * e + 4.0 * d.N() * 2 * d.NH; },
       nullptr});
  fs.push_back(
      {"qk_norm_backward",
       [](const Dims& d) {
         const int hd = d.C / d.NH;
         return std::vector<Spec>{compute("inp", {d.B, d.T, 3 * d.C}, -2, 2),
                                  compute("dout", {d.B, d.T, 3 * d.C}),
                                  compute("qw", {hd}),
                                  compute("kw", {hd}),
                                  stat("rstd", {d.B, d.T, 2 * d.NH}, 0.5f, 1.5f),
                                  compute("dinp", {d.B, d.T, 3 * d.C}),
                                  compute("dqw", {hd}),
                                  compute("dkw", {hd})};
       },
       [](Backend& b, Tensors& t, const Dims& d) {
         b.qk_norm_backward(t["dinp"], t["dqw"], t["dkw"], t["dout"], t["inp"], t["qw"], t["kw"],
                            t["rstd"], d.NH, d.NH);
       },
       {"dinp", "dqw", "dkw"},
       // weight gradients: dout and inp of the q and k heads; rows: dout, the q and k
       // heads of inp, dinp written; rstd read three times
       [](const Dims& d, double e) { return 12.0 * d.N() * d.C * e + 3 * 4.0 * d.N() * 2 * d.NH; },
       nullptr});
  fs.push_back({"rope_forward",
                [](const Dims& d) {
                  const int half = d.C / d.NH / 2;
                  return std::vector<Spec>{compute("qkv", {d.B, d.T, 3 * d.C}),
                                           stat("cos", {d.T, half}, -1, 1),
                                           stat("sin", {d.T, half}, -1, 1)};
                },
                [](Backend& b, Tensors& t, const Dims& d) {
                  b.rope_forward(t["qkv"], t["cos"], t["sin"], 2 * d.NH, d.C / d.NH, 0);
                },
                {"qkv"},
                // the q and k heads read and written
                [](const Dims& d, double e) { return 2.0 * d.N() * 2 * d.C * e; },
                nullptr});
  fs.push_back({"swiglu_forward",
                [](const Dims& d) {
                  return std::vector<Spec>{compute("inp", {d.N(), 8 * d.C}, -3, 3),
                                           compute("out", {d.N(), 4 * d.C})};
                },
                [](Backend& b, Tensors& t, const Dims&) { b.swiglu_forward(t["out"], t["inp"]); },
                {"out"},
                [](const Dims& d, double e) { return 3.0 * d.N() * 4 * d.C * e; },
                nullptr});
  fs.push_back({"swiglu_backward",
                [](const Dims& d) {
                  return std::vector<Spec>{compute("inp", {d.N(), 8 * d.C}, -3, 3),
                                           compute("dout", {d.N(), 4 * d.C}),
                                           compute("dinp", {d.N(), 8 * d.C})};
                },
                [](Backend& b, Tensors& t, const Dims&) {
                  b.swiglu_backward(t["dinp"], t["inp"], t["dout"]);
                },
                {"dinp"},
                [](const Dims& d, double e) { return 5.0 * d.N() * 4 * d.C * e; },
                nullptr});
  fs.push_back({"crossentropy_forward_backward",
                [](const Dims& d) {
                  return std::vector<Spec>{compute("logits", {d.N(), d.Vp}, -4, 4),
                                           ids("targets", {d.N()}, d.V, 0.05),
                                           stat("losses", {d.N()}, 0, 0)};
                },
                [](Backend& b, Tensors& t, const Dims& d) {
                  b.crossentropy(t["losses"], t["logits"], t["targets"], d.V,
                                 1.0f / static_cast<float>(d.N()), gpt::LossGrad::write);
                },
                {"losses", "logits"},
                [](const Dims& d, double e) { return 2.0 * d.N() * d.Vp * e; },
                nullptr});
  fs.push_back({"global_norm",
                [](const Dims& d) {
                  // one tensor the size of the block parameters of a 12-layer model of width C
                  return std::vector<Spec>{compute("g", {12LL * 12 * d.C * d.C})};
                },
                [](Backend& b, Tensors& t, const Dims&) { (void)b.sum_of_squares(t["g"]); },
                {},
                [](const Dims& d, double e) { return 12.0 * 12 * d.C * d.C * e; },
                nullptr});
  fs.push_back({"adamw",
                [](const Dims& d) {
                  const int64_t n = 12LL * 12 * d.C * d.C;
                  return std::vector<Spec>{compute("p", {n}), compute("g", {n}, -0.01f, 0.01f),
                                           stat("m", {n}, -0.01f, 0.01f),
                                           stat("v", {n}, 0.0f, 1e-4f), stat("master", {n}, -1, 1)};
                },
                [](Backend& b, Tensors& t, const Dims&) {
                  gpt::AdamWStep s;
                  s.lr = 1e-4f;
                  s.weight_decay = 0.1f;
                  s.step = 1;  // the master copy is read from the parameters: both sides agree
                  s.seed = 3;
                  b.adamw_update(t["p"], t["g"], t["m"], t["v"],
                                 b.dtype() == DType::bf16 ? t["master"] : Tensor(), s);
                },
                {"m", "v"},
                [](const Dims& d, double e) {
                  const double n = 12.0 * 12 * d.C * d.C;
                  return e == 2.0 ? n * (2 + 2 + 4 + 4 + 2 + 4 + 4 + 4)
                                  : n * (4 + 4 + 4 + 4 + 4 + 4 + 4);
                },
                nullptr});
  for (const LinearShape& ls : linear_shapes(Dims{1, 1, 768, 12, 50257, 50304})) {
    const std::string name = ls.name;
    auto shape_of = [name](const Dims& d) {
      for (const LinearShape& s : linear_shapes(d))
        if (s.name == name) return s;
      return LinearShape{};
    };
    fs.push_back({"matmul_forward_" + name,
                  [shape_of](const Dims& d) {
                    const LinearShape s = shape_of(d);
                    return std::vector<Spec>{compute("inp", {d.N(), s.in}),
                                             compute("w", {s.out, s.in}, -0.05f, 0.05f),
                                             compute("b", {s.out}), compute("out", {d.N(), s.out})};
                  },
                  [shape_of](Backend& b, Tensors& t, const Dims& d) {
                    b.matmul_forward(t["out"], t["inp"], t["w"],
                                     shape_of(d).bias ? t["b"] : Tensor());
                  },
                  {"out"},
                  nullptr,
                  [shape_of](const Dims& d) {
                    const LinearShape s = shape_of(d);
                    return 2.0 * d.N() * s.in * s.out;
                  }});
    fs.push_back({"matmul_backward_" + name,
                  [shape_of](const Dims& d) {
                    const LinearShape s = shape_of(d);
                    return std::vector<Spec>{compute("inp", {d.N(), s.in}),
                                             compute("w", {s.out, s.in}, -0.05f, 0.05f),
                                             compute("dout", {d.N(), s.out}, -0.05f, 0.05f),
                                             compute("dinp", {d.N(), s.in}),
                                             compute("dw", {s.out, s.in}),
                                             compute("db", {s.out})};
                  },
                  [shape_of](Backend& b, Tensors& t, const Dims& d) {
                    b.matmul_backward(t["dinp"], t["dw"], shape_of(d).bias ? t["db"] : Tensor(),
                                      t["dout"], t["inp"], t["w"]);
                  },
                  {"dinp", "dw", "db"},
                  nullptr,
                  [shape_of](const Dims& d) {
                    const LinearShape s = shape_of(d);
                    return 4.0 * d.N() * s.in * s.out;
                  }});
  }
  // The model's multi-head attention, and a grouped-query shape (SmolLM2-135M's heads: 9 query
  // heads sharing 3 key/value heads of 64 channels) at the same B and T.
  add_attention(fs, "", [](const Dims& d) { return Heads{d.NH, d.NH, d.C / d.NH}; });
  add_attention(fs, "_gqa", [](const Dims&) { return Heads{9, 3, 64}; });
  return fs;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Kernel benchmarks of the CUDA backend (validated against the CPU backend first)."};
  int batch = 16, seq = 1024, n_embd = 768, n_head = 12, vocab = 50257, reps = 30;
  std::string dtype_name = "bf16", only, json_path;
  double peak_tflops = 0.0;
  app.add_option("--batch", batch)->capture_default_str();
  app.add_option("--seq", seq)->capture_default_str();
  app.add_option("--n-embd", n_embd)->capture_default_str();
  app.add_option("--n-head", n_head)->capture_default_str();
  app.add_option("--vocab", vocab)->capture_default_str();
  app.add_option("--reps", reps, "timed runs per kernel (median reported)")->capture_default_str();
  app.add_option("--dtype", dtype_name, "bf16 or f32")->capture_default_str();
  app.add_option("--only", only, "run only the families whose name contains this");
  app.add_option("--json", json_path, "append one JSON object per kernel to this file (-: stdout)");
  app.add_option("--peak-tflops", peak_tflops,
                 "device peak for the matmul fraction (0: not reported)");
  CLI11_PARSE(app, argc, argv);
  try {
    if (!gpt::cuda_available()) {
      std::fprintf(stderr, "bench_kernels: no usable CUDA device\n");
      return 2;
    }
    const DType dtype = gpt::dtype_from_name(dtype_name);
    auto cpu = gpt::make_backend("cpu", DType::f32);
    gpt::CudaBackend gpu(dtype);
    const double elem = static_cast<double>(gpt::dtype_size(dtype));
    const double tol = dtype == DType::f32 ? 1e-4 : 1e-2;
    const int Vp = (vocab + 127) / 128 * 128;
    const Dims full{batch, seq, n_embd, n_head, vocab, Vp};
    const Dims small{2, 64, 128, 4, 1000, 1024};

    std::printf("device: %s\n", gpu.description().c_str());
    const double copy_bw = copy_bandwidth(gpu, 10);
    std::printf("device-to-device copy bandwidth: %.0f GB/s (read + write)\n\n", copy_bw / 1e9);
    const size_t flush_bytes =
        2 * static_cast<size_t>(std::max(gpu.properties().l2CacheSize, 1 << 20));
    void* flush = gpu.allocate(flush_bytes);

    // JSON lines go to a file, or to stdout among the table's lines with --json - (a log that
    // scripts/gpu_check.sh parses: the lines that start with '{').
    std::ofstream json_file;
    if (!json_path.empty() && json_path != "-") json_file.open(json_path, std::ios::app);
    auto emit = [&](const nlohmann::ordered_json& j) {
      if (json_path == "-") {
        std::printf("%s\n", j.dump().c_str());
        std::fflush(stdout);
      } else if (json_file.is_open()) {
        json_file << j.dump() << "\n" << std::flush;
      }
    };
    nlohmann::ordered_json header;
    header["kind"] = "copy_bandwidth";
    header["device"] = gpu.properties().name;
    header["gb_per_s"] = copy_bw / 1e9;
    emit(header);

    std::printf("%-34s %10s %10s %10s %9s %9s\n", "kernel", "valid err", "median us", "GB/s",
                "TFLOP/s", "fraction");
    bool all_valid = true;
    for (const Family& f : families()) {
      if (!only.empty() && f.name.find(only) == std::string::npos) continue;
      const double err = f.outputs.empty() ? 0.0 : validate(f, *cpu, gpu, small);
      const bool valid = err < tol;
      all_valid = all_valid && valid;
      const double ms = time_family(f, gpu, full, reps, flush, flush_bytes);
      nlohmann::ordered_json j;
      j["kind"] = "kernel";
      j["kernel"] = f.name;
      j["dtype"] = dtype_name;
      j["valid"] = valid;
      j["validation_rel_error"] = err;
      j["median_us"] = ms * 1e3;
      double gbs = 0.0, tflops = 0.0, fraction = 0.0;
      if (f.bytes) {
        gbs = f.bytes(full, elem) / (ms * 1e-3) / 1e9;
        fraction = gbs * 1e9 / copy_bw;
        j["gb_per_s"] = gbs;
        j["fraction_of_copy_bw"] = fraction;
      }
      if (f.flops) {
        tflops = f.flops(full) / (ms * 1e-3) / 1e12;
        j["tflops"] = tflops;
        if (peak_tflops > 0) {
          fraction = tflops / peak_tflops;
          j["fraction_of_peak"] = fraction;
        }
      }
      std::printf("%-34s %10.2e %10.1f %10.0f %9.1f %9.2f%s\n", f.name.c_str(), err, ms * 1e3, gbs,
                  tflops, fraction, valid ? "" : "  VALIDATION FAILED");
      std::fflush(stdout);
      emit(j);
    }
    gpu.release(flush);
    return all_valid ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_kernels: error: %s\n", e.what());
    return 1;
  }
}
