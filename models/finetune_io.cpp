#include "models/finetune_io.h"

#include <nlohmann/json.hpp>
#include <stdexcept>
#include <vector>

namespace gpt {

namespace {

SafeTensor tensor_to_f32(Backend& backend, const Tensor& t) {
  std::vector<float> host(static_cast<size_t>(t.numel()));
  backend.download_f32(host.data(), t);
  std::vector<int64_t> shape;
  for (int d = 0; d < t.shape.ndim(); ++d) shape.push_back(t.shape[d]);
  return make_f32_tensor(shape, host.data());
}

void upload_checked(Backend& backend, const Tensor& t, const SafeTensorsFile& file,
                    const std::string& path, const std::string& name) {
  const SafeTensor* st = file.find(name);
  if (!st) throw std::runtime_error(path + ": missing tensor '" + name + "'");
  std::vector<int64_t> shape;
  for (int d = 0; d < t.shape.ndim(); ++d) shape.push_back(t.shape[d]);
  if (st->shape != shape) {
    throw std::runtime_error(path + ": tensor '" + name + "' has shape " +
                             nlohmann::json(st->shape).dump() + " but this model needs " +
                             nlohmann::json(shape).dump() +
                             " (an adapter or head for another model shape?)");
  }
  std::vector<float> host = tensor_as_f32(*st, path + ": tensor '" + name + "'");
  backend.upload_f32(t, host.data());
}

std::string meta(const SafeTensorsFile& f, const std::string& path, const std::string& key) {
  auto it = f.metadata.find(key);
  if (it == f.metadata.end())
    throw std::runtime_error(path + ": metadata field '" + key + "' is missing");
  return it->second;
}

int meta_int(const SafeTensorsFile& f, const std::string& path, const std::string& key) {
  const std::string v = meta(f, path, key);
  try {
    size_t used = 0;
    const int x = std::stoi(v, &used);
    if (used != v.size()) throw std::invalid_argument(v);
    return x;
  } catch (const std::exception&) {
    throw std::runtime_error(path + ": metadata field '" + key + "': expected an integer, got '" +
                             v + "'");
  }
}

}  // namespace

SafeTensorsFile lora_to_safetensors(LanguageModel& model) {
  const LoraConfig& lc = model.lora_config();
  SafeTensorsFile f;
  f.metadata["format"] = "gpt-engine-lora";
  f.metadata["rank"] = std::to_string(lc.rank);
  f.metadata["alpha"] = std::to_string(lc.alpha);
  f.metadata["targets"] = lora_targets_text(lc);
  f.metadata["n_layer"] = std::to_string(model.shape().n_layer);
  f.metadata["n_embd"] = std::to_string(model.shape().n_embd);
  for (auto& [name, t] : model.lora_tensors())
    f.tensors.emplace_back(name, tensor_to_f32(model.backend(), t));
  return f;
}

LoraConfig lora_config_from_safetensors(const SafeTensorsFile& file, const std::string& path) {
  if (meta(file, path, "format") != "gpt-engine-lora")
    throw std::runtime_error(path + ": not a LoRA adapter file");
  LoraConfig lc;
  lc.rank = meta_int(file, path, "rank");
  try {
    lc.alpha = std::stof(meta(file, path, "alpha"));
  } catch (const std::exception&) {
    throw std::runtime_error(path + ": metadata field 'alpha' is not a number");
  }
  const std::string targets = meta(file, path, "targets");
  // Every comma separates two names here: an empty list or name is an unknown target.
  LoraTargetsParse parsed = set_lora_targets(lc, targets);
  if (parsed.ok && (targets.empty() || targets.back() == ','))
    parsed = LoraTargetsParse{false, "", ""};
  if (!parsed.ok)
    throw std::runtime_error(path + ": metadata field 'targets': unknown target '" +
                             parsed.unknown + "'");
  return lc;
}

void load_lora(LanguageModel& model, const SafeTensorsFile& file, const std::string& path) {
  const int n_layer = meta_int(file, path, "n_layer"), n_embd = meta_int(file, path, "n_embd");
  if (n_layer != model.shape().n_layer || n_embd != model.shape().n_embd) {
    throw std::runtime_error(path + ": adapter for a model with " + std::to_string(n_layer) +
                             " layers of width " + std::to_string(n_embd) +
                             ", but this model has " + std::to_string(model.shape().n_layer) +
                             " layers of width " + std::to_string(model.shape().n_embd));
  }
  for (auto& [name, t] : model.lora_tensors()) upload_checked(model.backend(), t, file, path, name);
}

SafeTensorsFile class_head_to_safetensors(LanguageModel& model) {
  SafeTensorsFile f;
  f.metadata["format"] = "gpt-engine-class-head";
  f.metadata["num_classes"] = std::to_string(model.num_classes());
  f.tensors.emplace_back("cls_w", tensor_to_f32(model.backend(), model.class_param(0)));
  f.tensors.emplace_back("cls_b", tensor_to_f32(model.backend(), model.class_param(1)));
  return f;
}

int class_head_classes(const SafeTensorsFile& file, const std::string& path) {
  return meta_int(file, path, "num_classes");
}

void load_class_head(LanguageModel& model, const SafeTensorsFile& file, const std::string& path) {
  upload_checked(model.backend(), model.class_param(0), file, path, "cls_w");
  upload_checked(model.backend(), model.class_param(1), file, path, "cls_b");
}

}  // namespace gpt
