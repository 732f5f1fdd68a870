#include "train/pretrain.h"

#include <cmath>
#include <filesystem>
#include <stdexcept>

#include "engine/files.h"
#include "engine/optimizer.h"
#include "models/gpt_io.h"
#include "models/loader.h"
#include "train/run_state.h"
#include "train/tokenizer_files.h"
#include "train/validation.h"

namespace fs = std::filesystem;

namespace gpt {

namespace {

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

}  // namespace

PretrainJob::PretrainJob(PretrainSettings& s, std::optional<Checkpoint> resume,
                         std::function<bool(const std::string&)> given, const RunHooks& hooks)
    : s_(s), resume_(std::move(resume)), given_(std::move(given)), hooks_(hooks) {}

// ---- open: the model's shape from the checkpoint, the --init weights or the settings
// -------------
void PretrainJob::open_weights() {
  if (s_.train_data.empty()) throw std::invalid_argument("--train-data is required");
  meta_ = read_meta_beside(s_.train_data);
  const std::string meta_path = (fs::path(s_.train_data).parent_path() / "meta.json").string();
  data_vocab_ = meta_.contains("vocab_size") ? meta_["vocab_size"].get<int>() : 0;
  if (resume_) {  // open() verified every checksum already
    weights_source_ = resume_->dir();
    start_weights_ = gpt_weights_from_safetensors(
        resume_->read_tensors("model.safetensors"),
        gpt_config_from_json(resume_->field("model_config"), resume_->path("trainer_state.json")),
        resume_->path("model.safetensors"));
  } else if (!s_.init.empty()) {
    weights_source_ = s_.init;
    start_weights_ = load_weights(s_.init);
  }
  if (!start_weights_) return;
  const GptConfig& c = start_weights_->config;
  const bool strict = resume_.has_value();  // with --init, only flags given here must agree
  auto given = [&](const char* key) { return strict || given_(key); };
  check_model_field("n_layer", s_.n_layer, c.n_layer, given("n_layer"), weights_source_);
  check_model_field("n_head", s_.n_head, c.n_head, given("n_head"), weights_source_);
  check_model_field("n_embd", s_.n_embd, c.n_embd, given("n_embd"), weights_source_);
  check_model_field("max_seq_len", s_.max_seq_len, c.max_seq_len, given("max_seq_len"),
                    weights_source_);
  if (s_.vocab_size != 0)
    check_model_field("vocab_size", s_.vocab_size, c.vocab_size, given("vocab_size"),
                      weights_source_);
  if (data_vocab_ != 0 && data_vocab_ != c.vocab_size)
    throw std::invalid_argument(meta_path + ": the data's vocab_size " +
                                std::to_string(data_vocab_) +
                                " does not match the model's vocab_size " +
                                std::to_string(c.vocab_size) + " in " + weights_source_);
  if (given("family") && s_.family != c.family)
    throw std::invalid_argument("--family=" + s_.family + " does not match the model in " +
                                weights_source_ + " (family " + c.family + ")");
  if (c.llama()) {
    check_model_field("n_kv_head", s_.n_kv_head, c.kv_heads(), given("n_kv_head"), weights_source_);
    check_model_field("head_dim", s_.head_dim, c.head_size(), given("head_dim"), weights_source_);
    check_model_field("mlp_hidden", s_.mlp_hidden, c.mlp_hidden, given("mlp_hidden"),
                      weights_source_);
  }
  s_.n_layer = c.n_layer;
  s_.n_head = c.n_head;
  s_.n_embd = c.n_embd;
  s_.max_seq_len = c.max_seq_len;
  s_.vocab_size = c.vocab_size;
  s_.family = c.family;
  if (c.llama()) {
    s_.n_kv_head = c.kv_heads();
    s_.head_dim = c.head_size();
    s_.mlp_hidden = c.mlp_hidden;
    s_.norm_eps = static_cast<float>(c.norm_eps);
    s_.rope_theta = static_cast<float>(c.rope_theta);
    s_.qkv_bias = c.qkv_bias;
    s_.qk_norm = c.qk_norm;
    s_.tied_head = c.tied_head;
  }
}

void PretrainJob::check_settings() {
  if (s_.vocab_size == 0) {
    if (data_vocab_ == 0)
      throw std::invalid_argument("vocab_size is 0 and no meta.json with vocab_size beside '" +
                                  s_.train_data + "': set --vocab-size");
    s_.vocab_size = data_vocab_;
  }
  if (s_.seq_len > s_.max_seq_len)
    throw std::invalid_argument("seq_len (" + std::to_string(s_.seq_len) +
                                ") exceeds max_seq_len (" + std::to_string(s_.max_seq_len) + ")");
  if (s_.steps <= 0) throw std::invalid_argument("steps must be positive");
  if (s_.batch_size <= 0 || s_.seq_len <= 0)
    throw std::invalid_argument("batch_size and seq_len must be positive");
  if (s_.save_every < 0) throw std::invalid_argument("save_every must be >= 0");
  if (s_.keep_last < 0) throw std::invalid_argument("keep_last must be >= 0");
  const long micro_tokens = static_cast<long>(s_.batch_size) * s_.seq_len;
  if (s_.total_batch_tokens < 0 || s_.total_batch_tokens % micro_tokens != 0)
    throw std::invalid_argument("total_batch_tokens (" + std::to_string(s_.total_batch_tokens) +
                                ") must be a multiple of batch_size * seq_len (" +
                                std::to_string(micro_tokens) + ")");
  step_tokens_ = s_.total_batch_tokens ? s_.total_batch_tokens : micro_tokens;
  if (resume_ && resume_->step() > s_.steps)
    throw std::invalid_argument(resume_->path("trainer_state.json") +
                                ": the checkpoint is at step " + std::to_string(resume_->step()) +
                                ", beyond --steps " + std::to_string(s_.steps));
  const std::string latest_before = latest_checkpoint(s_.out);
  if (!resume_ && !latest_before.empty() && !s_.overwrite)
    throw std::invalid_argument(
        s_.out + ": holds checkpoints of an earlier run (latest: " +
        fs::path(latest_before).filename().string() +
        "); continue it with --resume latest, or start over with --overwrite "
        "true (deletes them) or another --out");
  if (start_weights_) {
    mc_ = start_weights_->config;  // exactly as read (eps, theta and scaling in full precision)
    mc_.vocab_size = s_.vocab_size;
  } else {
    mc_ = GptConfig();
    mc_.family = s_.family;
    mc_.n_layer = s_.n_layer;
    mc_.n_head = s_.n_head;
    mc_.n_embd = s_.n_embd;
    mc_.max_seq_len = s_.max_seq_len;
    mc_.vocab_size = s_.vocab_size;
    mc_.n_kv_head = s_.n_kv_head;
    mc_.head_dim = s_.head_dim;
    mc_.mlp_hidden = s_.mlp_hidden;
    mc_.qkv_bias = s_.qkv_bias;
    mc_.qk_norm = s_.qk_norm;
    mc_.tied_head = s_.tied_head;
    if (mc_.llama()) {  // GPT-2's LayerNorm eps is fixed; the float settings are the Llama's
      mc_.norm_eps = s_.norm_eps;
      mc_.rope_theta = s_.rope_theta;
    }
  }
  try {
    mc_.validate();
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("model settings: ") + e.what());
  }
}

// The start weights through the loader (models/loader.h), or initialised.
void PretrainJob::build_model() {
  Backend& backend = run_->backend();
  if (start_weights_) {
    LoadOptions load;  // the weights alone, as trained
    load.max_batch = s_.batch_size;
    load.max_seq = s_.seq_len;
    load.checkpoint_adapter = false;
    load.head = HeadUse::kLanguageModel;
    model_ = load_model(std::move(*start_weights_), weights_source_, backend, load).model;
    start_weights_.reset();
  } else {
    model_ = make_model(mc_.family, gpt_config_to_json(mc_), "the model settings", backend,
                        s_.batch_size, s_.seq_len);
    model_->init_weights(static_cast<uint64_t>(s_.seed));
  }
  dp_ = &run_->make_optimizer(model_->parameters());
}

// Where the run stands: restored from the checkpoint.
void PretrainJob::restore() {
  const std::string state_path = resume_->path("trainer_state.json");
  run_->load_optimizer_state(*resume_);
  AdamW& optimizer = dp_->optimizer();
  if (optimizer.step_count() != resume_->step())
    throw std::runtime_error(
        resume_->dir() + ": optimizer step " + std::to_string(optimizer.step_count()) +
        " differs from the checkpoint's step " + std::to_string(resume_->step()));
  const nlohmann::json& ls = resume_->field("loader");
  try {
    if (ls.at("samples").get<int64_t>() != loader_->num_samples())
      throw std::runtime_error(state_path +
                               ": field 'loader': the checkpoint's training data had " +
                               ls.at("samples").dump() + " samples, '" + s_.train_data + "' has " +
                               std::to_string(loader_->num_samples()) +
                               " (the data changed: start a new run with --init instead)");
    loader_->set_state(
        LoaderState{ls.at("epoch").get<int64_t>(), ls.at("position").get<int64_t>()});
    tokens_base_ = resume_->field("tokens_seen").get<long>();
    step_base_ = resume_->step();
    best_val_from_json(resume_->state(), best_);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(state_path + ": field 'loader' or 'tokens_seen': " + e.what());
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(state_path + ": field 'loader': " + e.what());
  }
}

void PretrainJob::open() {
  open_weights();
  check_settings();
  // Every rank reads every micro-batch of a step (engine/trainer.h): the loader and its state are
  // those of one process, whatever the world size.
  loader_ = std::make_unique<TrainLoader>(s_.train_data, s_.batch_size, s_.seq_len, mc_.vocab_size,
                                          s_.shuffle, static_cast<uint64_t>(s_.seed));
  if (!s_.val_data.empty())
    val_ = std::make_unique<ValidationSet>(s_.val_data, s_.batch_size, s_.seq_len, mc_.vocab_size);
  // The job's ranks, this rank's device and backend, the data-parallel optimizer.
  run_ = std::make_unique<TrainingRun>("gpt-pretrain", s_, hooks_);
  build_model();
  if (resume_) restore();
}

// ---- start: nothing was written before this point -----------------------------------------------
void PretrainJob::start(const nlohmann::json& resolved) {
  resolved_ = resolved;
  run_->prepare_outputs(resolved, resume_ ? resume_->step() : -1, !resume_ && s_.overwrite);
  if (meta_.contains("val_bytes") && meta_.contains("val_tokens") &&
      meta_["val_tokens"].get<double>() > 0)
    bytes_per_token_ = meta_["val_bytes"].get<double>() / meta_["val_tokens"].get<double>();
  vt_.assign(static_cast<size_t>(s_.batch_size) * s_.seq_len, 0);
  vg_.assign(vt_.size(), 0);
  // When the data has none, keep what the checkpoint or the --init directory carried.
  tokenizer_files_ = pretrain_tokenizer_files(s_.train_data, resume_ ? resume_->dir() : s_.init);
  retention_.keep_last = s_.keep_last;
  last_saved_ = resume_ ? resume_->step() : -1;
  TrainerConfig tc = run_->trainer_config(s_.seq_len, s_.lr, s_.min_lr);
  tc.flops_per_token = mc_.flops_per_token(s_.seq_len);
  trainer_ = std::make_unique<Trainer>(
      *model_, *dp_, tc,
      [this](int32_t* t, int32_t* g) {
        loader_->next_batch(t, g);
        return s_.seq_len;
      },
      val_ ? Trainer::EvalFn([this] { return evaluate(); }) : Trainer::EvalFn());
  trainer_->set_after_step([this](const StepRecord& r) { return after_step(r); });
}

EvalResult PretrainJob::evaluate() {
  EvalResult r;
  int64_t count = 0;
  int64_t nb = val_->num_batches();
  if (s_.val_max_batches > 0 && nb > s_.val_max_batches) nb = s_.val_max_batches;
  const double loss_sum = rank_split_sums(
      run_->comm(), nb, 1, [&](int64_t i) { count += val_->batch(i, vt_.data(), vg_.data()); },
      [&](int64_t, double* v) {
        v[0] = model_->forward(vt_.data(), vg_.data(), s_.batch_size, s_.seq_len);
      })[0];
  r.loss = loss_sum / static_cast<double>(count);
  if (bytes_per_token_ > 0) r.bits_per_byte = r.loss / std::log(2.0) / bytes_per_token_;
  return r;
}

std::string PretrainJob::save(const StepRecord& r) {
  CheckpointContents c;
  if (run_->is_main())  // every rank holds the same weights
    c.tensor_files.emplace_back("model.safetensors", model_->weights_to_safetensors());
  run_->add_optimizer_state(c);  // collective: every rank's shard, on rank 0
  c.copy_files = tokenizer_files_;
  nlohmann::json& st = c.state;
  st["tokens_seen"] = tokens_base_ + (r.step - step_base_) * step_tokens_;
  st["train_loss"] = r.train_loss;
  if (r.has_val) st["val_loss"] = r.val.loss;
  best_val_to_json(best_, st);
  st["lr_schedule"] = {{"kind", "linear warmup, then cosine to min_lr"},
                       {"next_step", dp_->optimizer().step_count()},
                       {"last_lr", r.lr},
                       {"peak_lr", s_.lr},
                       {"min_lr", s_.min_lr},
                       {"warmup_steps", s_.warmup_steps},
                       {"total_steps", s_.steps}};
  const LoaderState ls = loader_->state();
  st["loader"] = {
      {"epoch", ls.epoch},     {"position", ls.position}, {"samples", loader_->num_samples()},
      {"shuffle", s_.shuffle}, {"seed", s_.seed},         {"batch_size", s_.batch_size},
      {"seq_len", s_.seq_len}};
  // No random generator advances during pretraining: initialisation and the data order derive
  // from the seed (and the loader's epoch). Streams that do advance (dropout, sampling) go here.
  st["rng"] = {{"seed", s_.seed}, {"streams", nlohmann::json::object()}};
  st["model_config"] = gpt_config_to_json(mc_);
  st["config"] = resolved_;
  const std::string dir = run_->save_checkpoint(s_.out, r.step, c, retention_);
  last_saved_ = r.step;
  return dir;
}

StepAction PretrainJob::after_step(const StepRecord& r) {
  last_record_ = r;
  if (r.has_val) best_.offer(r.val.loss, r.step);
  if (s_.save_every > 0 && r.step % s_.save_every == 0 && r.step < s_.steps) save(r);
  if (run_->stop_requested() && r.step < s_.steps) {  // on the last step, the normal end saves
    const std::string dir =
        last_saved_ == r.step ? s_.out + "/" + checkpoint_dir_name(r.step) : save(r);
    stop_message_ = std::string("gpt-pretrain: ") + run_->stop_signal_name() +
                    ": stopped after step " + std::to_string(r.step) + "/" +
                    std::to_string(s_.steps) + "; checkpoint " + dir +
                    "; continue with --resume latest";
    return StepAction::stop;
  }
  return StepAction::keep_going;
}

bool PretrainJob::train() {
  first_step_ = dp_->optimizer().step_count();
  const auto t0 = std::chrono::steady_clock::now();
  trainer_->run();
  seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return stop_message_.empty();
}

void PretrainJob::finish() {
  if (last_record_ && last_saved_ != last_record_->step)
    final_dir_ = save(*last_record_);
  else if (last_saved_ >= 0)
    final_dir_ = s_.out + "/" + checkpoint_dir_name(last_saved_);
  if (run_->is_main()) {
    write_safetensors(s_.out + "/model.safetensors", model_->weights_to_safetensors());
    write_file_atomic(s_.out + "/model_config.json", gpt_config_to_json(mc_).dump(2) + "\n");
  }
}

}  // namespace gpt
