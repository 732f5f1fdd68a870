// Pieces the apps share beyond option parsing: choosing the backend and dtype, loading a model from
// any weights format, and finding the tokenizer that goes with a model or a data set.
#pragma once

#include <memory>
#include <string>

#include "data/prepare.h"
#include "engine/backend.h"
#include "models/gpt.h"

namespace gpt {

// dtype "auto": bf16 on CUDA, f32 on the CPU. Throws naming the flag for an unknown device/dtype.
std::unique_ptr<Backend> make_app_backend(const std::string& device, const std::string& dtype);

// A model loaded from a checkpoint (directory, `latest`, run directory), a Hugging Face GPT-2
// directory or an llm.c .bin, allocated for (max_batch, max_seq). max_seq 0: the model's context.
struct LoadedModel {
  std::unique_ptr<GptModel> model;
  std::string format;  // "checkpoint", "hf", "llmc"
  std::string path;
};
LoadedModel load_app_model(const std::string& path, Backend& backend, int max_batch, int max_seq);

// The tokenizer for text in and out of a model. `spec`: "bytes", "gpt2", or a directory with
// tokenizer files; empty: found next to `near` (a checkpoint, a run or data directory, or a Hugging
// Face model directory): tokenizer/ or vocab.json + merges.txt (or tokenizer.json) there, else a
// meta.json that says "bytes". Throws naming where it looked when nothing is found.
PrepareTokenizer load_app_tokenizer(const std::string& spec, const std::string& near);

}  // namespace gpt
