// What a fine-tuned model adds to a checkpoint, beside the base weights (model.safetensors):
//
//   adapter.safetensors   LoRA: "lora.<target>.A" (L, r, in), "lora.<target>.B" (L, out, r);
//                         metadata rank, alpha, targets ("qkv,attproj,..."), n_layer, n_embd
//   head.safetensors      class head: "cls_w" (K, C), "cls_b" (K); metadata num_classes
//
// An adapter file is also written on its own (OUT/adapter.safetensors, a few hundred KB)
// so it can be shipped without the base model; the loader (models/loader.h) applies it
// to any base of the same shape.
#pragma once

#include <string>

#include "engine/safetensors.h"
#include "models/gpt.h"
#include "models/model.h"

namespace gpt {

SafeTensorsFile lora_to_safetensors(LanguageModel& model);
SafeTensorsFile class_head_to_safetensors(LanguageModel& model);
// Reads the LoRA configuration from an adapter file's metadata (throws naming path and field).
LoraConfig lora_config_from_safetensors(const SafeTensorsFile& file, const std::string& path);
// Loads adapter tensors into a model that has LoRA enabled with the same configuration; checks
// the shapes against the model and throws naming the file and tensor ("an adapter for another model
// shape").
void load_lora(LanguageModel& model, const SafeTensorsFile& file, const std::string& path);
int class_head_classes(const SafeTensorsFile& file, const std::string& path);
void load_class_head(LanguageModel& model, const SafeTensorsFile& file, const std::string& path);

}  // namespace gpt
