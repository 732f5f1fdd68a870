// The tokenizer files a training run copies into its checkpoints, so that a checkpoint can be
// evaluated and generated from on its own.
#pragma once

#include <string>
#include <vector>

namespace gpt {

// Tokenizer files in dir or dir/tokenizer (meta.json, vocab.json, merges.txt, tokenizer.json,
// encoder.json, vocab.bpe, and a Hugging Face model's tokenizer_config.json,
// special_tokens_map.json, generation_config.json), name by name.
std::vector<std::string> tokenizer_files_in(const std::string& dir);
// gpt-pretrain's: those beside the training shards (a glob); when there are none, those of
// `fallback` (the checkpoint resumed, or the --init directory; empty or not a directory: none).
std::vector<std::string> pretrain_tokenizer_files(const std::string& train_glob,
                                                  const std::string& fallback);
// gpt-finetune's: meta.json, vocab.json, merges.txt, tokenizer.json and a Hugging Face model's
// tokenizer_config.json, special_tokens_map.json and generation_config.json beside the training
// shards, then those of their tokenizer/ folder not found beside them, then those of `init` (the
// --init directory) when it is a Hugging Face model directory (has a tokenizer.json).
std::vector<std::string> finetune_tokenizer_files(const std::string& train_glob,
                                                  const std::string& init = "");

}  // namespace gpt
