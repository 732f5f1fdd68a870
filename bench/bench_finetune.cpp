// Full versus LoRA versus freeze fine-tuning of the same model: trainable parameters, gradient and
// optimizer-state bytes, peak memory of the backend and the median step time, measured side by side
// in one run on random tokens.
//
//   bench_finetune --n-layer 12 --n-embd 768 --n-head 12 --vocab 50257 --batch 4 --seq 64
//
// Prints a table and, with --json, one JSON line per method.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <vector>

#include "engine/backend.h"
#include "engine/optimizer.h"
#include "engine/rng.h"
#include "models/gpt.h"

namespace {

struct Result {
  std::string method;
  int64_t trainable = 0, total = 0;
  size_t grad_bytes = 0, optimizer_bytes = 0, peak_bytes = 0;
  double median_ms = 0;
};

Result measure(const std::string& method, const gpt::GptConfig& cfg, int B, int T, int steps,
               const std::string& device) {
  auto backend = gpt::make_backend(device, device == "cuda" ? gpt::DType::bf16 : gpt::DType::f32);
  gpt::GptModel model(cfg, *backend, B, T);
  model.init_weights(1);
  if (method == "lora") {
    gpt::LoraConfig lc;
    lc.rank = 8;
    lc.qkv = lc.attproj = lc.fc = lc.fcproj = true;
    model.enable_lora(lc, 2);
  } else if (method == "freeze") {  // the top block and the final LayerNorm
    model.set_trainable([&](const std::string& name, int layer) {
      return layer == cfg.n_layer - 1 || name == "lnf_w" || name == "lnf_b";
    });
  }
  gpt::AdamW opt(*backend, model.parameters(), gpt::AdamWConfig{});
  Result r;
  r.method = method;
  for (const gpt::ParamGroup& g : model.parameters()) {
    r.total += g.param.numel();
    if (g.trainable) {
      r.trainable += g.param.numel();
      r.grad_bytes += g.grad.bytes();
    }
  }
  r.optimizer_bytes = opt.state_bytes();
  gpt::Rng rng(3);
  std::vector<int32_t> tokens(static_cast<size_t>(B) * T), targets(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    tokens[i] = static_cast<int32_t>(rng.below(cfg.vocab_size));
    targets[i] = static_cast<int32_t>(rng.below(cfg.vocab_size));
  }
  std::vector<double> ms;
  for (int s = 0; s < steps + 1; ++s) {
    const auto t0 = std::chrono::steady_clock::now();
    model.zero_grad();
    model.forward_backward(tokens.data(), targets.data(), B, T, 1.0f / tokens.size());
    opt.step(1e-4f);
    backend->synchronize();
    if (s > 0)
      ms.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  r.median_ms = ms[ms.size() / 2];
  r.peak_bytes = backend->peak_bytes();
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Full vs LoRA vs freeze fine-tuning: memory and step time side by side."};
  int n_layer = 4, n_embd = 128, n_head = 4, vocab = 2048, B = 16, T = 128, steps = 5;
  std::string device = "cpu";
  bool json = false;
  app.add_option("--n-layer", n_layer)->capture_default_str();
  app.add_option("--n-embd", n_embd)->capture_default_str();
  app.add_option("--n-head", n_head)->capture_default_str();
  app.add_option("--vocab", vocab)->capture_default_str();
  app.add_option("--batch", B)->capture_default_str();
  app.add_option("--seq", T)->capture_default_str();
  app.add_option("--steps", steps, "timed steps (after one warm-up step)")->capture_default_str();
  app.add_option("--device", device, "cpu or cuda")->capture_default_str();
  app.add_flag("--json", json, "one JSON line per method instead of the table");
  CLI11_PARSE(app, argc, argv);
  try {
    gpt::GptConfig cfg;
    cfg.n_layer = n_layer;
    cfg.n_embd = n_embd;
    cfg.n_head = n_head;
    cfg.vocab_size = vocab;
    cfg.max_seq_len = std::max(T, 1024);
    std::vector<Result> results;
    for (const char* m : {"full", "lora", "freeze"})
      results.push_back(measure(m, cfg, B, T, steps, device));
    if (!json) {
      std::printf(
          "model %d x %d, vocab %d, B %d, T %d, device %s (LoRA r=8 on qkv, attproj, fc, fcproj; "
          "freeze: top block + lnf)\n",
          n_layer, n_embd, vocab, B, T, device.c_str());
      std::printf("%-8s %12s %8s %12s %14s %12s %10s\n", "method", "trainable", "%", "grads MiB",
                  "optimizer MiB", "peak MiB", "step ms");
    }
    for (const Result& r : results) {
      if (json) {
        nlohmann::ordered_json j{{"method", r.method},
                                 {"trainable", r.trainable},
                                 {"total", r.total},
                                 {"grad_bytes", r.grad_bytes},
                                 {"optimizer_bytes", r.optimizer_bytes},
                                 {"peak_bytes", r.peak_bytes},
                                 {"median_step_ms", r.median_ms}};
        std::printf("%s\n", j.dump().c_str());
      } else {
        std::printf("%-8s %12lld %7.2f%% %12.2f %14.2f %12.1f %10.1f\n", r.method.c_str(),
                    static_cast<long long>(r.trainable), 100.0 * r.trainable / r.total,
                    r.grad_bytes / 1048576.0, r.optimizer_bytes / 1048576.0,
                    r.peak_bytes / 1048576.0, r.median_ms);
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_finetune: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
