// gpt-generate: sample text from a model, with a KV cache (each new token costs O(T)).
//
//   gpt-generate --model runs/tiny --prompt "ROMEO:" --max-new-tokens 200 --temperature 0.8
//   echo "First Citizen:" | gpt-generate --model runs/tiny --top-k 40
//
//   gpt-generate --model QWEN_DIR --chat "What is 2 + 2?" --system "Answer briefly." --temperature
//   0
//
// Prompts come from --prompt (repeatable), --prompt-file (one per line) or stdin (one per line).
// --chat TEXT (repeatable) is a user message instead: each is its own conversation (after the
// --system message, if given), rendered with the model's chat template and the assistant header
// (data/chat_template.h); the template comes from the tokenizer's directory (tokenizer_config.json
// beside the model, or --tokenizer DIR). Each completion is printed on stdout (with the prompt when
// --echo), followed by a blank line; with --jsonl, one JSON object per prompt instead. Generation
// stops at <|endoftext|> and at the end tokens of the tokenizer's directory (generation_config.json
// eos_token_id, tokenizer_config.json eos_token) unless --ignore-eot; the end token is not
// printed.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "apps/options.h"
#include "data/generation_prompt.h"
#include "data/tokenizer_finder.h"
#include "models/generation.h"
#include "models/loader.h"
#include "models/sampler.h"

namespace {

struct GenerateFlags {
  std::string model_path, tokenizer_spec, prompt_file, device = "auto", dtype = "auto";
  std::vector<std::string> prompts, chats;
  std::string system;
  int max_new_tokens = 128, top_k = 0;
  float temperature = 0.8f, top_p = 1.0f;
  uint64_t seed = 1337;
  bool echo = false, jsonl = false, ignore_eot = false;
};

void register_options(CLI::App& app, GenerateFlags& f) {
  app.add_option(
         "--model", f.model_path,
         "a checkpoint (directory, run directory or `latest`), a Hugging Face GPT-2 directory "
         "or an llm.c .bin")
      ->required();
  app.add_option("--tokenizer", f.tokenizer_spec,
                 "bytes, gpt2 or a tokenizer directory (default: the one stored with the model)");
  app.add_option("--prompt", f.prompts, "a prompt (repeat for several)");
  app.add_option("--prompt-file", f.prompt_file, "a file of prompts, one per line");
  app.add_option("--chat", f.chats,
                 "a user message, rendered with the model's chat template (repeat for several "
                 "conversations)");
  app.add_option("--system", f.system, "with --chat: the system message of each conversation");
  app.add_option("--max-new-tokens", f.max_new_tokens, "tokens to generate per prompt")
      ->capture_default_str();
  app.add_option("--temperature", f.temperature, "sampling temperature (0: greedy)")
      ->capture_default_str();
  app.add_option("--top-k", f.top_k, "sample from the k most likely tokens (0: all)")
      ->capture_default_str();
  app.add_option("--top-p", f.top_p,
                 "nucleus sampling: the smallest set with this probability (1: off)")
      ->capture_default_str();
  app.add_option("--seed", f.seed, "random seed of the sampler")->capture_default_str();
  app.add_option("--device", f.device, "cpu, cuda or auto")->capture_default_str();
  app.add_option("--dtype", f.dtype, "auto, f32 or bf16")->capture_default_str();
  app.add_flag("--echo", f.echo, "print the prompt before its completion");
  app.add_flag("--jsonl", f.jsonl,
               "print one JSON object per prompt (prompt, completion, tokens, ids, tokens_per_s)");
  app.add_flag("--ignore-eot", f.ignore_eot,
               "keep generating after <|endoftext|> and the model's end tokens");
}

// --prompt, then the lines of --prompt-file, else the lines of stdin.
std::vector<std::string> read_prompts(const GenerateFlags& f) {
  std::vector<std::string> prompts = f.prompts;
  if (!f.prompt_file.empty()) {
    std::ifstream in(f.prompt_file);
    if (!in) throw std::runtime_error(f.prompt_file + ": cannot open prompt file");
    for (std::string line; std::getline(in, line);) prompts.push_back(line);
  }
  if (prompts.empty()) {
    for (std::string line; std::getline(std::cin, line);) prompts.push_back(line);
  }
  if (prompts.empty())
    throw std::invalid_argument("no prompts (use --prompt, --prompt-file or stdin)");
  return prompts;
}

// The line --jsonl prints for one prompt.
std::string jsonl_line(const std::string& prompt, const std::string& completion,
                       const std::vector<int32_t>& tokens, double seconds) {
  nlohmann::ordered_json j;
  j["prompt"] = prompt;
  j["completion"] = completion;
  j["tokens"] = tokens.size();
  j["ids"] = tokens;
  j["tokens_per_s"] = tokens.size() / std::max(seconds, 1e-9);
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// The model of --model for sampling, with a LoRA fine-tune's adapter folded in, checked against
// the tokenizer; prints what was loaded.
gpt::LoadedModel load_for_sampling(const GenerateFlags& f, gpt::Backend& backend,
                                   const gpt::PrepareTokenizer& tokenizer) {
  gpt::LoadOptions load;  // the language-model head, with a checkpoint's LoRA adapter
  load.head = gpt::HeadUse::kLanguageModel;
  load.freeze = true;  // sampling only: no gradients, one layer of activations
  gpt::LoadedModel loaded = gpt::load_model(f.model_path, backend, load);
  gpt::LanguageModel& model = *loaded.model;
  // A LoRA fine-tune samples as it was trained. Its adapter is folded into the weights once (W +=
  // alpha/r · B·A): decoding then runs plain matrices, without two adapter products per token.
  if (model.lora_enabled()) model.merge_lora();
  const gpt::ModelShape cfg = model.shape();
  if (tokenizer.vocab_size() > cfg.vocab_size) {
    throw std::invalid_argument("the tokenizer has " + std::to_string(tokenizer.vocab_size()) +
                                " tokens but the model only " + std::to_string(cfg.vocab_size));
  }
  std::fprintf(stderr, "gpt-generate: %s model (%d layers, width %d, context %d) on %s\n",
               loaded.format.c_str(), cfg.n_layer, cfg.n_embd, cfg.context,
               backend.description().c_str());
  return loaded;
}

int run(int argc, char** argv) {
  CLI::App app{"Generate text from a model (KV-cache decoding, temperature / top-k / top-p)."};
  GenerateFlags f;
  register_options(app, f);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (f.max_new_tokens <= 0) throw std::invalid_argument("--max-new-tokens must be positive");
  gpt::Sampler sampler(gpt::SamplingConfig{f.temperature, f.top_k, f.top_p},
                       f.seed);  // validates the flags
  if (!f.system.empty() && f.chats.empty())
    throw std::invalid_argument("--system goes with --chat");
  if (!f.chats.empty() && (!f.prompts.empty() || !f.prompt_file.empty()))
    throw std::invalid_argument("--chat and --prompt/--prompt-file do not mix");
  const std::vector<std::string> prompts = f.chats.empty() ? read_prompts(f) : f.chats;

  const gpt::PrepareTokenizer tokenizer = gpt::find_tokenizer(f.tokenizer_spec, f.model_path);
  const gpt::GenerationPrompts encoder(tokenizer, !f.chats.empty(), f.system);
  const std::vector<int32_t> no_stop;
  const std::vector<int32_t>& stop = f.ignore_eot ? no_stop : encoder.end_tokens();
  auto backend = gpt::make_backend_from_names(f.device, f.dtype);
  gpt::LoadedModel loaded = load_for_sampling(f, *backend, tokenizer);
  gpt::LanguageModel& model = *loaded.model;
  const int context = model.shape().context;

  for (const std::string& prompt : prompts) {
    const gpt::GenerationPrompts::Prompt p = encoder.encode(prompt);
    const int P = static_cast<int>(p.ids.size());
    if (P >= context)
      throw std::invalid_argument("prompt of " + std::to_string(P) +
                                  " tokens does not fit the context of " + std::to_string(context) +
                                  " tokens");
    const auto t0 = std::chrono::steady_clock::now();
    const gpt::Generated g =
        gpt::generate_tokens(model, sampler, p.ids, std::min(f.max_new_tokens, context - P), stop);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const std::string completion = tokenizer.decode(g.tokens);
    if (f.jsonl)
      std::cout << jsonl_line(prompt, completion, g.tokens, seconds) << "\n";
    else
      std::cout << (f.echo ? p.text : "") << completion << "\n\n";
    std::cout.flush();
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return gpt::run_app("gpt-generate", run, argc, argv);
}
