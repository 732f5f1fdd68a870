// The Llama family against transformers: tiny LlamaForCausalLM, Qwen2ForCausalLM and
// Qwen3ForCausalLM models of awkward shapes (tests/reference/make_llama_reference.py wrote them
// and what transformers computes from them, in float64) are read through the Hugging Face import
// path, as a user's directory would be, and must give transformers' logits, loss, every gradient
// and the parameters after one clipped AdamW step. Plus: decoding with the KV cache equals the
// full forward, sharded and bf16/f16 files read the same weights, and configs the family cannot
// run exactly are refused naming the field.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/optimizer.h"
#include "engine/safetensors.h"
#include "models/gpt.h"
#include "models/gpt_interop.h"
#include "models/gpt_io.h"
#include "models/llama_interop.h"
#include "temp_dir.h"

namespace gpt {
namespace {

namespace fs = std::filesystem;

std::string case_dir(const std::string& name) {
  return std::string(GPT_SOURCE_DIR) + "/tests/fixtures/llama_ref/" + name;
}

double rel_error(const std::vector<float>& got, const std::vector<float>& want) {
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < want.size(); ++i) {
    diff += (static_cast<double>(got[i]) - want[i]) * (static_cast<double>(got[i]) - want[i]);
    norm += static_cast<double>(want[i]) * want[i];
  }
  return std::sqrt(diff) / std::max(std::sqrt(norm), 1e-30);
}

std::vector<float> floats(const SafeTensorsFile& f, const std::string& name) {
  const SafeTensor* t = f.find(name);
  if (!t) throw std::runtime_error("reference has no tensor " + name);
  return tensor_as_f32(*t, name);
}

std::vector<int32_t> ints(const SafeTensorsFile& f, const std::string& name) {
  const SafeTensor* t = f.find(name);
  if (!t || t->dtype != "I32") throw std::runtime_error("reference has no i32 tensor " + name);
  std::vector<int32_t> v(static_cast<size_t>(t->numel()));
  std::memcpy(v.data(), t->data.data(), v.size() * 4);
  return v;
}

class LlamaReference : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    dir_ = case_dir(GetParam());
    ref_ = read_safetensors(dir_ + "/reference.safetensors");
    tokens_ = ints(ref_, "tokens");
    targets_ = ints(ref_, "targets");
    const SafeTensor* t = ref_.find("tokens");
    B_ = static_cast<int>(t->shape[0]);
    T_ = static_cast<int>(t->shape[1]);
    for (int32_t x : targets_) unmasked_ += x >= 0;
    weights_ = load_weights(dir_);  // the import path a user's directory takes
    backend_ = make_backend("cpu", DType::f32);
    model_ = std::make_unique<GptModel>(weights_.config, *backend_, B_, T_);
    upload_weights(*model_, weights_);
  }
  // Our tensors (weights or gradients) in Hugging Face naming and layout.
  static SafeTensorsFile hf(const GptWeights& w) { return llama_hf_tensors_from_weights(w); }

  std::string dir_;
  SafeTensorsFile ref_;
  std::vector<int32_t> tokens_, targets_;
  int B_ = 0, T_ = 0, unmasked_ = 0;
  GptWeights weights_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<GptModel> model_;
};

TEST_P(LlamaReference, ImportedConfigIsTheFamilys) {
  const GptConfig& c = weights_.config;
  EXPECT_TRUE(c.llama());
  const std::string name = GetParam();
  if (name.find("qwen3") == 0) {
    EXPECT_TRUE(c.qk_norm);
    EXPECT_NE(c.head_size(), c.n_embd / c.n_head) << "the case's head_dim is free of the width";
  }
  if (name.find("qwen2") == 0) {
    EXPECT_TRUE(c.qkv_bias);
    EXPECT_EQ(c.kv_heads(), 1) << "multi-query";
    EXPECT_FALSE(c.tied_head);
  }
  if (name.find("llama") == 0) {
    EXPECT_EQ(c.n_head / c.kv_heads(), 3);
    EXPECT_GT(c.rope_scaling.factor, 0.0);
    EXPECT_TRUE(c.tied_head);
  }
}

TEST_P(LlamaReference, LogitsAndLossMatchTransformers) {
  const double loss_sum = model_->forward(tokens_.data(), targets_.data(), B_, T_);
  const int V = weights_.config.vocab_size, Vp = weights_.config.padded_vocab_size();
  const std::vector<float> all = model_->logits_to_host(B_, T_);
  std::vector<float> logits;
  for (int i = 0; i < B_ * T_; ++i)
    logits.insert(logits.end(), all.begin() + static_cast<size_t>(i) * Vp,
                  all.begin() + static_cast<size_t>(i) * Vp + V);
  const double e = rel_error(logits, floats(ref_, "logits"));
  std::printf("[%s] logits rel err %.3e\n", GetParam(), e);
  EXPECT_LT(e, 2e-6);
  const double loss = loss_sum / unmasked_, want = floats(ref_, "loss")[0];
  std::printf("[%s] loss %.8f (transformers %.8f)\n", GetParam(), loss, want);
  EXPECT_NEAR(loss, want, 2e-6 * want);
}

TEST_P(LlamaReference, EveryGradientMatchesTransformers) {
  model_->zero_grad();
  model_->forward_backward(tokens_.data(), targets_.data(), B_, T_, 1.0f / unmasked_);
  const SafeTensorsFile grads = hf(download_grads(*model_));
  int compared = 0;
  for (const auto& [name, t] : grads.tensors) {
    const std::vector<float> want = floats(ref_, "grad." + name);
    const double e = rel_error(tensor_as_f32(t, name), want);
    EXPECT_LT(e, 2e-5) << "gradient of " << name;
    if (e > 2e-6) std::printf("[%s] grad %-50s rel err %.3e\n", GetParam(), name.c_str(), e);
    ++compared;
  }
  int in_reference = 0;
  for (const auto& [name, t] : ref_.tensors) in_reference += name.rfind("grad.", 0) == 0;
  EXPECT_EQ(compared, in_reference) << "every parameter transformers has, and no other";
}

TEST_P(LlamaReference, OneClippedAdamWStepMatchesTorch) {
  const auto meta = [&](const char* key) { return std::stod(ref_.metadata.at(key)); };
  AdamWConfig oc;
  oc.beta1 = static_cast<float>(meta("beta1"));
  oc.beta2 = static_cast<float>(meta("beta2"));
  oc.eps = static_cast<float>(meta("eps"));
  oc.weight_decay = static_cast<float>(meta("weight_decay"));
  oc.grad_clip = static_cast<float>(meta("grad_clip"));
  AdamW opt(*backend_, model_->parameters(), oc);
  model_->zero_grad();
  model_->forward_backward(tokens_.data(), targets_.data(), B_, T_, 1.0f / unmasked_);
  const double norm = opt.step(static_cast<float>(meta("lr")));
  EXPECT_NEAR(norm, meta("grad_norm"), 1e-5 * meta("grad_norm"));
  const SafeTensorsFile after = hf(download_weights(*model_));
  for (const auto& [name, t] : after.tensors) {
    const double e = rel_error(tensor_as_f32(t, name), floats(ref_, "step." + name));
    // Adam's first step is lr·g/(|g| + eps): elements whose gradient is near eps (1e-8) carry its
    // relative rounding into the step, so the tensors get 1e-4 where the gradients get 2e-5.
    EXPECT_LT(e, 1e-4) << name << " after one AdamW step";
  }
}

TEST_P(LlamaReference, KvCacheDecodingEqualsTheFullForward) {
  const int Vp = weights_.config.padded_vocab_size();
  model_->forward(tokens_.data(), nullptr, B_, T_);
  const std::vector<float> full = model_->logits_to_host(B_, T_);
  const int P = 5;  // prompt, then one token at a time
  std::vector<int32_t> prompt;
  for (int b = 0; b < B_; ++b)
    prompt.insert(prompt.end(), tokens_.begin() + b * T_, tokens_.begin() + b * T_ + P);
  std::vector<float> step = model_->prefill(prompt.data(), B_, P);
  for (int pos = P; pos <= T_; ++pos) {
    for (int b = 0; b < B_; ++b) {
      const float* want = full.data() + (static_cast<size_t>(b) * T_ + pos - 1) * Vp;
      std::vector<float> w(want, want + Vp), g(step.begin() + b * Vp, step.begin() + (b + 1) * Vp);
      EXPECT_LT(rel_error(g, w), 1e-5) << "row " << b << " position " << pos - 1;
    }
    if (pos == T_) break;
    std::vector<int32_t> next(B_);
    for (int b = 0; b < B_; ++b) next[b] = tokens_[b * T_ + pos];
    step = model_->decode(next.data(), B_, pos);
  }
}

INSTANTIATE_TEST_SUITE_P(Transformers, LlamaReference,
                         ::testing::Values("llama_gqa3_llama3rope", "qwen2_mqa_bias_untied",
                                           "qwen3_qknorm_headdim"),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           return std::string(info.param);
                         });

// A copy of a fixture's directory whose config.json is changed by `edit`.
std::string edited_copy(const TempDir& tmp, const std::string& name,
                        const std::function<void(nlohmann::json&)>& edit) {
  const std::string dir = tmp.file(name);
  fs::create_directories(dir);
  fs::copy_file(case_dir(name) + "/model.safetensors", dir + "/model.safetensors");
  nlohmann::json j = read_json_file(case_dir(name) + "/config.json");
  edit(j);
  std::ofstream(dir + "/config.json") << j.dump(2);
  return dir;
}

TEST(LlamaImport, ShardedFilesReadTheSameWeights) {
  TempDir tmp;
  const std::string name = "qwen2_mqa_bias_untied";
  const SafeTensorsFile whole = read_safetensors(case_dir(name) + "/model.safetensors");
  SafeTensorsFile shard[2];
  nlohmann::json index;
  for (size_t i = 0; i < whole.tensors.size(); ++i) {
    const int s = i % 2;
    shard[s].tensors.push_back(whole.tensors[i]);
    index["weight_map"][whole.tensors[i].first] =
        "model-0000" + std::to_string(s + 1) + "-of-00002.safetensors";
  }
  const std::string dir = tmp.file("sharded");
  fs::create_directories(dir);
  fs::copy_file(case_dir(name) + "/config.json", dir + "/config.json");
  for (int s = 0; s < 2; ++s)
    write_safetensors(dir + "/model-0000" + std::to_string(s + 1) + "-of-00002.safetensors",
                      shard[s]);
  std::ofstream(dir + "/model.safetensors.index.json") << index.dump();
  const GptWeights a = load_weights(case_dir(name)), b = load_weights(dir);
  ASSERT_EQ(a.params.size(), b.params.size());
  for (size_t p = 0; p < a.params.size(); ++p) EXPECT_EQ(a.params[p], b.params[p]) << p;
  // A shard that lacks a tensor is named.
  fs::remove(dir + "/model-00002-of-00002.safetensors");
  write_safetensors(dir + "/model-00002-of-00002.safetensors", SafeTensorsFile());
  EXPECT_NE(error_of([&] { load_weights(dir); }).find("missing tensor"), std::string::npos);
}

TEST(LlamaImport, Bf16AndF16FilesReadTheirValues) {
  TempDir tmp;
  const std::string name = "llama_gqa3_llama3rope";
  const SafeTensorsFile whole = read_safetensors(case_dir(name) + "/model.safetensors");
  for (const char* dtype : {"BF16", "F16"}) {
    SafeTensorsFile half;
    half.metadata["format"] = "pt";
    for (const auto& [n, t] : whole.tensors) {
      const std::vector<float> v = tensor_as_f32(t, n);
      SafeTensor h;
      h.dtype = dtype;
      h.shape = t.shape;
      for (float x : v) {
        uint32_t bits;
        std::memcpy(&bits, &x, 4);
        uint16_t u;
        if (std::string(dtype) == "BF16") {
          u = static_cast<uint16_t>(bits >> 16);  // truncation: exactly representable back
        } else {  // f16 by hand (truncating): sign, rebiased exponent, top mantissa; subnormals
          const uint32_t sign = (bits >> 16) & 0x8000, exp = (bits >> 23) & 0xff;
          const int e16 = static_cast<int>(exp) - 127 + 15;
          u = e16 > 0
                  ? static_cast<uint16_t>(sign | (e16 << 10) | ((bits >> 13) & 0x3ff))
                  : static_cast<uint16_t>(sign | static_cast<uint16_t>(std::fabs(x) / 0x1p-24f));
        }
        h.data.push_back(static_cast<uint8_t>(u & 0xff));
        h.data.push_back(static_cast<uint8_t>(u >> 8));
      }
      half.tensors.emplace_back(n, h);
    }
    const std::string dir = tmp.file(dtype);
    fs::create_directories(dir);
    fs::copy_file(case_dir(name) + "/config.json", dir + "/config.json");
    write_safetensors(dir + "/model.safetensors", half);
    const GptWeights a = load_weights(case_dir(name)), b = load_weights(dir);
    for (size_t p = 0; p < a.params.size(); ++p)
      for (size_t i = 0; i < a.params[p].size(); ++i)
        ASSERT_NEAR(b.params[p][i], a.params[p][i], std::fabs(a.params[p][i]) * 8e-3 + 1e-7)
            << dtype << " tensor " << p << " element " << i;
  }
}

TEST(LlamaImport, ConfigsTheFamilyCannotRunAreRefusedNamingTheField) {
  TempDir tmp;
  struct Case {
    const char* fixture;
    std::function<void(nlohmann::json&)> edit;
    const char* field;
  };
  const Case cases[] = {
      {"qwen3_qknorm_headdim", [](nlohmann::json& j) { j["use_sliding_window"] = true; },
       "use_sliding_window"},
      {"qwen3_qknorm_headdim", [](nlohmann::json& j) { j["layer_types"][1] = "sliding_attention"; },
       "layer_types"},
      {"qwen3_qknorm_headdim",
       [](nlohmann::json& j) { j["rope_parameters"]["rope_type"] = "yarn"; }, "rope_type"},
      {"llama_gqa3_llama3rope", [](nlohmann::json& j) { j["hidden_act"] = "gelu"; }, "hidden_act"},
      {"llama_gqa3_llama3rope", [](nlohmann::json& j) { j["attention_bias"] = true; },
       "attention_bias"},
      {"llama_gqa3_llama3rope", [](nlohmann::json& j) { j["mlp_bias"] = true; }, "mlp_bias"},
      {"llama_gqa3_llama3rope",
       [](nlohmann::json& j) { j["architectures"][0] = "MistralForCausalLM"; }, "architectures"},
      {"llama_gqa3_llama3rope", [](nlohmann::json& j) { j["num_key_value_heads"] = 4; },
       "n_head (6) must be a multiple of n_kv_head (4)"},
      {"qwen2_mqa_bias_untied", [](nlohmann::json& j) { j["model_type"] = "mistral"; },
       "model_type"},
  };
  int i = 0;
  for (const Case& c : cases) {
    const std::string dir = edited_copy(tmp, c.fixture, c.edit);
    const std::string err = error_of([&] { load_weights(dir); });
    EXPECT_NE(err.find(c.field), std::string::npos) << "case " << i << ": " << err;
    EXPECT_NE(err.find("config.json"), std::string::npos) << "case " << i << ": " << err;
    fs::remove_all(dir);
    ++i;
  }
}

TEST(LlamaImport, TransformersFourSpellingOfRopeReadsTheSame) {
  TempDir tmp;
  const std::string name = "llama_gqa3_llama3rope";
  const nlohmann::json five = read_json_file(case_dir(name) + "/config.json");
  const std::string dir = edited_copy(tmp, name, [](nlohmann::json& j) {
    if (!j.contains("rope_parameters")) return;
    nlohmann::json p = j["rope_parameters"];
    j.erase("rope_parameters");
    j["rope_theta"] = p["rope_theta"];
    p.erase("rope_theta");
    j["rope_scaling"] = p;
  });
  const GptConfig a = load_weights(case_dir(name)).config, b = load_weights(dir).config;
  EXPECT_EQ(gpt_config_to_json(a), gpt_config_to_json(b));
  EXPECT_GT(b.rope_scaling.factor, 0.0);
  EXPECT_TRUE(five.contains("rope_parameters")) << "the fixture is in transformers 5.x spelling";
}

}  // namespace
}  // namespace gpt
