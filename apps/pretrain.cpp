// gpt-pretrain: train a GPT-2 style model from scratch on token shards.
//
//   gpt-pretrain --config configs/tiny-cpu.json --train-data 'data/train_*.bin'
//                --val-data 'data/val_*.bin' --out runs/tiny
//
// Writes OUT/config.json (the resolved settings), OUT/log.jsonl (one JSON object per step) and the
// final weights OUT/model.safetensors with OUT/model_config.json.
#include <omp.h>
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "apps/options.h"
#include "data/loader.h"
#include "engine/backend.h"
#include "engine/optimizer.h"
#include "engine/trainer.h"
#include "models/gpt.h"
#include "models/gpt_io.h"

namespace fs = std::filesystem;

namespace {

struct PretrainSettings {
  std::string train_data;
  std::string val_data;
  std::string out = "runs/pretrain";
  long steps = 1000;
  int batch_size = 8;
  int seq_len = 256;
  long total_batch_tokens = 0;
  float lr = 1e-3f;
  float min_lr = 1e-4f;
  long warmup_steps = 100;
  float weight_decay = 0.1f;
  float grad_clip = 1.0f;
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  long eval_every = 100;
  int val_max_batches = 0;
  std::string device = "auto";
  std::string dtype = "auto";
  long seed = 1337;
  bool shuffle = true;
  int threads = 0;
  int n_layer = 12;
  int n_head = 12;
  int n_embd = 768;
  int max_seq_len = 1024;
  int vocab_size = 0;
};

void register_options(gpt::Options& o, PretrainSettings& s) {
  o.add("train_data", &s.train_data, "training token shards (a glob, quote it)");
  o.add("val_data", &s.val_data, "validation token shards (a glob); empty: no validation");
  o.add("out", &s.out, "output directory (config.json, log.jsonl, model.safetensors)");
  o.add("steps", &s.steps, "number of optimizer steps");
  o.add("batch_size", &s.batch_size, "micro-batch size B (sequences per forward/backward)");
  o.add("seq_len", &s.seq_len, "sequence length T of a training sample (<= max_seq_len)");
  o.add("total_batch_tokens", &s.total_batch_tokens,
        "tokens per optimizer step; a multiple of B*T, the rest is gradient accumulation (0: B*T)");
  o.add("lr", &s.lr, "peak learning rate");
  o.add("min_lr", &s.min_lr, "learning rate at the end of the cosine decay");
  o.add("warmup_steps", &s.warmup_steps, "linear warmup steps");
  o.add("weight_decay", &s.weight_decay, "AdamW decoupled weight decay (2-D weight matrices only)");
  o.add("grad_clip", &s.grad_clip, "clip the global gradient norm to this (0: off)");
  o.add("beta1", &s.beta1, "AdamW beta1");
  o.add("beta2", &s.beta2, "AdamW beta2");
  o.add("eval_every", &s.eval_every, "validate every N steps (and at the start and the end)");
  o.add("val_max_batches", &s.val_max_batches, "cap validation at N batches (0: the whole set)");
  o.add("device", &s.device, "cpu, cuda or auto");
  o.add("dtype", &s.dtype, "compute dtype: auto (f32 on cpu, bf16 on cuda), f32, bf16");
  o.add("seed", &s.seed, "random seed (initialisation and data order)");
  o.add("shuffle", &s.shuffle, "shuffle training samples each epoch");
  o.add("threads", &s.threads, "OpenMP threads for the CPU backend (0: OMP_NUM_THREADS or all cores)");
  o.add("n_layer", &s.n_layer, "transformer blocks");
  o.add("n_head", &s.n_head, "attention heads");
  o.add("n_embd", &s.n_embd, "model width C");
  o.add("max_seq_len", &s.max_seq_len, "position embedding table size");
  o.add("vocab_size", &s.vocab_size,
        "vocabulary size (0: read it from meta.json beside the training shards)");
}

// meta.json written by gpt-prepare beside the shards: tokenizer facts for bits per byte.
nlohmann::json read_meta(const std::string& pattern) {
  fs::path dir = fs::path(pattern).parent_path();
  fs::path meta = dir / "meta.json";
  if (!fs::exists(meta)) return nlohmann::json();
  std::ifstream in(meta);
  try {
    return nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    throw std::runtime_error(meta.string() + ": malformed JSON: " + e.what());
  }
}

int run(int argc, char** argv) {
  CLI::App app{"Pretrain a GPT-2 style model from scratch on token shards (llm.c format)."};
  PretrainSettings s;
  gpt::Options options;
  register_options(options, s);
  options.register_flags(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  options.resolve();

  if (s.threads > 0) omp_set_num_threads(s.threads);
  if (s.train_data.empty()) throw std::invalid_argument("--train-data is required");
  nlohmann::json meta = read_meta(s.train_data);
  if (s.vocab_size == 0) {
    if (!meta.contains("vocab_size"))
      throw std::invalid_argument("vocab_size is 0 and no meta.json with vocab_size beside '" +
                                  s.train_data + "': set --vocab-size");
    s.vocab_size = meta["vocab_size"].get<int>();
  }
  if (s.seq_len > s.max_seq_len)
    throw std::invalid_argument("seq_len (" + std::to_string(s.seq_len) + ") exceeds max_seq_len (" +
                                std::to_string(s.max_seq_len) + ")");

  if (s.steps <= 0) throw std::invalid_argument("steps must be positive");
  if (s.batch_size <= 0 || s.seq_len <= 0) throw std::invalid_argument("batch_size and seq_len must be positive");
  const long micro_tokens = static_cast<long>(s.batch_size) * s.seq_len;
  if (s.total_batch_tokens < 0 || s.total_batch_tokens % micro_tokens != 0)
    throw std::invalid_argument("total_batch_tokens (" + std::to_string(s.total_batch_tokens) +
                                ") must be a multiple of batch_size * seq_len (" +
                                std::to_string(micro_tokens) + ")");

  gpt::GptConfig mc;
  mc.n_layer = s.n_layer;
  mc.n_head = s.n_head;
  mc.n_embd = s.n_embd;
  mc.max_seq_len = s.max_seq_len;
  mc.vocab_size = s.vocab_size;
  mc.validate();

  // Everything that can fail on bad input is checked before anything is printed or written.
  gpt::DType dtype;
  if (s.dtype == "auto") {
    const bool cuda = s.device == "cuda" || (s.device == "auto" && gpt::cuda_available());
    dtype = cuda ? gpt::DType::bf16 : gpt::DType::f32;
  } else {
    dtype = gpt::dtype_from_name(s.dtype);
  }
  gpt::TrainLoader loader(s.train_data, s.batch_size, s.seq_len, mc.vocab_size, s.shuffle,
                          static_cast<uint64_t>(s.seed));
  std::unique_ptr<gpt::ValidationSet> val;
  if (!s.val_data.empty()) val = std::make_unique<gpt::ValidationSet>(s.val_data, s.batch_size, s.seq_len, mc.vocab_size);

  auto backend = gpt::make_backend(s.device, dtype);

  const nlohmann::json resolved = options.to_json();
  fs::create_directories(s.out);
  {
    std::ofstream out(s.out + "/config.json");
    out << resolved.dump(2) << "\n";
    if (!out) throw std::runtime_error(s.out + "/config.json: cannot write");
  }
  fs::remove(s.out + "/log.jsonl");
  std::cerr << "config: " << resolved.dump() << "\n";
  std::cerr << "backend: " << backend->description() << "\n";

  gpt::GptModel model(mc, *backend, s.batch_size, s.seq_len);
  model.init_weights(static_cast<uint64_t>(s.seed));
  gpt::AdamWConfig oc;
  oc.beta1 = s.beta1;
  oc.beta2 = s.beta2;
  oc.weight_decay = s.weight_decay;
  oc.grad_clip = s.grad_clip;
  gpt::AdamW optimizer(*backend, model.parameters(), oc);

  std::fprintf(stderr,
               "model: %d layers, %d heads, width %d, vocab %d (padded %d), %.2fM parameters\n"
               "data: %lld training tokens in %zu shard(s), %lld samples of %d+1%s\n",
               mc.n_layer, mc.n_head, mc.n_embd, mc.vocab_size, mc.padded_vocab_size(),
               static_cast<double>(mc.num_parameters()) / 1e6,
               static_cast<long long>(loader.total_tokens()), loader.files().size(),
               static_cast<long long>(loader.num_samples()), s.seq_len,
               val ? (", " + std::to_string(val->num_targets()) + " validation targets").c_str() : "");

  double bytes_per_token = 0.0;
  if (meta.contains("val_bytes") && meta.contains("val_tokens") && meta["val_tokens"].get<double>() > 0)
    bytes_per_token = meta["val_bytes"].get<double>() / meta["val_tokens"].get<double>();

  std::vector<int32_t> vt(static_cast<size_t>(s.batch_size) * s.seq_len), vg(vt.size());
  auto evaluate = [&]() {
    gpt::EvalResult r;
    double loss_sum = 0.0;
    int64_t count = 0;
    int64_t nb = val->num_batches();
    if (s.val_max_batches > 0 && nb > s.val_max_batches) nb = s.val_max_batches;
    for (int64_t i = 0; i < nb; ++i) {
      count += val->batch(i, vt.data(), vg.data());
      loss_sum += model.forward(vt.data(), vg.data(), s.batch_size, s.seq_len);
    }
    r.loss = loss_sum / static_cast<double>(count);
    if (bytes_per_token > 0) r.bits_per_byte = r.loss / std::log(2.0) / bytes_per_token;
    return r;
  };

  gpt::TrainerConfig tc;
  tc.steps = s.steps;
  tc.batch_size = s.batch_size;
  tc.seq_len = s.seq_len;
  tc.total_batch_tokens = s.total_batch_tokens;
  tc.lr = s.lr;
  tc.min_lr = s.min_lr;
  tc.warmup_steps = s.warmup_steps;
  tc.eval_every = s.eval_every;
  tc.out_dir = s.out;
  tc.flops_per_token = mc.flops_per_token(s.seq_len);
  gpt::Trainer trainer(
      model, optimizer, tc, [&](int32_t* t, int32_t* g) { loader.next_batch(t, g); },
      val ? gpt::Trainer::EvalFn(evaluate) : gpt::Trainer::EvalFn());
  std::fprintf(stderr, "training: %ld steps of %ld tokens (B=%d, T=%d, grad accum %d)\n", s.steps,
               static_cast<long>(s.total_batch_tokens ? s.total_batch_tokens : static_cast<long>(s.batch_size) * s.seq_len),
               s.batch_size, s.seq_len, trainer.grad_accum());
  const auto t0 = std::chrono::steady_clock::now();
  trainer.run();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  gpt::save_gpt_weights(s.out + "/model.safetensors", model);
  {
    std::ofstream out(s.out + "/model_config.json");
    out << gpt::gpt_config_to_json(mc).dump(2) << "\n";
  }
  const auto& h = trainer.history();
  std::fprintf(stderr, "done: %ld steps in %.1f s; final train loss %.4f", s.steps, seconds,
               h.empty() ? 0.0 : h.back().train_loss);
  if (!h.empty() && h.back().has_val) {
    std::fprintf(stderr, ", val loss %.4f", h.back().val.loss);
    if (h.back().val.bits_per_byte > 0) std::fprintf(stderr, " (%.4f bits per byte)", h.back().val.bits_per_byte);
  }
  std::fprintf(stderr, "\nweights: %s/model.safetensors; peak memory %.1f MiB\n", s.out.c_str(),
               static_cast<double>(backend->peak_bytes()) / (1 << 20));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gpt-pretrain: error: %s\n", e.what());
    return 1;
  }
}
