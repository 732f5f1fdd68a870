// Hugging Face and llm.c interop (models/gpt_interop.*).
//
// The reference check: tests/reference/make_hf_reference.py built a tiny random GPT2LMHeadModel
// with transformers, saved it with save_pretrained (tests/fixtures/hf_tiny/) and wrote what
// transformers computed on a batch, in float64, to tests/fixtures/hf_gpt2_reference.bin: logits,
// loss and the gradient of every parameter (HF names and shapes). We import hf_tiny/ with our
// reader, run our CPU forward and backward, and compare by relative error ‖ours − HF‖ / ‖HF‖ with
// bounds that depend only on the dtype (docs/testing.md): f32 logits < 1e-5, gradients < 1e-4. A
// wrong transpose, a swapped q/k/v block or a mis-tied head fails by orders of magnitude.
//
// Then round trips (HF and llm.c, bit for bit) and bad input: each must be one error naming the
// file and the tensor or field.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/safetensors.h"
#include "models/gpt.h"
#include "models/gpt_interop.h"

namespace fs = std::filesystem;

namespace {

const std::string kHfDir = GPT_SOURCE_DIR "/tests/fixtures/hf_tiny";
const std::string kFixture = GPT_SOURCE_DIR "/tests/fixtures/hf_gpt2_reference.bin";
constexpr int32_t kMagic = 0x46524648;  // "HFRF"
constexpr int kHeaderInts = 16;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "gpt_interop_XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct GradRecord {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<double> values;
};

struct HfFixture {
  int n_layer = 0, n_head = 0, n_embd = 0, n_positions = 0, vocab = 0, B = 0, T = 0, n_unmasked = 0;
  std::vector<int32_t> tokens, targets;
  std::vector<double> logits;  // (B, T, V)
  double loss = 0;
  std::vector<GradRecord> grads;
};

void load_fixture(HfFixture& f) {
  std::ifstream in(kFixture, std::ios::binary);
  ASSERT_TRUE(in) << "cannot open " << kFixture
                  << " (tests/reference/make_hf_reference.py writes it)";
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)),
                                std::istreambuf_iterator<char>());
  size_t pos = 0;
  auto take = [&](void* dst, size_t n) {
    if (pos + n > bytes.size()) throw std::runtime_error(kFixture + ": truncated");
    std::memcpy(dst, bytes.data() + pos, n);
    pos += n;
  };
  int32_t h[kHeaderInts];
  ASSERT_GE(bytes.size(), sizeof(h));
  take(h, sizeof(h));
  ASSERT_EQ(h[0], kMagic) << kFixture << ": bad magic";
  ASSERT_EQ(h[1], 1) << kFixture << ": unsupported version";
  ASSERT_EQ(h[2], static_cast<int32_t>(sizeof(h))) << kFixture << ": unexpected header size";
  f.n_layer = h[3];
  f.n_head = h[4];
  f.n_embd = h[5];
  f.n_positions = h[6];
  f.vocab = h[7];
  f.B = h[8];
  f.T = h[9];
  f.n_unmasked = h[10];
  const int n_records = h[11];
  ASSERT_GT(f.B * f.T, 0);
  ASSERT_GT(f.n_unmasked, 0);
  const size_t BT = static_cast<size_t>(f.B) * f.T;
  f.tokens.resize(BT);
  f.targets.resize(BT);
  f.logits.resize(BT * f.vocab);
  try {
    take(f.tokens.data(), BT * 4);
    take(f.targets.data(), BT * 4);
    take(f.logits.data(), f.logits.size() * 8);
    take(&f.loss, 8);
    for (int r = 0; r < n_records; ++r) {
      GradRecord g;
      int32_t len = 0, ndim = 0;
      take(&len, 4);
      ASSERT_TRUE(len > 0 && len < 256) << "gradient record " << r << ": bad name length";
      g.name.resize(static_cast<size_t>(len));
      take(g.name.data(), static_cast<size_t>(len));
      take(&ndim, 4);
      ASSERT_TRUE(ndim >= 1 && ndim <= 4) << g.name << ": bad ndim";
      int64_t n = 1;
      for (int d = 0; d < ndim; ++d) {
        int32_t dim = 0;
        take(&dim, 4);
        g.shape.push_back(dim);
        n *= dim;
      }
      g.values.resize(static_cast<size_t>(n));
      take(g.values.data(), static_cast<size_t>(n) * 8);
      f.grads.push_back(std::move(g));
    }
  } catch (const std::runtime_error& e) {
    FAIL() << e.what();
  }
  ASSERT_EQ(pos, bytes.size()) << kFixture << ": size does not match its header";
  int unmasked = 0;
  for (size_t i = 0; i < BT; ++i) {
    ASSERT_TRUE(f.tokens[i] >= 0 && f.tokens[i] < f.vocab);
    ASSERT_TRUE(f.targets[i] == -1 || (f.targets[i] >= 0 && f.targets[i] < f.vocab));
    unmasked += f.targets[i] != -1;
  }
  ASSERT_EQ(unmasked, f.n_unmasked);
}

template <typename A, typename B>
double rel_error(const A& ours, const B& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = static_cast<double>(ours[i]) - static_cast<double>(ref[i]);
    num += d * d;
    den += static_cast<double>(ref[i]) * static_cast<double>(ref[i]);
  }
  const double r = std::sqrt(num) / std::sqrt(den);
  return std::isnan(r) ? INFINITY : r;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

void rewrite(const std::string& path, const std::function<void(gpt::SafeTensorsFile&)>& edit) {
  gpt::SafeTensorsFile f = gpt::read_safetensors(path);
  edit(f);
  gpt::write_safetensors(path, f);
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

// ---- the reference check ------------------------------------------------------------------------

class HfReference : public ::testing::TestWithParam<gpt::DType> {};

TEST_P(HfReference, LogitsLossAndGradientsMatchTransformers) {
  const gpt::DType dtype = GetParam();
  HfFixture f;
  ASSERT_NO_FATAL_FAILURE(load_fixture(f));
  const gpt::GptWeights w = gpt::read_hf_gpt2(kHfDir);
  ASSERT_EQ(w.config.n_layer, f.n_layer);
  ASSERT_EQ(w.config.n_head, f.n_head);
  ASSERT_EQ(w.config.n_embd, f.n_embd);
  ASSERT_EQ(w.config.max_seq_len, f.n_positions);
  ASSERT_EQ(w.config.vocab_size, f.vocab);

  auto backend = gpt::make_backend("cpu", dtype);
  gpt::GptModel model(w.config, *backend, f.B, f.T);
  gpt::upload_weights(model, w);
  // Bounds by dtype. f64 results come back through fp32 downloads (logits_to_host, download_grads),
  // so they are bounded by fp32 rounding, still two orders below the f32 bounds.
  const bool f32 = dtype == gpt::DType::f32;
  const double logits_bound = f32 ? 1e-5 : 1e-7, loss_bound = f32 ? 1e-6 : 1e-12,
               grad_bound = f32 ? 1e-4 : 1e-7;

  const double loss_sum = model.forward(f.tokens.data(), f.targets.data(), f.B, f.T);
  const std::vector<float> logits = model.logits_to_host(f.B, f.T);  // (B, T, Vp)
  const int Vp = w.config.padded_vocab_size();
  std::vector<float> real;  // the V real columns
  for (int i = 0; i < f.B * f.T; ++i)
    for (int v = 0; v < f.vocab; ++v) real.push_back(logits[static_cast<size_t>(i) * Vp + v]);
  const double logits_err = rel_error(real, f.logits);
  const double loss = loss_sum / f.n_unmasked;
  const double loss_err = std::abs(loss - f.loss) / std::abs(f.loss);
  std::printf("[ %s ] logits relative error %.2e (bound %.0e), loss %.2e (bound %.0e)\n",
              gpt::dtype_name(dtype), logits_err, logits_bound, loss_err, loss_bound);
  EXPECT_LT(logits_err, logits_bound);
  EXPECT_LT(loss_err, loss_bound);

  model.zero_grad();
  model.forward_backward(f.tokens.data(), f.targets.data(), f.B, f.T,
                         1.0f / static_cast<float>(f.n_unmasked));
  const gpt::SafeTensorsFile grads = gpt::hf_tensors_from_weights(gpt::download_grads(model));
  ASSERT_EQ(grads.tensors.size(), f.grads.size())
      << "our HF naming and transformers' parameters differ in number";
  double worst = 0;
  for (const GradRecord& g : f.grads) {
    const gpt::SafeTensor* t = grads.find(g.name);
    ASSERT_NE(t, nullptr) << "no gradient for " << g.name;
    ASSERT_EQ(t->shape, g.shape) << g.name;
    const std::vector<float> ours = gpt::tensor_as_f32(*t, g.name);
    const double err = rel_error(ours, g.values);
    worst = std::max(worst, err);
    EXPECT_LT(err, grad_bound) << g.name;
  }
  std::printf("[ %s ] worst gradient relative error %.2e over %zu tensors (bound %.0e)\n",
              gpt::dtype_name(dtype), worst, f.grads.size(), grad_bound);
  // The padded rows of wte never receive gradient.
  const std::vector<float> dwte =
      gpt::download_grads(model).params[static_cast<int>(gpt::Param::wte)];
  for (size_t i = static_cast<size_t>(f.vocab) * f.n_embd; i < dwte.size(); ++i)
    ASSERT_EQ(dwte[i], 0.0f);
}

INSTANTIATE_TEST_SUITE_P(Cpu, HfReference, ::testing::Values(gpt::DType::f32, gpt::DType::f64),
                         [](const auto& info) { return std::string(gpt::dtype_name(info.param)); });

// ---- Hugging Face round trips -------------------------------------------------------------------

TEST(HfInterop, ImportPadsTheVocabularyWithZeros) {
  const gpt::GptWeights w = gpt::read_hf_gpt2(kHfDir);
  const auto& wte = w.params[static_cast<int>(gpt::Param::wte)];
  ASSERT_EQ(wte.size(), static_cast<size_t>(w.config.padded_vocab_size()) * w.config.n_embd);
  for (size_t i = static_cast<size_t>(w.config.vocab_size) * w.config.n_embd; i < wte.size(); ++i)
    ASSERT_EQ(wte[i], 0.0f);
}

TEST(HfInterop, ExportWritesTheSameTensorsTransformersWrote) {
  TempDir tmp;
  const gpt::GptWeights w = gpt::read_hf_gpt2(kHfDir);
  gpt::write_hf_gpt2(tmp / "hf", w);
  const gpt::SafeTensorsFile original = gpt::read_safetensors(kHfDir + "/model.safetensors");
  const gpt::SafeTensorsFile ours = gpt::read_safetensors(tmp / "hf/model.safetensors");
  EXPECT_EQ(ours.metadata.at("format"), "pt");
  ASSERT_EQ(original.tensors.size(), ours.tensors.size());
  for (const auto& [name, t] : original.tensors) {
    const gpt::SafeTensor* o = ours.find(name);
    ASSERT_NE(o, nullptr) << name;
    EXPECT_EQ(o->dtype, t.dtype) << name;
    EXPECT_EQ(o->shape, t.shape) << name;
    EXPECT_TRUE(o->data == t.data) << name << " differs bitwise";
  }
  const gpt::GptWeights back = gpt::read_hf_gpt2(tmp / "hf");
  for (int p = 0; p < gpt::kNumParams; ++p)
    EXPECT_TRUE(back.params[p] == w.params[p]) << gpt::param_name(static_cast<gpt::Param>(p));
}

TEST(HfInterop, ReadsGpt2ModelNamingTiedHeadBuffersAndF16) {
  TempDir tmp;
  const gpt::GptWeights w = gpt::read_hf_gpt2(kHfDir);
  gpt::write_hf_gpt2(tmp / "hf", w);
  const std::string st = tmp / "hf/model.safetensors";
  rewrite(st, [&](gpt::SafeTensorsFile& f) {
    for (auto& [name, t] : f.tensors)
      name = name.substr(std::strlen("transformer."));                // GPT2Model's names
    f.tensors.emplace_back("lm_head.weight", *f.find("wte.weight"));  // a tied head, saved
    gpt::SafeTensor mask;  // the causal-mask buffer of older transformers
    mask.dtype = "F32";
    mask.shape = {1, 1, 8, 8};
    mask.data.assign(64 * 4, 0);
    f.tensors.emplace_back("h.0.attn.bias", mask);
    // wpe as F16 with known values: 1, -2, 65504 (largest half), 2^-24 (smallest subnormal).
    gpt::SafeTensor& wpe = const_cast<gpt::SafeTensor&>(*f.find("wpe.weight"));
    wpe.dtype = "F16";
    wpe.data.assign(static_cast<size_t>(wpe.numel()) * 2, 0);
    const uint16_t bits[4] = {0x3c00, 0xc000, 0x7bff, 0x0001};
    std::memcpy(wpe.data.data(), bits, sizeof(bits));
  });
  const gpt::GptWeights back = gpt::read_hf_gpt2(tmp / "hf");
  for (int p = 0; p < gpt::kNumParams; ++p) {
    if (p == static_cast<int>(gpt::Param::wpe)) continue;
    EXPECT_TRUE(back.params[p] == w.params[p]) << gpt::param_name(static_cast<gpt::Param>(p));
  }
  const auto& wpe = back.params[static_cast<int>(gpt::Param::wpe)];
  EXPECT_EQ(wpe[0], 1.0f);
  EXPECT_EQ(wpe[1], -2.0f);
  EXPECT_EQ(wpe[2], 65504.0f);
  EXPECT_EQ(wpe[3], std::ldexp(1.0f, -24));
  EXPECT_EQ(wpe[4], 0.0f);
}

TEST(HfInterop, BadInputNamesTheFileAndTheTensorOrField) {
  TempDir tmp;
  const gpt::GptWeights w = gpt::read_hf_gpt2(kHfDir);
  const std::string dir = tmp / "hf", st = dir + "/model.safetensors", cfg = dir + "/config.json";
  auto fresh = [&]() { gpt::write_hf_gpt2(dir, w); };
  auto expect = [&](const std::string& what, std::initializer_list<const char*> parts) {
    const std::string e = error_of([&] { gpt::read_hf_gpt2(dir); });
    for (const char* p : parts)
      EXPECT_NE(e.find(p), std::string::npos) << what << ": '" << p << "' not in: " << e;
  };

  fresh();
  rewrite(st, [](gpt::SafeTensorsFile& f) {
    auto& v = f.tensors;
    v.erase(
        std::remove_if(v.begin(), v.end(),
                       [](const auto& t) { return t.first == "transformer.h.1.mlp.c_fc.bias"; }),
        v.end());
  });
  expect("missing tensor", {"model.safetensors", "missing tensor 'transformer.h.1.mlp.c_fc.bias'"});

  fresh();
  rewrite(st, [](gpt::SafeTensorsFile& f) {
    gpt::SafeTensor& t =
        const_cast<gpt::SafeTensor&>(*f.find("transformer.h.0.attn.c_attn.weight"));
    std::swap(t.shape[0], t.shape[1]);  // stored as ours (out, in), not Conv1D's (in, out)
  });
  expect("mis-shaped tensor",
         {"model.safetensors", "transformer.h.0.attn.c_attn.weight", "[48,16]", "[16,48]"});

  fresh();
  write_text(cfg, gpt::hf_config_json([&] {
                    auto c = w.config;
                    c.n_embd = 32;
                    return c;
                  }())
                      .dump());
  expect("config does not match the weights",
         {"model.safetensors", "transformer.wte.weight", "config.json implies"});

  fresh();
  write_text(cfg, [&] {
    auto j = gpt::hf_config_json(w.config);
    j["activation_function"] = "relu";
    return j.dump();
  }());
  expect("unsupported activation", {"config.json", "activation_function", "relu"});

  fresh();
  write_text(cfg, [&] {
    auto j = gpt::hf_config_json(w.config);
    j["n_layer"] = "two";
    return j.dump();
  }());
  expect("wrong type", {"config.json", "n_layer", "expected an integer"});

  fresh();
  write_text(cfg, "{\"model_type\": \"gpt2\", ");
  expect("malformed config", {"config.json", "malformed JSON"});

  fresh();
  rewrite(st, [](gpt::SafeTensorsFile& f) {
    gpt::SafeTensor head = *f.find("transformer.wte.weight");
    head.data[5] ^= 0x40;
    f.tensors.emplace_back("lm_head.weight", head);
  });
  expect("untied head", {"model.safetensors", "lm_head.weight", "untied"});

  fresh();
  rewrite(st, [](gpt::SafeTensorsFile& f) {
    f.tensors.emplace_back("transformer.h.2.ln_1.weight", *f.find("transformer.ln_f.weight"));
  });
  expect("a layer too many",
         {"model.safetensors", "unexpected tensor 'transformer.h.2.ln_1.weight'"});

  fresh();
  fs::resize_file(st, fs::file_size(st) - 100);
  expect("truncated", {"model.safetensors", "truncated"});

  fresh();
  fs::remove(st);
  EXPECT_NE(error_of([&] { gpt::load_weights(dir); }).find("neither a checkpoint"),
            std::string::npos);
}

// ---- llm.c --------------------------------------------------------------------------------------

TEST(LlmcInterop, Fp32RoundTripIsExact) {
  TempDir tmp;
  const gpt::GptWeights w = gpt::read_hf_gpt2(kHfDir);
  gpt::write_llmc_gpt2(tmp / "model.bin", w);
  EXPECT_EQ(gpt::detect_weights_format(tmp / "model.bin"), gpt::WeightsFormat::llmc);
  const gpt::GptWeights back = gpt::load_weights(tmp / "model.bin");
  EXPECT_EQ(back.config.vocab_size, w.config.vocab_size);
  EXPECT_EQ(back.config.max_seq_len, w.config.max_seq_len);
  for (int p = 0; p < gpt::kNumParams; ++p)
    EXPECT_TRUE(back.params[p] == w.params[p]) << gpt::param_name(static_cast<gpt::Param>(p));
  // Header: magic, version 3, maxT, V, L, NH, C, Vp.
  std::ifstream in(tmp / "model.bin", std::ios::binary);
  int32_t h[8];
  in.read(reinterpret_cast<char*>(h), sizeof(h));
  const gpt::GptConfig& c = w.config;
  EXPECT_EQ(std::vector<int32_t>(h, h + 8),
            (std::vector<int32_t>{20240326, 3, c.max_seq_len, c.vocab_size, c.n_layer, c.n_head,
                                  c.n_embd, c.padded_vocab_size()}));
}

// A version-5 (bf16) file as llm.c writes it, with a padded vocabulary other than ours.
TEST(LlmcInterop, ReadsBf16Version5WithAnotherPadding) {
  TempDir tmp;
  const gpt::GptWeights w = gpt::read_hf_gpt2(kHfDir);
  const gpt::GptConfig& c = w.config;
  const int file_vp = c.vocab_size + 3;
  int32_t h[256] = {20240326,  5,        c.max_seq_len, c.vocab_size,
                    c.n_layer, c.n_head, c.n_embd,      file_vp};
  std::string bytes(reinterpret_cast<const char*>(h), sizeof(h));
  std::vector<std::vector<float>> expected;
  for (int p = 0; p < gpt::kNumParams; ++p) {
    std::vector<float> v = w.params[p];
    if (p == static_cast<int>(gpt::Param::wte))
      v.resize(static_cast<size_t>(file_vp) * c.n_embd, 0.5f);  // junk pad rows
    std::vector<float> as_read(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
      uint32_t u;
      std::memcpy(&u, &v[i], 4);
      const uint16_t b =
          static_cast<uint16_t>((u + 0x7fff + ((u >> 16) & 1)) >> 16);  // round to nearest even
      bytes.append(reinterpret_cast<const char*>(&b), 2);
      const uint32_t back = static_cast<uint32_t>(b) << 16;
      std::memcpy(&as_read[i], &back, 4);
    }
    if (p == static_cast<int>(gpt::Param::wte)) {  // ours: V real rows, then zeros up to our Vp
      as_read.resize(static_cast<size_t>(c.vocab_size) * c.n_embd);
      as_read.resize(static_cast<size_t>(c.padded_vocab_size()) * c.n_embd, 0.0f);
    }
    expected.push_back(as_read);
  }
  std::ofstream(tmp / "bf16.bin", std::ios::binary) << bytes;
  const gpt::GptWeights back = gpt::read_llmc_gpt2(tmp / "bf16.bin");
  for (int p = 0; p < gpt::kNumParams; ++p)
    EXPECT_TRUE(back.params[p] == expected[p]) << gpt::param_name(static_cast<gpt::Param>(p));
}

TEST(LlmcInterop, BadFilesAreReportedByName) {
  TempDir tmp;
  const gpt::GptWeights w = gpt::read_hf_gpt2(kHfDir);
  const std::string path = tmp / "model.bin";
  auto error = [&]() { return error_of([&] { gpt::read_llmc_gpt2(path); }); };
  auto patch_header = [&](int slot, int32_t value) {
    gpt::write_llmc_gpt2(path, w);
    std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(4 * slot);
    f.write(reinterpret_cast<const char*>(&value), 4);
  };
  gpt::write_llmc_gpt2(path, w);
  fs::resize_file(path, fs::file_size(path) - 4);
  EXPECT_NE(error().find(path + ": size"), std::string::npos) << error();
  EXPECT_NE(error().find("truncated"), std::string::npos) << error();
  patch_header(0, 1234);
  EXPECT_NE(error().find("bad magic 1234"), std::string::npos) << error();
  patch_header(1, 4);
  EXPECT_NE(error().find("version 4 is not supported"), std::string::npos) << error();
  patch_header(6, 24);  // a valid C that does not match the data
  EXPECT_NE(error().find("the header implies"), std::string::npos) << error();
  patch_header(7, 10);  // Vp < V
  EXPECT_NE(error().find("smaller than V"), std::string::npos) << error();
  std::ofstream(tmp / "short.bin") << "abc";
  EXPECT_NE(error_of([&] { gpt::load_weights(tmp / "short.bin"); }).find("short.bin"),
            std::string::npos);
}

TEST(Interop, UploadRejectsAnotherShape) {
  const gpt::GptWeights w = gpt::read_hf_gpt2(kHfDir);
  auto backend = gpt::make_backend("cpu", gpt::DType::f32);
  gpt::GptConfig other = w.config;
  other.n_layer = 3;
  gpt::GptModel model(other, *backend, 1, 4);
  EXPECT_THROW(gpt::upload_weights(model, w), std::invalid_argument);
}

}  // namespace
