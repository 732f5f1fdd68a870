#include "models/export.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <optional>
#include <stdexcept>

#include "engine/checkpoint.h"
#include "models/finetune_io.h"
#include "models/gpt_interop.h"
#include "models/llama_interop.h"
#include "models/peft_io.h"

namespace fs = std::filesystem;

namespace gpt {

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
std::string hf_init_of(const Checkpoint& ck) {
  const nlohmann::json& state = ck.state();
  if (!state.contains("config") || !state["config"].is_object()) return "";
  const nlohmann::json& config = state["config"];
  if (!config.contains("init") || !config["init"].is_string()) return "";
  const std::string init = config["init"].get<std::string>();
  try {
    return !init.empty() && detect_weights_format(init) == WeightsFormat::hf ? init : "";
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

// The flags that do not go together, before anything is read; returns the dtype.
ExportDType check_request(const ExportRequest& r) {
  if (r.format != "hf" && r.format != "llmc" && r.format != "peft")
    throw std::invalid_argument("--format '" + r.format + "': expected hf, llmc or peft");
  const ExportDType dtype = export_dtype_from_name(r.dtype, "--dtype");
  if (r.format == "llmc" && dtype != ExportDType::f32)
    throw std::invalid_argument("--dtype " + r.dtype + ": --format llmc writes f32 only");
  if (r.format != "peft" && !r.adapter.empty())
    throw std::invalid_argument("--adapter is for --format peft (hf exports the base weights)");
  if (r.format != "peft" && !r.base_model.empty())
    throw std::invalid_argument("--base-model is for --format peft");
  return dtype;
}

// The checkpoint's LoRA adapter (or --adapter's) as a PEFT adapter folder.
void export_peft(ExportRequest& r, const GptWeights& w, const std::optional<Checkpoint>& ck,
                 const std::string& source_dir, const std::string& init_dir, ExportDType dtype,
                 ExportResult& result) {
  SafeTensorsFile tensors;
  std::string where = r.adapter;
  if (!r.adapter.empty()) {
    tensors = read_safetensors(r.adapter);
    if (r.base_model.empty() && !ck && !source_dir.empty()) r.base_model = r.source;
  } else {
    if (!ck || !ck->has_file("adapter.safetensors"))
      throw std::invalid_argument(
          r.source +
          ": no LoRA adapter (adapter.safetensors) to export: --format peft takes a checkpoint "
          "of gpt-finetune --method lora, or --adapter FILE with its base model");
    where = ck->path("adapter.safetensors");
    tensors = ck->read_tensors("adapter.safetensors");
  }
  // PEFT's causal-LM adapter holds the LoRA matrices only: a class head would be lost.
  if (ck && ck->has_file("head.safetensors") && r.adapter.empty())
    throw std::invalid_argument(
        r.source +
        ": the checkpoint has a class head (head.safetensors), which a PEFT CAUSAL_LM adapter "
        "cannot carry; fine-tune with label words instead (no class ids), or export the "
        "adapter alone with --adapter FILE");
  if (r.base_model.empty()) r.base_model = init_dir;
  write_folder(r.out, [&](const std::string& staging) {
    write_peft_adapter(staging, w.config, tensors, where, r.base_model, dtype);
  });
  result.lora = lora_config_from_safetensors(tensors, where);
  result.target_modules =
      peft_adapter_config(w.config, result.lora, r.base_model)["target_modules"].dump();
  result.base_model = r.base_model;
}

// The weights as a Hugging Face folder (with the source's tokenizer files) or an llm.c file.
void export_weights(const ExportRequest& r, const GptWeights& w, const std::string& source_dir,
                    const std::string& init_dir, ExportDType dtype, ExportResult& result) {
  if (r.format == "llmc") {
    write_llmc_gpt2(r.out, w);
    return;
  }
  write_folder(r.out, [&](const std::string& staging) {
    if (w.config.llama())
      write_hf_llama(staging, w, dtype);
    else
      write_hf_gpt2(staging, w, dtype);
    for (const char* name : kTokenizerFiles) {
      const std::string src = tokenizer_file(source_dir, init_dir, name);
      if (!src.empty())
        fs::copy_file(src, fs::path(staging) / name, fs::copy_options::overwrite_existing);
    }
  });
  result.architecture = w.config.llama()
                            ? llama_hf_config_json(w.config)["architectures"][0].get<std::string>()
                            : "GPT2LMHeadModel";
}

}  // namespace

ExportResult export_model(ExportRequest r) {
  const ExportDType dtype = check_request(r);
  const GptWeights w = load_weights(r.source);  // verified before anything is written
  if (w.config.llama() && r.format == "llmc")
    throw std::invalid_argument(
        r.source + ": a llama-family model has no llm.c format here (use --format hf)");
  std::error_code ec;
  if (fs::exists(r.out, ec) && !r.force)
    throw std::invalid_argument(r.out + ": exists (pass --force to replace it)");
  if (r.format != "llmc" && fs::exists(r.out, ec) && !fs::is_directory(r.out, ec))
    throw std::invalid_argument(r.out + ": exists and is not a directory");

  // Tokenizer files travel with the weights when the source directory has them.
  std::string source_dir, init_dir;
  std::optional<Checkpoint> ck;
  if (detect_weights_format(r.source) == WeightsFormat::checkpoint) {
    ck = Checkpoint::open(resolve_checkpoint(r.source));
    source_dir = ck->dir();
    init_dir = hf_init_of(*ck);
  } else if (fs::is_directory(r.source, ec)) {
    source_dir = r.source;
  }
  ExportResult result;
  result.config = w.config;
  if (r.format == "peft") {
    export_peft(r, w, ck, source_dir, init_dir, dtype, result);
    return result;
  }
  export_weights(r, w, source_dir, init_dir, dtype, result);
  if (ck && (ck->has_file("adapter.safetensors") || ck->has_file("head.safetensors")))
    result.left_out = ck->has_file("adapter.safetensors") ? "LoRA adapter" : "class head";
  return result;
}

}  // namespace gpt
