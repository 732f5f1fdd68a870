#include "train/signals.h"

#include <unistd.h>

#include <csignal>
#include <cstring>

namespace gpt {

namespace {

volatile std::sig_atomic_t g_signal = 0;
char g_second_message[160] = "second signal: exiting now; the last complete checkpoint is intact\n";

extern "C" void on_signal(int sig) {
  if (g_signal != 0) {
    const ssize_t ignored = ::write(STDERR_FILENO, g_second_message, std::strlen(g_second_message));
    (void)ignored;
    ::_exit(128 + sig);
  }
  g_signal = sig;
}

}  // namespace

void install_stop_signal_handlers(const char* app) {
  std::strncpy(g_second_message, app, 40);
  g_second_message[40] = '\0';
  std::strcat(g_second_message,
              ": second signal: exiting now; the last complete checkpoint is intact\n");
  struct sigaction sa;
  std::memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

int stop_signal() {
  return g_signal;
}

const char* stop_signal_name() {
  return g_signal == SIGINT ? "SIGINT" : "SIGTERM";
}

}  // namespace gpt
