// gpt-plan: the device memory a training run needs, before running it. For a model (a preset of
// configs/, a config file or the shape), a task (pretrain, full fine-tune, LoRA, freeze, classify),
// B, T, dtype, device and world size (ZeRO-1), it prints the bytes of parameters, gradients, AdamW
// state, master weights, activations, data-parallel buffers and workspace, whether they fit in
// --device-memory, the largest micro-batch that fits, the training FLOPs per token and a time
// estimate.
//
//   gpt-plan --preset gpt2-774m --task lora --device-memory 80GB
//   gpt-plan --preset gpt2-1558m --batch 8 --world-size 8 --zero 1 --tokens 10e9 --tokens-per-s 4e5
//   gpt-plan --config run.json --device cpu --json
//
// The bytes come from the engine's own set-up code run on a backend that counts allocations and
// allocates nothing (models/memory_plan.h); docs/plan.md says what is and is not counted.
#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "apps/options.h"
#include "apps/presets.h"  // generated from configs/*.json (apps/CMakeLists.txt)
#include "models/memory_plan.h"

namespace {

struct PlanFlags {
  std::string preset, config;
  std::optional<int> n_layer, n_head, n_embd, vocab, block_size, batch, seq_len;
  std::optional<std::string> family;
  std::optional<int> n_kv_head, head_dim, mlp_hidden;
  std::optional<bool> tied_head;
  std::string task = "pretrain", method = "lora";
  int num_classes = 2;
  int lora_rank = 8;
  float lora_alpha = 16.0f;
  std::string lora_targets = "qkv,attproj";
  int train_top = 1;
  bool train_layernorm = false, train_biases = false, train_embeddings = false, train_head = true;
  std::string device = "cuda", dtype = "auto", device_memory = "80GB";
  int world_size = 1, rank = 0, zero = -1;
  std::optional<double> tokens, tokens_per_s, mfu, peak_tflops;
  std::optional<long> steps, total_batch_tokens;
  bool json = false;
};

nlohmann::json read_run_config(const PlanFlags& f) {
  if (!f.preset.empty()) {
    std::string names;
    for (const gpt::PresetConfig& p : gpt::kPresetConfigs) {
      if (f.preset == p.name) return nlohmann::json::parse(p.json);
      names += (names.empty() ? "" : ", ") + std::string(p.name);
    }
    throw std::invalid_argument("--preset '" + f.preset + "': unknown (presets: " + names + ")");
  }
  if (f.config.empty()) return nlohmann::json::object();
  std::ifstream in(f.config);
  if (!in) throw std::invalid_argument("--config " + f.config + ": cannot open");
  try {
    nlohmann::json j = nlohmann::json::parse(in);
    if (!j.is_object()) throw std::invalid_argument("not a JSON object");
    return j;
  } catch (const std::exception& e) {
    throw std::invalid_argument(f.config + ": " + e.what());
  }
}

// A value from the flags, else the run config, else the default.
template <typename T>
T pick(const std::optional<T>& flag, const nlohmann::json& config, const char* key, T fallback,
       const std::string& source) {
  if (flag) return *flag;
  if (!config.contains(key)) return fallback;
  try {
    return config.at(key).get<T>();
  } catch (const nlohmann::json::exception&) {
    throw std::invalid_argument(source + ": key '" + key + "' has the wrong type");
  }
}

std::string mib(size_t b) {
  char s[64];
  std::snprintf(s, sizeof s, "%12.1f MiB %9.2f GiB", b / 1048576.0, b / 1073741824.0);
  return s;
}

void register_options(CLI::App& app, PlanFlags& f) {
  app.add_option(
      "--preset", f.preset,
      "a model preset of configs/: tiny-cpu, gpt2-124m, gpt2-350m, gpt2-774m, gpt2-1558m, "
      "llama-tiny-cpu, llama-125m, smollm2-135m, smollm2-360m");
  app.add_option("--config", f.config,
                 "a gpt-pretrain/gpt-finetune JSON config (its model, batch and step keys)");
  app.add_option("--n-layer", f.n_layer, "transformer blocks L");
  app.add_option("--n-head", f.n_head, "attention heads");
  app.add_option("--n-embd", f.n_embd, "model width C");
  app.add_option("--vocab,--vocab-size", f.vocab, "vocabulary size (default 50257, GPT-2's)");
  app.add_option("--family", f.family, "model family: gpt2 (default) or llama (docs/models.md)");
  app.add_option("--n-kv-head", f.n_kv_head, "llama: key/value heads (default n_head)");
  app.add_option("--head-dim", f.head_dim, "llama: channels per head (default n_embd / n_head)");
  app.add_option("--mlp-hidden", f.mlp_hidden, "llama: the SwiGLU MLP's width");
  app.add_option("--tied-head", f.tied_head, "llama: the output layer is the token embedding");
  app.add_option("--block-size,--max-seq-len", f.block_size, "position table size (default 1024)");
  app.add_option("--task", f.task,
                 "pretrain, full (fine-tune), lora, freeze, classify (class head)");
  app.add_option("--method", f.method, "classify: full, lora or freeze (default lora)");
  app.add_option("--num-classes", f.num_classes, "classify: classes of the head (default 2)");
  app.add_option("--lora-rank", f.lora_rank, "LoRA rank r (default 8)");
  app.add_option("--lora-alpha", f.lora_alpha, "LoRA alpha (no effect on memory)");
  app.add_option("--lora-targets", f.lora_targets,
                 "comma-separated: qkv, attproj, fc, fcproj (default qkv,attproj)");
  app.add_option("--train-top", f.train_top, "freeze: train the top N blocks (default 1)");
  app.add_option("--train-layernorm", f.train_layernorm, "freeze: also train every LayerNorm");
  app.add_option("--train-biases", f.train_biases, "freeze: also train every bias");
  app.add_option("--train-embeddings", f.train_embeddings, "freeze: also train wte and wpe");
  app.add_option("--train-head", f.train_head,
                 "classify with lora/freeze: train the class head (default true)");
  app.add_option("--batch,--batch-size", f.batch, "micro-batch B (default: the config's, else 16)");
  app.add_option("--seq-len", f.seq_len,
                 "sequence length T (default: the config's, else the block size)");
  app.add_option("--device", f.device, "cuda or cpu (default cuda)");
  app.add_option("--dtype", f.dtype, "bf16, fp32 or auto (bf16 on cuda, fp32 on cpu)");
  app.add_option("--device-memory", f.device_memory,
                 "memory of one device: 80GB, 80GiB, 40GB, 24GiB, ... (default 80GB)");
  app.add_option("--world-size", f.world_size, "ranks (GPUs) of the job (default 1)");
  app.add_option("--rank", f.rank,
                 "the rank to plan for (default 0, which holds a full ZeRO shard)");
  app.add_option("--zero", f.zero,
                 "1: ZeRO-1 (optimizer state sharded), 0: not, -1: 1 with several ranks");
  app.add_option("--tokens", f.tokens,
                 "training tokens for the time estimate (default: --steps x the global batch)");
  app.add_option("--steps", f.steps, "optimizer steps (default: the config's)");
  app.add_option("--total-batch-tokens", f.total_batch_tokens,
                 "global batch in tokens (default: the config's, else B*T*ranks)");
  app.add_option("--tokens-per-s", f.tokens_per_s,
                 "throughput of the whole job, for the time estimate");
  app.add_option("--mfu", f.mfu, "instead of --tokens-per-s: model FLOPs utilisation (0..1) ...");
  app.add_option("--peak-tflops", f.peak_tflops,
                 "... and the peak TFLOP/s of one device (H100 SXM bf16 dense: 989)");
  app.add_flag("--json", f.json, "print one JSON object instead of the table");
}

// The model of the request: flags, else the run config, else GPT-2 124M; a bad field is named by
// its flag.
void set_model(gpt::PlanRequest& r, const PlanFlags& f, const nlohmann::json& cfg,
               const std::string& source) {
  const bool have_model = cfg.contains("n_layer") || cfg.contains("n_embd");
  if (!have_model && !(f.n_layer && f.n_head && f.n_embd))
    throw std::invalid_argument(
        "no model: give --preset NAME, --config FILE or --n-layer, --n-head and --n-embd");
  r.model.n_layer = pick(f.n_layer, cfg, "n_layer", 12, source);
  r.model.n_head = pick(f.n_head, cfg, "n_head", 12, source);
  r.model.n_embd = pick(f.n_embd, cfg, "n_embd", 768, source);
  r.model.max_seq_len = pick(f.block_size, cfg, "max_seq_len", 1024, source);
  int vocab = pick(f.vocab, cfg, "vocab_size", 50257, source);
  r.model.vocab_size = vocab == 0 ? 50257 : vocab;  // 0 in a config: read from the data's meta.json
  r.model.family = pick(f.family, cfg, "family", std::string("gpt2"), source);
  if (r.model.llama()) {  // the family's fields; rope and eps cost no memory
    r.model.n_kv_head = pick(f.n_kv_head, cfg, "n_kv_head", 0, source);
    r.model.head_dim = pick(f.head_dim, cfg, "head_dim", 0, source);
    r.model.mlp_hidden = pick(f.mlp_hidden, cfg, "mlp_hidden", 0, source);
    r.model.tied_head = pick(f.tied_head, cfg, "tied_head", true, source);
    r.model.qkv_bias = pick(std::optional<bool>(), cfg, "qkv_bias", false, source);
    r.model.qk_norm = pick(std::optional<bool>(), cfg, "qk_norm", false, source);
  }
  try {
    r.model.validate();
  } catch (const std::invalid_argument& e) {
    std::string what = e.what();
    for (const char* k : {"n_layer", "n_head", "n_embd", "max_seq_len", "vocab_size"}) {
      if (what.rfind(k, 0) == 0) {
        std::string flag = std::string("--") + k;
        for (char& c : flag)
          if (c == '_') c = '-';
        if (flag == "--vocab-size") flag = "--vocab";
        if (flag == "--max-seq-len") flag = "--block-size";
        throw std::invalid_argument(flag + ": " + what);
      }
    }
    throw;
  }
}

// Batch, device, dtype, task and ranks of the request.
void set_run(gpt::PlanRequest& r, const PlanFlags& f, const nlohmann::json& cfg,
             const std::string& source) {
  r.batch = pick(f.batch, cfg, "batch_size", 16, source);
  r.seq_len = pick(f.seq_len, cfg, "seq_len", r.model.max_seq_len, source);
  if (r.seq_len <= 0 || r.seq_len > r.model.max_seq_len)
    throw std::invalid_argument("--seq-len " + std::to_string(r.seq_len) +
                                " must be in [1, block size " +
                                std::to_string(r.model.max_seq_len) + "]");
  if (f.device != "cuda" && f.device != "cpu")
    throw std::invalid_argument("--device '" + f.device + "': expected cuda or cpu");
  r.device = f.device == "cuda" ? gpt::DeviceKind::cuda : gpt::DeviceKind::cpu;
  if (f.dtype == "auto")
    r.dtype = f.device == "cuda" ? gpt::DType::bf16 : gpt::DType::f32;
  else if (f.dtype == "bf16")
    r.dtype = gpt::DType::bf16;
  else if (f.dtype == "fp32" || f.dtype == "f32")
    r.dtype = gpt::DType::f32;
  else
    throw std::invalid_argument("--dtype '" + f.dtype + "': expected bf16, fp32 or auto");
  if (r.device == gpt::DeviceKind::cpu && r.dtype == gpt::DType::bf16)
    throw std::invalid_argument("--dtype bf16: the cpu backend computes in fp32");
  r.task = f.task;
  if (f.task == "classify" && f.method != "full" && f.method != "lora" && f.method != "freeze")
    throw std::invalid_argument("--method '" + f.method + "': expected full, lora or freeze");
  r.method.method = f.task == "classify" ? f.method : f.task;
  r.method.lora = gpt::parse_lora_settings(f.lora_rank, f.lora_alpha, f.lora_targets);
  r.method.train_top = f.train_top;
  r.method.train_layernorm = f.train_layernorm;
  r.method.train_biases = f.train_biases;
  r.method.train_embeddings = f.train_embeddings;
  r.method.train_head = f.train_head;
  if (f.num_classes < 2) throw std::invalid_argument("--num-classes must be at least 2");
  r.num_classes = f.num_classes;
  if (f.world_size < 1) throw std::invalid_argument("--world-size must be at least 1");
  if (f.rank < 0 || f.rank >= f.world_size)
    throw std::invalid_argument("--rank must be in [0, --world-size)");
  r.world_size = f.world_size;
  r.rank = f.rank;
  r.zero = f.zero;
}

// What the plan says: the memory plan, the largest batch that fits and the time estimate.
struct Estimate {
  gpt::MemoryPlan p;
  size_t budget = 0;
  int best_batch = 0;
  bool fits = false;
  gpt::TimeEstimate time;
  const char* scratch_note = "";
};

Estimate estimate(const gpt::PlanRequest& r, gpt::TimeRequest t, const PlanFlags& f,
                  const nlohmann::json& cfg, const std::string& source, size_t budget) {
  Estimate e;
  e.budget = budget;
  e.p = gpt::plan_memory(r);
  e.best_batch = gpt::largest_fitting_batch(r, budget);
  e.fits = e.p.peak <= budget;
  t.total_batch_tokens = pick(f.total_batch_tokens, cfg, "total_batch_tokens", 0L, source);
  t.steps = pick(f.steps, cfg, "steps", 0L, source);
  e.time = gpt::estimate_time(r, t);
  e.scratch_note =
      r.device == gpt::DeviceKind::cuda
          ? "not counted: the CUDA backend's scratch (attention, the encoder's sort, partial "
            "sums; sized by the first step), the CUDA context, host memory"
          : "not counted: host buffers outside the backend (data loaders, checkpoints)";
  return e;
}

void print_json(const gpt::PlanRequest& r, const PlanFlags& f, const Estimate& e) {
  const gpt::MemoryPlan& p = e.p;
  nlohmann::json j;
  j["model"] = {
      {"family", r.model.family},         {"n_layer", r.model.n_layer},
      {"n_head", r.model.n_head},         {"n_embd", r.model.n_embd},
      {"vocab_size", r.model.vocab_size}, {"max_seq_len", r.model.max_seq_len},
      {"parameters", p.num_parameters},   {"trainable_parameters", p.trainable_parameters}};
  j["task"] = r.task;
  j["method"] = r.method.method;
  j["batch"] = r.batch;
  j["seq_len"] = r.seq_len;
  j["device"] = f.device;
  j["dtype"] = gpt::dtype_name(r.dtype);
  j["world_size"] = r.world_size;
  j["rank"] = r.rank;
  j["zero"] = p.zero;
  j["bytes"] = {{"parameters", p.parameters},
                {"gradients", p.gradients},
                {"optimizer_state", p.optimizer_state},
                {"master_weights", p.master_weights},
                {"activations", p.activations},
                {"reduction_buffers", p.reduction_buffers},
                {"workspace", p.workspace},
                {"total", p.total()},
                {"peak", p.peak}};
  j["device_memory_bytes"] = e.budget;
  j["fits"] = e.fits;
  j["largest_batch"] = e.best_batch;
  j["flops_per_token"] = e.time.flops_per_token;
  j["tokens"] = e.time.tokens;
  j["tokens_per_s"] = e.time.tokens_per_s;
  j["seconds"] = e.time.seconds;
  j["not_counted"] = e.scratch_note;
  std::printf("%s\n", j.dump(2).c_str());
}

void print_table(const gpt::PlanRequest& r, const PlanFlags& f, const Estimate& e) {
  const gpt::MemoryPlan& p = e.p;
  const std::string llama = r.model.llama() ? " llama NKV=" + std::to_string(r.model.kv_heads()) +
                                                  " HS=" + std::to_string(r.model.head_size()) +
                                                  " MLP=" + std::to_string(r.model.mlp_hidden)
                                            : "";
  std::printf("model: %s L=%d C=%d NH=%d%s V=%d (padded %d) T<=%d, %.2fM parameters\n",
              f.preset.empty() ? (f.config.empty() ? "shape" : f.config.c_str()) : f.preset.c_str(),
              r.model.n_layer, r.model.n_embd, r.model.n_head, llama.c_str(), r.model.vocab_size,
              r.model.padded_vocab_size(), r.model.max_seq_len, p.num_parameters / 1e6);
  std::string task = r.task;
  if (r.method.method == "lora")
    task += " (rank " + std::to_string(r.method.lora.rank) + " on " + f.lora_targets + ")";
  else if (r.method.method == "freeze")
    task += " (top " + std::to_string(r.method.train_top) + " blocks)";
  if (r.task == "classify")
    task += ", method " + r.method.method + ", " + std::to_string(r.num_classes) + " classes";
  std::printf("task: %s, %.2fM trainable (%.2f%%)\n", task.c_str(), p.trainable_parameters / 1e6,
              100.0 * p.trainable_parameters / static_cast<double>(p.num_parameters));
  std::printf(
      "run: %s %s, B=%d T=%d, %d rank%s%s\n\n", f.device.c_str(), gpt::dtype_name(r.dtype), r.batch,
      r.seq_len, r.world_size, r.world_size > 1 ? "s" : "",
      r.world_size > 1
          ? (p.zero ? ", ZeRO-1 (per rank: rank " + std::to_string(r.rank) + ")" : ", no ZeRO")
                .c_str()
          : "");
  const struct {
    const char* name;
    size_t bytes;
  } rows[] = {{"parameters", p.parameters},
              {"gradients", p.gradients},
              {p.zero ? "optimizer state (AdamW m, v; shard)" : "optimizer state (AdamW m, v)",
               p.optimizer_state},
              {"master weights (fp32)", p.master_weights},
              {"activations", p.activations},
              {"data-parallel buffers", p.reduction_buffers},
              {"workspace (cuBLASLt)", p.workspace}};
  for (const auto& row : rows) std::printf("  %-36s %s\n", row.name, mib(row.bytes).c_str());
  std::printf("  %-36s %s\n", "total", mib(p.total()).c_str());
  if (p.peak != p.total()) std::printf("  %-36s %s\n", "peak during set-up", mib(p.peak).c_str());
  std::printf("\nfits: %s (%.2f of %.2f GB, %.1f%%)\n", e.fits ? "yes" : "no", p.peak / 1e9,
              e.budget / 1e9, 100.0 * p.peak / e.budget);
  if (e.best_batch > 0)
    std::printf("largest micro-batch that fits at T=%d: B=%d\n", r.seq_len, e.best_batch);
  else
    std::printf("largest micro-batch that fits at T=%d: none (B=1 does not fit)\n", r.seq_len);
  std::printf("FLOPs per token: %.3g (training: 6 x matmul parameters + 6·L·T·NH·HS attention)\n",
              e.time.flops_per_token);
  const gpt::TimeEstimate& t = e.time;
  if (t.seconds > 0) {
    std::printf("time: %.4g tokens at %.4g tokens/s: %.2f h (%.1f days)\n", t.tokens,
                t.tokens_per_s, t.seconds / 3600.0, t.seconds / 86400.0);
  } else if (t.tokens > 0) {
    std::printf(
        "time: %.4g tokens; give --tokens-per-s R (or --mfu and --peak-tflops) for an "
        "estimate\n",
        t.tokens);
  }
  std::printf("%s\n", e.scratch_note);
}

int run(int argc, char** argv) {
  CLI::App app{"Plan the device memory and time of a training run (no memory is allocated)."};
  PlanFlags f;
  register_options(app, f);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (!f.preset.empty() && !f.config.empty())
    throw std::invalid_argument("give --preset or --config, not both");
  const nlohmann::json cfg = read_run_config(f);
  const std::string source = !f.preset.empty() ? "preset " + f.preset : f.config;
  gpt::PlanRequest r;
  set_model(r, f, cfg, source);
  set_run(r, f, cfg, source);
  const size_t budget = gpt::parse_byte_size(f.device_memory, "--device-memory");
  const gpt::TimeRequest time{f.tokens, 0, 0, f.tokens_per_s, f.mfu, f.peak_tflops};
  gpt::check_time_request(time);
  const Estimate e = estimate(r, time, f, cfg, source, budget);
  if (f.json)
    print_json(r, f, e);
  else
    print_table(r, f, e);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return gpt::run_app("gpt-plan", run, argc, argv);
}
