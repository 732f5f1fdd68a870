// The model config as JSON (both families; GPT-2 as its five keys): a checkpoint's "model_config"
// and a model.safetensors' metadata. The weights in our naming are GptModel::weights_to_safetensors
// and gpt_weights_from_safetensors (models/gpt_interop.h).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "models/gpt.h"

namespace gpt {

nlohmann::json gpt_config_to_json(const GptConfig& c);
// Rejects unknown keys and wrong types, naming the key and `source`.
GptConfig gpt_config_from_json(const nlohmann::json& j, const std::string& source);

}  // namespace gpt
