// Fine-tuning features of the model: LoRA, freezing, the class head, KV-cache generation, sampling.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "engine/backend.h"
#include "engine/optimizer.h"
#include "engine/rng.h"
#include "models/gpt.h"
#include "models/sampler.h"

namespace gpt {
namespace {

GptConfig small_config() {
  GptConfig c;
  c.n_layer = 2;
  c.n_head = 2;
  c.n_embd = 8;
  c.max_seq_len = 8;
  c.vocab_size = 37;
  return c;
}

void randomize(GptModel& model, uint64_t seed, double scale) {
  Rng rng(seed);
  for (int pi = 0; pi < kNumParams; ++pi) {
    Tensor t = model.param(static_cast<Param>(pi));
    std::vector<float> host(static_cast<size_t>(t.numel()));
    for (auto& x : host) x = static_cast<float>(rng.normal() * scale);
    model.backend().upload_f32(t, host.data());
  }
}

void random_tensor(Backend& backend, Tensor t, Rng& rng, double scale) {
  std::vector<float> host(static_cast<size_t>(t.numel()));
  for (auto& x : host) x = static_cast<float>(rng.normal() * scale);
  backend.upload_f32(t, host.data());
}

std::vector<int32_t> random_ids(Rng& rng, int n, int vocab) {
  std::vector<int32_t> v(n);
  for (auto& x : v) x = static_cast<int32_t>(rng.below(vocab));
  return v;
}

LoraConfig all_targets(int rank) {
  LoraConfig lc;
  lc.rank = rank;
  lc.alpha = 3.0f;
  lc.qkv = lc.attproj = lc.fc = lc.fcproj = true;
  return lc;
}

TEST(Lora, ZeroBReproducesTheBaseModelExactly) {
  auto backend = make_backend("cpu", DType::f64);
  const GptConfig cfg = small_config();
  const int B = 2, T = 6;
  Rng rng(1);
  const auto tokens = random_ids(rng, B * T, cfg.vocab_size);
  GptModel base(cfg, *backend, B, T), adapted(cfg, *backend, B, T);
  randomize(base, 5, 0.3);
  randomize(adapted, 5, 0.3);
  adapted.enable_lora(all_targets(3), 9);
  base.forward(tokens.data(), nullptr, B, T);
  adapted.forward(tokens.data(), nullptr, B, T);
  const auto a = base.logits_to_host(B, T), b = adapted.logits_to_host(B, T);
  ASSERT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)));
  // And LoRA freezes the base: only the adapters train.
  for (const ParamGroup& g : adapted.parameters())
    EXPECT_EQ(g.trainable, g.name.rfind("lora.", 0) == 0) << g.name;
}

TEST(Lora, GradientsMatchFiniteDifferences) {
  auto backend = make_backend("cpu", DType::f64);
  const GptConfig cfg = small_config();
  const int B = 2, T = 5;
  GptModel model(cfg, *backend, B, T);
  randomize(model, 3, 0.3);
  model.enable_lora(all_targets(2), 4);
  Rng rng(8);
  for (auto& [name, t] : model.lora_tensors()) random_tensor(*backend, t, rng, 0.3);  // B != 0
  const auto tokens = random_ids(rng, B * T, cfg.vocab_size);
  auto targets = random_ids(rng, B * T, cfg.vocab_size);
  targets[3] = -1;
  const int count = B * T - 1;
  model.zero_grad();
  model.forward_backward(tokens.data(), targets.data(), B, T, 1.0f / count);
  const double fix = (1.0 / count) / static_cast<double>(1.0f / count);
  auto loss = [&] { return model.forward(tokens.data(), targets.data(), B, T) / count; };
  for (const ParamGroup& g : model.parameters()) {
    if (!g.trainable) continue;
    double* w = g.param.ptr<double>();
    const double* grad = g.grad.ptr<double>();
    double num_sq = 0, diff_sq = 0;
    for (int64_t i = 0; i < g.param.numel(); i += std::max<int64_t>(1, g.param.numel() / 20)) {
      const double saved = w[i];
      w[i] = saved + 1e-5;
      const double lp = loss();
      w[i] = saved - 1e-5;
      const double lm = loss();
      w[i] = saved;
      const double numeric = (lp - lm) / 2e-5;
      num_sq += numeric * numeric;
      diff_sq += (numeric - grad[i] * fix) * (numeric - grad[i] * fix);
    }
    EXPECT_LT(std::sqrt(diff_sq) / std::max(std::sqrt(num_sq), 1e-12), 1e-6) << g.name;
  }
  // The frozen base has no gradient memory at all: gradients scale with the adapters.
  for (int pi = 0; pi < kNumParams; ++pi)
    EXPECT_TRUE(model.grad(static_cast<Param>(pi)).empty()) << param_name(static_cast<Param>(pi));
}

TEST(Lora, MergedEqualsUnmerged) {
  auto backend = make_backend("cpu", DType::f64);
  const GptConfig cfg = small_config();
  const int B = 2, T = 7;
  GptModel model(cfg, *backend, B, T);
  randomize(model, 13, 0.3);
  model.enable_lora(all_targets(4), 2);
  Rng rng(21);
  for (auto& [name, t] : model.lora_tensors()) random_tensor(*backend, t, rng, 0.3);
  const auto tokens = random_ids(rng, B * T, cfg.vocab_size);
  model.forward(tokens.data(), nullptr, B, T);
  const auto unmerged = model.logits_to_host(B, T);
  model.merge_lora();
  model.forward(tokens.data(), nullptr, B, T);
  const auto merged = model.logits_to_host(B, T);
  double num = 0, den = 0;
  for (size_t i = 0; i < merged.size(); ++i) {
    num += (merged[i] - unmerged[i]) * (merged[i] - unmerged[i]);
    den += unmerged[i] * unmerged[i];
  }
  EXPECT_LT(std::sqrt(num / den), 1e-6);  // logits come back as f32
  EXPECT_GT(den, 0);
}

// The adapted forward equals a base model whose qkv weights were changed by hand to
// W + (alpha / r) · B A: an independent check of the scale and the layout of A and B.
TEST(Lora, ForwardEqualsHandMergedWeights) {
  auto backend = make_backend("cpu", DType::f64);
  const GptConfig cfg = small_config();
  const int B = 1, T = 5, r = 2;
  GptModel adapted(cfg, *backend, B, T), manual(cfg, *backend, B, T);
  randomize(adapted, 31, 0.3);
  randomize(manual, 31, 0.3);
  LoraConfig lc;
  lc.rank = r;
  lc.alpha = 6.0f;
  lc.qkv = true;
  lc.attproj = lc.fc = lc.fcproj = false;
  adapted.enable_lora(lc, 1);
  Rng rng(5);
  for (auto& [name, t] : adapted.lora_tensors()) random_tensor(*backend, t, rng, 0.4);
  const auto tensors = adapted.lora_tensors();  // qkv.A (L, r, C), qkv.B (L, 3C, r)
  const double* A = tensors[0].second.ptr<double>();
  const double* Bm = tensors[1].second.ptr<double>();
  const int C = cfg.n_embd, OC = 3 * C;
  double* W = manual.param(Param::qkv_w).ptr<double>();
  for (int l = 0; l < cfg.n_layer; ++l)
    for (int o = 0; o < OC; ++o)
      for (int i = 0; i < C; ++i) {
        double acc = 0;
        for (int k = 0; k < r; ++k) acc += Bm[(l * OC + o) * r + k] * A[(l * r + k) * C + i];
        W[(l * OC + o) * C + i] += 3.0 * acc;  // alpha / r = 6 / 2
      }
  const auto tokens = random_ids(rng, B * T, cfg.vocab_size);
  adapted.forward(tokens.data(), nullptr, B, T);
  manual.forward(tokens.data(), nullptr, B, T);
  const auto a = adapted.logits_to_host(B, T), m = manual.logits_to_host(B, T);
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], m[i], 1e-5 * (1 + std::abs(m[i]))) << i;
}

TEST(Freeze, FrozenParametersDoNotChangeAndGetNoState) {
  auto backend = make_backend("cpu", DType::f32);
  GptConfig cfg = small_config();
  cfg.n_layer = 3;
  const int B = 2, T = 6;
  GptModel model(cfg, *backend, B, T);
  model.init_weights(1);
  // Train only the top block and the final LayerNorm.
  model.set_trainable([&](const std::string& name, int layer) {
    return layer == cfg.n_layer - 1 || name == "lnf_w" || name == "lnf_b";
  });
  const auto groups = model.parameters();
  AdamW opt(*backend, groups, AdamWConfig{});
  int64_t state_elems = 0, trainable_elems = 0;
  for (size_t i = 0; i < groups.size(); ++i) {
    if (groups[i].trainable) {
      trainable_elems += groups[i].param.numel();
      EXPECT_FALSE(opt.m(static_cast<int>(i)).empty()) << groups[i].name;
    } else {
      EXPECT_TRUE(opt.m(static_cast<int>(i)).empty()) << groups[i].name << " has optimizer state";
    }
  }
  state_elems = static_cast<int64_t>(opt.state_bytes() / sizeof(float));
  EXPECT_EQ(trainable_elems, model.num_trainable_parameters());
  EXPECT_LT(state_elems,
            2 * trainable_elems + 64 * static_cast<int64_t>(groups.size()));  // m, v + alignment

  std::vector<std::vector<float>> before;
  for (const auto& g : groups) {
    before.emplace_back(static_cast<size_t>(g.param.numel()));
    backend->download_f32(before.back().data(), g.param);
  }
  Rng rng(3);
  for (int step = 0; step < 3; ++step) {
    const auto tokens = random_ids(rng, B * T, cfg.vocab_size);
    const auto targets = random_ids(rng, B * T, cfg.vocab_size);
    model.zero_grad();
    model.forward_backward(tokens.data(), targets.data(), B, T, 1.0f / (B * T));
    opt.step(1e-2f);
  }
  for (size_t i = 0; i < groups.size(); ++i) {
    std::vector<float> after(before[i].size());
    backend->download_f32(after.data(), groups[i].param);
    const bool same =
        std::memcmp(after.data(), before[i].data(), after.size() * sizeof(float)) == 0;
    EXPECT_EQ(same, !groups[i].trainable) << groups[i].name;
  }
}

// Freezing the lower blocks: the gradients of what trains are those of the fully trainable model
// (whose gradients other tests check against finite differences and PyTorch), bit for bit, while
// the model holds gradient rows only for the trained layers and activations only for the layers
// the backward runs through.
TEST(Freeze, LowerBlocksHoldNoGradientsOrActivations) {
  auto backend = make_backend("cpu", DType::f32);
  GptConfig cfg = small_config();
  cfg.n_layer = 5;
  const int B = 2, T = 6, C = cfg.n_embd;
  GptModel full(cfg, *backend, B, T), frozen(cfg, *backend, B, T), eval_only(cfg, *backend, B, T);
  for (GptModel* m : {&full, &frozen, &eval_only}) randomize(*m, 21, 0.3);
  // Layers 2..4 train, except qkv_w, which trains in layer 3 only; layers 0 and 1 are frozen.
  auto trains = [](const std::string& name, int layer) {
    if (name == "qkv_w") return layer == 3;
    return layer >= 2 || name == "lnf_w" || name == "lnf_b";
  };
  frozen.set_trainable(trains);
  eval_only.set_trainable([](const std::string&, int) { return false; });

  EXPECT_TRUE(frozen.grad(Param::wte).empty());
  EXPECT_TRUE(frozen.grad(Param::wpe).empty());
  EXPECT_EQ(frozen.grad(Param::qkv_w).numel(), 3 * C * C);  // layer 3 only
  EXPECT_EQ(frozen.grad_first_layer(Param::qkv_w), 3);
  EXPECT_EQ(frozen.grad(Param::fc_w).numel(), 3 * 4 * C * C);  // layers 2, 3, 4
  EXPECT_EQ(frozen.grad_first_layer(Param::fc_w), 2);
  EXPECT_EQ(frozen.grad(Param::lnf_w).numel(), C);

  Rng rng(8);
  const auto tokens = random_ids(rng, B * T, cfg.vocab_size);
  const auto targets = random_ids(rng, B * T, cfg.vocab_size);
  full.zero_grad();
  frozen.zero_grad();
  const double loss_full =
      full.forward_backward(tokens.data(), targets.data(), B, T, 1.0f / (B * T));
  const double loss_frozen =
      frozen.forward_backward(tokens.data(), targets.data(), B, T, 1.0f / (B * T));
  EXPECT_EQ(loss_full, loss_frozen);
  const double loss_eval = eval_only.forward(tokens.data(), targets.data(), B, T);
  EXPECT_EQ(loss_full, loss_eval);
  auto host = [&](const Tensor& t) {
    std::vector<float> v(static_cast<size_t>(t.numel()));
    backend->download_f32(v.data(), t);
    return v;
  };
  int compared = 0;
  for (int pi = 0; pi < kNumParams; ++pi) {
    const Param p = static_cast<Param>(pi);
    const bool stacked =
        p != Param::wte && p != Param::wpe && p != Param::lnf_w && p != Param::lnf_b;
    for (int l = 0; l < (stacked ? cfg.n_layer : 1); ++l) {
      if (!frozen.is_trainable(p, l)) continue;
      Tensor g_full = stacked ? layer_view(full.grad(p), l) : full.grad(p);
      Tensor g_frozen =
          stacked ? layer_view(frozen.grad(p), l - frozen.grad_first_layer(p)) : frozen.grad(p);
      ASSERT_EQ(host(g_full), host(g_frozen)) << param_name(p) << " layer " << l;
      ++compared;
    }
  }
  EXPECT_EQ(compared, 3 * 11 + 1 + 2);  // 12 stacked tensors in 3 layers but qkv_w in 1, + lnf
  // Memory: the frozen layers' gradients are gone, and so are the activations of layers 0 and 1
  // but one shared slot (layer 1's output feeds the backward of layer 2); eval keeps one slot.
  const auto use_full = full.memory_use(), use_frozen = frozen.memory_use(),
             use_eval = eval_only.memory_use();
  EXPECT_LT(use_frozen.gradients, use_full.gradients * 6 / 10);
  EXPECT_EQ(use_eval.gradients, 0u);
  EXPECT_LT(use_frozen.activations, use_full.activations);
  EXPECT_LT(use_eval.activations, use_frozen.activations);
}

TEST(ClassHead, GradientsMatchFiniteDifferencesAndPaddingIsIgnored) {
  auto backend = make_backend("cpu", DType::f64);
  const GptConfig cfg = small_config();
  const int B = 3, T = 6, K = 3;
  GptModel model(cfg, *backend, B, T);
  randomize(model, 17, 0.3);
  model.enable_class_head(K, 5);
  Rng rng(4);
  random_tensor(*backend, model.class_param(0), rng, 0.5);
  const auto tokens = random_ids(rng, B * T, cfg.vocab_size);
  std::vector<int32_t> targets(B * T, -1);
  targets[0 * T + 5] = 2;  // row 0: classify the last position
  targets[1 * T + 3] = 0;  // row 1: a shorter example (positions 4, 5 are padding)
  // row 2: a padding row (no label)
  model.zero_grad();
  model.forward_backward(tokens.data(), targets.data(), B, T, 0.5f);
  auto loss = [&] { return model.forward(tokens.data(), targets.data(), B, T) * 0.5; };
  for (const ParamGroup& g : model.parameters()) {
    double* w = g.param.ptr<double>();
    const double* grad = g.grad.ptr<double>();
    double num_sq = 0, diff_sq = 0;
    for (int64_t i = 0; i < g.param.numel(); i += std::max<int64_t>(1, g.param.numel() / 12)) {
      const double saved = w[i];
      w[i] = saved + 1e-5;
      const double lp = loss();
      w[i] = saved - 1e-5;
      const double lm = loss();
      w[i] = saved;
      const double numeric = (lp - lm) / 2e-5;
      num_sq += numeric * numeric;
      diff_sq += (numeric - grad[i]) * (numeric - grad[i]);
    }
    if (num_sq > 0) {
      EXPECT_LT(std::sqrt(diff_sq / num_sq), 1e-6) << g.name;
    }
  }
  // Changing the tokens after a row's classified position (its padding) changes nothing.
  model.forward(tokens.data(), targets.data(), B, T);
  const auto logits = model.class_logits_to_host(B);
  auto padded = tokens;
  padded[1 * T + 4] = 1;
  padded[1 * T + 5] = 2;
  model.forward(padded.data(), targets.data(), B, T);
  const auto logits2 = model.class_logits_to_host(B);
  for (int k = 0; k < K; ++k) EXPECT_EQ(logits[1 * K + k], logits2[1 * K + k]);
  // Two labels in one row is an error naming the row; a label outside [0, K) too.
  auto bad = targets;
  bad[0 * T + 2] = 1;
  EXPECT_THROW(model.forward(tokens.data(), bad.data(), B, T), std::invalid_argument);
  bad = targets;
  bad[0 * T + 5] = K;
  EXPECT_THROW(model.forward(tokens.data(), bad.data(), B, T), std::out_of_range);
}

// frozen: everything frozen (as gpt-eval and gpt-generate set a model up), so all layers run in
// one activation slot and the cache must be filled layer by layer as they run.
void expect_kv_cache_equals_full_recomputation(bool frozen) {
  auto backend = make_backend("cpu", DType::f32);
  GptConfig cfg = small_config();
  cfg.max_seq_len = 16;
  cfg.n_embd = 16;
  const int B = 2, Tmax = 16, P = 4;
  GptModel model(cfg, *backend, B, Tmax);
  model.init_weights(3);
  randomize(model, 3, 0.4);
  model.enable_lora(all_targets(2), 1);  // the cached path must apply adapters too
  Rng rng(6);
  for (auto& [name, t] : model.lora_tensors()) random_tensor(*backend, t, rng, 0.3);
  if (frozen) model.set_trainable([](const std::string&, int) { return false; });
  std::vector<int32_t> seq = random_ids(rng, B * P, cfg.vocab_size);
  const int Vp = cfg.padded_vocab_size();
  // Greedy decoding with the cache.
  std::vector<std::vector<int32_t>> cached(B);
  for (int b = 0; b < B; ++b) cached[b].assign(seq.begin() + b * P, seq.begin() + (b + 1) * P);
  std::vector<float> logits = model.prefill(seq.data(), B, P);
  for (int pos = P; pos < Tmax; ++pos) {
    std::vector<int32_t> next(B);
    for (int b = 0; b < B; ++b) {
      const float* row = logits.data() + static_cast<size_t>(b) * Vp;
      next[b] = static_cast<int32_t>(std::max_element(row, row + cfg.vocab_size) - row);
      cached[b].push_back(next[b]);
    }
    if (pos + 1 < Tmax) logits = model.decode(next.data(), B, pos);
    // Full recomputation of the same prefix gives the same next-token logits.
    std::vector<int32_t> full(static_cast<size_t>(B) * (pos + 1));
    for (int b = 0; b < B; ++b)
      std::copy(cached[b].begin(), cached[b].begin() + pos + 1, full.begin() + b * (pos + 1));
    if (pos + 1 < Tmax) {
      model.forward(full.data(), nullptr, B, pos + 1);
      const auto ref = model.logits_to_host(B, pos + 1);
      for (int b = 0; b < B; ++b)
        for (int v = 0; v < cfg.vocab_size; ++v)
          ASSERT_NEAR(logits[static_cast<size_t>(b) * Vp + v],
                      ref[(static_cast<size_t>(b) * (pos + 1) + pos) * Vp + v], 1e-4)
              << "row " << b << " position " << pos;
      // Restore the cache state: forward() does not touch the cache, decode continues from it.
    }
  }
  EXPECT_EQ(cached[0].size(), static_cast<size_t>(Tmax));
}

TEST(Generation, KvCacheEqualsFullRecomputation) {
  expect_kv_cache_equals_full_recomputation(false);
}
TEST(Generation, KvCacheEqualsFullRecomputationWithOneActivationSlot) {
  expect_kv_cache_equals_full_recomputation(true);
}

TEST(Sampler, GreedyTopKTopPAndDeterminism) {
  const std::vector<float> logits{1.0f, 3.0f, 2.0f, -1.0f, 2.5f};
  Sampler greedy(SamplingConfig{0.0f, 0, 1.0f}, 1);
  EXPECT_EQ(greedy.sample(logits.data(), 5), 1);
  EXPECT_EQ(greedy.sample(logits.data(), 3), 1);
  Sampler top1(SamplingConfig{1.0f, 1, 1.0f}, 7);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(top1.sample(logits.data(), 5), 1);
  // top-k 2: only tokens 1 and 4 ever appear.
  Sampler top2(SamplingConfig{1.0f, 2, 1.0f}, 7);
  for (int i = 0; i < 200; ++i) {
    const int t = top2.sample(logits.data(), 5);
    EXPECT_TRUE(t == 1 || t == 4) << t;
  }
  // top-p small enough keeps only the best token.
  Sampler nucleus(SamplingConfig{1.0f, 0, 0.3f}, 7);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(nucleus.sample(logits.data(), 5), 1);
  // Same seed, same draws; frequencies follow the softmax.
  Sampler a(SamplingConfig{1.0f, 0, 1.0f}, 42), b(SamplingConfig{1.0f, 0, 1.0f}, 42);
  std::vector<int> counts(5, 0);
  for (int i = 0; i < 20000; ++i) {
    const int x = a.sample(logits.data(), 5);
    ASSERT_EQ(x, b.sample(logits.data(), 5));
    ++counts[x];
  }
  double z = 0;
  for (float l : logits) z += std::exp(l);
  for (int i = 0; i < 5; ++i) EXPECT_NEAR(counts[i] / 20000.0, std::exp(logits[i]) / z, 0.015) << i;
  EXPECT_THROW(Sampler(SamplingConfig{1.0f, 0, 0.0f}, 1), std::invalid_argument);
}

}  // namespace
}  // namespace gpt
