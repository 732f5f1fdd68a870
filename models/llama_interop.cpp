#include "models/llama_interop.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <stdexcept>
#include <vector>

#include "engine/errors.h"
#include "engine/files.h"

namespace gpt {

namespace fs = std::filesystem;

namespace {

// The architectures read, with their model_type.
struct Architecture {
  const char* name;
  const char* model_type;
};
constexpr Architecture kArchitectures[] = {
    {"LlamaForCausalLM", "llama"},
    {"Qwen2ForCausalLM", "qwen2"},
    {"Qwen3ForCausalLM", "qwen3"},
};

std::string shape_text(const std::vector<int64_t>& s) {
  return nlohmann::json(s).dump();
}

// The model_type config.json declares (from model_type, else from architectures), "" if none.
std::string model_type_of(const nlohmann::json& j) {
  if (j.contains("model_type") && j["model_type"].is_string())
    return j["model_type"].get<std::string>();
  if (j.contains("architectures") && j["architectures"].is_array())
    for (const auto& a : j["architectures"])
      for (const Architecture& k : kArchitectures)
        if (a == k.name) return k.model_type;
  return "";
}

// One Hugging Face tensor: the rows [row0, row0 + shape[0]) of layer `layer` of our parameter
// (for a 1-D tensor: those elements).
struct Piece {
  std::string name;
  Param param;
  int layer;
  int64_t row0;
  std::vector<int64_t> shape;
};

std::vector<Piece> pieces(const GptConfig& c) {
  const int64_t C = c.n_embd, V = c.vocab_size, HS = c.head_size();
  const int64_t Q = static_cast<int64_t>(c.n_head) * HS,
                KV = static_cast<int64_t>(c.kv_heads()) * HS;
  const int64_t H = c.mlp_hidden;
  std::vector<Piece> p;
  p.push_back({"model.embed_tokens.weight", Param::wte, -1, 0, {V, C}});
  for (int l = 0; l < c.n_layer; ++l) {
    const std::string at = "model.layers." + std::to_string(l) + ".";
    p.push_back({at + "input_layernorm.weight", Param::ln1_w, l, 0, {C}});
    p.push_back({at + "self_attn.q_proj.weight", Param::qkv_w, l, 0, {Q, C}});
    p.push_back({at + "self_attn.k_proj.weight", Param::qkv_w, l, Q, {KV, C}});
    p.push_back({at + "self_attn.v_proj.weight", Param::qkv_w, l, Q + KV, {KV, C}});
    if (c.qkv_bias) {
      p.push_back({at + "self_attn.q_proj.bias", Param::qkv_b, l, 0, {Q}});
      p.push_back({at + "self_attn.k_proj.bias", Param::qkv_b, l, Q, {KV}});
      p.push_back({at + "self_attn.v_proj.bias", Param::qkv_b, l, Q + KV, {KV}});
    }
    if (c.qk_norm) {
      p.push_back({at + "self_attn.q_norm.weight", Param::q_norm_w, l, 0, {HS}});
      p.push_back({at + "self_attn.k_norm.weight", Param::k_norm_w, l, 0, {HS}});
    }
    p.push_back({at + "self_attn.o_proj.weight", Param::attproj_w, l, 0, {C, Q}});
    p.push_back({at + "post_attention_layernorm.weight", Param::ln2_w, l, 0, {C}});
    p.push_back({at + "mlp.gate_proj.weight", Param::fc_w, l, 0, {H, C}});
    p.push_back({at + "mlp.up_proj.weight", Param::fc_w, l, H, {H, C}});
    p.push_back({at + "mlp.down_proj.weight", Param::fcproj_w, l, 0, {C, H}});
  }
  p.push_back({"model.norm.weight", Param::lnf_w, -1, 0, {C}});
  if (!c.tied_head) p.push_back({"lm_head.weight", Param::lm_head, -1, 0, {V, C}});
  return p;
}

// Where a piece's first element lives in our flat parameter tensor, and how many it has.
size_t piece_offset(const GptConfig& c, const Piece& piece) {
  const std::vector<int64_t> ours = gpt_param_shape(c, piece.param);
  int64_t per_layer = 1;
  for (size_t i = 1; i < ours.size(); ++i) per_layer *= ours[i];
  const int64_t cols = piece.shape.size() == 2 ? piece.shape[1] : 1;
  return static_cast<size_t>((piece.layer >= 0 ? piece.layer * per_layer : 0) + piece.row0 * cols);
}

size_t piece_numel(const Piece& piece) {
  size_t n = 1;
  for (int64_t d : piece.shape) n *= static_cast<size_t>(d);
  return n;
}

// Buffers some checkpoints carry that are not weights.
bool is_buffer(const std::string& name) {
  const std::string tail = "rotary_emb.inv_freq";
  return name.size() >= tail.size() &&
         name.compare(name.size() - tail.size(), tail.size(), tail) == 0;
}

// The safetensors files of a directory: model.safetensors, or the shards the index names.
std::vector<std::string> weight_files(const std::string& dir) {
  std::error_code ec;
  if (fs::exists(dir + "/model.safetensors", ec)) return {"model.safetensors"};
  const std::string index = dir + "/model.safetensors.index.json";
  if (!fs::exists(index, ec))
    fail(dir + "/model.safetensors",
         "missing, and no model.safetensors.index.json (only safetensors weights are read, not "
         "pytorch_model.bin)");
  const nlohmann::json j = read_json_file(index);
  if (!j.contains("weight_map") || !j["weight_map"].is_object())
    fail(index, "no 'weight_map' object");
  std::set<std::string> files;
  for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
    if (!it.value().is_string()) fail(index, "weight_map['" + it.key() + "'] is not a file name");
    const std::string f = it.value().get<std::string>();
    if (f.empty() || f.find('/') != std::string::npos || f == "." || f == "..")
      fail(index, "weight_map['" + it.key() + "']: '" + f + "' is not a file in the directory");
    files.insert(f);
  }
  if (files.empty()) fail(index, "weight_map is empty");
  return {files.begin(), files.end()};
}

}  // namespace

bool is_llama_hf_config(const nlohmann::json& j) {
  const std::string t = j.is_object() ? model_type_of(j) : "";
  for (const Architecture& a : kArchitectures)
    if (t == a.model_type) return true;
  return false;
}

GptConfig llama_config_from_hf_json(const nlohmann::json& j, const std::string& source) {
  const HfConfigFields fields(j, source);
  auto field = [&](const char* key) { return fields.field(key); };
  auto integer = [&](const char* key, int fallback) { return fields.integer(key, fallback); };
  auto flag = [&](const char* key, bool fallback) { return fields.flag(key, fallback); };
  auto number = [&](const nlohmann::json& obj, const char* key, double fallback,
                    const std::string& where) {
    if (!obj.contains(key) || obj[key].is_null()) return fallback;
    if (!obj[key].is_number())
      fail(source, "field '" + where + key + "': expected a number, got " + obj[key].dump());
    return obj[key].get<double>();
  };
  const std::string type = model_type_of(j);
  const Architecture* arch = nullptr;
  for (const Architecture& a : kArchitectures)
    if (type == a.model_type) arch = &a;
  if (!arch)
    fail(source, "field 'model_type': \"" + type +
                     "\" is not supported (expected llama, qwen2 or qwen3, or gpt2)");
  if (const nlohmann::json* a = field("architectures")) {
    if (!a->is_array() || a->size() != 1 || (*a)[0] != arch->name)
      fail(source, "field 'architectures': " + a->dump() + " is not supported (expected [\"" +
                       arch->name + "\"] for model_type " + type + ")");
  }

  GptConfig c;
  c.family = "llama";
  c.vocab_size = integer("vocab_size", 32000);
  c.n_embd = integer("hidden_size", 4096);
  c.n_layer = integer("num_hidden_layers", 32);
  c.n_head = integer("num_attention_heads", 32);
  c.n_kv_head = integer("num_key_value_heads", c.n_head);
  c.head_dim = integer("head_dim", c.n_head > 0 ? c.n_embd / c.n_head : 0);
  c.mlp_hidden = integer("intermediate_size", 11008);
  c.max_seq_len = integer("max_position_embeddings", 2048);
  c.norm_eps = number(j, "rms_norm_eps", 1e-6, "");
  c.tied_head = flag("tie_word_embeddings", false);
  // Qwen2 always has q/k/v biases; Llama and Qwen3 put attention_bias on o_proj as well.
  c.qkv_bias = type == "qwen2";
  c.qk_norm = type == "qwen3";
  if (type != "qwen2" && flag("attention_bias", false))
    fail(source,
         "field 'attention_bias': true is not supported (it adds a bias to o_proj, which the "
         "engine's Llama family does not have)");
  if (flag("mlp_bias", false)) fail(source, "field 'mlp_bias': true is not supported");
  if (const nlohmann::json* v = field("hidden_act"); v && *v != "silu")
    fail(source, "field 'hidden_act': " + v->dump() + " is not supported (expected \"silu\")");
  if (const nlohmann::json* v = field("pretraining_tp"); v && *v != 1)
    fail(source, "field 'pretraining_tp': " + v->dump() + " is not supported (expected 1)");
  if (flag("use_sliding_window", false))
    fail(source, "field 'use_sliding_window': true is not supported (full attention only)");
  if (const nlohmann::json* v = field("layer_types")) {
    if (!v->is_array()) fail(source, "field 'layer_types': expected a list");
    for (const auto& t : *v)
      if (t != "full_attention")
        fail(source, "field 'layer_types': " + t.dump() +
                         " is not supported (every layer must be full_attention)");
  }
  if (const nlohmann::json* v = field("partial_rotary_factor"); v && *v != 1.0)
    fail(source, "field 'partial_rotary_factor': " + v->dump() + " is not supported (expected 1)");

  // RoPE: transformers 5.x writes rope_parameters (with rope_theta inside); 4.x rope_theta and
  // rope_scaling at the top level.
  const nlohmann::json* params = field("rope_parameters");
  const nlohmann::json* scaling = params ? params : field("rope_scaling");
  const std::string where = params ? "rope_parameters." : "rope_scaling.";
  c.rope_theta =
      params ? number(*params, "rope_theta", 10000.0, where) : number(j, "rope_theta", 10000.0, "");
  if (scaling) {
    if (!scaling->is_object())
      fail(source, "field '" + where.substr(0, where.size() - 1) + "': expected an object");
    std::string rope_type = "default";
    for (const char* key : {"rope_type", "type"})
      if (scaling->contains(key) && (*scaling)[key].is_string()) rope_type = (*scaling)[key];
    if (rope_type == "llama3") {
      c.rope_scaling.factor = number(*scaling, "factor", 0.0, where);
      c.rope_scaling.low_freq_factor = number(*scaling, "low_freq_factor", 1.0, where);
      c.rope_scaling.high_freq_factor = number(*scaling, "high_freq_factor", 4.0, where);
      const double original = number(*scaling, "original_max_position_embeddings", 8192.0, where);
      c.rope_scaling.original_context = static_cast<int>(original);
    } else if (rope_type != "default") {
      fail(source, "field '" + where + "rope_type': \"" + rope_type +
                       "\" is not supported (default or llama3)");
    }
  }
  try {
    c.validate();
  } catch (const std::invalid_argument& e) {
    fail(source, e.what());
  }
  return c;
}

GptWeights read_hf_llama(const std::string& dir) {
  const std::string config_path = dir + "/config.json";
  const GptConfig c = llama_config_from_hf_json(read_json_file(config_path), config_path);
  const std::vector<Piece> expected = pieces(c);
  std::map<std::string, const Piece*> by_name;
  for (const Piece& p : expected) by_name[p.name] = &p;

  GptWeights w;
  w.config = c;
  for (int pi = 0; pi < kNumParams; ++pi) {
    size_t n = 1;
    for (int64_t d : gpt_param_shape(c, static_cast<Param>(pi))) n *= static_cast<size_t>(d);
    w.params.emplace_back(n, 0.0f);  // wte's and lm_head's padded rows stay zero
  }
  std::set<std::string> seen;
  std::vector<float> tied_head;  // a tied model's lm_head.weight, if the file has one
  for (const std::string& file : weight_files(dir)) {
    const std::string path = dir + "/" + file;
    const SafeTensorsFile st = read_safetensors(path);
    for (const auto& [name, t] : st.tensors) {
      if (is_buffer(name)) continue;
      if (name == "lm_head.weight" && c.tied_head) {
        tied_head = tensor_as_f32(t, path + ": tensor '" + name + "'");
        continue;
      }
      const auto it = by_name.find(name);
      if (it == by_name.end())
        fail(path, "unexpected tensor '" + name + "' (not a parameter of this " +
                       std::string(c.qk_norm    ? "Qwen3"
                                   : c.qkv_bias ? "Qwen2"
                                                : "Llama") +
                       " model with " + std::to_string(c.n_layer) + " layers)");
      const Piece& piece = *it->second;
      if (!seen.insert(name).second) fail(path, "tensor '" + name + "' appears twice");
      if (t.shape != piece.shape)
        fail(path, "tensor '" + name + "' has shape " + shape_text(t.shape) +
                       ", but config.json implies " + shape_text(piece.shape));
      const std::vector<float> v = tensor_as_f32(t, path + ": tensor '" + name + "'");
      std::memcpy(w.params[static_cast<int>(piece.param)].data() + piece_offset(c, piece), v.data(),
                  v.size() * sizeof(float));
    }
  }
  for (const Piece& p : expected)
    if (!seen.count(p.name)) fail(dir, "missing tensor '" + p.name + "'");
  if (!tied_head.empty()) {
    const std::vector<float>& wte = w.params[static_cast<int>(Param::wte)];
    if (tied_head.size() != static_cast<size_t>(c.vocab_size) * c.n_embd ||
        std::memcmp(tied_head.data(), wte.data(), tied_head.size() * sizeof(float)) != 0)
      fail(dir,
           "tensor 'lm_head.weight' differs from 'model.embed_tokens.weight' although "
           "tie_word_embeddings is true");
  }
  return w;
}

nlohmann::json llama_hf_config_json(const GptConfig& c) {
  const char* arch = c.qk_norm    ? "Qwen3ForCausalLM"
                     : c.qkv_bias ? "Qwen2ForCausalLM"
                                  : "LlamaForCausalLM";
  const char* type = c.qk_norm ? "qwen3" : c.qkv_bias ? "qwen2" : "llama";
  if (c.qk_norm && c.qkv_bias)
    throw std::invalid_argument(
        "a model with both QK-norm and q/k/v biases has no Hugging Face architecture");
  nlohmann::ordered_json j;
  j["architectures"] = {arch};
  j["model_type"] = type;
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.n_embd;
  j["intermediate_size"] = c.mlp_hidden;
  j["num_hidden_layers"] = c.n_layer;
  j["num_attention_heads"] = c.n_head;
  j["num_key_value_heads"] = c.kv_heads();
  j["head_dim"] = c.head_size();
  j["hidden_act"] = "silu";
  j["max_position_embeddings"] = c.max_seq_len;
  j["rms_norm_eps"] = c.norm_eps;
  j["rope_theta"] = c.rope_theta;
  if (c.rope_scaling.factor != 0.0)
    j["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", c.rope_scaling.factor},
                         {"low_freq_factor", c.rope_scaling.low_freq_factor},
                         {"high_freq_factor", c.rope_scaling.high_freq_factor},
                         {"original_max_position_embeddings", c.rope_scaling.original_context}};
  if (!c.qkv_bias) j["attention_bias"] = false;
  j["tie_word_embeddings"] = c.tied_head;
  j["use_cache"] = true;
  j["torch_dtype"] = "float32";
  return nlohmann::json(j);
}

SafeTensorsFile llama_hf_tensors_from_weights(const GptWeights& w) {
  const GptConfig& c = w.config;
  if (!c.llama()) throw std::invalid_argument("llama_hf_tensors_from_weights: not a llama model");
  SafeTensorsFile file;
  file.metadata["format"] = "pt";  // transformers refuses safetensors files without it
  for (const Piece& p : pieces(c)) {
    const std::vector<float>& src = w.params.at(static_cast<int>(p.param));
    const size_t at = piece_offset(c, p), n = piece_numel(p);
    if (at + n > src.size())
      throw std::invalid_argument("llama_hf_tensors_from_weights: tensor " +
                                  std::string(param_name(p.param)) + " has the wrong size");
    file.tensors.emplace_back(p.name, make_f32_tensor(p.shape, src.data() + at));
  }
  return file;
}

void write_hf_llama(const std::string& dir, const GptWeights& w, ExportDType dtype) {
  nlohmann::json config = llama_hf_config_json(w.config);
  config["torch_dtype"] = export_dtype_torch_name(dtype);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail(dir, "cannot create the directory: " + ec.message());
  SafeTensorsFile tensors = llama_hf_tensors_from_weights(w);
  convert_tensors(tensors, dtype);
  write_safetensors(dir + "/model.safetensors", tensors);
  write_file_atomic(dir + "/config.json", config.dump(2) + "\n");
}

}  // namespace gpt
