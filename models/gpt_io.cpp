#include "models/gpt_io.h"

#include <cstdint>
#include <stdexcept>

namespace gpt {

nlohmann::json gpt_config_to_json(const GptConfig& c) {
  nlohmann::json j{{"n_layer", c.n_layer},
                   {"n_head", c.n_head},
                   {"n_embd", c.n_embd},
                   {"max_seq_len", c.max_seq_len},
                   {"vocab_size", c.vocab_size}};
  if (!c.llama()) return j;  // GPT-2's five keys, as checkpoints have always held them
  j["family"] = c.family;
  j["n_kv_head"] = c.kv_heads();
  j["head_dim"] = c.head_size();
  j["mlp_hidden"] = c.mlp_hidden;
  j["norm_eps"] = c.norm_eps;
  j["rope_theta"] = c.rope_theta;
  if (c.rope_scaling.factor != 0.0)
    j["rope_scaling"] = {{"factor", c.rope_scaling.factor},
                         {"low_freq_factor", c.rope_scaling.low_freq_factor},
                         {"high_freq_factor", c.rope_scaling.high_freq_factor},
                         {"original_context", c.rope_scaling.original_context}};
  j["qkv_bias"] = c.qkv_bias;
  j["qk_norm"] = c.qk_norm;
  j["tied_head"] = c.tied_head;
  return j;
}

nlohmann::json GptModel::config_json() const {
  return gpt_config_to_json(config());
}

namespace {

int int_value(const nlohmann::json& v, const std::string& key, const std::string& source) {
  if (!v.is_number_integer())
    throw std::invalid_argument(source + ": key '" + key + "': expected an integer");
  const int64_t x =
      v.is_number_unsigned() && v.get<uint64_t>() > INT64_MAX ? INT64_MAX : v.get<int64_t>();
  if (x < INT32_MIN || x > INT32_MAX)
    throw std::invalid_argument(source + ": key '" + key + "': " + v.dump() + " is out of range");
  return static_cast<int>(x);
}

double number_value(const nlohmann::json& v, const std::string& key, const std::string& source) {
  if (!v.is_number())
    throw std::invalid_argument(source + ": key '" + key + "': expected a number");
  return v.get<double>();
}

bool bool_value(const nlohmann::json& v, const std::string& key, const std::string& source) {
  if (!v.is_boolean())
    throw std::invalid_argument(source + ": key '" + key + "': expected true or false");
  return v.get<bool>();
}

cpu::RopeScaling rope_scaling_from_json(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object())
    throw std::invalid_argument(source + ": key 'rope_scaling': expected an object");
  cpu::RopeScaling s;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string key = "rope_scaling." + it.key();
    if (it.key() == "factor")
      s.factor = number_value(it.value(), key, source);
    else if (it.key() == "low_freq_factor")
      s.low_freq_factor = number_value(it.value(), key, source);
    else if (it.key() == "high_freq_factor")
      s.high_freq_factor = number_value(it.value(), key, source);
    else if (it.key() == "original_context")
      s.original_context = int_value(it.value(), key, source);
    else
      throw std::invalid_argument(source + ": unknown model config key '" + key + "'");
  }
  return s;
}

}  // namespace

GptConfig gpt_config_from_json(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) throw std::invalid_argument(source + ": model config is not a JSON object");
  GptConfig c;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& key = it.key();
    const nlohmann::json& v = it.value();
    if (key == "n_layer")
      c.n_layer = int_value(v, key, source);
    else if (key == "n_head")
      c.n_head = int_value(v, key, source);
    else if (key == "n_embd")
      c.n_embd = int_value(v, key, source);
    else if (key == "max_seq_len")
      c.max_seq_len = int_value(v, key, source);
    else if (key == "vocab_size")
      c.vocab_size = int_value(v, key, source);
    else if (key == "family" && v.is_string())
      c.family = v.get<std::string>();
    else if (key == "family")
      throw std::invalid_argument(source + ": key 'family': expected a string");
    else if (key == "n_kv_head")
      c.n_kv_head = int_value(v, key, source);
    else if (key == "head_dim")
      c.head_dim = int_value(v, key, source);
    else if (key == "mlp_hidden")
      c.mlp_hidden = int_value(v, key, source);
    else if (key == "norm_eps")
      c.norm_eps = number_value(v, key, source);
    else if (key == "rope_theta")
      c.rope_theta = number_value(v, key, source);
    else if (key == "rope_scaling")
      c.rope_scaling = rope_scaling_from_json(v, source);
    else if (key == "qkv_bias")
      c.qkv_bias = bool_value(v, key, source);
    else if (key == "qk_norm")
      c.qk_norm = bool_value(v, key, source);
    else if (key == "tied_head")
      c.tied_head = bool_value(v, key, source);
    else
      throw std::invalid_argument(source + ": unknown model config key '" + key + "'");
  }
  try {
    c.validate();
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(source + ": " + e.what());
  }
  return c;
}

}  // namespace gpt
