// The golden end-to-end check: our GPT model against an independent PyTorch implementation.
//
// tests/reference/make_gpt_reference.py (a nanoGPT-style GPT-2 in torch, run in float64) wrote
// tests/fixtures/gpt_reference.bin: a tiny model's weights and batch, and what torch computed from
// them: the logits, the mean loss, the gradient of every parameter tensor, and the losses, gradient
// norms and final weights of a few AdamW steps with global-norm clipping. This test loads the same
// weights into gpt::GptModel on the CPU backend, in f32 and in f64, and compares each quantity by
// relative error ‖ours − torch‖ / ‖torch‖. The tolerances depend only on the dtype
// (docs/testing.md); NaN never passes. The fixture format is described in docs/testing.md and in
// the script.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "engine/backend.h"
#include "engine/optimizer.h"
#include "models/gpt.h"

namespace {

constexpr const char* kFixturePath = GPT_SOURCE_DIR "/tests/fixtures/gpt_reference.bin";
constexpr int32_t kMagic = 0x46455247;  // "GREF"
constexpr int32_t kVersion = 1;
constexpr int kHeaderInts = 16;
constexpr int kHeaderFloats = 8;
constexpr int kHeaderBytes = 4 * (kHeaderInts + kHeaderFloats);

// Everything the fixture holds. Inputs (weights) are float32, exactly what the model is given;
// reference outputs are float64.
struct Fixture {
  gpt::GptConfig config;
  int padded_vocab = 0;
  int B = 0, T = 0, n_steps = 0, n_unmasked = 0;
  float lr = 0, weight_decay = 0, grad_clip = 0, beta1 = 0, beta2 = 0, eps = 0;
  std::vector<int32_t> tokens, targets;           // (B, T)
  std::vector<std::vector<float>> params;         // kNumParams tensors, Param order
  std::vector<double> logits;                     // (B, T, Vp)
  double loss = 0;                                // mean over unmasked targets
  std::vector<std::vector<double>> grads;         // of the mean loss, Param order
  std::vector<double> step_losses;                // loss before AdamW step k
  std::vector<double> step_norms;                 // gradient norm before clipping at step k
  std::vector<std::vector<double>> final_params;  // after n_steps AdamW steps
};

// Element counts of the parameter tensors, derived from the header alone (not from the model).
std::vector<int64_t> param_numels(const gpt::GptConfig& c, int64_t Vp) {
  const int64_t L = c.n_layer, C = c.n_embd, maxT = c.max_seq_len;
  return {Vp * C, maxT * C, L * C,         L * C,     L * 3 * C * C, L * 3 * C, L * C * C, L * C,
          L * C,  L * C,    L * 4 * C * C, L * 4 * C, L * C * 4 * C, L * C,     C,         C};
}

class Reader {
 public:
  explicit Reader(std::vector<char> bytes) : bytes_(std::move(bytes)) {}
  template <typename T>
  std::vector<T> take(int64_t count) {
    const size_t n = static_cast<size_t>(count) * sizeof(T);
    if (pos_ + n > bytes_.size()) throw std::runtime_error("fixture truncated");
    std::vector<T> out(static_cast<size_t>(count));
    std::memcpy(out.data(), bytes_.data() + pos_, n);
    pos_ += n;
    return out;
  }
  size_t position() const { return pos_; }
  size_t size() const { return bytes_.size(); }

 private:
  std::vector<char> bytes_;
  size_t pos_ = 0;
};

// Loads and validates the fixture; any problem is reported as a test failure with a clear reason.
void load_fixture(Fixture& f) {
  std::ifstream in(kFixturePath, std::ios::binary);
  ASSERT_TRUE(in) << "cannot open " << kFixturePath
                  << " (regenerate it with tests/reference/make_gpt_reference.py)";
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GE(bytes.size(), static_cast<size_t>(kHeaderBytes))
      << kFixturePath << ": " << bytes.size() << " bytes, shorter than its header";
  Reader r(std::move(bytes));
  const std::vector<int32_t> h = r.take<int32_t>(kHeaderInts);
  const std::vector<float> hf = r.take<float>(kHeaderFloats);
  ASSERT_EQ(h[0], kMagic) << kFixturePath << ": bad magic (not a GPT reference fixture, or "
                          << "written on a big-endian machine)";
  ASSERT_EQ(h[1], kVersion) << kFixturePath << ": unsupported fixture version";
  ASSERT_EQ(h[2], kHeaderBytes) << kFixturePath << ": unexpected header size";

  gpt::GptConfig& c = f.config;
  c.n_layer = h[3];
  c.n_head = h[4];
  c.n_embd = h[5];
  c.max_seq_len = h[6];
  c.vocab_size = h[7];
  f.padded_vocab = h[8];
  f.B = h[9];
  f.T = h[10];
  f.n_steps = h[11];
  f.n_unmasked = h[12];
  f.lr = hf[0];
  f.weight_decay = hf[1];
  f.grad_clip = hf[2];
  f.beta1 = hf[3];
  f.beta2 = hf[4];
  f.eps = hf[5];
  ASSERT_NO_THROW(c.validate());
  ASSERT_GT(f.B, 0);
  ASSERT_GT(f.T, 0);
  ASSERT_LE(f.T, c.max_seq_len);
  ASSERT_GE(f.n_steps, 1);
  ASSERT_GT(f.n_unmasked, 0);
  ASSERT_EQ(f.padded_vocab, c.padded_vocab_size())
      << "fixture and model pad the vocabulary differently";
  ASSERT_FLOAT_EQ(hf[6], 1e-5f) << "fixture LayerNorm eps differs from the model's 1e-5";

  const std::vector<int64_t> numels = param_numels(c, f.padded_vocab);
  const int64_t BT = static_cast<int64_t>(f.B) * f.T;
  int64_t param_total = 0;
  for (int64_t n : numels) param_total += n;
  const size_t expected = kHeaderBytes + 2 * BT * 4 + param_total * 4 + BT * f.padded_vocab * 8 +
                          8 + param_total * 8 + 2 * f.n_steps * 8 + param_total * 8;
  ASSERT_EQ(r.size(), expected) << kFixturePath << ": size does not match the shapes in its header";

  f.tokens = r.take<int32_t>(BT);
  f.targets = r.take<int32_t>(BT);
  for (int64_t n : numels) f.params.push_back(r.take<float>(n));
  f.logits = r.take<double>(BT * f.padded_vocab);
  f.loss = r.take<double>(1)[0];
  for (int64_t n : numels) f.grads.push_back(r.take<double>(n));
  f.step_losses = r.take<double>(f.n_steps);
  f.step_norms = r.take<double>(f.n_steps);
  for (int64_t n : numels) f.final_params.push_back(r.take<double>(n));
  ASSERT_EQ(r.position(), r.size());
  // The fixture holds GPT-2's 16 tensors in llm.c's order: the table's order without the tensors
  // GPT-2 lacks. Index them by Param (absent ones empty).
  auto by_param = [&](auto& lists) {
    std::remove_reference_t<decltype(lists)> out(gpt::kNumParams);
    size_t k = 0;
    for (int pi = 0; pi < gpt::kNumParams; ++pi)
      if (gpt::param_present(c, static_cast<gpt::Param>(pi))) out[pi] = std::move(lists[k++]);
    lists = std::move(out);
  };
  by_param(f.params);
  by_param(f.grads);
  by_param(f.final_params);

  int unmasked = 0;
  for (int64_t i = 0; i < BT; ++i) {
    ASSERT_TRUE(f.tokens[i] >= 0 && f.tokens[i] < c.vocab_size) << "token " << i;
    ASSERT_TRUE(f.targets[i] == -1 || (f.targets[i] >= 0 && f.targets[i] < c.vocab_size))
        << "target " << i;
    unmasked += f.targets[i] != -1;
  }
  ASSERT_EQ(unmasked, f.n_unmasked);
}

// ‖a − ref‖ / ‖ref‖ (or ‖a‖ when ref is all zeros). NaN propagates, and NaN < tol is false.
double rel_error(const std::vector<double>& a, const std::vector<double>& ref) {
  if (a.size() != ref.size()) return std::nan("");
  double diff = 0, norm = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff += (a[i] - ref[i]) * (a[i] - ref[i]);
    norm += ref[i] * ref[i];
  }
  return norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

double rel_error(double a, double ref) {
  return std::fabs(a - ref) / std::fabs(ref);
}

// A tensor of the model copied to the host in double, at full precision for both dtypes.
std::vector<double> to_host(gpt::Backend& backend, const gpt::Tensor& t) {
  std::vector<double> out(static_cast<size_t>(t.numel()));
  if (t.dtype == gpt::DType::f64) {
    backend.copy_to_host(out.data(), t.data, t.bytes());
  } else {
    std::vector<float> tmp(out.size());
    backend.download_f32(tmp.data(), t);
    for (size_t i = 0; i < out.size(); ++i) out[i] = tmp[i];
  }
  return out;
}

// Tolerances follow from the dtype alone (docs/testing.md explains each number):
//  - f32 forward and gradients: fp32 rounding through a few reductions (torch's own fp32 run is at
//    ~3e-7 on every gradient).
//  - f32 after AdamW steps: Adam divides each gradient element by its own RMS, so elements whose
//    gradient is near the rounding noise take noisy steps of up to lr; the weights then agree to
//    ~1e-5..6e-5 (torch's own fp32 run: up to 3e-5), and what is computed from them (gradient
//    norms) inherits that. The losses after the steps stay within ~4e-6.
//  - f64 logits come back through the model's fp32 host copy (logits_to_host).
//  - f64 after AdamW steps: the engine hands the clip factor to the kernels as a float
//    (AdamWStep::grad_scale), a 3e-8 relative rounding on the clipped steps that reaches ~1e-9 in
//    the weights; rounding the factor to float in the reference reproduces the engine to 1e-16.
struct Tolerances {
  double logits, loss, grads, step_losses, step_norms, final_params;
};
Tolerances tolerances(gpt::DType dtype) {
  if (dtype == gpt::DType::f64) return {1e-7, 1e-10, 1e-10, 1e-8, 1e-8, 1e-8};
  return {1e-5, 1e-6, 1e-4, 1e-4, 1e-3, 1e-3};
}

// The key bias (the middle third of each layer's qkv_b) cannot change the loss: it adds q_t·b_k to
// every score of query t, and the softmax is invariant to a constant shift. Its exact gradient is
// zero, so what both sides compute there is rounding noise, which AdamW then turns into steps of up
// to lr in arbitrary directions. These helpers split qkv_b into the key bias and the rest.
bool is_key_bias(int64_t i, int64_t C) {
  return i % (3 * C) >= C && i % (3 * C) < 2 * C;
}
std::vector<double> select(const std::vector<double>& x, int64_t C, bool key_bias) {
  std::vector<double> out;
  for (size_t i = 0; i < x.size(); ++i)
    if (is_key_bias(static_cast<int64_t>(i), C) == key_bias) out.push_back(x[i]);
  return out;
}
double norm(const std::vector<double>& x) {
  double s = 0;
  for (double v : x) s += v * v;
  return std::sqrt(s);
}

// Parameterised by the dtype's name ("f32", "f64") so that gtest prints it readably.
class ReferenceTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(load_fixture(fx_));
    backend_ = gpt::make_backend("cpu", dtype());
    model_ = std::make_unique<gpt::GptModel>(fx_.config, *backend_, fx_.B, fx_.T);
    for (int pi = 0; pi < gpt::kNumParams; ++pi) {
      const gpt::Param p = static_cast<gpt::Param>(pi);
      const gpt::Tensor t = model_->param(p);
      ASSERT_EQ(t.numel(), static_cast<int64_t>(fx_.params[pi].size()))
          << gpt::param_name(p) << " has shape " << t.shape.str();
      if (t.numel() == 0) continue;  // a tensor GPT-2 lacks
      backend_->upload_f32(t, fx_.params[pi].data());
    }
  }
  gpt::DType dtype() const { return gpt::dtype_from_name(GetParam()); }
  const char* dtype_label() const { return GetParam().c_str(); }
  static const char* name(int pi) { return gpt::param_name(static_cast<gpt::Param>(pi)); }

  Fixture fx_;
  std::unique_ptr<gpt::Backend> backend_;
  std::unique_ptr<gpt::GptModel> model_;
};

TEST_P(ReferenceTest, LogitsAndLoss) {
  const Tolerances tol = tolerances(dtype());
  const double loss_sum = model_->forward(fx_.tokens.data(), fx_.targets.data(), fx_.B, fx_.T);
  const double loss = loss_sum / fx_.n_unmasked;
  const std::vector<float> logits = model_->logits_to_host(fx_.B, fx_.T);
  const int V = fx_.config.vocab_size, Vp = fx_.padded_vocab;
  ASSERT_EQ(logits.size(), fx_.logits.size());
  // The real vocabulary columns only: what the padded columns hold is the model's business.
  std::vector<double> ours, ref;
  for (size_t row = 0; row < logits.size() / Vp; ++row) {
    for (int j = 0; j < V; ++j) {
      ours.push_back(logits[row * Vp + j]);
      ref.push_back(fx_.logits[row * Vp + j]);
    }
  }
  const double e_logits = rel_error(ours, ref);
  const double e_loss = rel_error(loss, fx_.loss);
  std::printf("[%s] logits rel err %.3e   loss %.12f vs torch %.12f, rel err %.3e\n", dtype_label(),
              e_logits, loss, fx_.loss, e_loss);
  EXPECT_LT(e_logits, tol.logits) << "logits";
  EXPECT_LT(e_loss, tol.loss) << "loss " << loss << " vs torch " << fx_.loss;
}

TEST_P(ReferenceTest, Gradients) {
  const Tolerances tol = tolerances(dtype());
  model_->zero_grad();
  const double loss_sum =
      model_->forward_backward(fx_.tokens.data(), fx_.targets.data(), fx_.B, fx_.T,
                               1.0f / static_cast<float>(fx_.n_unmasked));
  EXPECT_LT(rel_error(loss_sum / fx_.n_unmasked, fx_.loss), tol.loss) << "loss of forward_backward";
  const int64_t C = fx_.config.n_embd;
  for (int pi = 0; pi < gpt::kNumParams; ++pi) {
    if (!model_->has_param(static_cast<gpt::Param>(pi))) continue;
    const std::vector<double> g = to_host(*backend_, model_->grad(static_cast<gpt::Param>(pi)));
    const double e = rel_error(g, fx_.grads[pi]);
    std::printf("[%s] grad %-10s rel err %.3e\n", dtype_label(), name(pi), e);
    EXPECT_LT(e, tol.grads) << "gradient of " << name(pi);
    if (pi == static_cast<int>(gpt::Param::qkv_b)) {
      // The key bias's exact gradient is zero (see is_key_bias); ours must be rounding noise.
      EXPECT_LE(norm(select(g, C, true)), tol.grads * norm(g)) << "key-bias gradient is not ~0";
    }
    if (pi == static_cast<int>(gpt::Param::wte)) {
      // Padded vocabulary rows: never a token, excluded from the softmax: exactly zero.
      for (int64_t i = fx_.config.vocab_size * C; i < fx_.padded_vocab * C; ++i) {
        ASSERT_EQ(g[i], 0.0) << "wte gradient in padded row " << i / C;
      }
    }
    if (pi == static_cast<int>(gpt::Param::wpe)) {
      for (int64_t i = fx_.T * C; i < fx_.config.max_seq_len * C; ++i) {
        ASSERT_EQ(g[i], 0.0) << "wpe gradient in unused position " << i / C;
      }
    }
  }
}

TEST_P(ReferenceTest, AdamWSteps) {
  const Tolerances tol = tolerances(dtype());
  // The decay mask must be the reference's: the 2-D matrices, but not wpe.
  std::vector<gpt::ParamGroup> groups = model_->parameters();
  ASSERT_EQ(groups.size(), 16u);  // GPT-2's tensors
  for (int pi = 0; pi < gpt::kNumParams; ++pi) {
    const gpt::Param p = static_cast<gpt::Param>(pi);
    if (!model_->has_param(p)) continue;
    const bool decay = p == gpt::Param::wte || p == gpt::Param::qkv_w ||
                       p == gpt::Param::attproj_w || p == gpt::Param::fc_w ||
                       p == gpt::Param::fcproj_w;
    bool found = false;
    for (const gpt::ParamGroup& g : groups) {
      if (g.param.data != model_->param(p).data) continue;
      found = true;
      EXPECT_EQ(g.weight_decay, decay) << "weight decay flag of " << name(pi);
      EXPECT_TRUE(g.trainable) << name(pi);
    }
    EXPECT_TRUE(found) << name(pi) << " is not among the optimizer's groups";
  }

  gpt::AdamWConfig oc;
  oc.beta1 = fx_.beta1;
  oc.beta2 = fx_.beta2;
  oc.eps = fx_.eps;
  oc.weight_decay = fx_.weight_decay;
  oc.grad_clip = fx_.grad_clip;
  gpt::AdamW opt(*backend_, groups, oc);
  const float dloss = 1.0f / static_cast<float>(fx_.n_unmasked);
  for (int s = 0; s < fx_.n_steps; ++s) {
    model_->zero_grad();
    const double loss =
        model_->forward_backward(fx_.tokens.data(), fx_.targets.data(), fx_.B, fx_.T, dloss) /
        fx_.n_unmasked;
    const double norm = opt.step(fx_.lr);
    const double e_loss = rel_error(loss, fx_.step_losses[s]);
    const double e_norm = rel_error(norm, fx_.step_norms[s]);
    std::printf("[%s] step %d loss %.10f (rel err %.3e)  grad norm %.6f (rel err %.3e)%s\n",
                dtype_label(), s, loss, e_loss, norm, e_norm,
                fx_.step_norms[s] > fx_.grad_clip ? "  clipped" : "");
    EXPECT_LT(e_loss, tol.step_losses) << "loss before AdamW step " << s;
    EXPECT_LT(e_norm, tol.step_norms) << "gradient norm at AdamW step " << s;
  }
  const int64_t C = fx_.config.n_embd;
  for (int pi = 0; pi < gpt::kNumParams; ++pi) {
    if (!model_->has_param(static_cast<gpt::Param>(pi))) continue;
    std::vector<double> p = to_host(*backend_, model_->param(static_cast<gpt::Param>(pi)));
    std::vector<double> ref = fx_.final_params[pi];
    if (pi == static_cast<int>(gpt::Param::qkv_b)) {
      // The key bias takes noise-driven steps (see is_key_bias): only bound them, each side moves
      // at most ~lr per step (the Adam ratio m̂/sqrt(v̂) stays below ~1 in the first steps).
      const std::vector<double> pk = select(p, C, true), rk = select(ref, C, true);
      for (size_t i = 0; i < pk.size(); ++i) {
        EXPECT_LE(std::fabs(pk[i] - rk[i]), 2.0 * fx_.n_steps * fx_.lr) << "key bias " << i;
      }
      p = select(p, C, false);
      ref = select(ref, C, false);
    }
    const double e = rel_error(p, ref);
    std::printf("[%s] after %d steps %-10s rel err %.3e%s\n", dtype_label(), fx_.n_steps, name(pi),
                e, pi == static_cast<int>(gpt::Param::qkv_b) ? " (without the key bias)" : "");
    EXPECT_LT(e, tol.final_params) << name(pi) << " after " << fx_.n_steps << " AdamW steps";
  }
}

INSTANTIATE_TEST_SUITE_P(Cpu, ReferenceTest, ::testing::Values("f32", "f64"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
