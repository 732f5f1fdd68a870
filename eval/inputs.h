// What the evaluation tasks load: the model (with what a fine-tuned checkpoint adds: its LoRA
// adapter and class head), its tokenizer, and the meta.json that gpt-prepare writes beside shards.
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "data/prepare.h"
#include "engine/backend.h"
#include "models/gpt.h"
#include "models/gpt_interop.h"
#include "models/loader.h"

namespace gpt {

// Whether `path` is a checkpoint whose directory holds head.safetensors.
bool checkpoint_has_class_head(const std::string& path);

// Allocates a model for (max_batch, max_seq) with the given weights (from load_weights(path)) for
// evaluation (frozen), with a fine-tuned checkpoint's adapter (or `adapter` instead) and, with
// kClassHeadIfPresent, its class head: models/loader.h.
LoadedModel build_eval_model(GptWeights weights, const std::string& path,
                             const std::string& adapter, Backend& backend, int max_batch,
                             int max_seq, HeadUse use);

// Finds a tokenizer: `spec` ("bytes", "gpt2", a directory) when not empty, else the one next to
// `near` (data/tokenizer_finder.h). Throws when there is none.
using TokenizerLoader =
    std::function<PrepareTokenizer(const std::string& spec, const std::string& near)>;

// The tokenizer: `spec` when given, else the one found next to `near_first` (the data), else
// next to `near_second` (the model). Throws naming where it looked.
PrepareTokenizer load_eval_tokenizer(const TokenizerLoader& load, const std::string& spec,
                                     const std::string& near_first, const std::string& near_second);

// Throws when the tokenizer has more tokens than the model's vocabulary (another model's
// tokenizer).
void check_tokenizer_fits(const PrepareTokenizer& tok, const GptConfig& config,
                          const std::string& model_path);

// meta.json beside a shard glob (null when absent; throws naming it when malformed).
nlohmann::json read_data_meta(const std::string& pattern);
std::string data_meta_path(const std::string& pattern);

// Throws "<meta.json>: the data's vocab_size V does not match the model's vocab_size W in PATH".
void check_data_vocab(const nlohmann::json& meta, const std::string& pattern,
                      const GptConfig& config, const std::string& model_path);

}  // namespace gpt
