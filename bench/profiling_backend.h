// A Backend that times every op of another one: where the milliseconds of a training step go.
// Used by `bench_train --profile`. Each op call is timed from entry to return (after a synchronize
// of the wrapped backend, so that a GPU's queue is drained) and added to a row keyed by the op's
// name and, for matmuls and attention, its shape, so that the classifier's matmul is told apart
// from the blocks' ones. Memory calls pass through untimed.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/backend.h"

namespace gpt {

class ProfilingBackend final : public Backend {
 public:
  explicit ProfilingBackend(Backend& inner) : inner_(inner) {}

  struct Row {
    double ms = 0.0;
    long calls = 0;
  };
  // Drops what was measured so far (e.g. after warm-up steps).
  void reset() { rows_.clear(); }
  const std::map<std::string, Row>& rows() const { return rows_; }

  // Prints one line per row, largest first: milliseconds per step, share of the timed total, calls
  // per step; then the total against the step time measured outside (the difference is the
  // model's own host work between ops).
  void print(std::FILE* out, int steps, double step_ms) const {
    std::vector<std::pair<std::string, Row>> sorted(rows_.begin(), rows_.end());
    std::sort(sorted.begin(), sorted.end(),
              [](const auto& a, const auto& b) { return a.second.ms > b.second.ms; });
    double total = 0.0;
    for (const auto& [name, row] : sorted) total += row.ms;
    std::fprintf(out, "%-44s %10s %7s %9s\n", "op", "ms/step", "share", "calls/step");
    for (const auto& [name, row] : sorted) {
      std::fprintf(out, "%-44s %10.2f %6.1f%% %9.1f\n", name.c_str(), row.ms / steps,
                   100.0 * row.ms / total, static_cast<double>(row.calls) / steps);
    }
    std::fprintf(out, "%-44s %10.2f (step %.2f ms; outside the ops %.2f ms)\n", "total in ops",
                 total / steps, step_ms, step_ms - total / steps);
  }

  DeviceKind device() const override { return inner_.device(); }
  DType dtype() const override { return inner_.dtype(); }
  DType stat_dtype() const override { return inner_.stat_dtype(); }
  std::string description() const override { return inner_.description() + " (profiled)"; }

  void* allocate(size_t bytes) override { return inner_.allocate(bytes); }
  void release(void* ptr) override { inner_.release(ptr); }
  void copy_from_host(void* dst, const void* src, size_t bytes) override {
    inner_.copy_from_host(dst, src, bytes);
  }
  void copy_to_host(void* dst, const void* src, size_t bytes) override {
    inner_.copy_to_host(dst, src, bytes);
  }
  void copy(void* dst, const void* src, size_t bytes) override {
    timed("copy", [&] { inner_.copy(dst, src, bytes); });
  }
  void fill_zero(void* dst, size_t bytes) override {
    timed("fill_zero", [&] { inner_.fill_zero(dst, bytes); });
  }
  void synchronize() override { inner_.synchronize(); }
  void upload_f32(Tensor dst, const float* src) override { inner_.upload_f32(dst, src); }
  void download_f32(float* dst, const Tensor& src) override { inner_.download_f32(dst, src); }
  void set_attention_kernel(AttentionKernel kernel) override {
    inner_.set_attention_kernel(kernel);
  }
  size_t peak_bytes() const override { return inner_.peak_bytes(); }

  void encoder_forward(Tensor out, const Tensor& tokens, const Tensor& wte,
                       const Tensor& wpe) override {
    timed("encoder_forward", [&] { inner_.encoder_forward(out, tokens, wte, wpe); });
  }
  void encoder_backward(Tensor dwte, Tensor dwpe, const Tensor& dout,
                        const Tensor& tokens) override {
    timed("encoder_backward", [&] { inner_.encoder_backward(dwte, dwpe, dout, tokens); });
  }
  void layernorm_forward(Tensor out, Tensor mean, Tensor rstd, const Tensor& inp,
                         const Tensor& weight, const Tensor& bias) override {
    timed("layernorm_forward",
          [&] { inner_.layernorm_forward(out, mean, rstd, inp, weight, bias); });
  }
  void layernorm_backward(Tensor dinp, Tensor dweight, Tensor dbias, const Tensor& dout,
                          const Tensor& inp, const Tensor& weight, const Tensor& mean,
                          const Tensor& rstd) override {
    timed("layernorm_backward",
          [&] { inner_.layernorm_backward(dinp, dweight, dbias, dout, inp, weight, mean, rstd); });
  }
  void matmul_forward(Tensor out, const Tensor& inp, const Tensor& weight,
                      const Tensor& bias) override {
    timed("matmul_forward " + matmul_shape(inp, weight),
          [&] { inner_.matmul_forward(out, inp, weight, bias); });
  }
  void matmul_backward(Tensor dinp, Tensor dweight, Tensor dbias, const Tensor& dout,
                       const Tensor& inp, const Tensor& weight) override {
    timed("matmul_backward " + matmul_shape(inp, weight),
          [&] { inner_.matmul_backward(dinp, dweight, dbias, dout, inp, weight); });
  }
  void gelu_forward(Tensor out, const Tensor& inp) override {
    timed("gelu_forward", [&] { inner_.gelu_forward(out, inp); });
  }
  void gelu_backward(Tensor dinp, const Tensor& inp, const Tensor& dout) override {
    timed("gelu_backward", [&] { inner_.gelu_backward(dinp, inp, dout); });
  }
  void residual_forward(Tensor out, const Tensor& a, const Tensor& b) override {
    timed("residual_forward", [&] { inner_.residual_forward(out, a, b); });
  }
  void attention_forward(Tensor out, Tensor lse, const Tensor& qkv, int n_head,
                         int n_kv_head) override {
    timed("attention_forward", [&] { inner_.attention_forward(out, lse, qkv, n_head, n_kv_head); });
  }
  void attention_backward(Tensor dqkv, const Tensor& dout, const Tensor& qkv, const Tensor& out,
                          const Tensor& lse, int n_head, int n_kv_head) override {
    timed("attention_backward",
          [&] { inner_.attention_backward(dqkv, dout, qkv, out, lse, n_head, n_kv_head); });
  }
  void crossentropy(Tensor losses, Tensor logits, const Tensor& targets, int vocab_size,
                    float dloss, LossGrad grad) override {
    timed("crossentropy",
          [&] { inner_.crossentropy(losses, logits, targets, vocab_size, dloss, grad); });
  }
  void rmsnorm_forward(Tensor out, Tensor rstd, const Tensor& inp, const Tensor& weight,
                       float eps) override {
    timed("rmsnorm_forward", [&] { inner_.rmsnorm_forward(out, rstd, inp, weight, eps); });
  }
  void residual_rmsnorm_forward(Tensor sum, Tensor out, Tensor rstd, const Tensor& a,
                                const Tensor& b, const Tensor& weight, float eps) override {
    timed("residual_rmsnorm_forward",
          [&] { inner_.residual_rmsnorm_forward(sum, out, rstd, a, b, weight, eps); });
  }
  void rmsnorm_backward(Tensor dinp, Tensor dweight, const Tensor& dout, const Tensor& inp,
                        const Tensor& weight, const Tensor& rstd) override {
    timed("rmsnorm_backward",
          [&] { inner_.rmsnorm_backward(dinp, dweight, dout, inp, weight, rstd); });
  }
  void qk_norm_forward(Tensor out, Tensor rstd, const Tensor& inp, const Tensor& q_weight,
                       const Tensor& k_weight, int n_head, int n_kv_head, float eps) override {
    timed("qk_norm_forward", [&] {
      inner_.qk_norm_forward(out, rstd, inp, q_weight, k_weight, n_head, n_kv_head, eps);
    });
  }
  void qk_norm_backward(Tensor dinp, Tensor dq_weight, Tensor dk_weight, const Tensor& dout,
                        const Tensor& inp, const Tensor& q_weight, const Tensor& k_weight,
                        const Tensor& rstd, int n_head, int n_kv_head) override {
    timed("qk_norm_backward", [&] {
      inner_.qk_norm_backward(dinp, dq_weight, dk_weight, dout, inp, q_weight, k_weight, rstd,
                              n_head, n_kv_head);
    });
  }
  void rope_forward(Tensor qkv, const Tensor& cos, const Tensor& sin, int n_heads, int head_dim,
                    int pos0) override {
    timed("rope_forward", [&] { inner_.rope_forward(qkv, cos, sin, n_heads, head_dim, pos0); });
  }
  void rope_backward(Tensor dqkv, const Tensor& cos, const Tensor& sin, int n_heads, int head_dim,
                     int pos0) override {
    timed("rope_backward", [&] { inner_.rope_backward(dqkv, cos, sin, n_heads, head_dim, pos0); });
  }
  void swiglu_forward(Tensor out, const Tensor& inp) override {
    timed("swiglu_forward", [&] { inner_.swiglu_forward(out, inp); });
  }
  void swiglu_backward(Tensor dinp, const Tensor& inp, const Tensor& dout) override {
    timed("swiglu_backward", [&] { inner_.swiglu_backward(dinp, inp, dout); });
  }
  double sum_of_squares(const Tensor& x) override {
    double r = 0.0;
    timed("sum_of_squares (grad norm)", [&] { r = inner_.sum_of_squares(x); });
    return r;
  }
  double sum(const Tensor& x) override {
    double r = 0.0;
    timed("sum (losses)", [&] { r = inner_.sum(x); });
    return r;
  }
  void scale(Tensor out, const Tensor& in, float s) override {
    timed("scale", [&] { inner_.scale(out, in, s); });
  }
  void attention_decode(Tensor out, const Tensor& q, const Tensor& kv_cache, int pos, int n_head,
                        int n_kv_head) override {
    timed("attention_decode",
          [&] { inner_.attention_decode(out, q, kv_cache, pos, n_head, n_kv_head); });
  }
  void adamw_update(Tensor params, const Tensor& grads, Tensor m, Tensor v, Tensor master,
                    const AdamWStep& step) override {
    timed("adamw_update", [&] { inner_.adamw_update(params, grads, m, v, master, step); });
  }

 private:
  // "N x C -> OC" of out (N,OC) = inp (N,C) · weightᵀ.
  static std::string matmul_shape(const Tensor& inp, const Tensor& weight) {
    return std::to_string(inp.shape.rows()) + " x " + std::to_string(inp.shape.cols()) + " -> " +
           std::to_string(weight.shape.rows());
  }

  template <typename Op>
  void timed(const std::string& name, Op&& op) {
    inner_.synchronize();
    const auto t0 = std::chrono::steady_clock::now();
    op();
    inner_.synchronize();
    Row& row = rows_[name];
    row.ms +=
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    row.calls += 1;
  }

  Backend& inner_;
  std::map<std::string, Row> rows_;
};

}  // namespace gpt
