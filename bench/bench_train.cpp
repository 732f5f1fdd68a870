// End-to-end training throughput: tokens per second of full optimizer steps (forward, backward,
// clip, AdamW) on random tokens, for any model shape, on the CPU or (when built) CUDA backend.
//
//   bench_train --n-layer 4 --n-embd 256 --n-head 4 --vocab 4096 --batch 8 --seq 256 --steps 10
//
// Prints one JSON line with the median step time, tokens/s and (with --peak-tflops) MFU. With
// --profile, first a table of where a step's milliseconds go, op by op (bench/profiling_backend.h;
// every op is then followed by a synchronize, so the step time printed is the profiled one).
#include <omp.h>
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <vector>

#include "bench/profiling_backend.h"
#include "engine/backend.h"
#include "engine/optimizer.h"
#include "engine/rng.h"
#include "models/gpt.h"

int main(int argc, char** argv) {
  CLI::App app{"Training-step throughput benchmark on random tokens."};
  int n_layer = 4, n_embd = 256, n_head = 4, vocab = 4096, batch = 8, seq = 256, steps = 10,
      warmup = 2;
  std::string device = "cpu", dtype = "auto", label, attention = "fused";
  double peak_tflops = 0.0;
  bool profile = false;
  app.add_option("--n-layer", n_layer)->capture_default_str();
  app.add_option("--n-embd", n_embd)->capture_default_str();
  app.add_option("--n-head", n_head)->capture_default_str();
  app.add_option("--vocab", vocab)->capture_default_str();
  app.add_option("--batch", batch)->capture_default_str();
  app.add_option("--seq", seq)->capture_default_str();
  app.add_option("--steps", steps, "timed steps")->capture_default_str();
  app.add_option("--warmup", warmup, "untimed steps first")->capture_default_str();
  app.add_option("--device", device)->capture_default_str();
  app.add_option("--dtype", dtype, "auto: f32 on cpu, bf16 on cuda")->capture_default_str();
  app.add_option("--attention", attention, "GPU attention kernel: fused or unfused")
      ->capture_default_str();
  app.add_option("--peak-tflops", peak_tflops, "device peak for MFU (0: not reported)");
  app.add_option("--label", label, "name printed with the result");
  app.add_flag("--profile", profile, "print the time of each op per step (stderr) first");
  CLI11_PARSE(app, argc, argv);
  try {
    gpt::DType dt = dtype == "auto" ? (device == "cuda" ? gpt::DType::bf16 : gpt::DType::f32)
                                    : gpt::dtype_from_name(dtype);
    auto backend = gpt::make_backend(device, dt);
    backend->set_attention_kernel(gpt::attention_kernel_from_name(attention));
    std::unique_ptr<gpt::ProfilingBackend> profiler;
    if (profile) profiler = std::make_unique<gpt::ProfilingBackend>(*backend);
    gpt::Backend& run_on = profiler ? *profiler : *backend;
    gpt::GptConfig cfg;
    cfg.n_layer = n_layer;
    cfg.n_embd = n_embd;
    cfg.n_head = n_head;
    cfg.vocab_size = vocab;
    cfg.max_seq_len = std::max(seq, 1024);
    gpt::GptModel model(cfg, run_on, batch, seq);
    model.init_weights(1);
    gpt::AdamW opt(run_on, model.parameters(), gpt::AdamWConfig{});
    gpt::Rng rng(3);
    std::vector<int32_t> tokens(static_cast<size_t>(batch) * seq), targets(tokens.size());
    for (size_t i = 0; i < tokens.size(); ++i) {
      tokens[i] = static_cast<int32_t>(rng.below(vocab));
      targets[i] = static_cast<int32_t>(rng.below(vocab));
    }
    std::vector<double> ms;
    for (int s = 0; s < warmup + steps; ++s) {
      const auto t0 = std::chrono::steady_clock::now();
      model.zero_grad();
      model.forward_backward(tokens.data(), targets.data(), batch, seq, 1.0f / tokens.size());
      opt.step(1e-4f);
      backend->synchronize();
      const double dt_ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (s >= warmup) ms.push_back(dt_ms);
      if (profiler && s + 1 == warmup) profiler->reset();
    }
    std::sort(ms.begin(), ms.end());
    const double median = ms[ms.size() / 2];
    if (profiler) {
      double total = 0.0;
      for (double t : ms) total += t;
      std::fprintf(stderr, "%s: %d steps profiled\n", label.empty() ? "bench_train" : label.c_str(),
                   steps);
      profiler->print(stderr, steps, total / steps);
    }
    const double tok_s = static_cast<double>(tokens.size()) / (median / 1000.0);
    nlohmann::ordered_json j;
    if (!label.empty()) j["label"] = label;
    j["backend"] = backend->description();
    j["attention"] = attention;
    j["shape"] = {{"n_layer", n_layer}, {"n_embd", n_embd}, {"n_head", n_head},
                  {"vocab", vocab},     {"batch", batch},   {"seq", seq}};
    j["params_M"] = static_cast<double>(cfg.num_parameters()) / 1e6;
    j["median_step_ms"] = median;
    j["min_step_ms"] = ms.front();
    j["tokens_per_s"] = tok_s;
    j["gflops_per_s"] = tok_s * cfg.flops_per_token(seq) / 1e9;
    if (peak_tflops > 0) j["mfu"] = tok_s * cfg.flops_per_token(seq) / (peak_tflops * 1e12);
    std::printf("%s\n", j.dump().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_train: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
