#include "apps/train_app.h"

#include <filesystem>
#include <stdexcept>

namespace fs = std::filesystem;

namespace gpt {

void apply_checkpoint_settings(Options& options, const Checkpoint& ck,
                               const std::function<bool(const std::string&)>& invocation_only) {
  const std::string state_path = ck.path("trainer_state.json");
  const nlohmann::json& saved = ck.field("config");
  if (!saved.is_object())
    throw std::runtime_error(state_path + ": field 'config': expected an object");
  const nlohmann::json known = options.to_json();
  nlohmann::json defaults = nlohmann::json::object();
  for (auto it = saved.begin(); it != saved.end(); ++it)
    if (known.contains(it.key()) && !invocation_only(it.key())) defaults[it.key()] = it.value();
  options.apply_json(defaults, state_path + " (field 'config')");
  options.resolve();  // --config and the flags again, over the checkpoint's settings
}

Checkpoint open_resume(Options& options, std::string& resume, const std::string& out) {
  const std::string where = resume == "latest" ? out + "/latest" : resume;
  std::error_code ec;
  if (resume == "latest" && !fs::exists(where, ec))
    throw std::runtime_error(where + ": no checkpoint to resume (no 'latest' pointer in --out " +
                             out + ")");
  Checkpoint ck = Checkpoint::open(resolve_checkpoint(where));
  const std::string given = resume;
  apply_checkpoint_settings(options, ck, is_invocation_setting);
  resume = given;
  return ck;
}

bool is_invocation_setting(const std::string& key) {
  return key == "threads" || key == "resume" || key == "init" || key == "overwrite" ||
         key == "dist" || key == "dist_init" || key == "dist_timeout" || key == "zero" ||
         key == "progress" || key == "log_every";
}

std::optional<Checkpoint> parse_training_command_line(CLI::App& app, Options& options,
                                                      std::string& resume, const std::string& out,
                                                      int argc, char** argv, int& status) {
  status = parse_command_line(app, options, argc, argv);
  if (status >= 0 || resume.empty()) return std::nullopt;
  return open_resume(options, resume, out);
}

RunHooks app_run_hooks() {
  RunHooks hooks;
  hooks.make_backend = make_backend_from_names;
  hooks.set_error_handler = set_app_error_handler;
  return hooks;
}

}  // namespace gpt
