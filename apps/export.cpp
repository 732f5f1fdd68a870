// gpt-export: write a model's weights in another program's format, or its LoRA adapter in PEFT's.
//
//   gpt-export --checkpoint runs/tiny/latest --format hf   --out exported/tiny-hf [--dtype bf16]
//   gpt-export --checkpoint runs/tiny/latest --format llmc --out exported/tiny.bin
//   gpt-export --checkpoint runs/sst2-lora/best --format peft --out exported/sst2-adapter
//
// --checkpoint takes whatever --init takes: a checkpoint directory, a `latest` pointer, a run
// directory, a Hugging Face directory (GPT-2 or the Llama family) or an llm.c .bin (so it also
// converts between those). The weights are read and verified in full (checksums, shapes) before
// anything is written; a folder is written beside --out and renamed, and an existing --out is
// only replaced with --force.
//
// hf: config.json and model.safetensors that transformers' GPT2LMHeadModel, LlamaForCausalLM,
// Qwen2ForCausalLM or Qwen3ForCausalLM loads, in f32 or (--dtype bf16, rounded to nearest even)
// bf16, with the source's tokenizer files (vocab.json, merges.txt, tokenizer.json,
// tokenizer_config.json, chat_template.jinja, special_tokens_map.json, generation_config.json,
// ...); for a checkpoint of a run that started from a Hugging Face directory, the files the
// checkpoint lacks come from there when its tokenizer.json is the same. A checkpoint's LoRA
// adapter or class head is not in these weights (a note says so): they are the base model.
//
// llmc: an llm.c model file, version 3 (fp32), GPT-2 only.
//
// peft: the LoRA adapter of a gpt-finetune --method lora checkpoint (or --adapter FILE, with its
// base model as --checkpoint) as adapter_config.json + adapter_model.safetensors, which
// peft.PeftModel.from_pretrained applies to the hf export of the same checkpoint
// (models/peft_io.h); base_model_name_or_path is --base-model, else the run's Hugging Face --init.
// A checkpoint with a class head is refused: PEFT's causal-LM adapter cannot carry it.
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <string>

#include "apps/options.h"
#include "engine/checkpoint.h"
#include "models/finetune_io.h"
#include "models/gpt_interop.h"
#include "models/llama_interop.h"
#include "models/peft_io.h"

namespace fs = std::filesystem;

namespace {

// The tokenizer files an hf export copies from its source, making a hub-style model directory.
constexpr const char* kTokenizerFiles[] = {
    "vocab.json",        "merges.txt",          "tokenizer.json",          "tokenizer_config.json",
    "added_tokens.json", "chat_template.jinja", "special_tokens_map.json", "generation_config.json",
};

// OUT.partial-PID folders of exports that were killed (PID gone) are removed.
void remove_dead_partials(const std::string& out) {
  const fs::path p(out);
  const fs::path parent = p.parent_path().empty() ? fs::path(".") : p.parent_path();
  const std::string prefix = p.filename().string() + ".partial-";
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(parent, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    const std::string digits = name.substr(prefix.size());
    if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    const long pid = std::strtol(digits.c_str(), nullptr, 10);
    if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) fs::remove_all(e.path(), ec);
  }
}

std::string contents(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

// Where tokenizer file `name` comes from ("" when nowhere): the source directory or its tokenizer/
// folder; else, for a checkpoint of a run that started from a Hugging Face directory (--init), that
// directory when the checkpoint's tokenizer.json is the same file (the data was tokenized with the
// model's tokenizer), so that its tokenizer_config.json, generation_config.json, ... come along.
std::string tokenizer_file(const std::string& source_dir, const std::string& init_dir,
                           const std::string& name) {
  std::error_code ec;
  if (source_dir.empty()) return "";
  for (const fs::path& p : {fs::path(source_dir) / name, fs::path(source_dir) / "tokenizer" / name})
    if (fs::is_regular_file(p, ec)) return p.string();
  if (init_dir.empty()) return "";
  const std::string ours = tokenizer_file(source_dir, "", "tokenizer.json");
  const fs::path theirs = fs::path(init_dir) / "tokenizer.json";
  if (ours.empty() || !fs::is_regular_file(theirs, ec) ||
      contents(ours) != contents(theirs.string()))
    return "";
  const fs::path p = fs::path(init_dir) / name;
  return fs::is_regular_file(p, ec) ? p.string() : "";
}

// The --init a checkpoint's run started from, when it is a Hugging Face directory ("" otherwise).
std::string hf_init_of(const gpt::Checkpoint& ck) {
  const nlohmann::json& state = ck.state();
  if (!state.contains("config") || !state["config"].is_object()) return "";
  const nlohmann::json& config = state["config"];
  if (!config.contains("init") || !config["init"].is_string()) return "";
  const std::string init = config["init"].get<std::string>();
  try {
    return !init.empty() && gpt::detect_weights_format(init) == gpt::WeightsFormat::hf ? init : "";
  } catch (const std::exception&) {
    return "";  // moved or deleted since: unknown
  }
}

// Everything goes into a sibling staging folder first, which then takes out's name, so that a kill
// at any moment leaves no folder that looks like a model but mixes two (the new config with the old
// weights, say). Replacing (--force): the old folder is renamed aside first and removed after; a
// kill between the two renames leaves OUT.replaced-PID whole.
void write_folder(const std::string& out, const std::function<void(const std::string&)>& fill) {
  const std::string out_path = fs::path(out).lexically_normal().string();
  const std::string trimmed = out_path.size() > 1 && out_path.back() == '/'
                                  ? out_path.substr(0, out_path.size() - 1)
                                  : out_path;
  const std::string pid = std::to_string(::getpid());
  const std::string staging = trimmed + ".partial-" + pid, aside = trimmed + ".replaced-" + pid;
  std::error_code ec;
  fs::remove_all(staging, ec);
  remove_dead_partials(trimmed);
  try {
    fill(staging);
    // Test hook (tests/cli/kill_writes.sh): GPT_TEST_KILL_IN_EXPORT=staged|aside sends this
    // process SIGKILL once the new folder is complete, or once the old one is renamed aside.
    const char* kill_at = std::getenv("GPT_TEST_KILL_IN_EXPORT");
    const std::string kill_stage = kill_at ? kill_at : "";
    if (kill_stage == "staged") ::raise(SIGKILL);
    if (fs::exists(trimmed, ec)) fs::rename(trimmed, aside);
    if (kill_stage == "aside") ::raise(SIGKILL);
    fs::rename(staging, trimmed);
  } catch (...) {
    fs::remove_all(staging, ec);
    throw;
  }
  fs::remove_all(aside, ec);
}

int run(int argc, char** argv) {
  CLI::App app{
      "Export a model's weights to Hugging Face or llm.c format, or its LoRA adapter to PEFT's."};
  std::string checkpoint, format, out, dtype_name = "f32", adapter, base_model;
  bool force = false;
  app.add_option(
         "--checkpoint", checkpoint,
         "the weights: a checkpoint directory, a latest pointer, a run directory, a Hugging "
         "Face directory or an llm.c .bin")
      ->required();
  app.add_option("--format", format,
                 "hf (config.json + model.safetensors), llmc (gpt2 .bin, fp32) or peft (the "
                 "checkpoint's LoRA adapter: adapter_config.json + adapter_model.safetensors)")
      ->required();
  app.add_option("--out", out, "output directory (hf, peft) or file (llmc)")->required();
  app.add_option("--dtype", dtype_name, "hf and peft: the tensors' dtype, f32 or bf16");
  app.add_option("--adapter", adapter,
                 "peft: an adapter file (a run's adapter.safetensors) to export instead of the "
                 "checkpoint's; --checkpoint is then its base model");
  app.add_option("--base-model", base_model,
                 "peft: base_model_name_or_path (default: the Hugging Face directory the run "
                 "started from, when known)");
  app.add_flag("--force", force, "replace an existing --out");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (format != "hf" && format != "llmc" && format != "peft")
    throw std::invalid_argument("--format '" + format + "': expected hf, llmc or peft");
  const gpt::ExportDType dtype = gpt::export_dtype_from_name(dtype_name, "--dtype");
  if (format == "llmc" && dtype != gpt::ExportDType::f32)
    throw std::invalid_argument("--dtype " + dtype_name + ": --format llmc writes f32 only");
  if (format != "peft" && !adapter.empty())
    throw std::invalid_argument("--adapter is for --format peft (hf exports the base weights)");
  if (format != "peft" && !base_model.empty())
    throw std::invalid_argument("--base-model is for --format peft");

  const gpt::GptWeights w = gpt::load_weights(checkpoint);  // verified before anything is written
  if (w.config.llama() && format == "llmc")
    throw std::invalid_argument(
        checkpoint + ": a llama-family model has no llm.c format here (use --format hf)");
  std::error_code ec;
  if (fs::exists(out, ec) && !force)
    throw std::invalid_argument(out + ": exists (pass --force to replace it)");
  if (format != "llmc" && fs::exists(out, ec) && !fs::is_directory(out, ec))
    throw std::invalid_argument(out + ": exists and is not a directory");

  // Tokenizer files travel with the weights when the source directory has them.
  std::string source_dir, init_dir;
  const bool is_checkpoint =
      gpt::detect_weights_format(checkpoint) == gpt::WeightsFormat::checkpoint;
  std::optional<gpt::Checkpoint> ck;
  if (is_checkpoint) {
    ck = gpt::Checkpoint::open(gpt::resolve_checkpoint(checkpoint));
    source_dir = ck->dir();
    init_dir = hf_init_of(*ck);
  } else if (fs::is_directory(checkpoint, ec)) {
    source_dir = checkpoint;
  }

  if (format == "peft") {
    gpt::SafeTensorsFile tensors;
    std::string where = adapter;
    if (!adapter.empty()) {
      tensors = gpt::read_safetensors(adapter);
      if (base_model.empty() && !is_checkpoint && !source_dir.empty()) base_model = checkpoint;
    } else {
      if (!ck || !ck->has_file("adapter.safetensors"))
        throw std::invalid_argument(
            checkpoint +
            ": no LoRA adapter (adapter.safetensors) to export: --format peft takes a checkpoint "
            "of gpt-finetune --method lora, or --adapter FILE with its base model");
      where = ck->path("adapter.safetensors");
      tensors = ck->read_tensors("adapter.safetensors");
    }
    // PEFT's causal-LM adapter holds the LoRA matrices only: a class head would be lost.
    if (ck && ck->has_file("head.safetensors") && adapter.empty())
      throw std::invalid_argument(
          checkpoint +
          ": the checkpoint has a class head (head.safetensors), which a PEFT CAUSAL_LM adapter "
          "cannot carry; fine-tune with label words instead (no class ids), or export the "
          "adapter alone with --adapter FILE");
    if (base_model.empty()) base_model = init_dir;
    write_folder(out, [&](const std::string& staging) {
      gpt::write_peft_adapter(staging, w.config, tensors, where, base_model, dtype);
    });
    const gpt::LoraConfig lc = gpt::lora_config_from_safetensors(tensors, where);
    std::fprintf(
        stderr, "gpt-export: wrote %s (PEFT LoRA adapter: r %d, alpha %g, %s, %s)\n", out.c_str(),
        lc.rank, static_cast<double>(lc.alpha),
        gpt::peft_adapter_config(w.config, lc, base_model)["target_modules"].dump().c_str(),
        base_model.empty() ? "base model unknown" : ("base " + base_model).c_str());
    return 0;
  }

  if (format == "hf") {
    write_folder(out, [&](const std::string& staging) {
      if (w.config.llama())
        gpt::write_hf_llama(staging, w, dtype);
      else
        gpt::write_hf_gpt2(staging, w, dtype);
      for (const char* name : kTokenizerFiles) {
        const std::string src = tokenizer_file(source_dir, init_dir, name);
        if (!src.empty())
          fs::copy_file(src, fs::path(staging) / name, fs::copy_options::overwrite_existing);
      }
    });
  } else {
    gpt::write_llmc_gpt2(out, w);
  }
  if (ck && (ck->has_file("adapter.safetensors") || ck->has_file("head.safetensors")))
    std::fprintf(stderr,
                 "gpt-export: note: these are the checkpoint's base weights, without its %s "
                 "(--format peft exports a LoRA adapter; gpt-finetune --merge-lora folds it in)\n",
                 ck->has_file("adapter.safetensors") ? "LoRA adapter" : "class head");
  const gpt::GptConfig& c = w.config;
  std::fprintf(
      stderr,
      "gpt-export: wrote %s (%s: %d layers, %d heads, width %d, vocab %d, max_seq_len %d)\n",
      out.c_str(),
      format == "llmc" ? "llm.c version 3, fp32"
      : w.config.llama()
          ? ("Hugging Face " +
             gpt::llama_hf_config_json(w.config)["architectures"][0].get<std::string>() + ", " +
             dtype_name)
                .c_str()
          : ("Hugging Face GPT2LMHeadModel, " + dtype_name).c_str(),
      c.n_layer, c.n_head, c.n_embd, c.vocab_size, c.max_seq_len);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return gpt::run_app("gpt-export", run, argc, argv);
}
