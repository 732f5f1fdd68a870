// Saving and loading GPT weights as safetensors (our naming: the Param names of models/gpt.h, the
// padded vocabulary included) plus the model shape as JSON. The checkpoint issue builds the full
// checkpoint directory (optimizer state, trainer state, atomic rename) on top of these.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "models/gpt.h"

namespace gpt {

nlohmann::json gpt_config_to_json(const GptConfig& c);
// Rejects unknown keys and wrong types, naming the key and `source`.
GptConfig gpt_config_from_json(const nlohmann::json& j, const std::string& source);

// Writes every parameter as F32 (converted from the compute dtype) to path (atomic).
void save_gpt_weights(const std::string& path, GptModel& model);
// Loads a file written by save_gpt_weights; every tensor must be present with the model's shape.
// Throws std::runtime_error naming the file and the tensor.
void load_gpt_weights(const std::string& path, GptModel& model);

}  // namespace gpt
