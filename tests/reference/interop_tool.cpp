// interop_tool: what the Python cross-checks need from the C++ side.
//
//   interop_tool st-copy IN OUT        read IN with our safetensors reader, write OUT with our
//   writer interop_tool st-dump IN            print {"metadata": ..., "tensors": {name: {dtype,
//   shape,
//                                      sha256 of the raw bytes}}} as JSON, as our reader sees IN
//   interop_tool st-write DIR          write DIR/ours.safetensors (dtypes numpy knows) and
//                                      DIR/ours_bf16.safetensors with known values (see
//                                      check_safetensors.py)
//   interop_tool sha256 FILE           our SHA-256 of FILE
//   interop_tool logits WEIGHTS TOKENS B T OUT
//                                      our CPU f32 logits (B, T, V) as raw float32 for the int32
//                                      tokens in the file TOKENS; WEIGHTS as gpt-eval --model
//                                      takes (a fine-tuned checkpoint's LoRA adapter applied)
//
// Used by tests/reference/check_safetensors.py, tests/reference/make_hf_reference.py and
// tests/reference/check_peft_export.py.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/checkpoint.h"
#include "engine/safetensors.h"
#include "models/gpt.h"
#include "models/gpt_interop.h"
#include "models/loader.h"

namespace {

gpt::SafeTensor raw(const std::string& dtype, std::vector<int64_t> shape, const void* data,
                    size_t bytes) {
  gpt::SafeTensor t;
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.data.resize(bytes);
  if (bytes) std::memcpy(t.data.data(), data, bytes);
  return t;
}

int st_write(const std::string& dir) {
  gpt::SafeTensorsFile f;
  f.metadata["source"] = "gpt-engine";
  f.metadata["note"] = "unicode \xe2\x9c\x93";
  std::vector<float> f32(15);
  for (size_t i = 0; i < f32.size(); ++i) f32[i] = 0.25f * static_cast<float>(i) - 1.0f;
  std::vector<double> f64(8);
  for (size_t i = 0; i < f64.size(); ++i) f64[i] = static_cast<double>(i) / 3.0;
  std::vector<int32_t> i32(7);
  for (size_t i = 0; i < i32.size(); ++i) i32[i] = static_cast<int32_t>(i * i) - 10;
  const int64_t i64[3] = {-(int64_t(1) << 40), 0, int64_t(1) << 50};
  const uint8_t u8[4] = {0, 60, 120, 255};
  const uint16_t f16[3] = {0x3c00, 0xc000, 0x7bff};  // 1, -2, 65504
  const float scalar = 3.5f;
  f.tensors.emplace_back("f32", raw("F32", {3, 5}, f32.data(), 15 * 4));
  f.tensors.emplace_back("f64", raw("F64", {2, 2, 2}, f64.data(), 8 * 8));
  f.tensors.emplace_back("i32", raw("I32", {7}, i32.data(), 7 * 4));
  f.tensors.emplace_back("i64", raw("I64", {3}, i64, sizeof(i64)));
  f.tensors.emplace_back("u8", raw("U8", {4}, u8, 4));
  f.tensors.emplace_back("f16", raw("F16", {3}, f16, 6));
  f.tensors.emplace_back("scalar", raw("F32", {}, &scalar, 4));
  f.tensors.emplace_back("empty", raw("F32", {0, 4}, nullptr, 0));
  gpt::write_safetensors(dir + "/ours.safetensors", f);
  gpt::SafeTensorsFile b;
  const uint16_t bf16[4] = {0x3f80, 0x4000, 0xc040, 0x0000};  // 1, 2, -3, 0
  b.tensors.emplace_back("bf16", raw("BF16", {2, 2}, bf16, 8));
  gpt::write_safetensors(dir + "/ours_bf16.safetensors", b);
  return 0;
}

int st_dump(const std::string& path) {
  const gpt::SafeTensorsFile f = gpt::read_safetensors(path);
  nlohmann::json j;
  j["metadata"] = f.metadata;
  j["tensors"] = nlohmann::json::object();
  for (const auto& [name, t] : f.tensors)
    j["tensors"][name] = {{"dtype", t.dtype},
                          {"shape", t.shape},
                          {"sha256", gpt::sha256_hex(t.data.data(), t.data.size())}};
  std::printf("%s\n", j.dump().c_str());
  return 0;
}

int logits(const std::string& weights, const std::string& tokens_path, int B, int T,
           const std::string& out) {
  std::vector<int32_t> tokens(static_cast<size_t>(B) * T);
  std::ifstream in(tokens_path, std::ios::binary);
  in.read(reinterpret_cast<char*>(tokens.data()), static_cast<std::streamsize>(tokens.size() * 4));
  if (!in)
    throw std::runtime_error(tokens_path + ": expected " + std::to_string(tokens.size()) +
                             " int32 tokens");
  auto backend = gpt::make_backend("cpu", gpt::DType::f32);
  gpt::LoadOptions options;
  options.max_batch = B;
  options.max_seq = T;
  options.head = gpt::HeadUse::kLanguageModel;
  options.freeze = true;
  const gpt::LoadedModel loaded = gpt::load_model(weights, *backend, options);
  gpt::LanguageModel& model = *loaded.model;
  model.forward(tokens.data(), nullptr, B, T);
  const std::vector<float> all = model.logits_to_host(B, T);  // (B, T, Vp)
  const int V = model.shape().vocab_size, Vp = model.shape().padded_vocab_size;
  std::ofstream o(out, std::ios::binary);
  for (int i = 0; i < B * T; ++i)
    o.write(reinterpret_cast<const char*>(all.data() + static_cast<size_t>(i) * Vp), V * 4);
  if (!o) throw std::runtime_error(out + ": write failed");
  return 0;
}

int run(int argc, char** argv) {
  const std::vector<std::string> a(argv + 1, argv + argc);
  if (a.size() == 3 && a[0] == "st-copy") {
    gpt::write_safetensors(a[2], gpt::read_safetensors(a[1]));
    return 0;
  }
  if (a.size() == 2 && a[0] == "st-dump") return st_dump(a[1]);
  if (a.size() == 2 && a[0] == "st-write") return st_write(a[1]);
  if (a.size() == 2 && a[0] == "sha256") {
    std::printf("%s\n", gpt::sha256_file(a[1]).c_str());
    return 0;
  }
  if (a.size() == 6 && a[0] == "logits")
    return logits(a[1], a[2], std::stoi(a[3]), std::stoi(a[4]), a[5]);
  std::fprintf(stderr,
               "usage: interop_tool st-copy IN OUT | st-dump IN | st-write DIR | sha256 FILE | "
               "logits WEIGHTS TOKENS B T OUT\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "interop_tool: error: %s\n", e.what());
    return 1;
  }
}
