// Pieces the apps share beyond option parsing: choosing the backend and dtype, and finding the
// tokenizer that goes with a model or a data set (models load through models/loader.h).
#pragma once

#include <memory>
#include <string>

#include "data/prepare.h"
#include "engine/backend.h"

namespace gpt {

// dtype "auto": bf16 on CUDA, f32 on the CPU. Throws naming the flag for an unknown device/dtype.
std::unique_ptr<Backend> make_app_backend(const std::string& device, const std::string& dtype);

// The tokenizer for text in and out of a model. `spec`: "bytes", "gpt2", or a directory with
// tokenizer files; empty: found next to `near` (a checkpoint, a run or data directory, or a Hugging
// Face model directory): tokenizer/ or vocab.json + merges.txt (or tokenizer.json) there, else a
// meta.json that says "bytes". Throws naming where it looked when nothing is found.
PrepareTokenizer load_app_tokenizer(const std::string& spec, const std::string& near);

}  // namespace gpt
