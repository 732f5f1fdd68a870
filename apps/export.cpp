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
#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "apps/options.h"
#include "models/export.h"

namespace {

void register_options(CLI::App& app, gpt::ExportRequest& r) {
  app.add_option(
         "--checkpoint", r.source,
         "the weights: a checkpoint directory, a latest pointer, a run directory, a Hugging "
         "Face directory or an llm.c .bin")
      ->required();
  app.add_option("--format", r.format,
                 "hf (config.json + model.safetensors), llmc (gpt2 .bin, fp32) or peft (the "
                 "checkpoint's LoRA adapter: adapter_config.json + adapter_model.safetensors)")
      ->required();
  app.add_option("--out", r.out, "output directory (hf, peft) or file (llmc)")->required();
  app.add_option("--dtype", r.dtype, "hf and peft: the tensors' dtype, f32 or bf16");
  app.add_option("--adapter", r.adapter,
                 "peft: an adapter file (a run's adapter.safetensors) to export instead of the "
                 "checkpoint's; --checkpoint is then its base model");
  app.add_option("--base-model", r.base_model,
                 "peft: base_model_name_or_path (default: the Hugging Face directory the run "
                 "started from, when known)");
  app.add_flag("--force", r.force, "replace an existing --out");
}

void print_result(const gpt::ExportRequest& r, const gpt::ExportResult& e) {
  if (r.format == "peft") {
    std::fprintf(stderr, "gpt-export: wrote %s (PEFT LoRA adapter: r %d, alpha %g, %s, %s)\n",
                 r.out.c_str(), e.lora.rank, static_cast<double>(e.lora.alpha),
                 e.target_modules.c_str(),
                 e.base_model.empty() ? "base model unknown" : ("base " + e.base_model).c_str());
    return;
  }
  if (!e.left_out.empty())
    std::fprintf(stderr,
                 "gpt-export: note: these are the checkpoint's base weights, without its %s "
                 "(--format peft exports a LoRA adapter; gpt-finetune --merge-lora folds it in)\n",
                 e.left_out.c_str());
  const gpt::GptConfig& c = e.config;
  const std::string what = r.format == "llmc" ? "llm.c version 3, fp32"
                                              : "Hugging Face " + e.architecture + ", " + r.dtype;
  std::fprintf(
      stderr,
      "gpt-export: wrote %s (%s: %d layers, %d heads, width %d, vocab %d, max_seq_len %d)\n",
      r.out.c_str(), what.c_str(), c.n_layer, c.n_head, c.n_embd, c.vocab_size, c.max_seq_len);
}

int run(int argc, char** argv) {
  CLI::App app{
      "Export a model's weights to Hugging Face or llm.c format, or its LoRA adapter to PEFT's."};
  gpt::ExportRequest r;
  register_options(app, r);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  print_result(r, gpt::export_model(r));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return gpt::run_app("gpt-export", run, argc, argv);
}
