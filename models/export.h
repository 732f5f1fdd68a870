// gpt-export's library: a model's weights written in another program's format, or its LoRA
// adapter in PEFT's (docs/checkpoints.md, docs/models.md).
//
// The source is whatever --init takes: a checkpoint directory, a `latest` pointer, a run
// directory, a Hugging Face directory (GPT-2 or the Llama family) or an llm.c .bin. Its weights are
// read and verified in full (checksums, shapes) before anything is written. A folder (hf, peft) is
// written into a sibling staging folder OUT.partial-PID that then takes OUT's name, so a kill at
// any moment leaves no folder that mixes two exports; an existing OUT is replaced only with force
// (renamed aside first, removed after). Staging folders of killed exports are removed.
//
//   hf    config.json and model.safetensors (f32 or bf16) that transformers loads, with the
//         source's tokenizer files; for a checkpoint of a run that started from a Hugging Face
//         directory, the files the checkpoint lacks come from there when its tokenizer.json is
//         the same file. A checkpoint's LoRA adapter or class head is not in these weights.
//   llmc  an llm.c model file, version 3 (fp32), GPT-2 only.
//   peft  the checkpoint's LoRA adapter (or `adapter`, a file, with its base model as the source):
//         adapter_config.json + adapter_model.safetensors (models/peft_io.h). A checkpoint with a
//         class head is refused: PEFT's causal-LM adapter cannot carry it.
#pragma once

#include <string>

#include "models/gpt.h"
#include "models/model.h"

namespace gpt {

struct ExportRequest {
  std::string source;         // the weights (--checkpoint)
  std::string format;         // hf, llmc or peft
  std::string out;            // a directory (hf, peft) or a file (llmc)
  std::string dtype = "f32";  // hf and peft: f32 or bf16
  std::string adapter;        // peft: an adapter file to export instead of the checkpoint's
  std::string base_model;  // peft: base_model_name_or_path (default: the run's Hugging Face --init)
  bool force = false;      // replace an existing out
};

// What was written, for the report.
struct ExportResult {
  GptConfig config;          // the model's
  std::string architecture;  // hf: the transformers class (GPT2LMHeadModel, LlamaForCausalLM, ...)
  LoraConfig lora;           // peft: the adapter's rank, alpha and targets
  std::string target_modules;  // peft: adapter_config.json's target_modules, as JSON
  std::string base_model;      // peft: base_model_name_or_path ("" when unknown)
  // hf, llmc from a checkpoint: what the checkpoint has that these weights lack ("LoRA adapter",
  // "class head"; "" for nothing).
  std::string left_out;
};

// Throws std::invalid_argument naming the flag (--format, --dtype, --adapter, --base-model,
// --force) for a request that cannot be done, before anything is written.
ExportResult export_model(ExportRequest request);

}  // namespace gpt
