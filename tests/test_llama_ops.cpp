// Tests of the CPU kernels of the Llama family's ops (kernels/rmsnorm with QK-norm, rope, swiglu,
// grouped-query attention), in the manner
// of tests/test_kernels.cpp: forwards against formulas written out here, backwards against central
// finite differences in double through L = sum(out · R), outputs poisoned with NaN, accumulating
// gradients pre-filled, reductions bitwise identical for any thread count.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "engine/safetensors.h"
#include "kernels/attention.h"
#include "kernels/residual.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"
#include "tests/numeric_check.h"

namespace gpt::cpu {
namespace {

using namespace gpt::numeric_check;

// ------------------------------------------------------------------------------------------------
// RMSNorm

TEST(RmsNorm, ForwardMatchesFormula) {
  std::mt19937_64 rng(41);
  const int N = 5, C = 37;
  const double eps = 1e-6;
  const Vec x = random_vector(static_cast<size_t>(N) * C, rng, -2.0, 3.0);
  const Vec w = random_vector(C, rng, 0.5, 1.5);
  Vec ref(x.size()), ref_rstd(N);
  for (int i = 0; i < N; ++i) {  // out = x / sqrt(mean(x²) + eps) · w
    double ms = 0.0;
    for (int c = 0; c < C; ++c) ms += x[i * C + c] * x[i * C + c] / C;
    ref_rstd[i] = 1.0 / std::sqrt(ms + eps);
    for (int c = 0; c < C; ++c) ref[i * C + c] = x[i * C + c] / std::sqrt(ms + eps) * w[c];
  }
  Vec out(x.size(), kNaN), rstd(N, kNaN);
  rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), N, C, eps);
  EXPECT_LT(rel_error(out, ref), kDoubleTol);
  EXPECT_LT(rel_error(rstd, ref_rstd), kDoubleTol);

  const std::vector<float> xf = to_float(x), wf = to_float(w);
  std::vector<float> outf(x.size(), NAN), rstdf(N, NAN);
  rmsnorm_forward(outf.data(), rstdf.data(), xf.data(), wf.data(), N, C, eps);
  EXPECT_LT(rel_error(outf, ref), kFloatTol);
  EXPECT_LT(rel_error(rstdf, ref_rstd), kFloatTol);
}

TEST(RmsNorm, BackwardMatchesFiniteDifferences) {
  std::mt19937_64 rng(42);
  const int N = 3, C = 37;  // two full column blocks of the weight reduction and a tail
  const double eps = 1e-5;
  Vec x = random_vector(static_cast<size_t>(N) * C, rng, -2.0, 3.0);
  Vec w = random_vector(C, rng, 0.5, 1.5);
  const Vec R = random_vector(x.size(), rng);
  Vec out(x.size()), rstd(N);
  auto loss = [&] {
    rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), N, C, eps);
    return dot(out, R);
  };
  const Vec num_dx = numeric_gradient(x, loss);
  const Vec num_dw = numeric_gradient(w, loss);
  loss();

  const Vec pre_dx = random_vector(x.size(), rng);  // both accumulate
  const Vec pre_dw = random_vector(C, rng);
  Vec dx = pre_dx, dw = pre_dw;
  rmsnorm_backward(dx.data(), dw.data(), R.data(), x.data(), w.data(), rstd.data(), N, C);
  EXPECT_LT(rel_error(minus(dx, pre_dx), num_dx), kGradTol);
  EXPECT_LT(rel_error(minus(dw, pre_dw), num_dw), kGradTol);

  Vec dx2 = pre_dx, dw2 = pre_dw;  // either may be skipped; the other is unchanged
  rmsnorm_backward(dx2.data(), static_cast<double*>(nullptr), R.data(), x.data(), w.data(),
                   rstd.data(), N, C);
  rmsnorm_backward(static_cast<double*>(nullptr), dw2.data(), R.data(), x.data(), w.data(),
                   rstd.data(), N, C);
  EXPECT_TRUE(same_bits(dx2, dx));
  EXPECT_TRUE(same_bits(dw2, dw));
}

TEST(RmsNorm, WeightGradientSameBitsForAnyThreadCount) {
  std::mt19937_64 rng(43);
  const int N = 301, C = 70;
  const std::vector<float> x = to_float(random_vector(static_cast<size_t>(N) * C, rng));
  const std::vector<float> w = to_float(random_vector(C, rng));
  const std::vector<float> dout = to_float(random_vector(x.size(), rng));
  std::vector<float> out(x.size()), rstd(N);
  rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), N, C, 1e-5);
  std::vector<std::vector<float>> results;
  const int saved = omp_get_max_threads();
  for (int threads : {1, 2, 3}) {
    omp_set_num_threads(threads);
    std::vector<float> dx(x.size(), 0.0f), dw(C, 0.0f);
    rmsnorm_backward(dx.data(), dw.data(), dout.data(), x.data(), w.data(), rstd.data(), N, C);
    dx.insert(dx.end(), dw.begin(), dw.end());
    results.push_back(dx);
  }
  omp_set_num_threads(saved);
  EXPECT_TRUE(same_bits(results[0], results[1]));
  EXPECT_TRUE(same_bits(results[0], results[2]));
}

// The residual add fused into RMSNorm: the same bits as the add followed by the norm (the sum is
// rounded to F before it is normalised), written to a separate sum and in place over a.
template <typename F>
void check_residual_rmsnorm_matches_unfused(uint64_t seed) {
  std::mt19937_64 rng(seed);
  const int N = 7, C = 45;
  const size_t n = static_cast<size_t>(N) * C;
  const double eps = 1e-5;
  auto vec = [&](size_t size, double lo, double hi) {
    const Vec v = random_vector(size, rng, lo, hi);
    return std::vector<F>(v.begin(), v.end());
  };
  const std::vector<F> a = vec(n, -2.0, 2.0), b = vec(n, -1.0, 1.0), w = vec(C, 0.5, 1.5);
  const F nan = std::numeric_limits<F>::quiet_NaN();

  std::vector<F> ref_sum(n, nan), ref_out(n, nan), ref_rstd(N, nan);
  residual_forward(ref_sum.data(), a.data(), b.data(), n);
  rmsnorm_forward(ref_out.data(), ref_rstd.data(), ref_sum.data(), w.data(), N, C, eps);

  std::vector<F> sum(n, nan), out(n, nan), rstd(N, nan);
  residual_rmsnorm_forward(sum.data(), out.data(), rstd.data(), a.data(), b.data(), w.data(), N, C,
                           eps);
  EXPECT_TRUE(same_bits(sum, ref_sum));
  EXPECT_TRUE(same_bits(out, ref_out));
  EXPECT_TRUE(same_bits(rstd, ref_rstd));

  std::vector<F> stream = a, out2(n, nan), rstd2(N, nan);  // sum aliasing a
  residual_rmsnorm_forward(stream.data(), out2.data(), rstd2.data(), stream.data(), b.data(),
                           w.data(), N, C, eps);
  EXPECT_TRUE(same_bits(stream, ref_sum));
  EXPECT_TRUE(same_bits(out2, ref_out));
  EXPECT_TRUE(same_bits(rstd2, ref_rstd));
}

TEST(ResidualRmsNorm, SameBitsAsResidualThenRmsNorm) {
  check_residual_rmsnorm_matches_unfused<float>(44);
  check_residual_rmsnorm_matches_unfused<double>(45);
}

// ------------------------------------------------------------------------------------------------
// QK-norm

// Token rows of qkv: n_head query heads, n_kv_head key and n_kv_head value heads of head_dim.
struct QkCase {
  int N, n_head, n_kv_head, head_dim;
  int heads() const { return n_head + 2 * n_kv_head; }
  size_t size() const { return static_cast<size_t>(N) * heads() * head_dim; }
  size_t stats() const { return static_cast<size_t>(N) * (n_head + n_kv_head); }
};

// The value heads of every token row of x.
Vec value_heads(const Vec& x, const QkCase& k) {
  const size_t row = static_cast<size_t>(k.heads()) * k.head_dim;
  const size_t v = static_cast<size_t>(k.n_head + k.n_kv_head) * k.head_dim;
  Vec out;
  for (int t = 0; t < k.N; ++t)
    out.insert(out.end(), x.begin() + t * row + v, x.begin() + (t + 1) * row);
  return out;
}

// Hugging Face's Qwen3RMSNorm applied to q.view(..., HD) and k.view(..., HD), written out.
Vec qk_norm_reference(const Vec& x, const Vec& qw, const Vec& kw, const QkCase& k, double eps,
                      Vec* rstd) {
  Vec y = x;  // the value heads stay as they are
  for (int t = 0; t < k.N; ++t)
    for (int h = 0; h < k.n_head + k.n_kv_head; ++h) {
      const size_t base = (static_cast<size_t>(t) * k.heads() + h) * k.head_dim;
      const Vec& w = h < k.n_head ? qw : kw;
      double ms = 0.0;
      for (int d = 0; d < k.head_dim; ++d) ms += x[base + d] * x[base + d] / k.head_dim;
      for (int d = 0; d < k.head_dim; ++d) y[base + d] = x[base + d] / std::sqrt(ms + eps) * w[d];
      (*rstd)[static_cast<size_t>(t) * (k.n_head + k.n_kv_head) + h] = 1.0 / std::sqrt(ms + eps);
    }
  return y;
}

TEST(QkNorm, ForwardMatchesFormula) {
  std::mt19937_64 rng(50);
  // GQA ratio 3 with an odd head_dim, and multi-query.
  for (const QkCase& k : {QkCase{5, 6, 2, 7}, QkCase{3, 4, 1, 8}}) {
    const double eps = 1e-6;
    const Vec x = random_vector(k.size(), rng, -2.0, 3.0);
    const Vec qw = random_vector(k.head_dim, rng, 0.5, 1.5);
    const Vec kw = random_vector(k.head_dim, rng, 0.5, 1.5);
    Vec ref_rstd(k.stats());
    const Vec ref = qk_norm_reference(x, qw, kw, k, eps, &ref_rstd);
    Vec out(x.size(), kNaN), rstd(k.stats(), kNaN);
    qk_norm_forward(out.data(), rstd.data(), x.data(), qw.data(), kw.data(), k.N, k.n_head,
                    k.n_kv_head, k.head_dim, eps);
    EXPECT_LT(rel_error(out, ref), kDoubleTol);
    EXPECT_LT(rel_error(rstd, ref_rstd), kDoubleTol);
    EXPECT_TRUE(same_bits(value_heads(out, k), value_heads(x, k)));

    const std::vector<float> xf = to_float(x);
    std::vector<float> outf(x.size(), NAN), rstdf(k.stats(), NAN);
    qk_norm_forward(outf.data(), rstdf.data(), xf.data(), to_float(qw).data(), to_float(kw).data(),
                    k.N, k.n_head, k.n_kv_head, k.head_dim, eps);
    EXPECT_LT(rel_error(outf, ref), kFloatTol);
    EXPECT_LT(rel_error(rstdf, ref_rstd), kFloatTol);
  }
}

TEST(QkNorm, BackwardMatchesFiniteDifferencesAndMayRunInPlace) {
  std::mt19937_64 rng(51);
  const QkCase k{3, 3, 1, 18};  // head_dim: a full column block of the weight reduction and a tail
  const double eps = 1e-5;
  Vec x = random_vector(k.size(), rng, -2.0, 3.0);
  Vec qw = random_vector(k.head_dim, rng, 0.5, 1.5);
  Vec kw = random_vector(k.head_dim, rng, 0.5, 1.5);
  const Vec R = random_vector(x.size(), rng);
  Vec out(x.size()), rstd(k.stats());
  auto loss = [&] {
    qk_norm_forward(out.data(), rstd.data(), x.data(), qw.data(), kw.data(), k.N, k.n_head,
                    k.n_kv_head, k.head_dim, eps);
    return dot(out, R);
  };
  const Vec num_dx = numeric_gradient(x, loss);
  const Vec num_dqw = numeric_gradient(qw, loss);
  const Vec num_dkw = numeric_gradient(kw, loss);
  loss();

  const Vec pre_dqw = random_vector(k.head_dim, rng);  // the weight gradients accumulate
  const Vec pre_dkw = random_vector(k.head_dim, rng);
  Vec dx(x.size(), kNaN), dqw = pre_dqw, dkw = pre_dkw;  // dinp is overwritten
  qk_norm_backward(dx.data(), dqw.data(), dkw.data(), R.data(), x.data(), qw.data(), kw.data(),
                   rstd.data(), k.N, k.n_head, k.n_kv_head, k.head_dim);
  EXPECT_LT(rel_error(dx, num_dx), kGradTol);
  EXPECT_LT(rel_error(minus(dqw, pre_dqw), num_dqw), kGradTol);
  EXPECT_LT(rel_error(minus(dkw, pre_dkw), num_dkw), kGradTol);

  // dinp aliasing dout, the weights frozen: the same dinp, bit for bit.
  Vec in_place = R;
  qk_norm_backward(in_place.data(), static_cast<double*>(nullptr), static_cast<double*>(nullptr),
                   in_place.data(), x.data(), qw.data(), kw.data(), rstd.data(), k.N, k.n_head,
                   k.n_kv_head, k.head_dim);
  EXPECT_TRUE(same_bits(in_place, dx));
  // In place with the weight gradients: they see dout, not the overwritten rows.
  Vec dqw2 = pre_dqw, dkw2 = pre_dkw;
  in_place = R;
  qk_norm_backward(in_place.data(), dqw2.data(), dkw2.data(), in_place.data(), x.data(), qw.data(),
                   kw.data(), rstd.data(), k.N, k.n_head, k.n_kv_head, k.head_dim);
  EXPECT_TRUE(same_bits(in_place, dx));
  EXPECT_TRUE(same_bits(dqw2, dqw));
  EXPECT_TRUE(same_bits(dkw2, dkw));
}

TEST(QkNorm, WeightGradientsSameBitsForAnyThreadCount) {
  std::mt19937_64 rng(52);
  const QkCase k{67, 6, 2, 40};
  const std::vector<float> x = to_float(random_vector(k.size(), rng));
  const std::vector<float> qw = to_float(random_vector(k.head_dim, rng));
  const std::vector<float> kw = to_float(random_vector(k.head_dim, rng));
  const std::vector<float> dout = to_float(random_vector(x.size(), rng));
  std::vector<float> out(x.size()), rstd(k.stats());
  qk_norm_forward(out.data(), rstd.data(), x.data(), qw.data(), kw.data(), k.N, k.n_head,
                  k.n_kv_head, k.head_dim, 1e-6);
  std::vector<std::vector<float>> results;
  const int saved = omp_get_max_threads();
  for (int threads : {1, 2, 3}) {
    omp_set_num_threads(threads);
    std::vector<float> dx(x.size()), dqw(k.head_dim, 0.0f), dkw(k.head_dim, 0.0f);
    qk_norm_backward(dx.data(), dqw.data(), dkw.data(), dout.data(), x.data(), qw.data(), kw.data(),
                     rstd.data(), k.N, k.n_head, k.n_kv_head, k.head_dim);
    dx.insert(dx.end(), dqw.begin(), dqw.end());
    dx.insert(dx.end(), dkw.begin(), dkw.end());
    results.push_back(dx);
  }
  omp_set_num_threads(saved);
  EXPECT_TRUE(same_bits(results[0], results[1]));
  EXPECT_TRUE(same_bits(results[0], results[2]));
}

// ------------------------------------------------------------------------------------------------
// RoPE

// Hugging Face's formulation written out: emb = cat(freqs, freqs), y = x · cos(emb) +
// rotate_half(x) · sin(emb) with rotate_half(x) = cat(-x2, x1).
Vec rope_reference(const Vec& x, const std::vector<double>& inv_freq, int B, int T, int n_heads,
                   int D, int stride, int pos0) {
  Vec y = x;
  for (int r = 0; r < B * T; ++r) {
    const int p = pos0 + r % T;
    for (int h = 0; h < n_heads; ++h) {
      const size_t base = static_cast<size_t>(r) * stride + static_cast<size_t>(h) * D;
      for (int d = 0; d < D; ++d) {
        const double angle = p * inv_freq[d % (D / 2)];
        const double rotated = d < D / 2 ? -x[base + d + D / 2] : x[base + d - D / 2];
        y[base + d] = x[base + d] * std::cos(angle) + rotated * std::sin(angle);
      }
    }
  }
  return y;
}

struct RopeCase {
  int B = 2, T = 5, n_heads = 3, D = 6, stride = 3 * 6 + 2 * 6, pos0 = 0;
};

TEST(Rope, ForwardMatchesRotateHalfFormula) {
  std::mt19937_64 rng(44);
  for (const RopeCase& k : {RopeCase{}, RopeCase{1, 3, 2, 8, 24, 7}}) {
    const double theta = 10000.0;
    const int max_T = k.pos0 + k.T;
    const std::vector<double> inv_freq = rope_inverse_frequencies(k.D, theta, {});
    for (int i = 0; i < k.D / 2; ++i)
      EXPECT_DOUBLE_EQ(inv_freq[i], std::pow(theta, -2.0 * i / k.D));
    Vec cos(static_cast<size_t>(max_T) * k.D / 2), sin(cos.size());
    rope_table(cos.data(), sin.data(), max_T, k.D, theta, {});
    const Vec x = random_vector(static_cast<size_t>(k.B) * k.T * k.stride, rng);
    const Vec ref = rope_reference(x, inv_freq, k.B, k.T, k.n_heads, k.D, k.stride, k.pos0);
    Vec y = x;
    rope_forward(y.data(), cos.data(), sin.data(), k.B, k.T, k.n_heads, k.D, k.stride, k.pos0);
    EXPECT_LT(rel_error(y, ref), kDoubleTol);
    for (int r = 0; r < k.B * k.T; ++r)  // the value heads are untouched
      for (int c = k.n_heads * k.D; c < k.stride; ++c)
        EXPECT_EQ(y[static_cast<size_t>(r) * k.stride + c],
                  x[static_cast<size_t>(r) * k.stride + c]);
  }
}

TEST(Rope, BackwardMatchesFiniteDifferences) {
  std::mt19937_64 rng(45);
  const RopeCase k{2, 4, 3, 10, 3 * 10 + 10, 2};
  const int max_T = k.pos0 + k.T;
  Vec cos(static_cast<size_t>(max_T) * k.D / 2), sin(cos.size());
  rope_table(cos.data(), sin.data(), max_T, k.D, 500.0, {});
  Vec x = random_vector(static_cast<size_t>(k.B) * k.T * k.stride, rng);
  const Vec R = random_vector(x.size(), rng);
  Vec y;
  auto loss = [&] {
    y = x;
    rope_forward(y.data(), cos.data(), sin.data(), k.B, k.T, k.n_heads, k.D, k.stride, k.pos0);
    return dot(y, R);
  };
  const Vec num_dx = numeric_gradient(x, loss);
  Vec dx = R;  // in place, overwritten
  rope_backward(dx.data(), cos.data(), sin.data(), k.B, k.T, k.n_heads, k.D, k.stride, k.pos0);
  EXPECT_LT(rel_error(dx, num_dx), kGradTol);
}

// Llama 3's scaling, by its defining properties rather than by its formula: wavelengths shorter
// than original_context / high_freq_factor keep their frequency, those longer than
// original_context / low_freq_factor are divided by factor, and the blend in between moves
// monotonically from one to the other.
TEST(Rope, Llama3ScalingKeepsHighDividesLowBlendsBetween) {
  const double kPi = 3.14159265358979323846;
  const RopeScaling scaling{8.0, 1.0, 4.0, 64};  // λ_high = 16, λ_low = 64
  const int D = 64;
  const double theta = 10000.0;
  const std::vector<double> plain = rope_inverse_frequencies(D, theta, {});
  const std::vector<double> scaled = rope_inverse_frequencies(D, theta, scaling);
  int kept = 0, divided = 0, blended = 0;
  double previous_ratio = 1.0;
  for (int i = 0; i < D / 2; ++i) {
    const double wavelength = 2 * kPi / plain[i];
    const double ratio = scaled[i] / plain[i];
    if (wavelength < 16.0) {
      EXPECT_EQ(scaled[i], plain[i]) << i;
      ++kept;
    } else if (wavelength > 64.0) {
      EXPECT_NEAR(ratio, 1.0 / 8.0, 1e-15) << i;
      ++divided;
    } else {
      EXPECT_LE(ratio, 1.0) << i;
      EXPECT_GE(ratio, 1.0 / 8.0) << i;
      ++blended;
    }
    EXPECT_LE(ratio, previous_ratio + 1e-15) << i;  // longer wavelengths: never less scaled
    previous_ratio = ratio;
  }
  EXPECT_GT(kept, 0);
  EXPECT_GT(divided, 0);
  EXPECT_GT(blended, 0);
  EXPECT_THROW(rope_inverse_frequencies(7, theta, {}), std::invalid_argument);
}

// The inverse frequencies against what transformers' rope initialisation computed for the
// fixtures' configs (tests/reference/make_llama_reference.py): plain rope at thetas 1e5 and 1e6,
// head sizes 8 and 12, and Llama 3's scaling with all three bands.
TEST(Rope, InverseFrequenciesMatchTransformers) {
  for (const char* name :
       {"llama_gqa3_llama3rope", "qwen2_mqa_bias_untied", "qwen3_qknorm_headdim"}) {
    const std::string dir = std::string(GPT_SOURCE_DIR) + "/tests/fixtures/llama_ref/" + name;
    std::ifstream in(dir + "/config.json");
    ASSERT_TRUE(in) << dir;
    const nlohmann::json config = nlohmann::json::parse(in);
    const int head_dim =
        config.contains("head_dim") && !config["head_dim"].is_null()
            ? config["head_dim"].get<int>()
            : config["hidden_size"].get<int>() / config["num_attention_heads"].get<int>();
    const nlohmann::json& rope = config["rope_parameters"];
    RopeScaling scaling;
    if (rope.value("rope_type", "default") == "llama3") {
      scaling.factor = rope["factor"].get<double>();
      scaling.low_freq_factor = rope["low_freq_factor"].get<double>();
      scaling.high_freq_factor = rope["high_freq_factor"].get<double>();
      scaling.original_context = rope["original_max_position_embeddings"].get<int>();
    }
    const std::vector<double> ours =
        rope_inverse_frequencies(head_dim, rope["rope_theta"].get<double>(), scaling);
    const SafeTensorsFile reference = read_safetensors(dir + "/reference.safetensors");
    const std::vector<float> theirs = tensor_as_f32(*reference.find("inv_freq"), "inv_freq");
    ASSERT_EQ(ours.size(), theirs.size()) << name;
    for (size_t i = 0; i < ours.size(); ++i)  // transformers computes them in float32
      EXPECT_NEAR(ours[i], theirs[i], 2e-7 * std::abs(ours[i])) << name << " i " << i;
  }
}

// ------------------------------------------------------------------------------------------------
// Grouped-query attention

// The formula written out, in double: query head h of row t attends key/value head h / group of
// rows 0..t.
Vec gqa_reference(const Vec& qkv, const AttentionShape& a) {
  const int W = a.row_width(), HS = a.head_size, group = a.n_head / a.n_kv_head;
  Vec out(static_cast<size_t>(a.B) * a.T * a.n_head * HS);
  for (int b = 0; b < a.B; ++b)
    for (int h = 0; h < a.n_head; ++h)
      for (int t = 0; t < a.T; ++t) {
        const double* q = &qkv[(static_cast<size_t>(b) * a.T + t) * W + h * HS];
        std::vector<double> s(t + 1);
        double max_s = -1e300, sum = 0.0;
        for (int u = 0; u <= t; ++u) {
          const double* k = &qkv[(static_cast<size_t>(b) * a.T + u) * W + a.key_offset(h / group)];
          double dot_qk = 0.0;
          for (int i = 0; i < HS; ++i) dot_qk += q[i] * k[i];
          s[u] = dot_qk / std::sqrt(static_cast<double>(HS));
          max_s = std::max(max_s, s[u]);
        }
        for (int u = 0; u <= t; ++u) sum += (s[u] = std::exp(s[u] - max_s));
        for (int i = 0; i < HS; ++i) {
          double acc = 0.0;
          for (int u = 0; u <= t; ++u)
            acc += s[u] / sum *
                   qkv[(static_cast<size_t>(b) * a.T + u) * W + a.value_offset(h / group) + i];
          out[(static_cast<size_t>(b) * a.T + t) * a.n_head * HS + h * HS + i] = acc;
        }
      }
  return out;
}

TEST(GroupedQueryAttention, ForwardMatchesFormulaAndDecodeMatchesForward) {
  std::mt19937_64 rng(48);
  // GQA ratio 3, multi-query, and plain multi-head; head sizes unlike anything else's.
  for (const AttentionShape& a : {AttentionShape{2, 7, 6, 2, 5}, AttentionShape{1, 9, 4, 1, 6},
                                  AttentionShape{2, 5, 3, 3, 4}}) {
    const Vec qkv = random_vector(static_cast<size_t>(a.B) * a.T * a.row_width(), rng, -2.0, 2.0);
    const Vec ref = gqa_reference(qkv, a);
    Vec out(ref.size(), kNaN), lse(static_cast<size_t>(a.B) * a.n_head * a.T, kNaN);
    attention_forward(out.data(), lse.data(), qkv.data(), a);
    EXPECT_LT(rel_error(out, ref), kDoubleTol) << a.n_head << ":" << a.n_kv_head;
    // Decoding the last position (its query read in place from the qkv rows, T rows apart)
    // against a cache of the rows' key and value heads gives the forward's last row.
    const size_t W = a.row_width(), kv_width = W - static_cast<size_t>(a.n_head) * a.head_size;
    Vec cache;
    for (size_t r = 0; r < static_cast<size_t>(a.B) * a.T; ++r)
      cache.insert(cache.end(), qkv.begin() + r * W + (W - kv_width), qkv.begin() + (r + 1) * W);
    Vec decoded(static_cast<size_t>(a.B) * a.n_head * a.head_size, kNaN);
    attention_decode(decoded.data(), qkv.data() + (a.T - 1) * W, a.T * static_cast<int>(W),
                     cache.data(), a.T, a.T - 1, a);
    Vec last;
    for (int b = 0; b < a.B; ++b) {
      const size_t row = (static_cast<size_t>(b) * a.T + a.T - 1) * a.n_head * a.head_size;
      last.insert(last.end(), ref.begin() + row, ref.begin() + row + a.n_head * a.head_size);
    }
    EXPECT_LT(rel_error(decoded, last), kDoubleTol) << a.n_head << ":" << a.n_kv_head;
  }
}

TEST(GroupedQueryAttention, BackwardMatchesFiniteDifferences) {
  std::mt19937_64 rng(49);
  const AttentionShape a{2, 6, 4, 2, 3};
  Vec qkv = random_vector(static_cast<size_t>(a.B) * a.T * a.row_width(), rng, -1.5, 1.5);
  const size_t out_size = static_cast<size_t>(a.B) * a.T * a.n_head * a.head_size;
  const Vec R = random_vector(out_size, rng);
  Vec out(out_size), lse(static_cast<size_t>(a.B) * a.n_head * a.T);
  auto loss = [&] {
    attention_forward(out.data(), lse.data(), qkv.data(), a);
    return dot(out, R);
  };
  const Vec num = numeric_gradient(qkv, loss);
  loss();
  Vec dqkv(qkv.size(), kNaN);  // overwritten, every element (q, k and v columns)
  attention_backward(dqkv.data(), R.data(), qkv.data(), out.data(), lse.data(), a);
  EXPECT_LT(rel_error(dqkv, num), kGradTol);
}

// ------------------------------------------------------------------------------------------------
// SwiGLU

TEST(SwiGlu, ForwardMatchesFormula) {
  std::mt19937_64 rng(46);
  const int N = 4, H = 13;
  const Vec x = random_vector(static_cast<size_t>(N) * 2 * H, rng, -6.0, 6.0);
  Vec ref(static_cast<size_t>(N) * H);
  for (int n = 0; n < N; ++n)
    for (int j = 0; j < H; ++j) {
      const double g = x[n * 2 * H + j], u = x[n * 2 * H + H + j];
      ref[n * H + j] = g / (1.0 + std::exp(-g)) * u;
    }
  Vec out(ref.size(), kNaN);
  swiglu_forward(out.data(), x.data(), N, H);
  EXPECT_LT(rel_error(out, ref), kDoubleTol);
  std::vector<float> outf(ref.size(), NAN);
  swiglu_forward(outf.data(), to_float(x).data(), N, H);
  EXPECT_LT(rel_error(outf, ref), kFloatTol);

  // Very negative gates: exp overflows, σ is 0, no NaN.
  const std::vector<float> extreme = {-1000.0f, 3.0f};
  std::vector<float> y(1, NAN), dx(2, NAN);
  const std::vector<float> dy = {1.0f};
  swiglu_forward(y.data(), extreme.data(), 1, 1);
  swiglu_backward(dx.data(), extreme.data(), dy.data(), 1, 1);
  EXPECT_EQ(y[0], 0.0f);
  EXPECT_FALSE(std::isnan(dx[0]));
  EXPECT_FALSE(std::isnan(dx[1]));
}

TEST(SwiGlu, BackwardMatchesFiniteDifferencesAndMayRunInPlace) {
  std::mt19937_64 rng(47);
  const int N = 3, H = 11;
  Vec x = random_vector(static_cast<size_t>(N) * 2 * H, rng, -4.0, 4.0);
  const Vec R = random_vector(static_cast<size_t>(N) * H, rng);
  Vec out(R.size());
  auto loss = [&] {
    swiglu_forward(out.data(), x.data(), N, H);
    return dot(out, R);
  };
  const Vec num_dx = numeric_gradient(x, loss);
  Vec dx(x.size(), kNaN);  // overwritten
  swiglu_backward(dx.data(), x.data(), R.data(), N, H);
  EXPECT_LT(rel_error(dx, num_dx), kGradTol);
  Vec in_place = x;  // dinp may alias inp
  swiglu_backward(in_place.data(), in_place.data(), R.data(), N, H);
  EXPECT_TRUE(same_bits(in_place, dx));
}

}  // namespace
}  // namespace gpt::cpu
