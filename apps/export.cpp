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
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>

#include "apps/options.h"
#include "engine/checkpoint.h"
#include "models/gpt_interop.h"

namespace fs = std::filesystem;

namespace {

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
    gpt::write_hf_gpt2(out, w);
    for (const char* name : {"vocab.json", "merges.txt", "tokenizer.json"}) {
      const fs::path src = fs::path(source_dir) / name;
      if (!source_dir.empty() && fs::is_regular_file(src, ec) && fs::path(out) / name != src)
        fs::copy_file(src, fs::path(out) / name, fs::copy_options::overwrite_existing);
    }
  } else {
    gpt::write_llmc_gpt2(out, w);
  }
  const gpt::GptConfig& c = w.config;
  std::fprintf(
      stderr,
      "gpt-export: wrote %s (%s: %d layers, %d heads, width %d, vocab %d, max_seq_len %d)\n",
      out.c_str(), format == "hf" ? "Hugging Face GPT2LMHeadModel" : "llm.c version 3, fp32",
      c.n_layer, c.n_head, c.n_embd, c.vocab_size, c.max_seq_len);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return gpt::run_app("gpt-export", run, argc, argv); }
