// Graceful stop on SIGINT/SIGTERM for the training apps (gpt-pretrain, gpt-finetune).
//
// The first signal sets a flag that the trainer's after-step callback reads: the step in flight
// finishes, the app writes its checkpoint and exits. A second signal exits at once with status
// 128 + signal: a checkpoint being written is a temporary directory until its final rename, so the
// last complete checkpoint and the `latest` pointer are never touched half-way.
#pragma once

namespace gpt {

// Installs the handlers; app names the program in the second signal's message.
void install_stop_signal_handlers(const char* app);
// The first signal received (SIGINT or SIGTERM), or 0.
int stop_signal();
// "SIGINT" or "SIGTERM".
const char* stop_signal_name();

}  // namespace gpt
