#include "models/gpt_io.h"

#include <cstdint>
#include <stdexcept>

namespace gpt {

nlohmann::json gpt_config_to_json(const GptConfig& c) {
  return nlohmann::json{{"n_layer", c.n_layer},
                        {"n_head", c.n_head},
                        {"n_embd", c.n_embd},
                        {"max_seq_len", c.max_seq_len},
                        {"vocab_size", c.vocab_size}};
}

nlohmann::json GptModel::config_json() const {
  return gpt_config_to_json(config());
}

GptConfig gpt_config_from_json(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) throw std::invalid_argument(source + ": model config is not a JSON object");
  GptConfig c;
  for (auto it = j.begin(); it != j.end(); ++it) {
    int* field = nullptr;
    if (it.key() == "n_layer")
      field = &c.n_layer;
    else if (it.key() == "n_head")
      field = &c.n_head;
    else if (it.key() == "n_embd")
      field = &c.n_embd;
    else if (it.key() == "max_seq_len")
      field = &c.max_seq_len;
    else if (it.key() == "vocab_size")
      field = &c.vocab_size;
    else
      throw std::invalid_argument(source + ": unknown model config key '" + it.key() + "'");
    if (!it.value().is_number_integer())
      throw std::invalid_argument(source + ": key '" + it.key() + "': expected an integer");
    const int64_t v = it.value().is_number_unsigned() && it.value().get<uint64_t>() > INT64_MAX
                          ? INT64_MAX
                          : it.value().get<int64_t>();
    if (v < INT32_MIN || v > INT32_MAX)
      throw std::invalid_argument(source + ": key '" + it.key() + "': " + it.value().dump() +
                                  " is out of range");
    *field = static_cast<int>(v);
  }
  try {
    c.validate();
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(source + ": " + e.what());
  }
  return c;
}

}  // namespace gpt
