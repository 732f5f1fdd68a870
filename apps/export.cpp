// gpt-export: write a model's weights in another program's format.
//
//   gpt-export --checkpoint runs/tiny/latest --format hf   --out exported/tiny-hf
//   gpt-export --checkpoint runs/tiny/latest --format llmc --out exported/tiny.bin
//
// --checkpoint takes whatever --init takes: a checkpoint directory, a `latest` pointer, a run
// directory, a Hugging Face GPT-2 directory or an llm.c .bin (so it also converts between those).
// hf: a directory with config.json and model.safetensors that transformers' GPT2LMHeadModel loads
// (plus the tokenizer files vocab.json / merges.txt / tokenizer.json when the source has them).
// llmc: an llm.c model file, version 3 (fp32).
// The weights are read and verified in full (checksums, shapes) before anything is written, and an
// existing --out is only replaced with --force.
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>

#include "apps/options.h"
#include "engine/checkpoint.h"
#include "models/gpt_interop.h"
#include "models/llama_interop.h"

namespace fs = std::filesystem;

namespace {

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

int run(int argc, char** argv) {
  CLI::App app{"Export a model's weights to Hugging Face (GPT2LMHeadModel) or llm.c format."};
  std::string checkpoint, format, out;
  bool force = false;
  app.add_option(
         "--checkpoint", checkpoint,
         "the weights: a checkpoint directory, a latest pointer, a run directory, a Hugging "
         "Face GPT-2 directory or an llm.c .bin")
      ->required();
  app.add_option("--format", format,
                 "hf (config.json + model.safetensors) or llmc (gpt2 .bin, fp32)")
      ->required();
  app.add_option("--out", out, "output directory (hf) or file (llmc)")->required();
  app.add_flag("--force", force, "replace an existing --out");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (format != "hf" && format != "llmc")
    throw std::invalid_argument("--format '" + format + "': expected hf or llmc");

  const gpt::GptWeights w = gpt::load_weights(checkpoint);  // verified before anything is written
  if (w.config.llama() && format == "llmc")
    throw std::invalid_argument(
        checkpoint + ": a llama-family model has no llm.c format here (use --format hf)");
  std::error_code ec;
  if (fs::exists(out, ec) && !force)
    throw std::invalid_argument(out + ": exists (pass --force to replace it)");
  if (format == "hf" && fs::exists(out, ec) && !fs::is_directory(out, ec))
    throw std::invalid_argument(out + ": exists and is not a directory");

  // Tokenizer files travel with the weights when the source directory has them.
  std::string source_dir;
  if (gpt::detect_weights_format(checkpoint) == gpt::WeightsFormat::checkpoint)
    source_dir = gpt::resolve_checkpoint(checkpoint);
  else if (fs::is_directory(checkpoint, ec))
    source_dir = checkpoint;

  if (format == "hf") {
    // Everything goes into a sibling staging folder first, which then takes --out's name, so that a
    // kill at any moment leaves no folder that looks like a model but mixes two (the new config
    // with the old weights, say). Replacing (--force): the old folder is renamed aside first and
    // removed after; a kill between the two renames leaves OUT.replaced-PID whole.
    const std::string out_path = fs::path(out).lexically_normal().string();
    const std::string trimmed = out_path.size() > 1 && out_path.back() == '/'
                                    ? out_path.substr(0, out_path.size() - 1)
                                    : out_path;
    const std::string pid = std::to_string(::getpid());
    const std::string staging = trimmed + ".partial-" + pid, aside = trimmed + ".replaced-" + pid;
    fs::remove_all(staging, ec);
    remove_dead_partials(trimmed);
    try {
      if (w.config.llama())
        gpt::write_hf_llama(staging, w);
      else
        gpt::write_hf_gpt2(staging, w);
      for (const char* name : {"vocab.json", "merges.txt", "tokenizer.json"}) {
        const fs::path src = fs::path(source_dir) / name;
        if (!source_dir.empty() && fs::is_regular_file(src, ec))
          fs::copy_file(src, fs::path(staging) / name, fs::copy_options::overwrite_existing);
      }
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
  } else {
    gpt::write_llmc_gpt2(out, w);
  }
  const gpt::GptConfig& c = w.config;
  std::fprintf(
      stderr,
      "gpt-export: wrote %s (%s: %d layers, %d heads, width %d, vocab %d, max_seq_len %d)\n",
      out.c_str(),
      format == "llmc" ? "llm.c version 3, fp32"
      : w.config.llama()
          ? ("Hugging Face " +
             gpt::llama_hf_config_json(w.config)["architectures"][0].get<std::string>())
                .c_str()
          : "Hugging Face GPT2LMHeadModel",
      c.n_layer, c.n_head, c.n_embd, c.vocab_size, c.max_seq_len);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return gpt::run_app("gpt-export", run, argc, argv);
}
