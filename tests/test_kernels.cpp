// Tests of the CPU reference kernels (kernels/*.cpp).
//
// Every backward is checked against central finite differences in double on tiny random shapes,
// through the scalar loss L = sum(out · R) with a random R (so dL/dout = R is what the backward
// receives). Forwards are checked against naive formulas written out here, independently of the
// kernels. Outputs are poisoned with NaN before a kernel runs, and gradients that accumulate are
// pre-filled with random values, so an element left unwritten, or overwritten instead of added to,
// fails. The determinism test runs the reductions with 1, 2 and 3 OpenMP threads and asks for
// identical bits.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/adamw.h"
#include "kernels/attention.h"
#include "kernels/cpu_fast_math.h"
#include "kernels/crossentropy.h"
#include "kernels/encoder.h"
#include "kernels/gelu.h"
#include "kernels/global_norm.h"
#include "kernels/layernorm.h"
#include "kernels/matmul.h"
#include "kernels/residual.h"
#include "kernels/stochastic_rounding.h"
#include "tests/numeric_check.h"

namespace gpt::cpu {
namespace {

using namespace gpt::numeric_check;  // Vec, rel_error, numeric_gradient, ...

// ------------------------------------------------------------------------------------------------
// encoder

TEST(Encoder, ForwardMatchesLookup) {
  std::mt19937_64 rng(1);
  const int B = 2, T = 3, C = 5, V = 6, maxT = 4;
  const std::vector<int32_t> tokens = {4, 1, 4, 0, 5, 1};
  const Vec wte = random_vector(static_cast<size_t>(V) * C, rng);
  const Vec wpe = random_vector(static_cast<size_t>(maxT) * C, rng);
  Vec out(static_cast<size_t>(B) * T * C, kNaN);
  encoder_forward(out.data(), tokens.data(), wte.data(), wpe.data(), B, T, C);
  Vec ref(out.size());
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t)
      for (int c = 0; c < C; ++c)
        ref[(b * T + t) * C + c] = wte[tokens[b * T + t] * C + c] + wpe[t * C + c];
  EXPECT_EQ(rel_error(out, ref), 0.0);
}

TEST(Encoder, BackwardMatchesFiniteDifferences) {
  std::mt19937_64 rng(2);
  const int B = 2, T = 4, C = 19, V = 7, maxT = 5;
  // Token 3 appears three times (two rows of dwte collide within a batch and across batches);
  // tokens 0, 4 and 6 never appear, so their rows of dwte must stay untouched.
  const std::vector<int32_t> tokens = {3, 1, 3, 5, 2, 3, 1, 5};
  Vec wte = random_vector(static_cast<size_t>(V) * C, rng);
  Vec wpe = random_vector(static_cast<size_t>(maxT) * C, rng);
  const Vec R = random_vector(static_cast<size_t>(B) * T * C, rng);
  Vec out(R.size());
  auto loss = [&] {
    encoder_forward(out.data(), tokens.data(), wte.data(), wpe.data(), B, T, C);
    return dot(out, R);
  };
  const Vec num_dwte = numeric_gradient(wte, loss);
  const Vec num_dwpe = numeric_gradient(wpe, loss);

  const Vec pre_dwte = random_vector(wte.size(), rng);  // gradients accumulate: +=
  const Vec pre_dwpe = random_vector(wpe.size(), rng);
  Vec dwte = pre_dwte;
  Vec dwpe = pre_dwpe;
  encoder_backward(dwte.data(), dwpe.data(), R.data(), tokens.data(), B, T, C);
  EXPECT_LT(rel_error(minus(dwte, pre_dwte), num_dwte), kGradTol);
  EXPECT_LT(rel_error(minus(dwpe, pre_dwpe), num_dwpe), kGradTol);
  for (int c = 0; c < C; ++c) {  // position maxT-1 is beyond T: untouched
    EXPECT_EQ(dwpe[(maxT - 1) * C + c], pre_dwpe[(maxT - 1) * C + c]);
  }

  // Either gradient may be skipped; the other is unchanged.
  Vec dwte_only = pre_dwte;
  encoder_backward(dwte_only.data(), static_cast<double*>(nullptr), R.data(), tokens.data(), B, T,
                   C);
  EXPECT_TRUE(same_bits(dwte_only, dwte));
  Vec dwpe_only = pre_dwpe;
  encoder_backward(static_cast<double*>(nullptr), dwpe_only.data(), R.data(), tokens.data(), B, T,
                   C);
  EXPECT_TRUE(same_bits(dwpe_only, dwpe));
}

// ------------------------------------------------------------------------------------------------
// layernorm

// Direct formula: out = (x - mean) / sqrt(var + eps) · w + b, biased variance.
void layernorm_reference(Vec& out, Vec& mean, Vec& rstd, const Vec& x, const Vec& w, const Vec& b,
                         int N, int C) {
  for (int i = 0; i < N; ++i) {
    double m = 0.0;
    for (int c = 0; c < C; ++c) m += x[i * C + c];
    m /= C;
    double var = 0.0;
    for (int c = 0; c < C; ++c) var += (x[i * C + c] - m) * (x[i * C + c] - m);
    var /= C;
    mean[i] = m;
    rstd[i] = 1.0 / std::sqrt(var + 1e-5);
    for (int c = 0; c < C; ++c) out[i * C + c] = (x[i * C + c] - m) * rstd[i] * w[c] + b[c];
  }
}

TEST(LayerNorm, ForwardMatchesFormula) {
  std::mt19937_64 rng(3);
  const int N = 4, C = 37;
  const Vec x = random_vector(static_cast<size_t>(N) * C, rng, -2.0, 3.0);
  const Vec w = random_vector(C, rng);
  const Vec b = random_vector(C, rng);
  Vec ref(x.size()), ref_mean(N), ref_rstd(N);
  layernorm_reference(ref, ref_mean, ref_rstd, x, w, b, N, C);

  Vec out(x.size(), kNaN), mean(N, kNaN), rstd(N, kNaN);
  layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), N, C);
  EXPECT_LT(rel_error(out, ref), kDoubleTol);
  EXPECT_LT(rel_error(mean, ref_mean), kDoubleTol);
  EXPECT_LT(rel_error(rstd, ref_rstd), kDoubleTol);

  const std::vector<float> xf = to_float(x), wf = to_float(w), bf = to_float(b);
  std::vector<float> outf(x.size(), NAN), meanf(N, NAN), rstdf(N, NAN);
  layernorm_forward(outf.data(), meanf.data(), rstdf.data(), xf.data(), wf.data(), bf.data(), N, C);
  EXPECT_LT(rel_error(outf, ref), kFloatTol);
  EXPECT_LT(rel_error(meanf, ref_mean), kFloatTol);
  EXPECT_LT(rel_error(rstdf, ref_rstd), kFloatTol);
}

TEST(LayerNorm, BackwardMatchesFiniteDifferences) {
  std::mt19937_64 rng(4);
  const int N = 3, C = 37;  // C spans two full column blocks of the parameter reduction and a tail
  Vec x = random_vector(static_cast<size_t>(N) * C, rng, -2.0, 3.0);
  Vec w = random_vector(C, rng);
  Vec b = random_vector(C, rng);
  const Vec R = random_vector(x.size(), rng);
  Vec out(x.size()), mean(N), rstd(N);
  auto loss = [&] {
    layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), N, C);
    return dot(out, R);
  };
  const Vec num_dx = numeric_gradient(x, loss);
  const Vec num_dw = numeric_gradient(w, loss);
  const Vec num_db = numeric_gradient(b, loss);
  loss();  // mean and rstd of the unperturbed input

  // Every gradient accumulates (dinp too: it is the residual stream's gradient).
  const Vec pre_dx = random_vector(x.size(), rng);
  const Vec pre_dw = random_vector(C, rng);
  const Vec pre_db = random_vector(C, rng);
  Vec dx = pre_dx, dw = pre_dw, db = pre_db;
  layernorm_backward(dx.data(), dw.data(), db.data(), R.data(), x.data(), w.data(), mean.data(),
                     rstd.data(), N, C);
  EXPECT_LT(rel_error(minus(dx, pre_dx), num_dx), kGradTol);
  EXPECT_LT(rel_error(minus(dw, pre_dw), num_dw), kGradTol);
  EXPECT_LT(rel_error(minus(db, pre_db), num_db), kGradTol);

  // Any gradient may be skipped; the others are unchanged.
  Vec dx2 = pre_dx, dw2 = pre_dw, db2 = pre_db;
  layernorm_backward(dx2.data(), static_cast<double*>(nullptr), static_cast<double*>(nullptr),
                     R.data(), x.data(), w.data(), mean.data(), rstd.data(), N, C);
  layernorm_backward(static_cast<double*>(nullptr), dw2.data(), static_cast<double*>(nullptr),
                     R.data(), x.data(), w.data(), mean.data(), rstd.data(), N, C);
  layernorm_backward(static_cast<double*>(nullptr), static_cast<double*>(nullptr), db2.data(),
                     R.data(), x.data(), w.data(), mean.data(), rstd.data(), N, C);
  EXPECT_TRUE(same_bits(dx2, dx));
  EXPECT_TRUE(same_bits(dw2, dw));
  EXPECT_TRUE(same_bits(db2, db));
}

// ------------------------------------------------------------------------------------------------
// matmul

// out (N,OC) = inp (N,C) · weightᵀ + bias, bias optional.
Vec matmul_reference(const Vec& inp, const Vec& weight, const Vec* bias, int N, int C, int OC) {
  Vec out(static_cast<size_t>(N) * OC);
  for (int n = 0; n < N; ++n)
    for (int o = 0; o < OC; ++o) {
      double s = bias != nullptr ? (*bias)[o] : 0.0;
      for (int c = 0; c < C; ++c) s += inp[n * C + c] * weight[o * C + c];
      out[n * OC + o] = s;
    }
  return out;
}

TEST(Matmul, ForwardMatchesReference) {
  std::mt19937_64 rng(5);
  const int N = 6, C = 19, OC = 17;
  const Vec inp = random_vector(static_cast<size_t>(N) * C, rng);
  const Vec weight = random_vector(static_cast<size_t>(OC) * C, rng);
  const Vec bias = random_vector(OC, rng);
  for (const bool with_bias : {true, false}) {
    SCOPED_TRACE(with_bias ? "with bias" : "without bias");
    const Vec ref = matmul_reference(inp, weight, with_bias ? &bias : nullptr, N, C, OC);
    Vec out(ref.size(), kNaN);
    matmul_forward(out.data(), inp.data(), weight.data(), with_bias ? bias.data() : nullptr, N, C,
                   OC);
    EXPECT_LT(rel_error(out, ref), kDoubleTol);
    // float: CBLAS sgemm where the build has it.
    const std::vector<float> inpf = to_float(inp), weightf = to_float(weight),
                             biasf = to_float(bias);
    std::vector<float> outf(ref.size(), NAN);
    matmul_forward(outf.data(), inpf.data(), weightf.data(), with_bias ? biasf.data() : nullptr, N,
                   C, OC);
    EXPECT_LT(rel_error(outf, ref), kFloatTol);
  }
}

TEST(Matmul, BackwardMatchesFiniteDifferences) {
  std::mt19937_64 rng(6);
  const int N = 3, C = 19, OC = 17;  // C beyond the 8 lanes of the dot product; OC beyond a block
  for (const bool with_bias : {true, false}) {
    SCOPED_TRACE(with_bias ? "with bias" : "without bias");
    Vec inp = random_vector(static_cast<size_t>(N) * C, rng);
    Vec weight = random_vector(static_cast<size_t>(OC) * C, rng);
    Vec bias = random_vector(OC, rng);
    const Vec R = random_vector(static_cast<size_t>(N) * OC, rng);
    Vec out(R.size());
    auto loss = [&] {
      matmul_forward(out.data(), inp.data(), weight.data(), with_bias ? bias.data() : nullptr, N, C,
                     OC);
      return dot(out, R);
    };
    const Vec num_dinp = numeric_gradient(inp, loss);
    const Vec num_dweight = numeric_gradient(weight, loss);
    const Vec num_dbias = numeric_gradient(bias, loss);

    Vec dinp(inp.size(), kNaN);  // overwritten (=)
    const Vec pre_dweight = random_vector(weight.size(), rng);
    const Vec pre_dbias = random_vector(OC, rng);
    Vec dweight = pre_dweight, dbias = pre_dbias;
    matmul_backward(dinp.data(), dweight.data(), with_bias ? dbias.data() : nullptr, R.data(),
                    inp.data(), weight.data(), N, C, OC);
    EXPECT_LT(rel_error(dinp, num_dinp), kGradTol);
    EXPECT_LT(rel_error(minus(dweight, pre_dweight), num_dweight), kGradTol);
    if (with_bias) {
      EXPECT_LT(rel_error(minus(dbias, pre_dbias), num_dbias), kGradTol);
    } else {
      EXPECT_TRUE(same_bits(dbias, pre_dbias));
    }

    // Each gradient may be skipped on its own.
    Vec dinp2(inp.size(), kNaN), dweight2 = pre_dweight, dbias2 = pre_dbias;
    matmul_backward(dinp2.data(), static_cast<double*>(nullptr), static_cast<double*>(nullptr),
                    R.data(), inp.data(), weight.data(), N, C, OC);
    matmul_backward(static_cast<double*>(nullptr), dweight2.data(), static_cast<double*>(nullptr),
                    R.data(), inp.data(), weight.data(), N, C, OC);
    matmul_backward(static_cast<double*>(nullptr), static_cast<double*>(nullptr),
                    with_bias ? dbias2.data() : nullptr, R.data(), inp.data(), weight.data(), N, C,
                    OC);
    EXPECT_TRUE(same_bits(dinp2, dinp));
    EXPECT_TRUE(same_bits(dweight2, dweight));
    EXPECT_TRUE(same_bits(dbias2, dbias));

    // float (CBLAS where available) against the double gradients.
    const std::vector<float> Rf = to_float(R), inpf = to_float(inp), weightf = to_float(weight);
    std::vector<float> dinpf(inp.size(), NAN), dweightf = to_float(pre_dweight),
                                               dbiasf = to_float(pre_dbias);
    matmul_backward(dinpf.data(), dweightf.data(), with_bias ? dbiasf.data() : nullptr, Rf.data(),
                    inpf.data(), weightf.data(), N, C, OC);
    EXPECT_LT(rel_error(dinpf, dinp), kFloatTol);
    EXPECT_LT(rel_error(dweightf, dweight), kFloatTol);
    EXPECT_LT(rel_error(dbiasf, dbias), kFloatTol);
  }
}

template <typename F>
void check_gemm(Transpose ta, Transpose tb, int M, int N, int K, double alpha, double beta,
                double tol) {
  std::mt19937_64 rng(7);
  // Stored shapes of A and B, with leading dimensions wider than the rows (strided views).
  const int a_rows = ta == Transpose::no ? M : K, a_cols = ta == Transpose::no ? K : M;
  const int b_rows = tb == Transpose::no ? K : N, b_cols = tb == Transpose::no ? N : K;
  const int lda = a_cols + 3, ldb = b_cols + 2, ldc = N + 4;
  const Vec A = random_vector(static_cast<size_t>(a_rows) * lda, rng);
  const Vec Bm = random_vector(static_cast<size_t>(b_rows) * ldb, rng);
  Vec C0 = random_vector(static_cast<size_t>(M) * ldc, rng);
  if (beta == 0.0) {
    for (int i = 0; i < M; ++i)
      for (int j = 0; j < N; ++j) C0[i * ldc + j] = kNaN;  // beta = 0 ignores C, as in BLAS
  }
  auto a_at = [&](int i, int k) { return ta == Transpose::no ? A[i * lda + k] : A[k * lda + i]; };
  auto b_at = [&](int k, int j) { return tb == Transpose::no ? Bm[k * ldb + j] : Bm[j * ldb + k]; };
  Vec ref = C0;  // the padding columns of C must stay untouched
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      double s = 0.0;
      for (int k = 0; k < K; ++k) s += a_at(i, k) * b_at(k, j);
      ref[i * ldc + j] = alpha * s + (beta == 0.0 ? 0.0 : beta * C0[i * ldc + j]);
    }
  const std::vector<F> Af(A.begin(), A.end()), Bf(Bm.begin(), Bm.end());
  std::vector<F> Cf(C0.begin(), C0.end());
  gemm(ta, tb, M, N, K, static_cast<F>(alpha), Af.data(), lda, Bf.data(), ldb, static_cast<F>(beta),
       Cf.data(), ldc);
  // The columns [N, ldc) of C are outside the product and must keep their values.
  Vec body, ref_body;
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < ldc; ++j) {
      if (j < N) {
        body.push_back(Cf[i * ldc + j]);
        ref_body.push_back(ref[i * ldc + j]);
      } else {
        EXPECT_EQ(Cf[i * ldc + j], static_cast<F>(C0[i * ldc + j])) << "padding " << i << "," << j;
      }
    }
  EXPECT_LT(rel_error(body, ref_body), tol);
}

TEST(Matmul, GemmAllTransposesStrided) {
  for (const Transpose ta : {Transpose::no, Transpose::yes})
    for (const Transpose tb : {Transpose::no, Transpose::yes})
      for (const double beta : {0.0, 1.0, 0.3}) {
        SCOPED_TRACE("trans_a=" + std::to_string(ta == Transpose::yes) + " trans_b=" +
                     std::to_string(tb == Transpose::yes) + " beta=" + std::to_string(beta));
        check_gemm<double>(ta, tb, 5, 7, 11, 0.7, beta, kDoubleTol);
        check_gemm<float>(ta, tb, 5, 7, 11, 0.7, beta, kFloatTol);
        // Large enough for the float path to split C into several blocks, with ragged edges.
        check_gemm<double>(ta, tb, 150, 140, 33, 0.7, beta, kDoubleTol);
        check_gemm<float>(ta, tb, 150, 140, 33, 0.7, beta, kFloatTol);
        // C small next to K: the float path splits K into chunks (8: 7 of 288, the last of 284).
        check_gemm<float>(ta, tb, 9, 13, 2300, 0.7, beta, kFloatTol);
      }
}

// float through CBLAS against plain double loops: at a size where C is split into several blocks,
// and at one where the weight gradient is formed from chunks of rows (N = 1100: two chunks of 512
// rows and a partial one).
TEST(Matmul, FloatLargeMatchesReference) {
  for (const auto& [N, C, OC] : {std::tuple{300, 70, 200}, std::tuple{1100, 48, 40}}) {
    SCOPED_TRACE("N " + std::to_string(N));
    std::mt19937_64 rng(15);
    const Vec inp = random_vector(static_cast<size_t>(N) * C, rng);
    const Vec weight = random_vector(static_cast<size_t>(OC) * C, rng);
    const Vec bias = random_vector(OC, rng);
    const Vec dout = random_vector(static_cast<size_t>(N) * OC, rng);
    const Vec pre_dweight = random_vector(weight.size(), rng);
    const Vec pre_dbias = random_vector(OC, rng);
    const Vec ref_out = matmul_reference(inp, weight, &bias, N, C, OC);
    Vec ref_dinp(inp.size(), 0.0), ref_dweight = pre_dweight, ref_dbias = pre_dbias;
    for (int n = 0; n < N; ++n)
      for (int o = 0; o < OC; ++o) {
        const double g = dout[n * OC + o];
        ref_dbias[o] += g;
        for (int c = 0; c < C; ++c) {
          ref_dinp[n * C + c] += g * weight[o * C + c];
          ref_dweight[o * C + c] += g * inp[n * C + c];
        }
      }

    const std::vector<float> inpf = to_float(inp), weightf = to_float(weight),
                             biasf = to_float(bias), doutf = to_float(dout);
    std::vector<float> out(ref_out.size(), NAN), dinp(inp.size(), NAN),
        dweight = to_float(pre_dweight), dbias = to_float(pre_dbias);
    matmul_forward(out.data(), inpf.data(), weightf.data(), biasf.data(), N, C, OC);
    matmul_backward(dinp.data(), dweight.data(), dbias.data(), doutf.data(), inpf.data(),
                    weightf.data(), N, C, OC);
    EXPECT_LT(rel_error(out, ref_out), kFloatTol);
    EXPECT_LT(rel_error(dinp, ref_dinp), kFloatTol);
    EXPECT_LT(rel_error(dweight, ref_dweight), kFloatTol);
    EXPECT_LT(rel_error(dbias, ref_dbias), kFloatTol);
    // dweight alone and dbias alone: the same bits as together.
    std::vector<float> dweight_alone = to_float(pre_dweight), dbias_alone = to_float(pre_dbias);
    matmul_backward(static_cast<float*>(nullptr), dweight_alone.data(),
                    static_cast<float*>(nullptr), doutf.data(), inpf.data(), weightf.data(), N, C,
                    OC);
    matmul_backward(static_cast<float*>(nullptr), static_cast<float*>(nullptr), dbias_alone.data(),
                    doutf.data(), inpf.data(), weightf.data(), N, C, OC);
    EXPECT_TRUE(same_bits(dweight_alone, dweight));
    EXPECT_TRUE(same_bits(dbias_alone, dbias));
  }
}

TEST(Matmul, DescribesItsBlas) {
  const std::string description = cpu_blas_description();
#ifdef GPT_HAVE_CBLAS
  EXPECT_NE(description.find("OpenBLAS"), std::string::npos) << description;
#else
  EXPECT_NE(description.find("plain loops"), std::string::npos) << description;
#endif
}

// ------------------------------------------------------------------------------------------------
// exp_approx (the vectorisable exp of the CPU kernels)

TEST(ExpApprox, FloatWithinAFewUlpOfExp) {
  double worst = 0.0;
  for (double x = -87.0; x <= 1.0; x += 1.0 / 1024 + 1e-7) {
    const float xf = static_cast<float>(x);
    const double exact = std::exp(static_cast<double>(xf));
    worst = std::max(worst, std::abs(exp_approx(xf) - exact) / exact);
  }
  EXPECT_LT(worst, 3e-7);  // float's epsilon is 1.2e-7
  EXPECT_EQ(exp_approx(0.0f), 1.0f);
  // Far below the range: a tiny positive number, no NaN, no negative value.
  EXPECT_GE(exp_approx(-1000.0f), 0.0f);
  EXPECT_LT(exp_approx(-1000.0f), 1e-37f);
  EXPECT_EQ(exp_approx(-0.5), std::exp(-0.5));  // double: std::exp itself
}

// ------------------------------------------------------------------------------------------------
// GELU and residual

double gelu_reference(double x) {
  const double pi = std::acos(-1.0);
  return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / pi) * (x + 0.044715 * x * x * x)));
}

TEST(Gelu, ForwardMatchesFormula) {
  std::mt19937_64 rng(8);
  const Vec x = random_vector(41, rng, -5.0, 5.0);
  Vec ref(x.size());
  for (size_t i = 0; i < x.size(); ++i) ref[i] = gelu_reference(x[i]);
  Vec out(x.size(), kNaN);
  gelu_forward(out.data(), x.data(), out.size());
  EXPECT_LT(rel_error(out, ref), kDoubleTol);
  const std::vector<float> xf = to_float(x);
  std::vector<float> outf(x.size(), NAN);
  gelu_forward(outf.data(), xf.data(), xf.size());
  EXPECT_LT(rel_error(outf, ref), kFloatTol);
  // gelu_new(1) = 0.5 · (1 + tanh(sqrt(2/π) · 1.044715))
  const Vec one = {1.0};
  Vec gelu_one = {kNaN};
  gelu_forward(gelu_one.data(), one.data(), 1);
  EXPECT_NEAR(gelu_one[0], 0.8411919906082768, 1e-15);
  // Far out on both sides: x itself, or a zero of either sign, never NaN.
  const std::vector<float> far = {-1e4f, -100.0f, 100.0f, 1e4f};
  std::vector<float> far_out(far.size(), NAN);
  gelu_forward(far_out.data(), far.data(), far.size());
  EXPECT_NEAR(far_out[0], 0.0f, 1e-30f);
  EXPECT_NEAR(far_out[1], 0.0f, 1e-30f);
  EXPECT_EQ(far_out[2], 100.0f);
  EXPECT_EQ(far_out[3], 1e4f);
}

TEST(Gelu, BackwardMatchesFiniteDifferences) {
  std::mt19937_64 rng(9);
  Vec x = random_vector(41, rng, -5.0, 5.0);
  const Vec R = random_vector(x.size(), rng);
  Vec out(x.size());
  auto loss = [&] {
    gelu_forward(out.data(), x.data(), x.size());
    return dot(out, R);
  };
  const Vec num_dx = numeric_gradient(x, loss);
  Vec dx(x.size(), kNaN);
  gelu_backward(dx.data(), x.data(), R.data(), x.size());
  EXPECT_LT(rel_error(dx, num_dx), kGradTol);
  Vec in_place = R;  // dinp may alias dout
  gelu_backward(in_place.data(), x.data(), in_place.data(), x.size());
  EXPECT_TRUE(same_bits(in_place, dx));
}

TEST(Residual, AddsAndMayAlias) {
  std::mt19937_64 rng(10);
  const Vec a = random_vector(23, rng), b = random_vector(23, rng);
  Vec ref(a.size());
  for (size_t i = 0; i < a.size(); ++i) ref[i] = a[i] + b[i];
  Vec out(a.size(), kNaN);
  residual_forward(out.data(), a.data(), b.data(), a.size());
  EXPECT_TRUE(same_bits(out, ref));
  Vec in_place = a;
  residual_forward(in_place.data(), in_place.data(), b.data(), a.size());
  EXPECT_TRUE(same_bits(in_place, ref));
}

// ------------------------------------------------------------------------------------------------
// attention

// Direct causal softmax attention, one (b, h, t) at a time.
void attention_reference(Vec& out, Vec& lse, const Vec& qkv, int B, int T, int C, int NH) {
  const int HS = C / NH;
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < NH; ++h)
      for (int t = 0; t < T; ++t) {
        auto at = [&](int tt, int part, int c) {
          return qkv[(static_cast<size_t>(b) * T + tt) * 3 * C + part * C + h * HS + c];
        };
        Vec s(t + 1);
        double max_s = -std::numeric_limits<double>::infinity();
        for (int u = 0; u <= t; ++u) {
          double qk = 0.0;
          for (int c = 0; c < HS; ++c) qk += at(t, 0, c) * at(u, 1, c);
          s[u] = qk / std::sqrt(static_cast<double>(HS));
          max_s = std::max(max_s, s[u]);
        }
        double sum = 0.0;
        for (int u = 0; u <= t; ++u) sum += std::exp(s[u] - max_s);
        lse[(static_cast<size_t>(b) * NH + h) * T + t] = max_s + std::log(sum);
        for (int c = 0; c < HS; ++c) {
          double o = 0.0;
          for (int u = 0; u <= t; ++u) o += std::exp(s[u] - max_s) / sum * at(u, 2, c);
          out[(static_cast<size_t>(b) * T + t) * C + h * HS + c] = o;
        }
      }
}

struct AttentionShape {
  int B, T, NH, HS;
};

class AttentionTest : public ::testing::TestWithParam<AttentionShape> {};

TEST_P(AttentionTest, ForwardMatchesDirectSoftmax) {
  const auto [B, T, NH, HS] = GetParam();
  const int C = NH * HS;
  std::mt19937_64 rng(11 + T);
  const Vec qkv = random_vector(static_cast<size_t>(B) * T * 3 * C, rng, -2.0, 2.0);
  Vec ref(static_cast<size_t>(B) * T * C), ref_lse(static_cast<size_t>(B) * NH * T);
  attention_reference(ref, ref_lse, qkv, B, T, C, NH);

  Vec out(ref.size(), kNaN), lse(ref_lse.size(), kNaN);
  attention_forward(out.data(), lse.data(), qkv.data(), B, T, C, NH);
  EXPECT_LT(rel_error(out, ref), kDoubleTol);
  EXPECT_LT(rel_error(lse, ref_lse), kDoubleTol);

  const std::vector<float> qkvf = to_float(qkv);
  std::vector<float> outf(ref.size(), NAN), lsef(ref_lse.size(), NAN);
  attention_forward(outf.data(), lsef.data(), qkvf.data(), B, T, C, NH);
  EXPECT_LT(rel_error(outf, ref), kFloatTol);
  EXPECT_LT(rel_error(lsef, ref_lse), kFloatTol);
}

TEST_P(AttentionTest, BackwardMatchesFiniteDifferences) {
  const auto [B, T, NH, HS] = GetParam();
  const int C = NH * HS;
  std::mt19937_64 rng(23 + T);
  Vec qkv = random_vector(static_cast<size_t>(B) * T * 3 * C, rng, -2.0, 2.0);
  const Vec R = random_vector(static_cast<size_t>(B) * T * C, rng);
  Vec out(R.size()), lse(static_cast<size_t>(B) * NH * T);
  auto loss = [&] {
    attention_forward(out.data(), lse.data(), qkv.data(), B, T, C, NH);
    return dot(out, R);
  };
  const Vec num_dqkv = numeric_gradient(qkv, loss);
  loss();

  Vec dqkv(qkv.size(), kNaN);  // overwritten (=)
  attention_backward(dqkv.data(), R.data(), qkv.data(), out.data(), lse.data(), B, T, C, NH);
  EXPECT_LT(rel_error(dqkv, num_dqkv), kGradTol);

  // float against the double gradient.
  const std::vector<float> qkvf = to_float(qkv), Rf = to_float(R);
  std::vector<float> outf(out.size()), lsef(lse.size()), dqkvf(qkv.size(), NAN);
  attention_forward(outf.data(), lsef.data(), qkvf.data(), B, T, C, NH);
  attention_backward(dqkvf.data(), Rf.data(), qkvf.data(), outf.data(), lsef.data(), B, T, C, NH);
  EXPECT_LT(rel_error(dqkvf, dqkv), 1e-4);
}

// T = 130 crosses two query tiles of the CPU kernel (64 rows) and ends with a partial one.
INSTANTIATE_TEST_SUITE_P(Shapes, AttentionTest,
                         ::testing::Values(AttentionShape{2, 1, 2, 3}, AttentionShape{2, 5, 2, 3},
                                           AttentionShape{2, 7, 2, 4}, AttentionShape{1, 7, 1, 4},
                                           AttentionShape{1, 130, 1, 2}),
                         [](const ::testing::TestParamInfo<AttentionShape>& info) {
                           const AttentionShape& s = info.param;
                           return "B" + std::to_string(s.B) + "_T" + std::to_string(s.T) + "_NH" +
                                  std::to_string(s.NH) + "_HS" + std::to_string(s.HS);
                         });

// Head sizes of real models (and ones between the vector widths): the CPU kernel's register tiles
// are two vectors of columns (16 floats, 8 doubles), then one vector, then single columns, and
// 6 rows, then fewer, so these cover every tile shape in float and in double. Finite differences
// over every input would be slow at these sizes: the gradient is checked along one random
// direction instead (a central difference of the loss against dqkv · direction), and float against
// double.
class AttentionWideHeadTest : public ::testing::TestWithParam<AttentionShape> {};

TEST_P(AttentionWideHeadTest, ForwardMatchesDirectSoftmaxAndBackwardItsDerivative) {
  const auto [B, T, NH, HS] = GetParam();
  const int C = NH * HS;
  std::mt19937_64 rng(31 + T + HS);
  Vec qkv = random_vector(static_cast<size_t>(B) * T * 3 * C, rng, -1.0, 1.0);
  const Vec R = random_vector(static_cast<size_t>(B) * T * C, rng);
  Vec ref(R.size()), ref_lse(static_cast<size_t>(B) * NH * T);
  attention_reference(ref, ref_lse, qkv, B, T, C, NH);

  Vec out(ref.size(), kNaN), lse(ref_lse.size(), kNaN);
  attention_forward(out.data(), lse.data(), qkv.data(), B, T, C, NH);
  EXPECT_LT(rel_error(out, ref), kDoubleTol);
  EXPECT_LT(rel_error(lse, ref_lse), kDoubleTol);
  const std::vector<float> qkvf = to_float(qkv), Rf = to_float(R);
  std::vector<float> outf(ref.size(), NAN), lsef(ref_lse.size(), NAN);
  attention_forward(outf.data(), lsef.data(), qkvf.data(), B, T, C, NH);
  EXPECT_LT(rel_error(outf, ref), kFloatTol);
  EXPECT_LT(rel_error(lsef, ref_lse), kFloatTol);

  Vec dqkv(qkv.size(), kNaN);
  attention_backward(dqkv.data(), R.data(), qkv.data(), out.data(), lse.data(), B, T, C, NH);
  const Vec direction = random_vector(qkv.size(), rng);
  auto loss_along = [&](double step) {
    Vec moved = qkv;
    for (size_t i = 0; i < moved.size(); ++i) moved[i] += step * direction[i];
    Vec o(R.size()), l(lse.size());
    attention_forward(o.data(), l.data(), moved.data(), B, T, C, NH);
    return dot(o, R);
  };
  const double h = 1e-5;
  const double numeric = (loss_along(h) - loss_along(-h)) / (2 * h);
  const double analytic = dot(dqkv, direction);
  EXPECT_NEAR(analytic, numeric, 1e-6 * std::max(1.0, std::abs(numeric)));

  std::vector<float> dqkvf(qkv.size(), NAN);
  attention_backward(dqkvf.data(), Rf.data(), qkvf.data(), outf.data(), lsef.data(), B, T, C, NH);
  EXPECT_LT(rel_error(dqkvf, dqkv), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Shapes, AttentionWideHeadTest,
                         ::testing::Values(AttentionShape{1, 70, 2, 32},
                                           AttentionShape{1, 67, 1, 20},
                                           AttentionShape{2, 33, 2, 12},
                                           AttentionShape{1, 130, 1, 64},
                                           AttentionShape{1, 9, 3, 8}),
                         [](const ::testing::TestParamInfo<AttentionShape>& info) {
                           const AttentionShape& s = info.param;
                           return "B" + std::to_string(s.B) + "_T" + std::to_string(s.T) + "_NH" +
                                  std::to_string(s.NH) + "_HS" + std::to_string(s.HS);
                         });

// ------------------------------------------------------------------------------------------------
// cross-entropy

TEST(CrossEntropy, LossAndGradientWithPaddingAndIgnoredRows) {
  std::mt19937_64 rng(12);
  const int N = 6, V = 7, Vp = 10;
  const double dloss = 0.37;
  const std::vector<int32_t> targets = {3, kIgnoreIndex, 0, 6, kIgnoreIndex, 6};
  Vec logits = random_vector(static_cast<size_t>(N) * Vp, rng, -3.0, 3.0);
  // The padding must not count: huge values (which would swamp a max or a sum that included them)
  // in some rows, NaN in others.
  for (int i = 0; i < N; ++i)
    for (int j = V; j < Vp; ++j) logits[i * Vp + j] = i % 2 == 0 ? 1e4 : kNaN;

  // Direct formula: loss_i = log sum_{j<V} exp(x_ij) - x_i,target.
  Vec ref(N);
  for (int i = 0; i < N; ++i) {
    if (targets[i] == kIgnoreIndex) continue;
    double sum = 0.0;
    for (int j = 0; j < V; ++j) sum += std::exp(logits[i * Vp + j]);
    ref[i] = std::log(sum) - logits[i * Vp + targets[i]];
  }

  Vec losses(N, kNaN), dlogits(logits.size(), kNaN);
  crossentropy_forward_backward(losses.data(), dlogits.data(), logits.data(), targets.data(), N, V,
                                Vp, dloss);
  EXPECT_LT(rel_error(losses, ref), kDoubleTol);
  EXPECT_EQ(losses[1], 0.0);
  EXPECT_EQ(losses[4], 0.0);
  for (int i = 0; i < N; ++i)
    for (int j = 0; j < Vp; ++j) {
      if (j >= V || targets[i] == kIgnoreIndex) {
        EXPECT_EQ(dlogits[i * Vp + j], 0.0) << "row " << i << " column " << j;
      }
    }

  // dlogits = d(dloss · sum_i loss_i) / dlogits, padded columns included (their derivative is 0).
  Vec scratch_losses(N);
  auto loss = [&] {
    crossentropy_forward_backward(scratch_losses.data(), static_cast<double*>(nullptr),
                                  logits.data(), targets.data(), N, V, Vp, dloss);
    double s = 0.0;
    for (double l : scratch_losses) s += dloss * l;
    return s;
  };
  const Vec num_dlogits = numeric_gradient(logits, loss);
  EXPECT_LT(rel_error(dlogits, num_dlogits), kGradTol);

  // Without dlogits (evaluation) the losses are the same.
  Vec losses_only(N, kNaN);
  crossentropy_forward_backward(losses_only.data(), static_cast<double*>(nullptr), logits.data(),
                                targets.data(), N, V, Vp, dloss);
  EXPECT_TRUE(same_bits(losses_only, losses));

  // In place: dlogits aliases logits.
  Vec in_place = logits, losses_in_place(N, kNaN);
  crossentropy_forward_backward(losses_in_place.data(), in_place.data(), in_place.data(),
                                targets.data(), N, V, Vp, dloss);
  EXPECT_TRUE(same_bits(in_place, dlogits));
  EXPECT_TRUE(same_bits(losses_in_place, losses));

  // float against double.
  std::vector<float> logitsf = to_float(logits), lossesf(N, NAN);
  crossentropy_forward_backward(lossesf.data(), logitsf.data(), logitsf.data(), targets.data(), N,
                                V, Vp, static_cast<float>(dloss));
  EXPECT_LT(rel_error(lossesf, losses), kFloatTol);
  EXPECT_LT(rel_error(logitsf, dlogits), kFloatTol);
}

TEST(CrossEntropy, TargetOutOfRangeThrowsNamingTheRow) {
  const int N = 4, V = 5, Vp = 8;
  const Vec logits(static_cast<size_t>(N) * Vp, 0.25);
  for (const int32_t bad : {V, V + 2, -2}) {
    SCOPED_TRACE("target " + std::to_string(bad));
    const std::vector<int32_t> targets = {0, kIgnoreIndex, bad, 4};
    Vec losses(N, kNaN), dlogits(logits.size(), kNaN);
    try {
      crossentropy_forward_backward(losses.data(), dlogits.data(), logits.data(), targets.data(), N,
                                    V, Vp, 1.0);
      ADD_FAILURE() << "no exception";
    } catch (const std::out_of_range& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find("row 2"), std::string::npos) << message;
      EXPECT_NE(message.find(std::to_string(bad)), std::string::npos) << message;
    }
    // Targets are checked before any work: nothing was written.
    for (double l : losses) EXPECT_TRUE(std::isnan(l));
  }
}

// ------------------------------------------------------------------------------------------------
// AdamW

TEST(AdamW, TwoStepsByHand) {
  // Dyadic hyperparameters, exact in float, so the numbers below (worked out in double) hold for
  // both types. Step 1, element 0, no decay: g = 0.2 · 0.5 = 0.1; m = 0.125 · 0.1 = 0.0125;
  // v = 0.0625 · 0.01 = 0.000625; m̂ = 0.0125 / 0.125 = 0.1; v̂ = 0.000625 / 0.0625 = 0.01;
  // p = 1 - 0.0625 · 0.1 / (0.1 + 1e-8) = 0.93750000625. Step 2: g = -0.05;
  // m = 0.875 · 0.0125 + 0.125 · (-0.05) = 0.0046875; v = 0.9375 · 0.000625 + 0.0625 · 0.0025
  // = 0.0007421875; m̂ = m / (1 - 0.875²) = 0.02; v̂ = v / (1 - 0.9375²) = 0.0061290322...;
  // p = 0.93750000625 - 0.0625 · 0.02 / (0.078288... + 1e-8) = 0.92153334894801...
  // With weight_decay = 0.25 each step also subtracts lr · 0.25 · p (p before the step).
  struct Expected {
    float weight_decay;
    double p1[2], p2[2];
  };
  const Expected cases[] = {
      {0.0f, {0.9375000062499994, -0.4375000031249998}, {0.9215333489480102, -0.43276452363819917}},
      {0.25f, {0.9218750062499994, -0.4296875031249998}, {0.891504051975354, -0.418238156401871}},
  };
  const double m2[2] = {0.004687500000000001, -0.0031250000000000028};
  const double v2[2] = {0.0007421875000000001, 0.0037500000000000003};
  for (const Expected& e : cases) {
    SCOPED_TRACE("weight_decay " + std::to_string(e.weight_decay));
    AdamWHyper h;
    h.lr = 0.0625f;
    h.beta1 = 0.875f;
    h.beta2 = 0.9375f;
    h.eps = 1e-8f;
    h.weight_decay = e.weight_decay;
    h.grad_scale = 0.5f;
    Vec p = {1.0, -0.5}, m = {0.0, 0.0}, v = {0.0, 0.0};
    std::vector<float> pf = {1.0f, -0.5f}, mf = {0.0f, 0.0f}, vf = {0.0f, 0.0f};
    const Vec g1 = {0.2, -0.4}, g2 = {-0.1, 0.3};
    const std::vector<float> g1f = to_float(g1), g2f = to_float(g2);

    h.step = 1;
    adamw_update(p.data(), g1.data(), m.data(), v.data(), 2, h);
    adamw_update(pf.data(), g1f.data(), mf.data(), vf.data(), 2, h);
    EXPECT_LT(rel_error(p, Vec(e.p1, e.p1 + 2)), kDoubleTol);
    EXPECT_LT(rel_error(pf, Vec(e.p1, e.p1 + 2)), 1e-6);
    h.step = 2;
    adamw_update(p.data(), g2.data(), m.data(), v.data(), 2, h);
    adamw_update(pf.data(), g2f.data(), mf.data(), vf.data(), 2, h);
    EXPECT_LT(rel_error(p, Vec(e.p2, e.p2 + 2)), kDoubleTol);
    EXPECT_LT(rel_error(m, Vec(m2, m2 + 2)), kDoubleTol);
    EXPECT_LT(rel_error(v, Vec(v2, v2 + 2)), kDoubleTol);
    EXPECT_LT(rel_error(pf, Vec(e.p2, e.p2 + 2)), 1e-6);
    EXPECT_LT(rel_error(mf, Vec(m2, m2 + 2)), 1e-6);
    EXPECT_LT(rel_error(vf, Vec(v2, v2 + 2)), 1e-6);
  }
}

// ------------------------------------------------------------------------------------------------
// Stochastic rounding bits (kernels/stochastic_rounding.h; the CUDA AdamW kernel draws them)

// splitmix64 started at 0 outputs 0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F
// (Vigna's splitmix64.c): the finaliser is the published one.
TEST(StochasticRounding, MixIsSplitmix64) {
  EXPECT_EQ(splitmix64_mix(kSplitmixGamma), 0xE220A8397B1DCDAFull);
  EXPECT_EQ(splitmix64_mix(2 * kSplitmixGamma), 0x6E789E6AA1B965F4ull);
  EXPECT_EQ(splitmix64_mix(3 * kSplitmixGamma), 0x06C45D188009454Full);
}

// How many (step, tensor, element) triples of a grid share their 64-bit hash with another triple,
// for a mapping (seed of step and tensor, then the hash of seed and element).
template <typename SeedOf, typename HashOf>
int64_t shared_hashes(SeedOf seed_of, HashOf hash_of) {
  constexpr uint64_t kSteps = 40, kTensors = 12, kElements = 300;
  std::vector<uint64_t> hashes;
  for (uint64_t step = 1; step <= kSteps; ++step)
    for (uint64_t tensor = 0; tensor < kTensors; ++tensor)
      for (uint64_t e = 0; e < kElements; ++e) hashes.push_back(hash_of(seed_of(step, tensor), e));
  std::sort(hashes.begin(), hashes.end());
  int64_t shared = 0;
  for (size_t i = 1; i < hashes.size(); ++i) shared += hashes[i] == hashes[i - 1];
  return shared;
}

// The first version, seed = step · gamma + tensor and hash = mix(seed + gamma · (e + 1)), gave
// element e at step s + 1 the bits of element e + 1 at step s, and tensor t + 1 those of tensor t
// one element on. The grid finds that, and finds no shared hash in the mapping AdamW uses.
TEST(StochasticRounding, StepsTensorsAndElementsNeverShareBits) {
  const auto old_seed = [](uint64_t step, uint64_t tensor) {
    return step * kSplitmixGamma + tensor;
  };
  const auto old_hash = [](uint64_t seed, uint64_t e) {
    return splitmix64_mix(seed + kSplitmixGamma * (e + 1));
  };
  EXPECT_GT(shared_hashes(old_seed, old_hash), 1000);
  EXPECT_EQ(shared_hashes(stochastic_rounding_seed, stochastic_rounding_combine), 0);

  // The shifts the old mapping aliased, on the 32 bits the kernel uses.
  for (uint64_t step = 1; step <= 64; ++step) {
    for (uint64_t tensor = 0; tensor < 8; ++tensor) {
      const uint64_t seed = stochastic_rounding_seed(step, tensor);
      const uint64_t next_step = stochastic_rounding_seed(step + 1, tensor);
      const uint64_t next_tensor = stochastic_rounding_seed(step, tensor + 1);
      for (uint64_t e = 0; e < 64; ++e) {
        const uint32_t bits = stochastic_rounding_bits(seed, e + 1);
        ASSERT_NE(stochastic_rounding_bits(next_step, e), bits)
            << step << " " << tensor << " " << e;
        ASSERT_NE(stochastic_rounding_bits(next_tensor, e), bits)
            << step << " " << tensor << " " << e;
      }
    }
  }
}

// A resumed run draws the same bits: the seed is a function of (step, tensor) alone. The values
// pinned here (worked out with Python integers from the formulas in the header) keep the streams
// from changing unnoticed: a bf16 checkpoint resumed by a newer build continues the same bits.
TEST(StochasticRounding, SeedIsAPureFunctionOfStepAndTensor) {
  EXPECT_EQ(stochastic_rounding_combine(0, 0), splitmix64_mix(0xE220A8397B1DCDAFull));
  EXPECT_EQ(stochastic_rounding_seed(1000, 3), 0x00722FF363F89627ull);
  EXPECT_EQ(stochastic_rounding_bits(0x00722FF363F89627ull, 12345), 0x6F16C076u);
  EXPECT_NE(stochastic_rounding_seed(1000, 3), stochastic_rounding_seed(1000, 4));
  EXPECT_NE(stochastic_rounding_seed(1000, 3), stochastic_rounding_seed(1001, 3));
}

// The low 16 bits (what bf16 rounding adds) are uniform: 16 buckets of their top 4 bits over 2^16
// draws, chi-squared with 15 degrees of freedom under 37.7 (p = 0.001).
TEST(StochasticRounding, LowBitsAreUniform) {
  std::vector<double> counts(16, 0.0);
  const int n = 1 << 16;
  for (int step = 1; step <= 4; ++step)
    for (int e = 0; e < n / 4; ++e)
      counts[(stochastic_rounding_bits(stochastic_rounding_seed(step, 0), e) & 0xFFFFu) >> 12] += 1;
  double chi2 = 0.0;
  for (double c : counts) chi2 += (c - n / 16.0) * (c - n / 16.0) / (n / 16.0);
  EXPECT_LT(chi2, 37.7);
}

// ------------------------------------------------------------------------------------------------
// global norm

TEST(GlobalNorm, SumOfSquares) {
  EXPECT_EQ(sum_of_squares(static_cast<const float*>(nullptr), 0), 0.0);
  // Small integers: every partial sum is exact, so the result must be too.
  const size_t n = 3 * kNormChunk + 123;
  std::vector<float> ints(n);
  double exact = 0.0;
  for (size_t i = 0; i < n; ++i) {
    ints[i] = static_cast<float>(static_cast<int>(i % 7) - 3);
    exact += ints[i] * ints[i];
  }
  EXPECT_EQ(sum_of_squares(ints.data(), n), exact);
  EXPECT_EQ(sum_of_squares(ints.data(), 5), 9.0 + 4.0 + 1.0 + 0.0 + 1.0);

  std::mt19937_64 rng(13);
  const Vec x = random_vector(2 * kNormChunk + 7, rng);
  long double ref = 0.0L;
  for (double xi : x) ref += static_cast<long double>(xi) * xi;
  EXPECT_NEAR(sum_of_squares(x.data(), x.size()), static_cast<double>(ref), 1e-12 * ref);
}

TEST(GlobalNorm, ClipScaleAndScale) {
  EXPECT_EQ(clip_scale(4.0, 1.0), 0.25);
  EXPECT_EQ(clip_scale(0.5, 1.0), 1.0);
  EXPECT_EQ(clip_scale(1.0, 1.0), 1.0);
  EXPECT_EQ(clip_scale(4.0, 0.0), 1.0);   // clipping disabled
  EXPECT_EQ(clip_scale(4.0, -1.0), 1.0);  // clipping disabled
  std::vector<float> x = {1.0f, -2.0f, 0.5f};
  scale_inplace(x.data(), x.size(), 0.25f);
  EXPECT_EQ(x, (std::vector<float>{0.25f, -0.5f, 0.125f}));
}

// ------------------------------------------------------------------------------------------------
// determinism across thread counts

struct ReductionResults {
  std::vector<float> ln_dinp, ln_dweight, ln_dbias, dwte, dwpe, dqkv, mm_out, mm_dinp, mm_dweight,
      mm_dbias, mm_chunked_dweight, mm_chunked_dbias, mm_split_dinp, ce_losses, ce_dlogits;
  double sum_sq = 0.0;
};

ReductionResults run_reductions() {
  std::mt19937_64 rng(14);
  auto rand_f = [&](size_t n) { return to_float(random_vector(n, rng)); };
  ReductionResults r;
  {
    const int N = 300, C = 100;
    const std::vector<float> x = rand_f(N * C), w = rand_f(C), b = rand_f(C), dout = rand_f(N * C);
    std::vector<float> out(N * C), mean(N), rstd(N);
    layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), N, C);
    r.ln_dinp = rand_f(N * C);
    r.ln_dweight = rand_f(C);
    r.ln_dbias = rand_f(C);
    layernorm_backward(r.ln_dinp.data(), r.ln_dweight.data(), r.ln_dbias.data(), dout.data(),
                       x.data(), w.data(), mean.data(), rstd.data(), N, C);
  }
  {
    const int B = 4, T = 64, C = 100, V = 10;
    std::vector<int32_t> tokens(B * T);
    for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>(rng() % V);
    const std::vector<float> dout = rand_f(B * T * C);
    r.dwte = rand_f(V * C);
    r.dwpe = rand_f(T * C);
    encoder_backward(r.dwte.data(), r.dwpe.data(), dout.data(), tokens.data(), B, T, C);
  }
  {
    const int B = 2, T = 130, C = 32, NH = 4;
    const std::vector<float> qkv = rand_f(B * T * 3 * C), dout = rand_f(B * T * C);
    std::vector<float> out(B * T * C), lse(B * NH * T);
    attention_forward(out.data(), lse.data(), qkv.data(), B, T, C, NH);
    r.dqkv.assign(qkv.size(), NAN);
    attention_backward(r.dqkv.data(), dout.data(), qkv.data(), out.data(), lse.data(), B, T, C, NH);
  }
  {
    // Large enough for OpenBLAS to use several threads.
    const int N = 256, C = 192, OC = 320;
    const std::vector<float> inp = rand_f(N * C), w = rand_f(OC * C), b = rand_f(OC),
                             dout = rand_f(N * OC);
    r.mm_out.assign(N * OC, NAN);
    matmul_forward(r.mm_out.data(), inp.data(), w.data(), b.data(), N, C, OC);
    r.mm_dinp.assign(N * C, NAN);
    r.mm_dweight = rand_f(OC * C);
    r.mm_dbias = rand_f(OC);
    matmul_backward(r.mm_dinp.data(), r.mm_dweight.data(), r.mm_dbias.data(), dout.data(),
                    inp.data(), w.data(), N, C, OC);
  }
  {
    // Long enough for the weight gradient to be formed from chunks of rows.
    const int N = 1100, C = 48, OC = 40;
    const std::vector<float> inp = rand_f(N * C), w = rand_f(OC * C), dout = rand_f(N * OC);
    r.mm_chunked_dweight = rand_f(OC * C);
    r.mm_chunked_dbias = rand_f(OC);
    matmul_backward(static_cast<float*>(nullptr), r.mm_chunked_dweight.data(),
                    r.mm_chunked_dbias.data(), dout.data(), inp.data(), w.data(), N, C, OC);
  }
  {
    // An input gradient whose reduction (OC = 2100) is long next to its output (24 x 40): the
    // float gemm splits the reduction into chunks.
    const int N = 24, C = 40, OC = 2100;
    const std::vector<float> inp = rand_f(N * C), w = rand_f(OC * C), dout = rand_f(N * OC);
    r.mm_split_dinp.assign(N * C, NAN);
    matmul_backward(r.mm_split_dinp.data(), static_cast<float*>(nullptr),
                    static_cast<float*>(nullptr), dout.data(), inp.data(), w.data(), N, C, OC);
  }
  {
    const int N = 64, V = 1000, Vp = 1024;
    std::vector<int32_t> targets(N);
    for (int i = 0; i < N; ++i) targets[i] = i % 5 == 0 ? kIgnoreIndex : (i * 37) % V;
    r.ce_dlogits = rand_f(N * Vp);
    r.ce_losses.assign(N, NAN);
    crossentropy_forward_backward(r.ce_losses.data(), r.ce_dlogits.data(), r.ce_dlogits.data(),
                                  targets.data(), N, V, Vp, 1.0f / N);
  }
  {
    const std::vector<float> g = rand_f(5 * kNormChunk + 77);
    r.sum_sq = sum_of_squares(g.data(), g.size());
  }
  return r;
}

TEST(Determinism, SameBitsWhateverTheThreadCount) {
  const int saved_threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const ReductionResults one = run_reductions();
  for (const int threads : {2, 3}) {
    SCOPED_TRACE(std::to_string(threads) + " threads");
    omp_set_num_threads(threads);
    const ReductionResults r = run_reductions();
    EXPECT_TRUE(same_bits(r.ln_dinp, one.ln_dinp));
    EXPECT_TRUE(same_bits(r.ln_dweight, one.ln_dweight));
    EXPECT_TRUE(same_bits(r.ln_dbias, one.ln_dbias));
    EXPECT_TRUE(same_bits(r.dwte, one.dwte));
    EXPECT_TRUE(same_bits(r.dwpe, one.dwpe));
    EXPECT_TRUE(same_bits(r.dqkv, one.dqkv));
    EXPECT_TRUE(same_bits(r.mm_out, one.mm_out));
    EXPECT_TRUE(same_bits(r.mm_dinp, one.mm_dinp));
    EXPECT_TRUE(same_bits(r.mm_dweight, one.mm_dweight));
    EXPECT_TRUE(same_bits(r.mm_dbias, one.mm_dbias));
    EXPECT_TRUE(same_bits(r.mm_chunked_dweight, one.mm_chunked_dweight));
    EXPECT_TRUE(same_bits(r.mm_chunked_dbias, one.mm_chunked_dbias));
    EXPECT_TRUE(same_bits(r.mm_split_dinp, one.mm_split_dinp));
    EXPECT_TRUE(same_bits(r.ce_losses, one.ce_losses));
    EXPECT_TRUE(same_bits(r.ce_dlogits, one.ce_dlogits));
    EXPECT_EQ(std::memcmp(&r.sum_sq, &one.sum_sq, sizeof(double)), 0);
  }
  omp_set_num_threads(saved_threads);
}

}  // namespace
}  // namespace gpt::cpu
