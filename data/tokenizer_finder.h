// Finding the tokenizer that goes with a model or a data set, for the programs that read or write
// text through a model (gpt-generate, gpt-eval).
#pragma once

#include <string>

#include "data/prepare.h"

namespace gpt {

// The tokenizer for text in and out of a model. `spec`: "bytes", "gpt2", or a directory with
// tokenizer files; empty: found next to `near` (a checkpoint, a run or data directory, or a Hugging
// Face model directory): tokenizer/ or vocab.json + merges.txt (or tokenizer.json) there, else a
// meta.json that says "bytes". Throws naming where it looked when nothing is found.
PrepareTokenizer find_tokenizer(const std::string& spec, const std::string& near);

}  // namespace gpt
