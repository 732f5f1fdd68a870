#include "apps/options.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <stdexcept>

namespace gpt {

namespace {

std::string flag_name(const std::string& key) {
  std::string f = "--" + key;
  for (char& c : f)
    if (c == '_') c = '-';
  return f;
}

std::string kind_name(int k) {
  static const char* names[] = {"an integer", "an integer", "a number", "a string", "a boolean"};
  return names[k];
}

}  // namespace

void Options::add_field(const std::string& name, Kind kind, void* ptr, const std::string& help) {
  for (const Field& f : fields_)
    if (f.name == name) throw std::logic_error("Options: duplicate option " + name);
  fields_.push_back(Field{name, kind, ptr, help, "", nullptr});
}

void Options::add(const std::string& n, int* v, const std::string& h) {
  add_field(n, Kind::Int, v, h);
}
void Options::add(const std::string& n, long* v, const std::string& h) {
  add_field(n, Kind::Long, v, h);
}
void Options::add(const std::string& n, float* v, const std::string& h) {
  add_field(n, Kind::Float, v, h);
}
void Options::add(const std::string& n, std::string* v, const std::string& h) {
  add_field(n, Kind::String, v, h);
}
void Options::add(const std::string& n, bool* v, const std::string& h) {
  add_field(n, Kind::Bool, v, h);
}

Options::Field* Options::find(const std::string& name) {
  for (Field& f : fields_)
    if (f.name == name) return &f;
  return nullptr;
}

void Options::register_flags(CLI::App& app) {
  config_option_ = app.add_option("--config", config_path_,
                                  "JSON file of settings (keys are these flags' names with "
                                  "underscores; flags given here override it)")
                       ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  for (Field& f : fields_) {
    std::string help = f.help;
    nlohmann::json current = to_json()[f.name];
    help += " [default: " + (f.kind == Kind::String ? current.get<std::string>() : current.dump()) +
            "]";
    f.option = app.add_option(flag_name(f.name), f.flag_value, help)
                   ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    switch (f.kind) {
      case Kind::Int:
      case Kind::Long:
        f.option->type_name("INT");
        break;
      case Kind::Float:
        f.option->type_name("FLOAT");
        break;
      case Kind::Bool:
        f.option->type_name("BOOL");
        break;
      case Kind::String:
        f.option->type_name("TEXT");
        break;
    }
  }
}

bool Options::given_on_command_line(const std::string& name) const {
  for (const Field& f : fields_)
    if (f.name == name) return f.option && f.option->count() > 0;
  return false;
}

void Options::resolve() {
  if (!config_path_.empty()) load_json_file(config_path_);
  for (Field& f : fields_) {
    if (f.option && f.option->count() > 0) set_from_string(f, f.flag_value, flag_name(f.name));
  }
}

void Options::set_from_string(Field& f, const std::string& text, const std::string& source) {
  auto bad = [&]() {
    throw std::invalid_argument(source + ": expected " + kind_name(static_cast<int>(f.kind)) +
                                ", got '" + text + "'");
  };
  errno = 0;
  char* end = nullptr;
  switch (f.kind) {
    case Kind::Int:
    case Kind::Long: {
      long long v = std::strtoll(text.c_str(), &end, 10);
      if (text.empty() || *end != '\0' || errno == ERANGE) bad();
      if (f.kind == Kind::Int) {
        if (v < INT32_MIN || v > INT32_MAX) bad();
        *static_cast<int*>(f.ptr) = static_cast<int>(v);
      } else {
        *static_cast<long*>(f.ptr) = static_cast<long>(v);
      }
      break;
    }
    case Kind::Float: {
      double v = std::strtod(text.c_str(), &end);
      if (text.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(v)) bad();
      *static_cast<float*>(f.ptr) = static_cast<float>(v);
      break;
    }
    case Kind::String:
      *static_cast<std::string*>(f.ptr) = text;
      break;
    case Kind::Bool:
      if (text == "true" || text == "1" || text == "yes" || text == "on")
        *static_cast<bool*>(f.ptr) = true;
      else if (text == "false" || text == "0" || text == "no" || text == "off")
        *static_cast<bool*>(f.ptr) = false;
      else
        bad();
      break;
  }
}

void Options::set_from_json(Field& f, const nlohmann::json& v, const std::string& source) {
  const std::string where = source + ": key '" + f.name + "'";
  auto bad = [&]() {
    throw std::invalid_argument(where + ": expected " + kind_name(static_cast<int>(f.kind)) +
                                ", got " + v.dump());
  };
  switch (f.kind) {
    case Kind::Int:
    case Kind::Long: {
      if (!v.is_number_integer()) bad();
      const long long x = v.get<long long>();
      if (f.kind == Kind::Int) {
        if (x < INT32_MIN || x > INT32_MAX) bad();
        *static_cast<int*>(f.ptr) = static_cast<int>(x);
      } else {
        *static_cast<long*>(f.ptr) = static_cast<long>(x);
      }
      break;
    }
    case Kind::Float:
      if (!v.is_number()) bad();
      *static_cast<float*>(f.ptr) = v.get<float>();
      break;
    case Kind::String:
      if (!v.is_string()) bad();
      *static_cast<std::string*>(f.ptr) = v.get<std::string>();
      break;
    case Kind::Bool:
      if (!v.is_boolean()) bad();
      *static_cast<bool*>(f.ptr) = v.get<bool>();
      break;
  }
}

void Options::apply_json(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) throw std::invalid_argument(source + ": expected a JSON object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    Field* f = find(it.key());
    if (!f) {
      throw std::invalid_argument(source + ": unknown key '" + it.key() + "'");
    }
    set_from_json(*f, it.value(), source);
  }
}

void Options::load_json_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::invalid_argument(path + ": cannot open config file");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in, nullptr, true, /*ignore_comments=*/true);
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(path + ": malformed JSON: " + e.what());
  }
  apply_json(j, path);
}

nlohmann::json Options::to_json() const {
  nlohmann::json j = nlohmann::json::object();
  for (const Field& f : fields_) {
    switch (f.kind) {
      case Kind::Int:
        j[f.name] = *static_cast<const int*>(f.ptr);
        break;
      case Kind::Long:
        j[f.name] = *static_cast<const long*>(f.ptr);
        break;
      case Kind::Float: {
        // Shortest decimal that reads back as the same float (0.1f prints as 0.1).
        char buf[32];
        std::snprintf(buf, sizeof(buf), "%.9g",
                      static_cast<double>(*static_cast<const float*>(f.ptr)));
        for (int digits = 1; digits <= 9; ++digits) {
          char shorter[32];
          std::snprintf(shorter, sizeof(shorter), "%.*g", digits,
                        static_cast<double>(*static_cast<const float*>(f.ptr)));
          if (std::strtof(shorter, nullptr) == *static_cast<const float*>(f.ptr)) {
            std::snprintf(buf, sizeof(buf), "%s", shorter);
            break;
          }
        }
        j[f.name] = std::strtod(buf, nullptr);
        break;
      }
      case Kind::String:
        j[f.name] = *static_cast<const std::string*>(f.ptr);
        break;
      case Kind::Bool:
        j[f.name] = *static_cast<const bool*>(f.ptr);
        break;
    }
  }
  return j;
}

void register_train_options(Options& o, TrainSettings& s) {
  o.add("out", &s.out, "output directory (config.json, log.jsonl, checkpoints)");
  o.add("steps", &s.steps, "number of optimizer steps");
  o.add("batch_size", &s.batch_size, "micro-batch size B (rows per forward/backward)");
  o.add("total_batch_tokens", &s.total_batch_tokens,
        "tokens per optimizer step; a multiple of B*T, the rest is gradient accumulation (0: B*T)");
  o.add("warmup_steps", &s.warmup_steps, "linear warmup steps");
  o.add("weight_decay", &s.weight_decay, "AdamW decoupled weight decay (2-D weight matrices only)");
  o.add("grad_clip", &s.grad_clip, "clip the global gradient norm to this (0: off)");
  o.add("beta1", &s.beta1, "AdamW beta1");
  o.add("beta2", &s.beta2, "AdamW beta2");
  o.add("eval_every", &s.eval_every, "validate every N steps (and at the start and the end)");
  o.add("val_max_batches", &s.val_max_batches, "cap validation at N batches (0: the whole set)");
  o.add("save_every", &s.save_every,
        "also write a checkpoint OUT/ckpt_NNNNNN every N steps (0: only the last, the best and "
        "one on SIGINT/SIGTERM)");
  o.add("device", &s.device, "cpu, cuda or auto");
  o.add("dtype", &s.dtype, "compute dtype: auto (f32 on cpu, bf16 on cuda), f32, bf16");
  o.add("attention", &s.attention,
        "GPU attention kernel: fused (flash-style, bf16, head size 64/128) or unfused");
  o.add("seed", &s.seed, "random seed (initialisation and data order)");
  o.add("shuffle", &s.shuffle, "shuffle the training data each epoch");
  o.add("threads", &s.threads,
        "OpenMP threads for the CPU backend (0: OMP_NUM_THREADS or all cores)");
  o.add("overwrite", &s.overwrite,
        "start over in an --out that holds checkpoints of an earlier run (deletes them)");
  o.add("on_nonfinite", &s.on_nonfinite,
        "a step with a NaN/inf loss or gradient: stop (an error naming the step and the tensor) or "
        "skip (no update, counted in log.jsonl; the step is taken again with the next batches)");
  o.add("max_skipped_steps", &s.max_skipped_steps,
        "--on-nonfinite skip: end the run after this many skipped steps in a row");
  o.add(
      "progress", &s.progress,
      "progress on stderr: auto (line on a terminal, else plain), line (one line redrawn in place: "
      "step, loss, tokens/s, MFU, ETA, last validation) or plain (a line per --log-every steps)");
  o.add("log_every", &s.log_every,
        "plain progress: a line every N steps (and the first and last); log.jsonl has every step");
  o.add("dist", &s.dist,
        "data parallel: auto (from the launcher: mpirun, srun, RANK/WORLD_SIZE), single, mpi "
        "(CPU ranks) or nccl (one GPU per rank)");
  o.add("dist_init", &s.dist_init,
        "nccl without mpirun: how rank 0 hands out the NCCL id, file:PATH (a shared file system) "
        "or tcp:HOST:PORT (rank 0's host)");
  o.add("dist_timeout", &s.dist_timeout,
        "seconds a rank waits in one collective before the job is ended (a peer died or hangs)");
  o.add("zero", &s.zero,
        "ZeRO-1: 1 shards the optimizer state over the ranks, 0 keeps all of it on every rank, "
        "-1: 1 when there are several ranks");
}

namespace {
AppErrorHandler g_error_handler = nullptr;
}

void set_app_error_handler(AppErrorHandler handler) {
  g_error_handler = handler;
}

int run_app(const char* app, int (*run)(int, char**), int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::string what = e.what();
    for (char& c : what)
      if (c == '\n' || c == '\r') c = ' ';
    if (g_error_handler) g_error_handler(app, what);
    std::fprintf(stderr, "%s: error: %s\n", app, what.c_str());
    return 1;
  }
}

int parse_command_line(CLI::App& app, Options& options, int argc, char** argv) {
  options.register_flags(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  options.resolve();
  return -1;
}

}  // namespace gpt
