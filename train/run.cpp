#include "train/run.h"

#include <omp.h>

#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include "engine/files.h"
#include "train/signals.h"

namespace fs = std::filesystem;

namespace gpt {

namespace {

Communicator* g_comm = nullptr;

// The error path of a data-parallel job: name the rank, end every rank (MPI_Abort/ncclCommAbort).
void abort_job(const std::string& app, const std::string& what) {
  if (g_comm == nullptr || g_comm->world_size() == 1) return;  // run_app prints as usual
  g_comm->abort(app + ": error: rank " + std::to_string(g_comm->rank()) + " of " +
                std::to_string(g_comm->world_size()) + ": " + what +
                " (ending every rank of the job)");
}

bool uses_gpu(const TrainSettings& s) {
  return s.device == "cuda" || (s.device == "auto" && cuda_available());
}

}  // namespace

TrainingRun::TrainingRun(const char* app, const TrainSettings& s, const RunHooks& hooks)
    : app_(app), s_(s), hooks_(hooks) {
  if (s.threads > 0) omp_set_num_threads(s.threads);
  if (s.zero < -1 || s.zero > 1) throw std::invalid_argument("--zero must be -1, 0 or 1");
  if (!(s.dist_timeout > 0)) throw std::invalid_argument("--dist-timeout must be positive");
  if (s.on_nonfinite != "stop" && s.on_nonfinite != "skip")
    throw std::invalid_argument("--on-nonfinite '" + s.on_nonfinite + "': expected stop or skip");
  if (s.max_skipped_steps < 1)
    throw std::invalid_argument("--max-skipped-steps must be at least 1");
  progress_ = progress_mode_from_name(s.progress, "--progress");
  if (s.log_every < 1) throw std::invalid_argument("--log-every must be at least 1");
  launcher_ = discover_ranks();
  CommOptions co;
  co.kind = s.dist;
  co.init = s.dist_init;
  co.timeout_s = s.dist_timeout;
  co.use_gpu = uses_gpu(s);
  comm_ = make_communicator(co);
  g_comm = comm_.get();
  set_abort_communicator(comm_.get());
  hooks_.set_error_handler(abort_job);
  if (co.use_gpu) set_cuda_device(comm_->local_rank());
  backend_ = hooks_.make_backend(s.device, s.dtype);
  backend_->set_attention_kernel(attention_kernel_from_name(s.attention));
  install_stop_signal_handlers(app);
}

TrainingRun::~TrainingRun() {
  if (std::uncaught_exceptions() > 0 && comm_->world_size() > 1) {
    // An error is on its way to run_app, whose handler ends the job through the communicator:
    // keep it alive (finalising MPI here would wait for the other ranks forever).
    comm_.release();
    return;
  }
  hooks_.set_error_handler(nullptr);
  set_abort_communicator(nullptr);
  g_comm = nullptr;
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the lock on OUT
}

DataParallel& TrainingRun::make_optimizer(std::vector<ParamGroup> groups) {
  AdamWConfig oc;
  oc.beta1 = s_.beta1;
  oc.beta2 = s_.beta2;
  oc.weight_decay = s_.weight_decay;
  oc.grad_clip = s_.grad_clip;
  const bool zero = zero_enabled(s_.zero, world_size());
  dp_ = std::make_unique<DataParallel>(*comm_, *backend_, std::move(groups), oc, zero);
  return *dp_;
}

TrainerConfig TrainingRun::trainer_config(int seq_len, float lr, float min_lr) const {
  TrainerConfig tc;
  tc.steps = s_.steps;
  tc.batch_size = s_.batch_size;
  tc.seq_len = seq_len;
  tc.total_batch_tokens = s_.total_batch_tokens;
  tc.lr = lr;
  tc.min_lr = min_lr;
  tc.warmup_steps = s_.warmup_steps;
  tc.eval_every = s_.eval_every;
  tc.out_dir = is_main() ? s_.out : "";
  tc.print = is_main();
  tc.progress = progress_;
  tc.log_every = s_.log_every;
  tc.on_nonfinite = s_.on_nonfinite;
  tc.max_skipped_steps = s_.max_skipped_steps;
  return tc;
}

bool TrainingRun::stop_requested() {
  // Test hook: GPT_TEST_FAIL_RANK=R:S makes rank R fail after step S (the fault tests).
  ++steps_seen_;
  if (const char* f = std::getenv("GPT_TEST_FAIL_RANK")) {
    int r = -1;
    long st = -1;
    if (std::sscanf(f, "%d:%ld", &r, &st) == 2 && r == rank() && st == steps_seen_)
      throw std::runtime_error("injected failure after step " + std::to_string(st) +
                               " (GPT_TEST_FAIL_RANK)");
  }
  int64_t sig = stop_signal();
  comm_->all_reduce_max(&sig, 1);
  stop_signal_ = static_cast<int>(sig);
  return sig != 0;
}

const char* TrainingRun::stop_signal_name() const {
  return stop_signal_ == SIGINT ? "SIGINT" : "SIGTERM";
}

void TrainingRun::add_optimizer_state(CheckpointContents& c) {
  std::vector<SafeTensorsFile> files = dp_->gather_state();
  const int n = static_cast<int>(files.size());
  nlohmann::json shards = nlohmann::json::array();
  for (int r = 0; r < n; ++r) {
    char name[64];
    if (n == 1)
      std::snprintf(name, sizeof(name), "optimizer.safetensors");
    else
      std::snprintf(name, sizeof(name), "optimizer-%05d-of-%05d.safetensors", r, n);
    shards.push_back(name);
    c.tensor_files.emplace_back(name, std::move(files[static_cast<size_t>(r)]));
  }
  c.state["optimizer"] = {{"type", "adamw"},
                          {"step", dp_->step_count()},
                          {"world_size", n},
                          {"zero", dp_->zero()},
                          {"flat_elements", dp_->flat_elements()},
                          {"shard_elements", n == 1 ? dp_->flat_elements() : dp_->shard_elements()},
                          {"shards", shards}};
}

std::string TrainingRun::save_checkpoint(const std::string& root, long step,
                                         const CheckpointContents& c,
                                         const RetentionPolicy& policy) {
  std::string dir;
  if (is_main()) dir = gpt::save_checkpoint(root, step, c, policy);
  comm_->barrier();  // a failure on rank 0 ended the job before this point
  return is_main() ? dir : root + "/" + checkpoint_dir_name(step);
}

void TrainingRun::load_optimizer_state(const Checkpoint& ck) {
  std::vector<std::string> names{"optimizer.safetensors"};
  const nlohmann::json& st = ck.state();
  if (st.contains("optimizer") && st["optimizer"].is_object() &&
      st["optimizer"].contains("shards")) {
    const nlohmann::json& sh = st["optimizer"]["shards"];
    if (!sh.is_array() || sh.empty())
      throw std::runtime_error(ck.path("trainer_state.json") +
                               ": field 'optimizer.shards': expected a list of file names");
    names.clear();
    for (const auto& n : sh) {
      if (!n.is_string())
        throw std::runtime_error(ck.path("trainer_state.json") +
                                 ": field 'optimizer.shards': expected file names");
      names.push_back(n.get<std::string>());
    }
  }
  std::vector<std::pair<std::string, SafeTensorsFile>> files;
  for (const std::string& n : names) {
    if (!ck.has_file(n))
      throw std::runtime_error(ck.path(n) +
                               ": optimizer shard listed in trainer_state.json is "
                               "not among the checkpoint's files");
    files.emplace_back(ck.path(n), ck.read_tensors(n));
  }
  dp_->load_state(files);
}

void TrainingRun::lock_out_dir() {
  std::error_code ec;
  fs::create_directories(s_.out, ec);
  if (ec)
    throw std::runtime_error(s_.out + ": cannot create the output directory: " + ec.message());
  const std::string path = s_.out + "/.lock";
  lock_fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd_ < 0)
    throw std::runtime_error(path + ": cannot create the run's lock file: " + std::strerror(errno) +
                             " (is --out writable?)");
  // flock: released by the kernel when this process ends, however it ends (kill -9 included), so a
  // stale lock file never blocks the next run.
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    char holder[256] = {0};
    const ssize_t n = ::pread(lock_fd_, holder, sizeof(holder) - 1, 0);
    std::string who = n > 0 ? std::string(holder, static_cast<size_t>(n)) : "";
    while (!who.empty() && (who.back() == '\n' || who.back() == ' ')) who.pop_back();
    ::close(lock_fd_);
    lock_fd_ = -1;
    if (err == EWOULDBLOCK)
      throw std::runtime_error(s_.out + " is in use by another run (" +
                               (who.empty() ? std::string("pid unknown") : who) + "; " + path +
                               "): wait for it to end, or choose another --out");
    throw std::runtime_error(path + ": cannot lock: " + std::strerror(err));
  }
  char host[128] = "?";
  ::gethostname(host, sizeof(host) - 1);
  const std::string me =
      std::string(app_) + " pid " + std::to_string(::getpid()) + " on " + host + "\n";
  if (::ftruncate(lock_fd_, 0) != 0 || ::pwrite(lock_fd_, me.data(), me.size(), 0) < 0)
    throw std::runtime_error(path + ": cannot write: " + std::strerror(errno) + " (disk full?)");
}

void TrainingRun::prepare_outputs(const nlohmann::json& resolved, long resume_step,
                                  bool start_over) {
  if (is_main()) {
    lock_out_dir();                              // before anything in OUT is touched
    if (start_over) remove_checkpoints(s_.out);  // an earlier run's ckpt_* would mix in
    write_file_atomic(s_.out + "/config.json", resolved.dump(2) + "\n");
    if (resume_step >= 0)
      truncate_log(s_.out + "/log.jsonl", resume_step);
    else
      fs::remove(s_.out + "/log.jsonl");
  }
  comm_->barrier();
}

void TrainingRun::print(const char* format, ...) const {
  if (!is_main()) return;
  va_list args, copy;
  va_start(args, format);
  va_copy(copy, args);
  const int n = std::vsnprintf(nullptr, 0, format, copy);
  va_end(copy);
  std::string text(n > 0 ? static_cast<size_t>(n) : 0, '\0');
  if (n > 0) std::vsnprintf(text.data(), text.size() + 1, format, args);
  va_end(args);
  write_stderr(text);  // above the progress line, if one is drawn
}

std::string TrainingRun::describe() const {
  char buf[512];
  const double mib = 1.0 / (1 << 20);
  if (world_size() == 1) {
    const std::string how =
        comm_->kind() == "single" ? "single process" : comm_->kind() + " communicator, one rank";
    std::snprintf(buf, sizeof(buf), "ranks: 1 (%s); optimizer state %.2f MiB", how.c_str(),
                  dp_ ? dp_->optimizer_bytes() * mib : 0.0);
    return buf;
  }
  std::snprintf(buf, sizeof(buf),
                "ranks: %d (%s communicator, launched by %s); %s: optimizer state %.2f MiB on "
                "rank 0 (%lld of %lld trainable elements), reduction buffers %.2f MiB",
                world_size(), comm_->kind().c_str(), launcher_.launcher.c_str(),
                dp_ && dp_->zero() ? "ZeRO-1" : "no ZeRO", dp_ ? dp_->optimizer_bytes() * mib : 0.0,
                static_cast<long long>(
                    dp_ ? (dp_->zero() ? dp_->shard_elements() : dp_->flat_elements()) : 0),
                static_cast<long long>(dp_ ? dp_->flat_elements() : 0),
                dp_ ? dp_->buffer_bytes() * mib : 0.0);
  return buf;
}

void TrainingRun::combine(std::vector<double>& values) {
  comm_->all_reduce_sum(values.data(), values.size());
}

// ---- helpers ------------------------------------------------------------------------------------

void truncate_log(const std::string& path, long step) {
  std::ifstream in(path);
  if (!in) return;
  std::string kept, line;
  while (std::getline(in, line)) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception&) {
      break;  // a line cut short by a crash: nothing after it is trusted
    }
    if (!j.is_object() || !j.contains("step") || !j["step"].is_number_integer() ||
        j["step"].get<long>() > step)
      break;
    kept += line + "\n";
  }
  in.close();
  write_file_atomic(path, kept);
}

nlohmann::json read_meta_beside(const std::string& pattern) {
  const fs::path meta = fs::path(pattern).parent_path() / "meta.json";
  std::error_code ec;
  if (!fs::is_regular_file(meta, ec)) return nlohmann::json::object();
  std::ifstream in(meta);
  try {
    return nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    throw std::runtime_error(meta.string() + ": malformed JSON: " + e.what());
  }
}

}  // namespace gpt
