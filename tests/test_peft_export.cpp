// gpt-export's PEFT adapters and bf16 weights (models/peft_io.h, models/gpt_interop.h).
//
// A synthetic adapter of distinct values goes through peft_adapter_tensors: every PEFT module gets
// PEFT's name, our A unchanged and its own row block of our B, so that the sum of the modules'
// updates B_m·A_m, stacked in the fused matrix's row order, is exactly our B·A (a swapped split or
// a wrong offset fails). adapter_config.json carries PEFT's fields and module names; an adapter
// that does not fit the model is refused naming the tensor or field. The bf16 rounding matches
// torch's (nearest, ties to even). tests/reference/check_peft_export.py checks the result against
// transformers and PEFT themselves.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "engine/safetensors.h"
#include "models/gpt.h"
#include "models/gpt_interop.h"
#include "models/llama_interop.h"
#include "models/peft_io.h"
#include "temp_dir.h"

namespace gpt {
namespace {

GptConfig llama_gqa() {
  GptConfig c;
  c.family = "llama";
  c.n_layer = 2;
  c.n_head = 4;
  c.n_kv_head = 2;
  c.n_embd = 16;
  c.head_dim = 4;
  c.mlp_hidden = 24;
  c.vocab_size = 50;
  c.max_seq_len = 16;
  c.qkv_bias = true;  // Qwen2
  c.validate();
  return c;
}

GptConfig gpt2_tiny() {
  GptConfig c;
  c.n_layer = 2;
  c.n_head = 2;
  c.n_embd = 8;
  c.vocab_size = 50;
  c.max_seq_len = 16;
  c.validate();
  return c;
}

// Our adapter file for c with every target, r = 3, alpha = 6, and distinct values everywhere.
SafeTensorsFile synthetic_adapter(const GptConfig& c, const std::string& targets) {
  SafeTensorsFile f;
  f.metadata = {{"format", "gpt-engine-lora"},
                {"rank", "3"},
                {"alpha", "6"},
                {"targets", targets},
                {"n_layer", std::to_string(c.n_layer)},
                {"n_embd", std::to_string(c.n_embd)}};
  LoraConfig lc;
  EXPECT_TRUE(set_lora_targets(lc, targets).ok);
  float next = 1.0f;
  for (int t = 0; t < kNumLoraTargets; ++t) {
    if (!lc.target(t)) continue;
    const std::vector<int64_t> w = gpt_param_shape(c, lora_target_param(t));
    const std::string name = std::string("lora.") + lora_target_name(t);
    for (const auto& [suffix, shape] :
         {std::pair<std::string, std::vector<int64_t>>{".A", {w[0], 3, w[2]}},
          {".B", {w[0], w[1], 3}}}) {
      std::vector<float> v(static_cast<size_t>(shape[0] * shape[1] * shape[2]));
      for (float& x : v) x = (next += 1.0f) * 1e-3f;
      f.tensors.emplace_back(name + suffix, make_f32_tensor(shape, v.data()));
    }
  }
  return f;
}

std::vector<float> values(const SafeTensorsFile& f, const std::string& name) {
  const SafeTensor* t = f.find(name);
  EXPECT_NE(t, nullptr) << name;
  return t ? tensor_as_f32(*t, name) : std::vector<float>{};
}

TEST(PeftExport, LlamaModulesSplitTheFusedMatrices) {
  const GptConfig c = llama_gqa();
  const int64_t Q = 16, KV = 8, H = 24;
  auto rows = [&](int t) {
    std::vector<std::pair<std::string, std::pair<int64_t, int64_t>>> r;
    for (const PeftModule& m : peft_modules(c, t)) r.push_back({m.module, {m.row0, m.rows}});
    return r;
  };
  using R = std::vector<std::pair<std::string, std::pair<int64_t, int64_t>>>;
  EXPECT_EQ(rows(lora_target_index("qkv")), (R{{"self_attn.q_proj", {0, Q}},
                                               {"self_attn.k_proj", {Q, KV}},
                                               {"self_attn.v_proj", {Q + KV, KV}}}));
  EXPECT_EQ(rows(lora_target_index("attproj")), (R{{"self_attn.o_proj", {0, 16}}}));
  EXPECT_EQ(rows(lora_target_index("fc")), (R{{"mlp.gate_proj", {0, H}}, {"mlp.up_proj", {H, H}}}));
  EXPECT_EQ(rows(lora_target_index("fcproj")), (R{{"mlp.down_proj", {0, 16}}}));
  EXPECT_EQ(peft_layer_prefix(c, 1), "base_model.model.model.layers.1.");
}

// Every module's B_m·A_m is the rows [row0, row0 + rows) of our B·A, and A is repeated unchanged.
TEST(PeftExport, ModuleUpdatesStackToOursExactly) {
  const GptConfig c = llama_gqa();
  const SafeTensorsFile ours = synthetic_adapter(c, "qkv,attproj,fc,fcproj");
  const SafeTensorsFile peft = peft_adapter_tensors(c, ours, "adapter.safetensors");
  size_t expected_tensors = 0;
  for (int t = 0; t < kNumLoraTargets; ++t) {
    const std::vector<int64_t> w = gpt_param_shape(c, lora_target_param(t));
    const int64_t out = w[1], in = w[2], r = 3;
    const std::string name = std::string("lora.") + lora_target_name(t);
    const std::vector<float> A = values(ours, name + ".A"), B = values(ours, name + ".B");
    int64_t covered = 0;
    for (int l = 0; l < c.n_layer; ++l) {
      covered = 0;
      for (const PeftModule& m : peft_modules(c, t)) {
        const std::string at = peft_layer_prefix(c, l) + m.module;
        const std::vector<float> a = values(peft, at + ".lora_A.weight");
        const std::vector<float> b = values(peft, at + ".lora_B.weight");
        EXPECT_EQ(peft.find(at + ".lora_A.weight")->shape, (std::vector<int64_t>{r, in}));
        EXPECT_EQ(peft.find(at + ".lora_B.weight")->shape, (std::vector<int64_t>{m.rows, r}));
        ASSERT_EQ(a.size(), static_cast<size_t>(r * in));
        ASSERT_EQ(b.size(), static_cast<size_t>(m.rows * r));
        EXPECT_EQ(std::memcmp(a.data(), A.data() + l * r * in, a.size() * 4), 0) << at;
        EXPECT_EQ(m.row0, covered) << at << ": the blocks tile the fused matrix in order";
        for (int64_t o = 0; o < m.rows; ++o)
          for (int64_t i = 0; i < in; ++i) {
            double theirs = 0, mine = 0;
            for (int64_t k = 0; k < r; ++k) {
              theirs += static_cast<double>(b[o * r + k]) * a[k * in + i];
              mine +=
                  static_cast<double>(B[(l * out + m.row0 + o) * r + k]) * A[(l * r + k) * in + i];
            }
            ASSERT_EQ(theirs, mine) << at << " row " << o << " column " << i;
          }
        covered += m.rows;
        expected_tensors += 2;
      }
      EXPECT_EQ(covered, out) << name;
    }
  }
  EXPECT_EQ(peft.tensors.size(), expected_tensors);
}

TEST(PeftExport, LlamaAdapterConfig) {
  const GptConfig c = llama_gqa();
  LoraConfig lc;
  lc.rank = 3;
  lc.alpha = 6.0f;
  ASSERT_TRUE(set_lora_targets(lc, "qkv,fc").ok);
  const nlohmann::json j = peft_adapter_config(c, lc, "Qwen/Qwen2-0.5B");
  EXPECT_EQ(j["peft_type"], "LORA");
  EXPECT_EQ(j["task_type"], "CAUSAL_LM");
  EXPECT_EQ(j["r"], 3);
  EXPECT_TRUE(j["lora_alpha"].is_number_integer());
  EXPECT_EQ(j["lora_alpha"], 6);
  EXPECT_EQ(j["target_modules"],
            nlohmann::json({"q_proj", "k_proj", "v_proj", "gate_proj", "up_proj"}));
  EXPECT_EQ(j["bias"], "none");
  EXPECT_EQ(j["fan_in_fan_out"], false);
  EXPECT_EQ(j["use_rslora"], false);
  EXPECT_EQ(j["base_model_name_or_path"], "Qwen/Qwen2-0.5B");
  lc.alpha = 2.5f;  // PEFT's scaling alpha/r: our 2.5/3 exactly
  EXPECT_EQ(peft_adapter_config(c, lc, "")["lora_alpha"], 2.5);
  EXPECT_TRUE(peft_adapter_config(c, lc, "")["base_model_name_or_path"].is_null());
}

TEST(PeftExport, Gpt2NamesAndConv1D) {
  const GptConfig c = gpt2_tiny();
  LoraConfig lc;
  lc.rank = 3;
  ASSERT_TRUE(set_lora_targets(lc, "qkv,attproj,fcproj").ok);
  const nlohmann::json j = peft_adapter_config(c, lc, "");
  // c_proj alone would match the MLP's projection as well.
  EXPECT_EQ(j["target_modules"], nlohmann::json({"c_attn", "attn.c_proj", "mlp.c_proj"}));
  EXPECT_EQ(j["fan_in_fan_out"], true);
  const SafeTensorsFile peft =
      peft_adapter_tensors(c, synthetic_adapter(c, "qkv,attproj,fcproj"), "adapter.safetensors");
  const SafeTensor* a = peft.find("base_model.model.transformer.h.1.attn.c_attn.lora_A.weight");
  const SafeTensor* b = peft.find("base_model.model.transformer.h.1.attn.c_attn.lora_B.weight");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->shape, (std::vector<int64_t>{3, 8}));   // (r, in), not transposed
  EXPECT_EQ(b->shape, (std::vector<int64_t>{24, 3}));  // (3C, r): q, k, v together
  EXPECT_TRUE(peft.find("base_model.model.transformer.h.0.mlp.c_proj.lora_B.weight"));
  EXPECT_EQ(peft.tensors.size(), 2u * 3u * 2u);
}

TEST(PeftExport, RefusesAnAdapterThatDoesNotFit) {
  const GptConfig c = llama_gqa();
  SafeTensorsFile f = synthetic_adapter(c, "qkv");
  GptConfig other = c;
  other.n_kv_head = 4;  // k and v twice as wide: B has the wrong number of rows
  EXPECT_NE(error_of([&] { peft_adapter_tensors(other, f, "a.safetensors"); })
                .find("a.safetensors: tensor 'lora.qkv.B' has shape [2,32,3], but this model "
                      "needs [2,48,3]"),
            std::string::npos);
  other = c;
  other.n_layer = 3;
  EXPECT_NE(error_of([&] {
              peft_adapter_tensors(other, f, "a.safetensors");
            }).find("metadata field 'n_layer' is '2', but the model has 3"),
            std::string::npos);
  SafeTensorsFile extra = f;
  extra.tensors.push_back(f.tensors[0]);
  extra.tensors.back().first = "lora.fc.A";
  EXPECT_NE(error_of([&] {
              peft_adapter_tensors(c, extra, "a.safetensors");
            }).find("unexpected tensor 'lora.fc.A'"),
            std::string::npos);
  SafeTensorsFile missing = f;
  missing.tensors.pop_back();
  EXPECT_NE(error_of([&] {
              peft_adapter_tensors(c, missing, "a.safetensors");
            }).find("missing tensor 'lora.qkv.B'"),
            std::string::npos);
  // QK-norm with q/k/v biases is neither Qwen2 nor Qwen3: no Hugging Face module to adapt.
  GptConfig both = c;
  both.qk_norm = true;
  LoraConfig lc;
  EXPECT_NE(
      error_of([&] { peft_adapter_config(both, lc, ""); }).find("no Hugging Face architecture"),
      std::string::npos);
}

TEST(PeftExport, Bf16RoundsToNearestEven) {
  auto bf = [](uint32_t bits) {
    float x;
    std::memcpy(&x, &bits, 4);
    return float_to_bf16_rne(x);
  };
  EXPECT_EQ(bf(0x3f800000u), 0x3f80);  // 1
  EXPECT_EQ(bf(0x3f808000u), 0x3f80);  // halfway, even below: down
  EXPECT_EQ(bf(0x3f818000u), 0x3f82);  // halfway, odd below: up
  EXPECT_EQ(bf(0x3f808001u), 0x3f81);  // above halfway: up
  EXPECT_EQ(bf(0xbf807fffu), 0xbf80);  // below halfway: down (sign kept)
  EXPECT_EQ(bf(0x7f7fffffu), 0x7f80);  // the largest float rounds to infinity, as in torch
  EXPECT_EQ(bf(0xff800000u), 0xff80);  // -inf
  EXPECT_EQ(bf(0x7f800001u), 0x7fc0);  // a NaN stays a NaN
}

TEST(PeftExport, HfExportInBf16) {
  const GptConfig c = llama_gqa();
  GptWeights w;
  w.config = c;
  float next = 0.0f;
  for (int pi = 0; pi < kNumParams; ++pi) {
    size_t n = 1;
    for (int64_t d : gpt_param_shape(c, static_cast<Param>(pi))) n *= static_cast<size_t>(d);
    std::vector<float> v(n);
    for (float& x : v) x = std::sin(next += 1.0f) * 0.1f;
    if (pi == static_cast<int>(Param::wte) || pi == static_cast<int>(Param::lm_head))
      v.resize(static_cast<size_t>(c.vocab_size) * c.n_embd);  // the padded rows stay zero
    v.resize(n, 0.0f);
    w.params.push_back(std::move(v));
  }
  TempDir dir;
  write_hf_llama(dir.file("bf16"), w, ExportDType::bf16);
  EXPECT_EQ(read_json_file(dir.file("bf16/config.json"))["torch_dtype"], "bfloat16");
  const SafeTensorsFile f = read_safetensors(dir.file("bf16/model.safetensors"));
  for (const auto& [name, t] : f.tensors) EXPECT_EQ(t.dtype, "BF16") << name;
  // Read back: every weight is its bf16 rounding.
  const GptWeights back = read_hf_llama(dir.file("bf16"));
  for (int pi = 0; pi < kNumParams; ++pi)
    for (size_t i = 0; i < w.params[pi].size(); ++i) {
      const uint32_t bits = static_cast<uint32_t>(float_to_bf16_rne(w.params[pi][i])) << 16;
      float want;
      std::memcpy(&want, &bits, 4);
      ASSERT_EQ(back.params[pi][i], want) << param_name(static_cast<Param>(pi)) << " " << i;
    }
  write_hf_llama(dir.file("f32"), w);
  EXPECT_EQ(read_json_file(dir.file("f32/config.json"))["torch_dtype"], "float32");
}

}  // namespace
}  // namespace gpt
