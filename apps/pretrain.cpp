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
#include <omp.h>
#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "apps/options.h"
#include "apps/signals.h"
#include "data/loader.h"
#include "engine/backend.h"
#include "engine/checkpoint.h"
#include "engine/optimizer.h"
#include "engine/trainer.h"
#include "models/gpt.h"
#include "models/gpt_interop.h"
#include "models/gpt_io.h"

namespace fs = std::filesystem;

namespace {

struct PretrainSettings : gpt::TrainSettings {
  PretrainSettings() {
    out = "runs/pretrain";
  }
  std::string train_data;
  std::string val_data;
  int seq_len = 256;
  float lr = 1e-3f;
  float min_lr = 1e-4f;
  int n_layer = 12;
  int n_head = 12;
  int n_embd = 768;
  int max_seq_len = 1024;
  int vocab_size = 0;
  int keep_last = 0;
  std::string resume;
  std::string init;
};

void register_options(gpt::Options& o, PretrainSettings& s) {
  o.add("train_data", &s.train_data, "training token shards (a glob, quote it)");
  o.add("val_data", &s.val_data, "validation token shards (a glob); empty: no validation");
  o.add("seq_len", &s.seq_len, "sequence length T of a training sample (<= max_seq_len)");
  o.add("lr", &s.lr, "peak learning rate");
  o.add("min_lr", &s.min_lr, "learning rate at the end of the cosine decay");
  o.add("n_layer", &s.n_layer, "transformer blocks");
  o.add("n_head", &s.n_head, "attention heads");
  o.add("n_embd", &s.n_embd, "model width C");
  o.add("max_seq_len", &s.max_seq_len, "position embedding table size");
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

// Settings that describe the machine or this invocation rather than the run: a resumed run does
// not take them from the checkpoint.
bool invocation_only(const std::string& key) {
  return key == "threads" || key == "resume" || key == "init" || key == "overwrite";
}

// Tokenizer files that may sit beside the shards; copied into every checkpoint.
constexpr const char* kTokenizerFiles[] = {"meta.json",      "vocab.json",   "merges.txt",
                                           "tokenizer.json", "encoder.json", "vocab.bpe"};

std::vector<std::string> tokenizer_files_in(const fs::path& dir) {
  std::vector<std::string> found;
  std::error_code ec;
  for (const char* name : kTokenizerFiles) {
    if (fs::is_regular_file(dir / name, ec)) {
      found.push_back((dir / name).string());
    } else if (fs::is_regular_file(dir / "tokenizer" / name, ec)) {  // gpt-prepare's tokenizer/
      found.push_back((dir / "tokenizer" / name).string());
    }
  }
  return found;
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

void write_text_atomic(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    out.flush();
    if (!out) throw std::runtime_error(tmp + ": cannot write");
  }
  fs::rename(tmp, path);
}

// A resumed run continues log.jsonl: the lines after the checkpoint's step (written by the
// interrupted run after its last checkpoint) are dropped: the log reads as one uninterrupted run.
void truncate_log(const std::string& path, long step) {
  std::ifstream in(path);
  if (!in) return;
  std::string kept, line;
  while (std::getline(in, line)) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::parse_error&) {
      break;  // a line cut short by a crash: nothing after it is trusted
    }
    if (!j.is_object() || !j.contains("step") || !j["step"].is_number_integer() ||
        j["step"].get<long>() > step)
      break;
    kept += line + "\n";
  }
  in.close();
  write_text_atomic(path, kept);
}

// The model fields of the settings against a model config (from --resume or --init).
void check_model_field(const char* name, int setting, int model, bool must_match,
                       const std::string& source) {
  std::string flag = name;
  for (char& ch : flag)
    if (ch == '_') ch = '-';
  if (must_match && setting != model)
    throw std::invalid_argument("--" + flag + "=" + std::to_string(setting) +
                                " does not match the model in " + source + " (" + name + " " +
                                std::to_string(model) + ")");
}

int run(int argc, char** argv) {
  CLI::App app{"Pretrain a GPT-2 style model on token shards (llm.c format), with exact resume."};
  PretrainSettings s;
  gpt::Options options;
  register_options(options, s);
  if (const int status = gpt::parse_command_line(app, options, argc, argv); status >= 0) return status;

  // ---- --resume: the checkpoint's settings become the defaults (then --config, then flags) ------
  std::optional<gpt::Checkpoint> resume;
  if (!s.resume.empty()) {
    const std::string where = s.resume == "latest" ? s.out + "/latest" : s.resume;
    std::error_code ec;
    if (s.resume == "latest" && !fs::exists(where, ec))
      throw std::runtime_error(where + ": no checkpoint to resume (no 'latest' pointer in --out " +
                               s.out + ")");
    resume = gpt::Checkpoint::open(gpt::resolve_checkpoint(where));
    const std::string state_path = resume->path("trainer_state.json");
    const nlohmann::json& saved = resume->field("config");
    if (!saved.is_object())
      throw std::runtime_error(state_path + ": field 'config': expected an object");
    const nlohmann::json known = options.to_json();
    nlohmann::json defaults = nlohmann::json::object();
    for (auto it = saved.begin(); it != saved.end(); ++it)
      if (known.contains(it.key()) && !invocation_only(it.key())) defaults[it.key()] = it.value();
    const std::string resume_arg = s.resume;
    options.apply_json(defaults, state_path + " (field 'config')");
    options.resolve();  // --config and the flags again, over the checkpoint's settings
    s.resume = resume_arg;
  }

  if (s.threads > 0) omp_set_num_threads(s.threads);
  if (s.train_data.empty()) throw std::invalid_argument("--train-data is required");
  nlohmann::json meta = read_meta(s.train_data);
  const std::string meta_path = (fs::path(s.train_data).parent_path() / "meta.json").string();
  const int data_vocab = meta.contains("vocab_size") ? meta["vocab_size"].get<int>() : 0;

  // ---- the model's shape: from the checkpoint, the --init weights, or the settings --------------
  std::optional<gpt::GptWeights> start_weights;  // --init or --resume
  std::string weights_source;
  if (resume) {  // open() verified every checksum already
    weights_source = resume->dir();
    start_weights = gpt::gpt_weights_from_safetensors(
        resume->read_tensors("model.safetensors"),
        gpt::gpt_config_from_json(resume->field("model_config"),
                                  resume->path("trainer_state.json")),
        resume->path("model.safetensors"));
  } else if (!s.init.empty()) {
    weights_source = s.init;
    start_weights = gpt::load_weights(s.init);
  }
  if (start_weights) {
    const gpt::GptConfig& c = start_weights->config;
    const bool strict = resume.has_value();  // with --init, only flags given here must agree
    auto given = [&](const char* key) { return strict || options.given_on_command_line(key); };
    check_model_field("n_layer", s.n_layer, c.n_layer, given("n_layer"), weights_source);
    check_model_field("n_head", s.n_head, c.n_head, given("n_head"), weights_source);
    check_model_field("n_embd", s.n_embd, c.n_embd, given("n_embd"), weights_source);
    check_model_field("max_seq_len", s.max_seq_len, c.max_seq_len, given("max_seq_len"),
                      weights_source);
    if (s.vocab_size != 0)
      check_model_field("vocab_size", s.vocab_size, c.vocab_size, given("vocab_size"),
                        weights_source);
    if (data_vocab != 0 && data_vocab != c.vocab_size)
      throw std::invalid_argument(meta_path + ": the data's vocab_size " +
                                  std::to_string(data_vocab) +
                                  " does not match the model's vocab_size " +
                                  std::to_string(c.vocab_size) + " in " + weights_source);
    s.n_layer = c.n_layer;
    s.n_head = c.n_head;
    s.n_embd = c.n_embd;
    s.max_seq_len = c.max_seq_len;
    s.vocab_size = c.vocab_size;
  }
  if (s.vocab_size == 0) {
    if (data_vocab == 0)
      throw std::invalid_argument("vocab_size is 0 and no meta.json with vocab_size beside '" +
                                  s.train_data + "': set --vocab-size");
    s.vocab_size = data_vocab;
  }
  if (s.seq_len > s.max_seq_len)
    throw std::invalid_argument("seq_len (" + std::to_string(s.seq_len) +
                                ") exceeds max_seq_len (" + std::to_string(s.max_seq_len) + ")");

  if (s.steps <= 0) throw std::invalid_argument("steps must be positive");
  if (s.batch_size <= 0 || s.seq_len <= 0)
    throw std::invalid_argument("batch_size and seq_len must be positive");
  if (s.save_every < 0) throw std::invalid_argument("save_every must be >= 0");
  if (s.keep_last < 0) throw std::invalid_argument("keep_last must be >= 0");
  const long micro_tokens = static_cast<long>(s.batch_size) * s.seq_len;
  if (s.total_batch_tokens < 0 || s.total_batch_tokens % micro_tokens != 0)
    throw std::invalid_argument("total_batch_tokens (" + std::to_string(s.total_batch_tokens) +
                                ") must be a multiple of batch_size * seq_len (" +
                                std::to_string(micro_tokens) + ")");
  const long step_tokens = s.total_batch_tokens ? s.total_batch_tokens : micro_tokens;
  if (resume && resume->step() > s.steps)
    throw std::invalid_argument(resume->path("trainer_state.json") +
                                ": the checkpoint is at step " + std::to_string(resume->step()) +
                                ", beyond --steps " + std::to_string(s.steps));
  const std::string latest_before = gpt::latest_checkpoint(s.out);
  if (!resume && !latest_before.empty() && !s.overwrite)
    throw std::invalid_argument(
        s.out + ": holds checkpoints of an earlier run (latest: " +
        fs::path(latest_before).filename().string() +
        "); continue it with --resume latest, or start over with --overwrite "
        "true (deletes them) or another --out");

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
  if (!s.val_data.empty())
    val = std::make_unique<gpt::ValidationSet>(s.val_data, s.batch_size, s.seq_len, mc.vocab_size);

  const gpt::AttentionKernel attention = gpt::attention_kernel_from_name(s.attention);
  auto backend = gpt::make_backend(s.device, dtype);
  backend->set_attention_kernel(attention);
  gpt::GptModel model(mc, *backend, s.batch_size, s.seq_len);
  gpt::AdamWConfig oc;
  oc.beta1 = s.beta1;
  oc.beta2 = s.beta2;
  oc.weight_decay = s.weight_decay;
  oc.grad_clip = s.grad_clip;
  gpt::AdamW optimizer(*backend, model.parameters(), oc);

  // Where the run stands: restored from the checkpoint, or fresh.
  long tokens_base = 0, step_base = 0;
  double best_val = std::nan("");
  long best_val_step = -1;
  if (start_weights) {
    gpt::upload_weights(model, *start_weights);
    start_weights.reset();
  } else {
    model.init_weights(static_cast<uint64_t>(s.seed));
  }
  if (resume) {
    const std::string state_path = resume->path("trainer_state.json");
    gpt::optimizer_state_from_safetensors(optimizer, resume->read_tensors("optimizer.safetensors"),
                                          resume->path("optimizer.safetensors"));
    if (optimizer.step_count() != resume->step())
      throw std::runtime_error(resume->path("optimizer.safetensors") + ": optimizer step " +
                               std::to_string(optimizer.step_count()) +
                               " differs from the checkpoint's step " +
                               std::to_string(resume->step()));
    const nlohmann::json& ls = resume->field("loader");
    try {
      if (ls.at("samples").get<int64_t>() != loader.num_samples())
        throw std::runtime_error(state_path +
                                 ": field 'loader': the checkpoint's training data had " +
                                 ls.at("samples").dump() + " samples, '" + s.train_data + "' has " +
                                 std::to_string(loader.num_samples()) +
                                 " (the data changed: start a new run with --init instead)");
      loader.set_state(
          gpt::LoaderState{ls.at("epoch").get<int64_t>(), ls.at("position").get<int64_t>()});
      tokens_base = resume->field("tokens_seen").get<long>();
      step_base = resume->step();
      const nlohmann::json& st = resume->state();
      if (st.contains("best_val_loss") && st["best_val_loss"].is_number()) {
        best_val = st["best_val_loss"].get<double>();
        best_val_step = st.at("best_val_step").get<long>();
      }
    } catch (const nlohmann::json::exception& e) {
      throw std::runtime_error(state_path + ": field 'loader' or 'tokens_seen': " + e.what());
    } catch (const std::invalid_argument& e) {
      throw std::runtime_error(state_path + ": field 'loader': " + e.what());
    }
  }

  // ---- outputs: nothing was written before this point -------------------------------------------
  const nlohmann::json resolved = options.to_json();
  fs::create_directories(s.out);
  if (!resume && s.overwrite) gpt::remove_checkpoints(s.out);  // start over
  write_text_atomic(s.out + "/config.json", resolved.dump(2) + "\n");
  if (resume)
    truncate_log(s.out + "/log.jsonl", resume->step());
  else
    fs::remove(s.out + "/log.jsonl");
  std::cerr << "config: " << resolved.dump() << "\n";
  std::cerr << "backend: " << backend->description() << "\n";
  if (resume)
    std::fprintf(stderr, "resume: %s at step %ld (%ld tokens seen)\n", resume->dir().c_str(),
                 resume->step(), tokens_base);
  else if (!s.init.empty())
    std::fprintf(stderr, "init: %s (%s)\n", s.init.c_str(),
                 gpt::weights_format_name(gpt::detect_weights_format(s.init)));

  std::fprintf(
      stderr,
      "model: %d layers, %d heads, width %d, vocab %d (padded %d), %.2fM parameters\n"
      "data: %lld training tokens in %zu shard(s), %lld samples of %d+1%s\n",
      mc.n_layer, mc.n_head, mc.n_embd, mc.vocab_size, mc.padded_vocab_size(),
      static_cast<double>(mc.num_parameters()) / 1e6, static_cast<long long>(loader.total_tokens()),
      loader.files().size(), static_cast<long long>(loader.num_samples()), s.seq_len,
      val ? (", " + std::to_string(val->num_targets()) + " validation targets").c_str() : "");

  double bytes_per_token = 0.0;
  if (meta.contains("val_bytes") && meta.contains("val_tokens") &&
      meta["val_tokens"].get<double>() > 0)
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

  // ---- checkpoints ------------------------------------------------------------------------------
  std::vector<std::string> tokenizer_files =
      tokenizer_files_in(fs::path(s.train_data).parent_path());
  if (tokenizer_files.empty()) {  // keep what the checkpoint or the --init directory carried
    std::error_code ec;
    if (resume)
      tokenizer_files = tokenizer_files_in(resume->dir());
    else if (!s.init.empty() && fs::is_directory(s.init, ec))
      tokenizer_files = tokenizer_files_in(s.init);
  }
  gpt::RetentionPolicy retention;
  retention.keep_last = s.keep_last;
  long last_saved = resume ? resume->step() : -1;
  auto save = [&](const gpt::StepRecord& r) {
    gpt::CheckpointContents c;
    c.tensor_files.emplace_back("model.safetensors",
                                gpt::gpt_weights_to_safetensors(gpt::download_weights(model)));
    c.tensor_files.emplace_back("optimizer.safetensors",
                                gpt::optimizer_state_to_safetensors(optimizer));
    c.copy_files = tokenizer_files;
    nlohmann::json& st = c.state;
    st["tokens_seen"] = tokens_base + (r.step - step_base) * step_tokens;
    st["train_loss"] = r.train_loss;
    if (r.has_val) st["val_loss"] = r.val.loss;
    if (best_val_step >= 0) {
      st["best_val_loss"] = best_val;
      st["best_val_step"] = best_val_step;
    }
    st["lr_schedule"] = {{"kind", "linear warmup, then cosine to min_lr"},
                         {"next_step", optimizer.step_count()},
                         {"last_lr", r.lr},
                         {"peak_lr", s.lr},
                         {"min_lr", s.min_lr},
                         {"warmup_steps", s.warmup_steps},
                         {"total_steps", s.steps}};
    st["optimizer"] = {{"type", "adamw"},
                       {"step", optimizer.step_count()},
                       {"world_size", 1},
                       {"shards", {"optimizer.safetensors"}}};
    const gpt::LoaderState ls = loader.state();
    st["loader"] = {
        {"epoch", ls.epoch},    {"position", ls.position}, {"samples", loader.num_samples()},
        {"shuffle", s.shuffle}, {"seed", s.seed},          {"batch_size", s.batch_size},
        {"seq_len", s.seq_len}};
    // No random generator advances during pretraining: initialisation and the data order derive
    // from the seed (and the loader's epoch). Streams that do advance (dropout, sampling) go here.
    st["rng"] = {{"seed", s.seed}, {"streams", nlohmann::json::object()}};
    st["model_config"] = gpt::gpt_config_to_json(mc);
    st["config"] = resolved;
    const std::string dir = gpt::save_checkpoint(s.out, r.step, c, retention);
    last_saved = r.step;
    return dir;
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
      model, optimizer, tc, [&](int32_t* t, int32_t* g) {
        loader.next_batch(t, g);
        return s.seq_len;
      },
      val ? gpt::Trainer::EvalFn(evaluate) : gpt::Trainer::EvalFn());
  std::string stop_message;
  std::optional<gpt::StepRecord> last_record;
  trainer.set_after_step([&](const gpt::StepRecord& r) {
    last_record = r;
    if (r.has_val && (best_val_step < 0 || r.val.loss < best_val)) {
      best_val = r.val.loss;
      best_val_step = r.step;
    }
    if (s.save_every > 0 && r.step % s.save_every == 0 && r.step < s.steps) save(r);
    if (gpt::stop_signal() != 0 && r.step < s.steps) {  // on the last step, the normal end saves anyway
      const std::string dir =
          last_saved == r.step ? s.out + "/" + gpt::checkpoint_dir_name(r.step) : save(r);
      stop_message = std::string("gpt-pretrain: ") + gpt::stop_signal_name() +
                     ": stopped after step " + std::to_string(r.step) + "/" +
                     std::to_string(s.steps) + "; checkpoint " + dir +
                     "; continue with --resume latest";
      return gpt::StepAction::stop;
    }
    return gpt::StepAction::keep_going;
  });
  std::fprintf(stderr, "training: steps %ld..%ld of %ld tokens (B=%d, T=%d, grad accum %d)%s\n",
               optimizer.step_count() + 1, s.steps, step_tokens, s.batch_size, s.seq_len,
               trainer.grad_accum(),
               s.save_every > 0
                   ? (", checkpoint every " + std::to_string(s.save_every) + " steps").c_str()
                   : "");
  gpt::install_stop_signal_handlers("gpt-pretrain");
  const long first_step = optimizer.step_count();
  const auto t0 = std::chrono::steady_clock::now();
  trainer.run();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!stop_message.empty()) {
    std::fprintf(stderr, "%s\n", stop_message.c_str());
    return 0;
  }
  std::string final_dir;
  if (last_record && last_saved != last_record->step)
    final_dir = save(*last_record);
  else if (last_saved >= 0)
    final_dir = s.out + "/" + gpt::checkpoint_dir_name(last_saved);

  gpt::save_gpt_weights(s.out + "/model.safetensors", model);
  write_text_atomic(s.out + "/model_config.json", gpt::gpt_config_to_json(mc).dump(2) + "\n");
  const auto& h = trainer.history();
  std::fprintf(stderr, "done: %ld steps in %.1f s; final train loss %.4f",
               optimizer.step_count() - first_step, seconds, h.empty() ? 0.0 : h.back().train_loss);
  if (!h.empty() && h.back().has_val) {
    std::fprintf(stderr, ", val loss %.4f", h.back().val.loss);
    if (h.back().val.bits_per_byte > 0)
      std::fprintf(stderr, " (%.4f bits per byte)", h.back().val.bits_per_byte);
  }
  std::fprintf(stderr, "\nweights: %s/model.safetensors; checkpoint %s; peak memory %.1f MiB\n",
               s.out.c_str(), final_dir.c_str(),
               static_cast<double>(backend->peak_bytes()) / (1 << 20));
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return gpt::run_app("gpt-pretrain", run, argc, argv); }
