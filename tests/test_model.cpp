// Whole-model tests of the GPT on the CPU backend: a finite-difference gradient check in double,
// causality, gradient accumulation equals one big batch, and a tiny model overfits one batch.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "engine/backend.h"
#include "engine/optimizer.h"
#include "engine/rng.h"
#include "engine/trainer.h"
#include "models/gpt.h"

namespace gpt {
namespace {

GptConfig tiny_config() {
  GptConfig c;
  c.n_layer = 2;
  c.n_head = 2;
  c.n_embd = 8;
  c.max_seq_len = 8;
  c.vocab_size = 67;  // not a multiple of 128: the padded columns are exercised
  return c;
}

// Fresh random weights of a larger scale than GPT-2's init so that every path carries signal.
void randomize(GptModel& model, uint64_t seed, double scale) {
  Rng rng(seed);
  for (int pi = 0; pi < kNumParams; ++pi) {
    Tensor t = model.param(static_cast<Param>(pi));
    std::vector<float> host(static_cast<size_t>(t.numel()));
    for (auto& x : host) x = static_cast<float>(rng.normal() * scale);
    if (static_cast<Param>(pi) == Param::ln1_w || static_cast<Param>(pi) == Param::ln2_w ||
        static_cast<Param>(pi) == Param::lnf_w)
      for (auto& x : host) x += 1.0f;
    model.backend().upload_f32(t, host.data());
  }
}

void random_batch(Rng& rng, int n, int vocab, std::vector<int32_t>& tokens,
                  std::vector<int32_t>& targets, double mask_fraction) {
  tokens.resize(n);
  targets.resize(n);
  for (int i = 0; i < n; ++i) {
    tokens[i] = static_cast<int32_t>(rng.below(vocab));
    targets[i] = rng.uniform() < mask_fraction ? -1 : static_cast<int32_t>(rng.below(vocab));
  }
}

TEST(GptModel, GradientMatchesFiniteDifferencesInDouble) {
  auto backend = make_backend("cpu", DType::f64);
  const GptConfig cfg = tiny_config();
  const int B = 2, T = 6;
  GptModel model(cfg, *backend, B, T);
  randomize(model, 7, 0.3);
  Rng rng(11);
  std::vector<int32_t> tokens, targets;
  random_batch(rng, B * T, cfg.vocab_size, tokens, targets, 0.25);
  targets[0] = -1;  // at least one masked target
  int count = 0;
  for (int32_t t : targets) count += t >= 0;
  ASSERT_GT(count, 0);

  model.zero_grad();
  const double loss =
      model.forward_backward(tokens.data(), targets.data(), B, T, 1.0f / count) / count;
  ASSERT_TRUE(std::isfinite(loss));
  // dloss was passed as a float: rescale the analytic gradient to the exact 1/count.
  const double dloss_fix = (1.0 / count) / static_cast<double>(1.0f / count);

  auto mean_loss = [&]() { return model.forward(tokens.data(), targets.data(), B, T) / count; };
  const double eps = 1e-5;
  for (int pi = 0; pi < kNumParams; ++pi) {
    const Param p = static_cast<Param>(pi);
    double* w = model.param(p).ptr<double>();
    const double* g = model.grad(p).ptr<double>();
    const int64_t n = model.param(p).numel();
    // Up to 24 entries per tensor, spread over the tensor (all of them for small tensors).
    double num_sq = 0, diff_sq = 0;
    const int64_t stride = std::max<int64_t>(1, n / 24);
    for (int64_t i = (pi * 7) % stride; i < n; i += stride) {
      if (p == Param::wte && i / cfg.n_embd >= cfg.vocab_size) continue;  // padded rows: below
      const double saved = w[i];
      w[i] = saved + eps;
      const double lp = mean_loss();
      w[i] = saved - eps;
      const double lm = mean_loss();
      w[i] = saved;
      const double numeric = (lp - lm) / (2 * eps);
      const double analytic = g[i] * dloss_fix;
      num_sq += numeric * numeric;
      diff_sq += (numeric - analytic) * (numeric - analytic);
    }
    const double rel = std::sqrt(diff_sq) / std::max(std::sqrt(num_sq), 1e-12);
    EXPECT_LT(rel, 1e-6) << "gradient of " << param_name(p) << " (relative error " << rel << ")";
  }
  // The padded vocabulary rows receive no gradient at all.
  const double* gwte = model.grad(Param::wte).ptr<double>();
  for (int64_t i = static_cast<int64_t>(cfg.vocab_size) * cfg.n_embd;
       i < static_cast<int64_t>(cfg.padded_vocab_size()) * cfg.n_embd; ++i)
    ASSERT_EQ(gwte[i], 0.0) << "padded wte row got gradient at " << i;
}

TEST(GptModel, MaskedTargetsContributeNothing) {
  auto backend = make_backend("cpu", DType::f64);
  const GptConfig cfg = tiny_config();
  const int B = 1, T = 6;
  GptModel model(cfg, *backend, B, T);
  randomize(model, 3, 0.3);
  std::vector<int32_t> tokens{1, 2, 3, 4, 5, 6}, targets{7, -1, 9, -1, -1, 12};
  const double total = model.forward(tokens.data(), targets.data(), B, T);
  // The loss sum is the sum of the unmasked positions' losses, each measured alone.
  double parts = 0;
  for (int j : {0, 2, 5}) {
    std::vector<int32_t> one(6, -1);
    one[j] = targets[j];
    parts += model.forward(tokens.data(), one.data(), B, T);
  }
  EXPECT_NEAR(total, parts, 1e-12 * std::abs(total));
  // All masked: no loss and not one nonzero gradient.
  std::vector<int32_t> all_masked(6, -1);
  model.zero_grad();
  EXPECT_EQ(model.forward_backward(tokens.data(), all_masked.data(), B, T, 1.0f), 0.0);
  for (int pi = 0; pi < kNumParams; ++pi) {
    Tensor g = model.grad(static_cast<Param>(pi));
    for (int64_t i = 0; i < g.numel(); ++i)
      ASSERT_EQ(g.ptr<double>()[i], 0.0) << param_name(static_cast<Param>(pi)) << "[" << i << "]";
  }
}

TEST(GptModel, CausalityLogitsBeforeTAreBitIdentical) {
  auto backend = make_backend("cpu", DType::f32);
  GptConfig cfg = tiny_config();
  cfg.n_embd = 16;
  cfg.max_seq_len = 12;
  const int B = 2, T = 12;
  GptModel model(cfg, *backend, B, T);
  model.init_weights(5);
  randomize(model, 5, 0.2);
  Rng rng(99);
  std::vector<int32_t> tokens, targets;
  random_batch(rng, B * T, cfg.vocab_size, tokens, targets, 0.0);
  model.forward(tokens.data(), nullptr, B, T);
  const std::vector<float> before = model.logits_to_host(B, T);
  for (int t = 0; t < T - 1; ++t) {
    std::vector<int32_t> changed = tokens;
    for (int b = 0; b < B; ++b)
      for (int u = t + 1; u < T; ++u)
        changed[b * T + u] = (changed[b * T + u] + 1 + u) % cfg.vocab_size;
    model.forward(changed.data(), nullptr, B, T);
    const std::vector<float> after = model.logits_to_host(B, T);
    const int Vp = cfg.padded_vocab_size();
    for (int b = 0; b < B; ++b) {
      const size_t begin = (static_cast<size_t>(b) * T) * Vp;
      const size_t end = begin + static_cast<size_t>(t + 1) * Vp;
      ASSERT_EQ(0, std::memcmp(before.data() + begin, after.data() + begin,
                               (end - begin) * sizeof(float)))
          << "logits at positions <= " << t << " changed when later tokens changed (batch " << b
          << ")";
      // And the change is visible after t (the test would be vacuous otherwise).
      const size_t next = begin + static_cast<size_t>(T - 1) * Vp;
      EXPECT_NE(0, std::memcmp(before.data() + next, after.data() + next, Vp * sizeof(float)));
    }
  }
}

// Gradient accumulation over 4 micro-batches with uneven masks equals one batch of 4.
TEST(GptModel, GradientAccumulationEqualsOneBigBatch) {
  const GptConfig cfg = tiny_config();
  const int T = 6, micro = 4;
  Rng rng(123);
  std::vector<int32_t> tokens, targets;
  random_batch(rng, micro * T, cfg.vocab_size, tokens, targets, 0.0);
  // Uneven masks: micro-batch k has k masked targets (the last one has 3 of 6 masked).
  for (int k = 0; k < micro; ++k)
    for (int j = 0; j < k; ++j) targets[k * T + j * 2] = -1;

  auto run = [&](int batch_size, std::vector<double>& params_out) {
    auto backend = make_backend("cpu", DType::f64);
    GptModel model(cfg, *backend, batch_size, T);
    randomize(model, 77, 0.3);
    AdamWConfig oc;
    oc.weight_decay = 0.1f;
    oc.grad_clip = 0.5f;  // exercise clipping too
    AdamW opt(*backend, model.parameters(), oc);
    TrainerConfig tc;
    tc.steps = 2;
    tc.batch_size = batch_size;
    tc.seq_len = T;
    tc.total_batch_tokens = micro * T;
    tc.lr = 1e-2f;
    tc.min_lr = 1e-2f;
    size_t cursor = 0;
    Trainer trainer(
        model, opt, tc,
        [&](int32_t* tok, int32_t* tgt) {
          const size_t n = static_cast<size_t>(batch_size) * T;
          std::memcpy(tok, tokens.data() + cursor, n * sizeof(int32_t));
          std::memcpy(tgt, targets.data() + cursor, n * sizeof(int32_t));
          cursor = (cursor + n) % tokens.size();
          return T;
        },
        nullptr);
    EXPECT_EQ(trainer.grad_accum(), micro / batch_size);
    const StepRecord r = trainer.train_step();
    for (int pi = 0; pi < kNumParams; ++pi) {
      Tensor t = model.param(static_cast<Param>(pi));
      params_out.insert(params_out.end(), t.ptr<double>(), t.ptr<double>() + t.numel());
    }
    return r;
  };
  std::vector<double> big_params, acc_params;
  const StepRecord big = run(micro, big_params);
  const StepRecord acc = run(1, acc_params);
  EXPECT_NEAR(big.train_loss, acc.train_loss, 1e-12 * std::abs(big.train_loss));
  EXPECT_NEAR(big.grad_norm, acc.grad_norm, 1e-10 * big.grad_norm);
  ASSERT_EQ(big_params.size(), acc_params.size());
  double max_diff = 0;
  for (size_t i = 0; i < big_params.size(); ++i)
    max_diff = std::max(max_diff, std::abs(big_params[i] - acc_params[i]));
  EXPECT_LT(max_diff, 1e-9);
}

// A batch function may return rows shorter than seq_len (a loader trimming padding):
// the step then equals the step on the same rows padded to seq_len with masked
// targets, since attention is causal.
TEST(GptModel, TrimmedRowsGiveTheStepOfPaddedRows) {
  const GptConfig cfg = tiny_config();
  const int B = 3, T = 8, Tshort = 5, micro = 2;
  Rng rng(321);
  std::vector<int32_t> tokens, targets;
  random_batch(rng, micro * B * Tshort, cfg.vocab_size, tokens, targets, 0.3);
  auto run = [&](bool trimmed, std::vector<double>& params_out) {
    auto backend = make_backend("cpu", DType::f64);
    GptModel model(cfg, *backend, B, T);
    randomize(model, 5, 0.3);
    AdamW opt(*backend, model.parameters(), AdamWConfig{});
    TrainerConfig tc;
    tc.steps = 1;
    tc.batch_size = B;
    tc.seq_len = T;
    tc.total_batch_tokens = micro * B * T;
    tc.lr = 1e-2f;
    int k = 0;
    Trainer trainer(
        model, opt, tc,
        [&](int32_t* tok, int32_t* tgt) {
          const int stride = trimmed ? Tshort : T;
          std::fill(tok, tok + B * T, 7);  // padding: any token, masked target
          std::fill(tgt, tgt + B * T, -1);
          for (int b = 0; b < B; ++b)
            for (int t = 0; t < Tshort; ++t) {
              const size_t from = (static_cast<size_t>(k) * B + b) * Tshort + t;
              tok[b * stride + t] = tokens[from];
              tgt[b * stride + t] = targets[from];
            }
          ++k;
          return stride;
        },
        nullptr);
    const StepRecord r = trainer.train_step();
    for (int pi = 0; pi < kNumParams; ++pi) {
      Tensor t = model.param(static_cast<Param>(pi));
      params_out.insert(params_out.end(), t.ptr<double>(), t.ptr<double>() + t.numel());
    }
    return r;
  };
  std::vector<double> padded_params, trimmed_params;
  const StepRecord padded = run(false, padded_params);
  const StepRecord trimmed = run(true, trimmed_params);
  EXPECT_NEAR(padded.train_loss, trimmed.train_loss, 1e-12 * std::abs(padded.train_loss));
  EXPECT_NEAR(padded.grad_norm, trimmed.grad_norm, 1e-10 * padded.grad_norm);
  double max_diff = 0;
  for (size_t i = 0; i < padded_params.size(); ++i)
    max_diff = std::max(max_diff, std::abs(padded_params[i] - trimmed_params[i]));
  EXPECT_LT(max_diff, 1e-9);
}

TEST(GptModel, TinyModelOverfitsOneBatch) {
  auto backend = make_backend("cpu", DType::f32);
  GptConfig cfg;
  cfg.n_layer = 2;
  cfg.n_head = 2;
  cfg.n_embd = 32;
  cfg.max_seq_len = 16;
  cfg.vocab_size = 50;
  const int B = 2, T = 16;
  GptModel model(cfg, *backend, B, T);
  model.init_weights(1);
  Rng rng(2);
  std::vector<int32_t> tokens, targets;
  random_batch(rng, B * T, cfg.vocab_size, tokens, targets, 0.0);
  AdamWConfig oc;
  oc.weight_decay = 0.0f;
  AdamW opt(*backend, model.parameters(), oc);
  double first = 0, last = 0;
  for (int step = 0; step < 150; ++step) {
    model.zero_grad();
    last = model.forward_backward(tokens.data(), targets.data(), B, T, 1.0f / (B * T)) / (B * T);
    if (step == 0) first = last;
    opt.step(1e-2f);
  }
  EXPECT_NEAR(first, std::log(50.0), 0.3);
  EXPECT_LT(last, 0.05) << "a tiny model should memorise one batch";
}

TEST(GptModel, RejectsBadShapesAndTokens) {
  auto backend = make_backend("cpu", DType::f32);
  GptConfig cfg = tiny_config();
  cfg.n_head = 3;  // 8 % 3 != 0
  EXPECT_THROW(GptModel(cfg, *backend, 1, 4), std::invalid_argument);
  cfg = tiny_config();
  EXPECT_THROW(GptModel(cfg, *backend, 1, cfg.max_seq_len + 1), std::invalid_argument);
  GptModel model(cfg, *backend, 1, 4);
  std::vector<int32_t> tokens{1, 2, 67, 3}, targets{1, 2, 3, 4};
  EXPECT_THROW(model.forward(tokens.data(), targets.data(), 1, 4), std::out_of_range);
  EXPECT_THROW(model.forward(tokens.data(), targets.data(), 2, 4), std::invalid_argument);
}

TEST(LearningRate, WarmupThenCosineToMin) {
  EXPECT_FLOAT_EQ(learning_rate(0, 100, 10, 1.0f, 0.1f), 0.1f);
  EXPECT_FLOAT_EQ(learning_rate(9, 100, 10, 1.0f, 0.1f), 1.0f);
  EXPECT_FLOAT_EQ(learning_rate(10, 100, 10, 1.0f, 0.1f), 1.0f);
  EXPECT_NEAR(learning_rate(55, 100, 10, 1.0f, 0.1f), 0.55f, 1e-6);
  EXPECT_FLOAT_EQ(learning_rate(100, 100, 10, 1.0f, 0.1f), 0.1f);
}

}  // namespace
}  // namespace gpt
