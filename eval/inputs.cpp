// What the evaluation tasks load (eval/inputs.h): the model with a fine-tuned checkpoint's adapter
// and class head, its tokenizer, and the meta.json that gpt-prepare writes beside the shards.
#include "eval/inputs.h"

#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "engine/checkpoint.h"
#include "engine/safetensors.h"
#include "models/finetune_io.h"

namespace fs = std::filesystem;

namespace gpt {

bool checkpoint_has_class_head(const std::string& path) {
  std::error_code ec;
  if (!looks_like_checkpoint(path)) return false;
  return fs::is_regular_file(fs::path(resolve_checkpoint(path)) / "head.safetensors", ec);
}

LoadedModel build_eval_model(GptWeights weights, const std::string& path,
                             const std::string& adapter, Backend& backend, int max_batch,
                             int max_seq, HeadUse use) {
  LoadOptions options;
  options.max_batch = max_batch;
  options.max_seq = max_seq;
  options.adapter = adapter;
  options.head = use;
  options.freeze = true;  // evaluation only: no gradients, one layer of activations
  return load_model(std::move(weights), path, backend, options);
}

PrepareTokenizer load_eval_tokenizer(const TokenizerLoader& load, const std::string& spec,
                                     const std::string& near_first,
                                     const std::string& near_second) {
  if (!spec.empty()) return load(spec, "");
  if (!near_first.empty()) {
    try {
      return load("", near_first);
    } catch (const std::exception&) {
      // not beside the data: try the model
    }
  }
  try {
    return load("", near_second);
  } catch (const std::exception&) {
    throw std::runtime_error("no tokenizer found beside " +
                             (near_first.empty() ? "" : "the data (" + near_first + ") or ") +
                             "the model (" + near_second + "): pass --tokenizer bytes|gpt2|DIR");
  }
}

void check_tokenizer_fits(const PrepareTokenizer& tok, const GptConfig& config,
                          const std::string& model_path) {
  if (tok.vocab_size() > config.vocab_size)
    throw std::invalid_argument("the tokenizer has " + std::to_string(tok.vocab_size()) +
                                " tokens, more than the vocabulary of " + model_path + " (" +
                                std::to_string(config.vocab_size) +
                                "): pass the model's tokenizer with --tokenizer");
}

std::string data_meta_path(const std::string& pattern) {
  const fs::path dir = fs::path(pattern).parent_path();
  return (dir.empty() ? fs::path("meta.json") : dir / "meta.json").string();
}

nlohmann::json read_data_meta(const std::string& pattern) {
  const std::string path = data_meta_path(pattern);
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return nlohmann::json();
  std::ifstream in(path);
  try {
    nlohmann::json meta = nlohmann::json::parse(in);
    if (!meta.is_object()) throw std::runtime_error("expected a JSON object");
    return meta;
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": malformed JSON: " + e.what());
  }
}

void check_data_vocab(const nlohmann::json& meta, const std::string& pattern,
                      const GptConfig& config, const std::string& model_path) {
  if (!meta.is_object() || !meta.contains("vocab_size")) return;
  const nlohmann::json& v = meta["vocab_size"];
  if (!v.is_number_integer())
    throw std::runtime_error(data_meta_path(pattern) + ": field 'vocab_size': expected an integer");
  if (v.get<int64_t>() != config.vocab_size)
    throw std::runtime_error(data_meta_path(pattern) + ": the data's vocab_size " + v.dump() +
                             " does not match the model's vocab_size " +
                             std::to_string(config.vocab_size) + " in " + model_path);
}

}  // namespace gpt
