// gpt-pretrain: train a GPT-2 style model on token shards, from scratch or from given weights, with
// checkpoints that resume bit for bit.
//
//   gpt-pretrain --config configs/tiny-cpu.json --train-data 'data/train_*.bin'
//                --val-data 'data/val_*.bin' --out runs/tiny --save-every 100
//   gpt-pretrain --out runs/tiny --resume latest          # after a crash or preemption
//   gpt-pretrain ... --init path/to/hf-gpt2-dir           # or an llm.c .bin, or a checkpoint
//
// Writes OUT/config.json (the resolved settings), OUT/log.jsonl (one JSON object per step),
// checkpoints OUT/ckpt_NNNNNN (every --save-every steps, at the end, and on SIGINT/SIGTERM; see
// docs/checkpoints.md) with the OUT/latest pointer, and the final weights OUT/model.safetensors
// with OUT/model_config.json.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <optional>
#include <string>

#include "apps/options.h"
#include "apps/train_app.h"
#include "models/gpt_interop.h"
#include "train/pretrain.h"

namespace {

void register_options(gpt::Options& o, gpt::PretrainSettings& s) {
  o.add("train_data", &s.train_data, "training token shards (a glob, quote it)");
  o.add("val_data", &s.val_data, "validation token shards (a glob); empty: no validation");
  o.add("seq_len", &s.seq_len, "sequence length T of a training sample (<= max_seq_len)");
  o.add("lr", &s.lr, "peak learning rate");
  o.add("min_lr", &s.min_lr, "learning rate at the end of the cosine decay");
  o.add("n_layer", &s.n_layer, "transformer blocks");
  o.add("n_head", &s.n_head, "attention heads");
  o.add("n_embd", &s.n_embd, "model width C");
  o.add("max_seq_len", &s.max_seq_len, "the longest sequence (GPT-2: position embedding rows)");
  o.add("family", &s.family, "model family: gpt2 or llama (docs/models.md)");
  o.add("n_kv_head", &s.n_kv_head, "llama: key/value heads, dividing n_head (0: n_head)");
  o.add("head_dim", &s.head_dim, "llama: channels per head (0: n_embd / n_head)");
  o.add("mlp_hidden", &s.mlp_hidden, "llama: the SwiGLU MLP's width");
  o.add("norm_eps", &s.norm_eps, "llama: RMSNorm epsilon");
  o.add("rope_theta", &s.rope_theta, "llama: rotary embedding base");
  o.add("qkv_bias", &s.qkv_bias, "llama: biases on q, k and v (Qwen2)");
  o.add("qk_norm", &s.qk_norm, "llama: RMSNorm on each q and k head (Qwen3)");
  o.add("tied_head", &s.tied_head, "llama: the output layer is the token embedding");
  o.add("vocab_size", &s.vocab_size,
        "vocabulary size (0: read it from meta.json beside the training shards)");
  o.add("keep_last", &s.keep_last,
        "keep the newest K checkpoints, plus the best by validation loss (0: keep all)");
  o.add("resume", &s.resume,
        "continue a run bit for bit: a checkpoint directory, or 'latest' (OUT/latest); the "
        "checkpoint's settings are the defaults, flags override them");
  o.add("init", &s.init,
        "start from these weights (fresh optimizer): a checkpoint, a Hugging Face GPT-2 directory "
        "(config.json + model.safetensors) or an llm.c .bin; the model shape comes from them; "
        "ignored with --resume");
  gpt::register_train_options(o, s);
}

// The start-up lines: settings, backend, ranks, where the weights come from, model and data.
void print_start(gpt::PretrainJob& job, const gpt::PretrainSettings& s,
                 const nlohmann::json& resolved) {
  gpt::TrainingRun& run = job.run();
  run.print("config: %s\n", resolved.dump().c_str());
  run.print("backend: %s\n", run.backend().description().c_str());
  run.print("%s\n", run.describe().c_str());
  if (job.resumed())
    run.print("resume: %s at step %ld (%ld tokens seen)\n", job.resumed()->dir().c_str(),
              job.resumed()->step(), job.tokens_base());
  else if (!s.init.empty())
    run.print("init: %s (%s)\n", s.init.c_str(),
              gpt::weights_format_name(gpt::detect_weights_format(s.init)));
  const gpt::GptConfig& mc = job.model_config();
  const gpt::TrainLoader& loader = job.loader();
  const gpt::ValidationSet* val = job.validation();
  std::string heads = std::to_string(mc.n_head) + " heads";
  if (mc.llama())  // "llama, 4 layers, 4 heads (2 key/value) of 32, MLP 352, ..."
    heads = "llama, " + std::to_string(mc.n_layer) + " layers, " + heads + " (" +
            std::to_string(mc.kv_heads()) + " key/value) of " + std::to_string(mc.head_size()) +
            ", MLP " + std::to_string(mc.mlp_hidden) + (mc.tied_head ? "" : ", untied head") +
            (mc.qkv_bias ? ", q/k/v biases" : "") + (mc.qk_norm ? ", QK-norm" : "");
  else
    heads = std::to_string(mc.n_layer) + " layers, " + heads;
  run.print(
      "model: %s, width %d, vocab %d (padded %d), %.2fM parameters\n"
      "data: %lld training tokens in %zu shard(s), %lld samples of %d+1%s\n",
      heads.c_str(), mc.n_embd, mc.vocab_size, mc.padded_vocab_size(),
      static_cast<double>(mc.num_parameters()) / 1e6, static_cast<long long>(loader.total_tokens()),
      loader.files().size(), static_cast<long long>(loader.num_samples()), s.seq_len,
      val ? (", " + std::to_string(val->num_targets()) + " validation targets").c_str() : "");
}

// The summary: steps, time, the last losses, where the weights are, peak memory.
void print_done(gpt::PretrainJob& job, const gpt::PretrainSettings& s) {
  gpt::TrainingRun& run = job.run();
  const auto& h = job.trainer().history();
  run.print("done: %ld steps in %.1f s; final train loss %.4f",
            run.dp().optimizer().step_count() - job.first_step(), job.seconds(),
            h.empty() ? 0.0 : h.back().train_loss);
  if (!h.empty() && h.back().has_val) {
    run.print(", val loss %.4f", h.back().val.loss);
    if (h.back().val.bits_per_byte > 0)
      run.print(" (%.4f bits per byte)", h.back().val.bits_per_byte);
  }
  const size_t peak = run.backend().peak_bytes();
  run.print("\nweights: %s/model.safetensors; checkpoint %s; peak memory %.1f MiB (%zu bytes)\n",
            s.out.c_str(), job.final_dir().c_str(), static_cast<double>(peak) / (1 << 20), peak);
}

int run(int argc, char** argv) {
  CLI::App app{"Pretrain a GPT-2 style model on token shards (llm.c format), with exact resume."};
  gpt::PretrainSettings s;
  gpt::Options options;
  register_options(options, s);
  int status = -1;
  // --resume: the checkpoint's settings become the defaults (then --config, then flags).
  std::optional<gpt::Checkpoint> resume =
      gpt::parse_training_command_line(app, options, s.resume, s.out, argc, argv, status);
  if (status >= 0) return status;
  gpt::PretrainJob job(
      s, std::move(resume),
      [&](const std::string& key) { return options.given_on_command_line(key); },
      gpt::app_run_hooks());
  job.open();  // everything that can fail on bad input fails here, before any output
  const nlohmann::json resolved = options.to_json();
  job.start(resolved);
  print_start(job, s, resolved);
  job.run().print("training: steps %ld..%ld of %ld tokens (B=%d, T=%d, grad accum %d)%s\n",
                  job.run().dp().optimizer().step_count() + 1, s.steps, job.step_tokens(),
                  s.batch_size, s.seq_len, job.grad_accum(),
                  s.save_every > 0
                      ? (", checkpoint every " + std::to_string(s.save_every) + " steps").c_str()
                      : "");
  if (!job.train()) {
    job.run().print("%s\n", job.stop_message().c_str());
    return 0;
  }
  job.finish();
  print_done(job, s);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return gpt::run_app("gpt-pretrain", run, argc, argv);
}
