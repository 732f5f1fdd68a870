#include "models/gpt_interop.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "engine/checkpoint.h"
#include "engine/errors.h"
#include "engine/files.h"
#include "models/gpt_io.h"
#include "models/llama_interop.h"

namespace gpt {

namespace fs = std::filesystem;

namespace {

std::string shape_text(const std::vector<int64_t>& s) {
  return nlohmann::json(s).dump();
}

float bf16_to_float(uint16_t b) {
  const uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// dst (cols, rows) = srcᵀ where src is (rows, cols), both row-major.
void transpose(const float* src, float* dst, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) dst[c * rows + r] = src[r * cols + c];
}

void check_sizes(const GptWeights& w, const char* who) {
  if (w.params.size() != static_cast<size_t>(kNumParams))
    throw std::invalid_argument(std::string(who) + ": expected " + std::to_string(kNumParams) +
                                " tensors");
  for (int pi = 0; pi < kNumParams; ++pi) {
    int64_t n = 1;
    for (int64_t d : gpt_param_shape(w.config, static_cast<Param>(pi))) n *= d;
    if (static_cast<int64_t>(w.params[pi].size()) != n)
      throw std::invalid_argument(std::string(who) + ": tensor " +
                                  param_name(static_cast<Param>(pi)) + " has the wrong size");
  }
}

// How one HF tensor maps onto ours: parameter, layer (-1: not stacked), transposed (Conv1D).
struct HfEntry {
  std::string name;  // without the "transformer." prefix
  Param param;
  int layer;
  bool transposed;
};

// The table's parameters (models/gpt_params.h), unstacked: one entry per layer of a stacked one.
std::vector<HfEntry> hf_entries(const GptConfig& c) {
  std::vector<HfEntry> e;
  const ParamSpec* table = gpt_params();
  auto add = [&](const ParamSpec& p, int layer) {
    if (!param_present(c, p.id)) return;
    const std::string prefix = layer >= 0 ? "h." + std::to_string(layer) + "." : "";
    e.push_back({prefix + p.hf_name, p.id, layer, p.hf_transposed});
  };
  // HF's order: the embeddings, the blocks layer by layer, the final LayerNorm.
  for (int pi = 0; pi < kNumParams; ++pi)
    if (!table[pi].stacked && table[pi].kind != ParamKind::final_norm) add(table[pi], -1);
  for (int l = 0; l < c.n_layer; ++l)
    for (int pi = 0; pi < kNumParams; ++pi)
      if (table[pi].stacked) add(table[pi], l);
  for (int pi = 0; pi < kNumParams; ++pi)
    if (table[pi].kind == ParamKind::final_norm) add(table[pi], -1);
  return e;
}

// The shape of layer `layer`'s slice of parameter p (our layout), or all of an unstacked one.
std::vector<int64_t> slice_shape(const GptConfig& c, Param p, int layer) {
  std::vector<int64_t> s = gpt_param_shape(c, p);
  if (layer >= 0) s.erase(s.begin());
  return s;
}

// Saturates at INT64_MAX, so a header whose shapes overflow fails the size check instead of
// wrapping (found by fuzz_llmc).
int64_t numel(const std::vector<int64_t>& s) {
  int64_t n = 1;
  for (int64_t d : s)
    if (__builtin_mul_overflow(n, d, &n)) return INT64_MAX;
  return n;
}

// HF's shape of an entry: Conv1D weights transposed; wte with V rows.
std::vector<int64_t> hf_shape(const GptConfig& c, const HfEntry& e) {
  std::vector<int64_t> s = slice_shape(c, e.param, e.layer);
  if (e.param == Param::wte) s[0] = c.vocab_size;
  if (e.transposed) std::swap(s[0], s[1]);
  return s;
}

bool is_attention_buffer(const std::string& name) {
  // h.{l}.attn.bias / h.{l}.attn.masked_bias: causal-mask buffers of older transformers.
  if (name.rfind("h.", 0) != 0) return false;
  const size_t dot = name.find('.', 2);
  if (dot == std::string::npos) return false;
  const std::string rest = name.substr(dot + 1);
  return rest == "attn.bias" || rest == "attn.masked_bias";
}

}  // namespace

HfConfigFields::HfConfigFields(const nlohmann::json& j, std::string source)
    : j_(j), source_(std::move(source)) {
  if (!j.is_object()) fail(source_, "not a JSON object");
}

const nlohmann::json* HfConfigFields::field(const char* key) const {
  return j_.contains(key) && !j_[key].is_null() ? &j_[key] : nullptr;
}

int HfConfigFields::integer(const char* key, int fallback) const {
  const nlohmann::json* v = field(key);
  if (!v) return fallback;
  if (!v->is_number_integer())
    fail(source_, std::string("field '") + key + "': expected an integer, got " + v->dump());
  return v->get<int>();
}

bool HfConfigFields::flag(const char* key, bool fallback) const {
  const nlohmann::json* v = field(key);
  if (!v) return fallback;
  if (!v->is_boolean())
    fail(source_, std::string("field '") + key + "': expected true or false, got " + v->dump());
  return v->get<bool>();
}

nlohmann::json read_json_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail(path, "cannot open");
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    fail(path, std::string("malformed JSON: ") + e.what());
  }
}

// ---- export dtypes -----------------------------------------------------------------------------

ExportDType export_dtype_from_name(const std::string& name, const std::string& what) {
  if (name == "f32") return ExportDType::f32;
  if (name == "bf16") return ExportDType::bf16;
  throw std::invalid_argument(what + " '" + name + "': expected f32 or bf16");
}

const char* export_dtype_torch_name(ExportDType d) {
  return d == ExportDType::bf16 ? "bfloat16" : "float32";
}

uint16_t float_to_bf16_rne(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;  // NaN: torch's quiet NaN
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

void convert_tensors(SafeTensorsFile& file, ExportDType d) {
  if (d == ExportDType::f32) return;
  for (auto& [name, t] : file.tensors) {
    if (t.dtype != "F32") continue;
    const size_t n = t.data.size() / 4;
    std::vector<uint8_t> out(n * 2);
    for (size_t i = 0; i < n; ++i) {
      float x;
      std::memcpy(&x, t.data.data() + 4 * i, 4);
      const uint16_t b = float_to_bf16_rne(x);
      std::memcpy(out.data() + 2 * i, &b, 2);
    }
    t.dtype = "BF16";
    t.data = std::move(out);
  }
}

// ---- device <-> host ----------------------------------------------------------------------------

namespace {
GptWeights download_arena(GptModel& model, bool grads) {
  GptWeights w;
  w.config = model.config();
  for (int pi = 0; pi < kNumParams; ++pi) {
    const Param p = static_cast<Param>(pi);
    const Tensor param = model.param(p);
    std::vector<float> host(static_cast<size_t>(param.numel()), 0.0f);
    // A gradient covers the layers from grad_first_layer on (none for a frozen
    // tensor): zeros elsewhere.
    const Tensor t = grads ? model.grad(p) : param;
    if (!t.empty() && param.numel() > 0) {  // an absent tensor has a zero in its shape
      const size_t layer = static_cast<size_t>(param.shape.numel() / param.shape[0]);
      const size_t first = grads ? static_cast<size_t>(model.grad_first_layer(p)) * layer : 0;
      model.backend().download_f32(host.data() + first, t);
    }
    w.params.push_back(std::move(host));
  }
  return w;
}
}  // namespace

SafeTensorsFile GptModel::weights_to_safetensors() {
  return gpt_weights_to_safetensors(download_weights(*this));
}

GptWeights download_weights(GptModel& model) {
  return download_arena(model, false);
}
GptWeights download_grads(GptModel& model) {
  return download_arena(model, true);
}

void upload_weights(GptModel& model, const GptWeights& w) {
  const GptConfig& a = model.config();
  const GptConfig& b = w.config;
  if (a.n_layer != b.n_layer || a.n_head != b.n_head || a.n_embd != b.n_embd ||
      a.max_seq_len != b.max_seq_len || a.vocab_size != b.vocab_size)
    throw std::invalid_argument("upload_weights: the weights' model config " +
                                gpt_config_to_json(b).dump() + " differs from the model's " +
                                gpt_config_to_json(a).dump());
  check_sizes(w, "upload_weights");
  for (int pi = 0; pi < kNumParams; ++pi)
    model.backend().upload_f32(model.param(static_cast<Param>(pi)), w.params[pi].data());
}

// ---- formats ------------------------------------------------------------------------------------

const char* weights_format_name(WeightsFormat f) {
  switch (f) {
    case WeightsFormat::checkpoint:
      return "checkpoint";
    case WeightsFormat::hf:
      return "Hugging Face";
    case WeightsFormat::llmc:
      return "llm.c";
  }
  return "?";
}

WeightsFormat detect_weights_format(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    if (fs::exists(fs::path(path) / "trainer_state.json", ec) ||
        fs::exists(fs::path(path) / "latest", ec))
      return WeightsFormat::checkpoint;
    if (fs::exists(fs::path(path) / "config.json", ec) &&
        (fs::exists(fs::path(path) / "model.safetensors", ec) ||
         fs::exists(fs::path(path) / "model.safetensors.index.json", ec)))
      return WeightsFormat::hf;
    fail(path,
         "neither a checkpoint (trainer_state.json or a 'latest' pointer) nor a Hugging Face "
         "directory (config.json + model.safetensors or model.safetensors.index.json)");
  }
  if (!fs::is_regular_file(path, ec)) fail(path, "no such file or directory");
  const std::string base = fs::path(path).filename().string();
  if (base == "latest" || base == "best") return WeightsFormat::checkpoint;
  std::ifstream in(path, std::ios::binary);
  int32_t magic = 0;
  in.read(reinterpret_cast<char*>(&magic), 4);
  if (in && magic == kLlmcMagic) return WeightsFormat::llmc;
  fail(path, "not an llm.c model file (magic " + std::to_string(magic) + ", expected " +
                 std::to_string(kLlmcMagic) + "), a checkpoint or a Hugging Face directory");
}

GptWeights load_weights(const std::string& path) {
  switch (detect_weights_format(path)) {
    case WeightsFormat::checkpoint:
      return read_checkpoint_weights(path);
    case WeightsFormat::hf:  // GPT-2 or the Llama family, by config.json
      if (is_llama_hf_config(read_json_file(path + "/config.json"))) return read_hf_llama(path);
      return read_hf_gpt2(path);
    case WeightsFormat::llmc:
      return read_llmc_gpt2(path);
  }
  fail(path, "unknown format");
}

// ---- our naming ---------------------------------------------------------------------------------

SafeTensorsFile gpt_weights_to_safetensors(const GptWeights& w) {
  check_sizes(w, "gpt_weights_to_safetensors");
  SafeTensorsFile file;
  file.metadata["format"] = "gpt-engine";
  file.metadata["config"] = gpt_config_to_json(w.config).dump();
  for (int pi = 0; pi < kNumParams; ++pi) {
    const Param p = static_cast<Param>(pi);
    file.tensors.emplace_back(param_name(p),
                              make_f32_tensor(gpt_param_shape(w.config, p), w.params[pi].data()));
  }
  return file;
}

GptWeights gpt_weights_from_safetensors(const SafeTensorsFile& file, const GptConfig& config,
                                        const std::string& path) {
  GptWeights w;
  w.config = config;
  for (int pi = 0; pi < kNumParams; ++pi) {
    const Param p = static_cast<Param>(pi);
    const std::vector<int64_t> shape = gpt_param_shape(config, p);
    const SafeTensor* t = file.find(param_name(p));
    if (!t) fail(path, std::string("missing tensor '") + param_name(p) + "'");
    if (t->shape != shape)
      fail(path, std::string("tensor '") + param_name(p) + "' has shape " + shape_text(t->shape) +
                     ", the model config implies " + shape_text(shape));
    w.params.push_back(tensor_as_f32(*t, path + ": tensor '" + param_name(p) + "'"));
  }
  for (const auto& [name, t] : file.tensors) {
    bool known = false;
    for (int pi = 0; pi < kNumParams; ++pi)
      known = known || name == param_name(static_cast<Param>(pi));
    if (!known) fail(path, "unexpected tensor '" + name + "' (not a GPT parameter)");
  }
  return w;
}

GptWeights read_checkpoint_weights(const std::string& path) {
  const Checkpoint ck = Checkpoint::open(resolve_checkpoint(path));
  const GptConfig config =
      gpt_config_from_json(ck.field("model_config"), ck.path("trainer_state.json"));
  return gpt_weights_from_safetensors(ck.read_tensors("model.safetensors"), config,
                                      ck.path("model.safetensors"));
}

// ---- Hugging Face -------------------------------------------------------------------------------

GptConfig gpt_config_from_hf_json(const nlohmann::json& j, const std::string& source) {
  const HfConfigFields fields(j, source);
  auto field = [&](const char* key) { return fields.field(key); };
  auto integer = [&](const char* key, int fallback) { return fields.integer(key, fallback); };
  auto flag = [&](const char* key, bool fallback) { return fields.flag(key, fallback); };
  if (const nlohmann::json* t = field("model_type"); t && *t != "gpt2")
    fail(source, "field 'model_type': " + t->dump() + " is not supported (expected \"gpt2\")");
  GptConfig c;  // defaults of transformers' GPT2Config
  c.vocab_size = integer("vocab_size", 50257);
  c.max_seq_len = integer("n_positions", 1024);
  c.n_embd = integer("n_embd", 768);
  c.n_layer = integer("n_layer", 12);
  c.n_head = integer("n_head", 12);
  try {
    c.validate();
  } catch (const std::invalid_argument& e) {
    fail(source, e.what());
  }
  if (const nlohmann::json* v = field("n_inner");
      v && (!v->is_number_integer() || v->get<int>() != 4 * c.n_embd))
    fail(source, "field 'n_inner': " + v->dump() +
                     " is not supported (the MLP width must be 4*n_embd = " +
                     std::to_string(4 * c.n_embd) + ")");
  if (const nlohmann::json* v = field("activation_function");
      v && *v != "gelu_new" && *v != "gelu_pytorch_tanh")
    fail(source, "field 'activation_function': " + v->dump() +
                     " is not supported (expected \"gelu_new\", the tanh approximation)");
  if (const nlohmann::json* v = field("layer_norm_epsilon");
      v && (!v->is_number() || std::abs(v->get<double>() - 1e-5) > 1e-12))
    fail(source, "field 'layer_norm_epsilon': " + v->dump() + " is not supported (expected 1e-05)");
  if (!flag("tie_word_embeddings", true))
    fail(source,
         "field 'tie_word_embeddings': false is not supported (the output layer is the token "
         "embedding)");
  if (!flag("scale_attn_weights", true))
    fail(source,
         "field 'scale_attn_weights': false is not supported (attention scores are scaled by "
         "1/sqrt(head size))");
  if (flag("scale_attn_by_inverse_layer_idx", false))
    fail(source, "field 'scale_attn_by_inverse_layer_idx': true is not supported");
  if (flag("add_cross_attention", false))
    fail(source, "field 'add_cross_attention': true is not supported");
  return c;
}

nlohmann::json hf_config_json(const GptConfig& c) {
  nlohmann::ordered_json j;
  j["architectures"] = {"GPT2LMHeadModel"};
  j["model_type"] = "gpt2";
  j["vocab_size"] = c.vocab_size;
  j["n_positions"] = c.max_seq_len;
  j["n_ctx"] = c.max_seq_len;
  j["n_embd"] = c.n_embd;
  j["n_layer"] = c.n_layer;
  j["n_head"] = c.n_head;
  j["n_inner"] = nullptr;
  j["activation_function"] = "gelu_new";
  j["layer_norm_epsilon"] = 1e-5;
  // The engine trains without dropout; these only matter if the model is trained further in HF.
  j["resid_pdrop"] = 0.0;
  j["embd_pdrop"] = 0.0;
  j["attn_pdrop"] = 0.0;
  j["initializer_range"] = 0.02;
  j["scale_attn_weights"] = true;
  j["scale_attn_by_inverse_layer_idx"] = false;
  j["reorder_and_upcast_attn"] = false;
  j["tie_word_embeddings"] = true;
  j["use_cache"] = true;
  // GPT-2's <|endoftext|> (50256) and the byte tokenizer's (256) are both the last id.
  j["bos_token_id"] = c.vocab_size - 1;
  j["eos_token_id"] = c.vocab_size - 1;
  j["torch_dtype"] = "float32";
  return nlohmann::json(j);
}

SafeTensorsFile hf_tensors_from_weights(const GptWeights& w) {
  check_sizes(w, "hf_tensors_from_weights");
  const GptConfig& c = w.config;
  SafeTensorsFile file;
  file.metadata["format"] = "pt";  // transformers refuses safetensors files without it
  for (const HfEntry& e : hf_entries(c)) {
    const std::vector<int64_t> ours = slice_shape(c, e.param, e.layer);
    const std::vector<int64_t> theirs = hf_shape(c, e);
    const int64_t n = numel(theirs);
    const float* src =
        w.params[static_cast<int>(e.param)].data() + (e.layer >= 0 ? e.layer * numel(ours) : 0);
    std::vector<float> out(static_cast<size_t>(n));
    if (e.transposed)
      transpose(src, out.data(), ours[0], ours[1]);
    else
      std::memcpy(out.data(), src, static_cast<size_t>(n) * 4);  // wte: the first V rows
    file.tensors.emplace_back("transformer." + e.name, make_f32_tensor(theirs, out.data()));
  }
  return file;
}

GptWeights weights_from_hf_tensors(const SafeTensorsFile& file, const GptConfig& c,
                                   const std::string& path) {
  std::string prefix;
  for (const auto& [name, t] : file.tensors)
    if (name.rfind("transformer.", 0) == 0) prefix = "transformer.";
  const std::vector<HfEntry> entries = hf_entries(c);
  // Every tensor must be known: a parameter, the tied lm_head, or an attention buffer.
  for (const auto& [name, t] : file.tensors) {
    if (name == "lm_head.weight") continue;
    const std::string bare = name.rfind(prefix, 0) == 0 ? name.substr(prefix.size()) : name;
    if (is_attention_buffer(bare)) continue;
    bool known = false;
    for (const HfEntry& e : entries) known = known || (prefix + e.name) == name;
    if (!known)
      fail(path, "unexpected tensor '" + name +
                     "' (not a parameter of a GPT2LMHeadModel with n_layer=" +
                     std::to_string(c.n_layer) + ")");
  }
  GptWeights w;
  w.config = c;
  for (int pi = 0; pi < kNumParams; ++pi)
    w.params.emplace_back(static_cast<size_t>(numel(gpt_param_shape(c, static_cast<Param>(pi)))),
                          0.0f);
  for (const HfEntry& e : entries) {
    const std::string name = prefix + e.name;
    const SafeTensor* t = file.find(name);
    if (!t) fail(path, "missing tensor '" + name + "'");
    const std::vector<int64_t> theirs = hf_shape(c, e);
    if (t->shape != theirs)
      fail(path, "tensor '" + name + "' has shape " + shape_text(t->shape) +
                     ", but config.json implies " + shape_text(theirs));
    const std::vector<float> v = tensor_as_f32(*t, path + ": tensor '" + name + "'");
    const std::vector<int64_t> ours = slice_shape(c, e.param, e.layer);
    float* dst =
        w.params[static_cast<int>(e.param)].data() + (e.layer >= 0 ? e.layer * numel(ours) : 0);
    if (e.transposed)
      transpose(v.data(), dst, theirs[0], theirs[1]);
    else
      std::memcpy(dst, v.data(), v.size() * 4);  // wte: rows V..Vp-1 stay zero
  }
  if (const SafeTensor* head = file.find("lm_head.weight")) {
    const std::vector<int64_t> want = {c.vocab_size, c.n_embd};
    if (head->shape != want)
      fail(path, "tensor 'lm_head.weight' has shape " + shape_text(head->shape) + ", expected " +
                     shape_text(want));
    const std::vector<float> v = tensor_as_f32(*head, path + ": tensor 'lm_head.weight'");
    if (std::memcmp(v.data(), w.params[static_cast<int>(Param::wte)].data(), v.size() * 4) != 0)
      fail(path, "tensor 'lm_head.weight' differs from '" + prefix +
                     "wte.weight': untied output layers are not supported (GPT-2 ties them)");
  }
  return w;
}

GptWeights read_hf_gpt2(const std::string& dir) {
  const std::string config_path = dir + "/config.json";
  const GptConfig c = gpt_config_from_hf_json(read_json_file(config_path), config_path);
  const std::string weights_path = dir + "/model.safetensors";
  std::error_code ec;
  if (!fs::exists(weights_path, ec)) {
    if (fs::exists(dir + "/model.safetensors.index.json", ec))
      fail(dir, "sharded safetensors (model.safetensors.index.json) are not supported");
    fail(weights_path, "missing (only safetensors weights are read, not pytorch_model.bin)");
  }
  return weights_from_hf_tensors(read_safetensors(weights_path), c, weights_path);
}

void write_hf_gpt2(const std::string& dir, const GptWeights& w, ExportDType dtype) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail(dir, "cannot create the directory: " + ec.message());
  SafeTensorsFile tensors = hf_tensors_from_weights(w);
  convert_tensors(tensors, dtype);
  write_safetensors(dir + "/model.safetensors", tensors);
  nlohmann::json config = hf_config_json(w.config);
  config["torch_dtype"] = export_dtype_torch_name(dtype);
  write_file_atomic(dir + "/config.json", config.dump(2) + "\n");
}

// ---- llm.c --------------------------------------------------------------------------------------

GptWeights read_llmc_gpt2(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) fail(path, "cannot open");
  const uint64_t size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  int32_t h[256];
  if (size < sizeof(h)) fail(path, "truncated: shorter than the 1024-byte llm.c header");
  in.read(reinterpret_cast<char*>(h), sizeof(h));
  if (h[0] != kLlmcMagic)
    fail(path,
         "bad magic " + std::to_string(h[0]) + " (expected " + std::to_string(kLlmcMagic) + ")");
  const int version = h[1];
  if (version != 3 && version != 5)
    fail(path, "version " + std::to_string(version) + " is not supported (3: fp32, 5: bf16)");
  const char* names[] = {"maxT", "V", "L", "NH", "C", "Vp"};
  for (int i = 2; i < 8; ++i)
    if (h[i] <= 0)
      fail(path, std::string("header field ") + names[i - 2] + " = " + std::to_string(h[i]) +
                     " is not positive");
  GptConfig c;
  c.max_seq_len = h[2];
  c.vocab_size = h[3];
  c.n_layer = h[4];
  c.n_head = h[5];
  c.n_embd = h[6];
  const int64_t file_vp = h[7];
  try {
    c.validate();
  } catch (const std::invalid_argument& e) {
    fail(path, std::string("header: ") + e.what());
  }
  if (file_vp < c.vocab_size)
    fail(path, "header: padded vocabulary Vp = " + std::to_string(file_vp) +
                   " is smaller than V = " + std::to_string(c.vocab_size));
  const size_t elem = version == 3 ? 4 : 2;
  uint64_t total = 0;
  std::vector<int64_t> counts;
  for (int pi = 0; pi < kNumParams; ++pi) {
    std::vector<int64_t> s = gpt_param_shape(c, static_cast<Param>(pi));
    if (pi == static_cast<int>(Param::wte)) s[0] = file_vp;
    counts.push_back(numel(s));
    if (__builtin_add_overflow(total, static_cast<uint64_t>(counts.back()), &total))
      total = UINT64_MAX;
  }
  uint64_t want = 0;
  if (__builtin_mul_overflow(total, elem, &want) || __builtin_add_overflow(want, sizeof(h), &want))
    want = UINT64_MAX;
  if (size != want)
    fail(path, "size " + std::to_string(size) + " bytes, the header implies " +
                   std::to_string(want) +
                   (size < want ? " (truncated)"
                                : " (trailing data, or a header that does not match the weights)"));
  GptWeights w;
  w.config = c;
  for (int pi = 0; pi < kNumParams; ++pi) {
    const int64_t n = counts[pi];
    std::vector<float> v(static_cast<size_t>(n));
    if (version == 3) {
      in.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(n * 4));
    } else {
      std::vector<uint16_t> raw(static_cast<size_t>(n));
      in.read(reinterpret_cast<char*>(raw.data()), static_cast<std::streamsize>(n * 2));
      for (int64_t i = 0; i < n; ++i) v[i] = bf16_to_float(raw[i]);
    }
    if (!in) fail(path, std::string("read failed in tensor ") + param_name(static_cast<Param>(pi)));
    if (pi == static_cast<int>(Param::wte)) {  // keep the V real rows; our padding is zero
      v.resize(static_cast<size_t>(c.vocab_size) * c.n_embd);
      v.resize(static_cast<size_t>(c.padded_vocab_size()) * c.n_embd, 0.0f);
    }
    w.params.push_back(std::move(v));
  }
  return w;
}

void write_llmc_gpt2(const std::string& path, const GptWeights& w) {
  check_sizes(w, "write_llmc_gpt2");
  const GptConfig& c = w.config;
  int32_t h[256] = {};
  h[0] = kLlmcMagic;
  h[1] = 3;
  h[2] = c.max_seq_len;
  h[3] = c.vocab_size;
  h[4] = c.n_layer;
  h[5] = c.n_head;
  h[6] = c.n_embd;
  h[7] = c.padded_vocab_size();
  write_file_atomic(path, [&](AtomicFileWriter& out) {
    out.write(h, sizeof(h));
    for (const auto& t : w.params) out.write(t.data(), t.size() * 4);
  });
}

}  // namespace gpt
