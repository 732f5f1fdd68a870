// What the training apps (gpt-pretrain, gpt-finetune) share on the command line's floor: --resume,
// whose checkpoint settings become the option table's defaults (then --config and the flags apply
// again), and the hooks the run set-up (train/run.h) takes from the apps.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "apps/options.h"
#include "engine/checkpoint.h"
#include "train/run.h"

namespace gpt {

// --resume: the checkpoint's settings become the defaults, then --config and the flags again
// (keys for which invocation_only is true stay as given here).
void apply_checkpoint_settings(Options& options, const Checkpoint& checkpoint,
                               const std::function<bool(const std::string&)>& invocation_only);
// --resume DIR|latest (latest: OUT/latest): opens the checkpoint, verifying every checksum, and
// applies its settings as above; `resume` keeps the value given. Throws naming what is missing.
Checkpoint open_resume(Options& options, std::string& resume, const std::string& out);
// Settings of this invocation, not of the run (a resumed run does not take them from the
// checkpoint): threads, device placement and data-parallel flags.
bool is_invocation_setting(const std::string& key);
// A training app's command line: parses it (status >= 0: the app exits with it, as with
// parse_command_line; the result is then empty) and, when `resume` is set, opens that checkpoint
// as open_resume does (out: the --out setting, read after parsing).
std::optional<Checkpoint> parse_training_command_line(CLI::App& app, Options& options,
                                                      std::string& resume, const std::string& out,
                                                      int argc, char** argv, int& status);
// The backend of --device/--dtype (make_backend_from_names) and the app's error handler.
RunHooks app_run_hooks();

}  // namespace gpt
