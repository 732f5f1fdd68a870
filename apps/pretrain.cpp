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
#include "apps/train_app.h"
#include "data/loader.h"
#include "engine/backend.h"
#include "engine/checkpoint.h"
#include "engine/files.h"
#include "engine/optimizer.h"
#include "engine/trainer.h"
#include "models/gpt.h"
#include "models/gpt_interop.h"
#include "models/gpt_io.h"
#include "models/loader.h"
#include "models/model.h"
#include "train/early_stopping.h"
#include "train/run_state.h"
#include "train/signals.h"
#include "train/tokenizer_files.h"
#include "train/validation.h"

namespace fs = std::filesystem;

namespace {

struct PretrainSettings : gpt::TrainSettings {
  PretrainSettings() { out = "runs/pretrain"; }
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
  if (const int status = gpt::parse_command_line(app, options, argc, argv); status >= 0)
    return status;

  // ---- --resume: the checkpoint's settings become the defaults (then --config, then flags) ------
  std::optional<gpt::Checkpoint> resume;
  if (!s.resume.empty()) resume = gpt::open_resume(options, s.resume, s.out);

  if (s.train_data.empty()) throw std::invalid_argument("--train-data is required");
  nlohmann::json meta = gpt::read_meta_beside(s.train_data);
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
  // Every rank reads every micro-batch of a step (engine/trainer.h): the loader and its state are
  // those of one process, whatever the world size.
  gpt::TrainLoader loader(s.train_data, s.batch_size, s.seq_len, mc.vocab_size, s.shuffle,
                          static_cast<uint64_t>(s.seed));
  std::unique_ptr<gpt::ValidationSet> val;
  if (!s.val_data.empty())
    val = std::make_unique<gpt::ValidationSet>(s.val_data, s.batch_size, s.seq_len, mc.vocab_size);

  // The job's ranks, this rank's device and backend, the data-parallel optimizer.
  gpt::TrainingRun run("gpt-pretrain", s, gpt::app_run_hooks());
  gpt::Backend* backend = &run.backend();
  // The model: the start weights through the loader (models/loader.h), or initialised.
  std::unique_ptr<gpt::LanguageModel> model_ptr;
  if (start_weights) {
    gpt::LoadOptions load;  // the weights alone, as trained
    load.max_batch = s.batch_size;
    load.max_seq = s.seq_len;
    load.checkpoint_adapter = false;
    load.head = gpt::HeadUse::kLanguageModel;
    model_ptr = gpt::load_model(std::move(*start_weights), weights_source, *backend, load).model;
    start_weights.reset();
  } else {
    model_ptr = gpt::make_model("gpt2", gpt::gpt_config_to_json(mc), "the model settings", *backend,
                                s.batch_size, s.seq_len);
    model_ptr->init_weights(static_cast<uint64_t>(s.seed));
  }
  gpt::LanguageModel& model = *model_ptr;
  gpt::DataParallel& dp = run.make_optimizer(model.parameters());
  gpt::AdamW& optimizer = dp.optimizer();

  // Where the run stands: restored from the checkpoint, or fresh.
  long tokens_base = 0, step_base = 0;
  gpt::BestTracker best(/*first_counts=*/true);
  if (resume) {
    const std::string state_path = resume->path("trainer_state.json");
    run.load_optimizer_state(*resume);
    if (optimizer.step_count() != resume->step())
      throw std::runtime_error(
          resume->dir() + ": optimizer step " + std::to_string(optimizer.step_count()) +
          " differs from the checkpoint's step " + std::to_string(resume->step()));
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
      gpt::best_val_from_json(resume->state(), best);
    } catch (const nlohmann::json::exception& e) {
      throw std::runtime_error(state_path + ": field 'loader' or 'tokens_seen': " + e.what());
    } catch (const std::invalid_argument& e) {
      throw std::runtime_error(state_path + ": field 'loader': " + e.what());
    }
  }

  // ---- outputs: nothing was written before this point -------------------------------------------
  const nlohmann::json resolved = options.to_json();
  run.prepare_outputs(resolved, resume ? resume->step() : -1, !resume && s.overwrite);
  run.print("config: %s\n", resolved.dump().c_str());
  run.print("backend: %s\n", backend->description().c_str());
  run.print("%s\n", run.describe().c_str());
  if (resume)
    run.print("resume: %s at step %ld (%ld tokens seen)\n", resume->dir().c_str(), resume->step(),
              tokens_base);
  else if (!s.init.empty())
    run.print("init: %s (%s)\n", s.init.c_str(),
              gpt::weights_format_name(gpt::detect_weights_format(s.init)));

  run.print(
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
    int64_t count = 0;
    int64_t nb = val->num_batches();
    if (s.val_max_batches > 0 && nb > s.val_max_batches) nb = s.val_max_batches;
    const double loss_sum = gpt::rank_split_sums(
        run.comm(), nb, 1, [&](int64_t i) { count += val->batch(i, vt.data(), vg.data()); },
        [&](int64_t, double* v) {
          v[0] = model.forward(vt.data(), vg.data(), s.batch_size, s.seq_len);
        })[0];
    r.loss = loss_sum / static_cast<double>(count);
    if (bytes_per_token > 0) r.bits_per_byte = r.loss / std::log(2.0) / bytes_per_token;
    return r;
  };

  // ---- checkpoints ------------------------------------------------------------------------------
  // When the data has none, keep what the checkpoint or the --init directory carried.
  const std::vector<std::string> tokenizer_files =
      gpt::pretrain_tokenizer_files(s.train_data, resume ? resume->dir() : s.init);
  gpt::RetentionPolicy retention;
  retention.keep_last = s.keep_last;
  long last_saved = resume ? resume->step() : -1;
  auto save = [&](const gpt::StepRecord& r) {
    gpt::CheckpointContents c;
    if (run.is_main())  // every rank holds the same weights
      c.tensor_files.emplace_back("model.safetensors", model.weights_to_safetensors());
    run.add_optimizer_state(c);  // collective: every rank's shard, on rank 0
    c.copy_files = tokenizer_files;
    nlohmann::json& st = c.state;
    st["tokens_seen"] = tokens_base + (r.step - step_base) * step_tokens;
    st["train_loss"] = r.train_loss;
    if (r.has_val) st["val_loss"] = r.val.loss;
    gpt::best_val_to_json(best, st);
    st["lr_schedule"] = {{"kind", "linear warmup, then cosine to min_lr"},
                         {"next_step", optimizer.step_count()},
                         {"last_lr", r.lr},
                         {"peak_lr", s.lr},
                         {"min_lr", s.min_lr},
                         {"warmup_steps", s.warmup_steps},
                         {"total_steps", s.steps}};
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
    const std::string dir = run.save_checkpoint(s.out, r.step, c, retention);
    last_saved = r.step;
    return dir;
  };

  gpt::TrainerConfig tc = run.trainer_config(s.seq_len, s.lr, s.min_lr);
  tc.flops_per_token = mc.flops_per_token(s.seq_len);
  gpt::Trainer trainer(
      model, dp, tc,
      [&](int32_t* t, int32_t* g) {
        loader.next_batch(t, g);
        return s.seq_len;
      },
      val ? gpt::Trainer::EvalFn(evaluate) : gpt::Trainer::EvalFn());
  std::string stop_message;
  std::optional<gpt::StepRecord> last_record;
  trainer.set_after_step([&](const gpt::StepRecord& r) {
    last_record = r;
    if (r.has_val) best.offer(r.val.loss, r.step);
    if (s.save_every > 0 && r.step % s.save_every == 0 && r.step < s.steps) save(r);
    if (run.stop_requested() &&
        r.step < s.steps) {  // on the last step, the normal end saves anyway
      const std::string dir =
          last_saved == r.step ? s.out + "/" + gpt::checkpoint_dir_name(r.step) : save(r);
      stop_message = std::string("gpt-pretrain: ") + run.stop_signal_name() +
                     ": stopped after step " + std::to_string(r.step) + "/" +
                     std::to_string(s.steps) + "; checkpoint " + dir +
                     "; continue with --resume latest";
      return gpt::StepAction::stop;
    }
    return gpt::StepAction::keep_going;
  });
  run.print("training: steps %ld..%ld of %ld tokens (B=%d, T=%d, grad accum %d)%s\n",
            optimizer.step_count() + 1, s.steps, step_tokens, s.batch_size, s.seq_len,
            trainer.grad_accum(),
            s.save_every > 0
                ? (", checkpoint every " + std::to_string(s.save_every) + " steps").c_str()
                : "");
  const long first_step = optimizer.step_count();
  const auto t0 = std::chrono::steady_clock::now();
  trainer.run();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!stop_message.empty()) {
    run.print("%s\n", stop_message.c_str());
    return 0;
  }
  std::string final_dir;
  if (last_record && last_saved != last_record->step)
    final_dir = save(*last_record);
  else if (last_saved >= 0)
    final_dir = s.out + "/" + gpt::checkpoint_dir_name(last_saved);

  if (run.is_main()) {
    gpt::write_safetensors(s.out + "/model.safetensors", model.weights_to_safetensors());
    gpt::write_file_atomic(s.out + "/model_config.json",
                           gpt::gpt_config_to_json(mc).dump(2) + "\n");
  }
  const auto& h = trainer.history();
  run.print("done: %ld steps in %.1f s; final train loss %.4f", optimizer.step_count() - first_step,
            seconds, h.empty() ? 0.0 : h.back().train_loss);
  if (!h.empty() && h.back().has_val) {
    run.print(", val loss %.4f", h.back().val.loss);
    if (h.back().val.bits_per_byte > 0)
      run.print(" (%.4f bits per byte)", h.back().val.bits_per_byte);
  }
  run.print("\nweights: %s/model.safetensors; checkpoint %s; peak memory %.1f MiB (%zu bytes)\n",
            s.out.c_str(), final_dir.c_str(),
            static_cast<double>(backend->peak_bytes()) / (1 << 20), backend->peak_bytes());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return gpt::run_app("gpt-pretrain", run, argc, argv);
}
