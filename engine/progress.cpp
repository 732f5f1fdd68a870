#include "engine/progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdarg>
#include <cstdio>
#include <mutex>
#include <stdexcept>
#include <vector>

namespace gpt {

namespace {

using Clock = std::chrono::steady_clock;

// One lock for everything written to stderr through this file, and the line drawn at the bottom of
// stderr now (null: none). A message that did not end its line (a printf in parts) holds the
// progress line back until a later message ends it.
std::mutex g_mutex;
ProgressLine* g_active = nullptr;
bool g_partial_message = false;
bool g_closed = false;  // write_stderr_final ran: no progress line is drawn again

}  // namespace

ProgressMode progress_mode_from_name(const std::string& name, const std::string& flag) {
  if (name == "auto") return stderr_is_terminal() ? ProgressMode::line : ProgressMode::plain;
  if (name == "line") return ProgressMode::line;
  if (name == "plain") return ProgressMode::plain;
  throw std::invalid_argument(
      flag + " '" + name + "': expected auto (line on a terminal, plain otherwise), line or plain");
}

const char* progress_mode_name(ProgressMode mode) {
  switch (mode) {
    case ProgressMode::line:
      return "line";
    case ProgressMode::plain:
      return "plain";
    case ProgressMode::none:
      return "none";
  }
  return "?";
}

bool stderr_is_terminal() {
  return ::isatty(STDERR_FILENO) == 1;
}

int terminal_columns(int fd) {
  struct winsize ws {};
  if (::ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 80;
}

std::string fit_to_width(std::string_view text, int columns) {
  std::string out;
  out.reserve(text.size());
  int used = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    const bool continuation = (c & 0xC0) == 0x80;  // 10xxxxxx: inside a multi-byte code point
    if (!continuation) {
      if (used == columns) break;
      ++used;
    }
    out.push_back(c == '\n' || c == '\r' || c == '\t' ? ' ' : static_cast<char>(c));
  }
  return out;
}

std::string format_duration(double seconds) {
  char buf[32];
  const long s = seconds > 0 ? static_cast<long>(seconds + 0.5) : 0;
  if (s >= 3600)
    std::snprintf(buf, sizeof(buf), "%ldh%02ldm", s / 3600, (s / 60) % 60);
  else if (s >= 60)
    std::snprintf(buf, sizeof(buf), "%ldm%02lds", s / 60, s % 60);
  else
    std::snprintf(buf, sizeof(buf), "%lds", s);
  return buf;
}

void write_stderr(const std::string& text) {
  if (text.empty()) return;
  std::lock_guard<std::mutex> lock(g_mutex);
  ProgressLine* line = g_active;
  if (line && line->drawn_ && !g_partial_message) std::fputs("\r\033[K", stderr);
  std::fwrite(text.data(), 1, text.size(), stderr);
  g_partial_message = text.back() != '\n';
  if (line) {
    line->drawn_ = false;
    if (!g_partial_message) line->draw_locked();
  }
  std::fflush(stderr);
}

void write_stderr_final(const std::string& text) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_active && g_active->drawn_ && !g_partial_message) std::fputc('\n', stderr);
  g_closed = true;
  std::fwrite(text.data(), 1, text.size(), stderr);
  std::fflush(stderr);
}

void print_stderr(const char* format, ...) {
  va_list args, copy;
  va_start(args, format);
  va_copy(copy, args);
  const int n = std::vsnprintf(nullptr, 0, format, copy);
  va_end(copy);
  std::string text;
  if (n > 0) {
    std::vector<char> buf(static_cast<size_t>(n) + 1);
    std::vsnprintf(buf.data(), buf.size(), format, args);
    text.assign(buf.data(), static_cast<size_t>(n));
  }
  va_end(args);
  write_stderr(text);
}

ProgressLine::ProgressLine(ProgressMode mode, double plain_every_s)
    : mode_(mode), plain_every_s_(plain_every_s), last_plain_(Clock::now()) {}

ProgressLine::~ProgressLine() {
  finish();
}

void ProgressLine::update(const std::string& text, bool now) {
  if (mode_ == ProgressMode::none) return;
  if (mode_ == ProgressMode::plain) {
    if (plain_every_s_ <= 0) return;
    const auto t = Clock::now();
    {
      std::lock_guard<std::mutex> lock(g_mutex);
      if (std::chrono::duration<double>(t - last_plain_).count() < plain_every_s_ && !now) return;
      last_plain_ = t;
    }
    write_stderr(text + "\n");
    return;
  }
  std::lock_guard<std::mutex> lock(g_mutex);
  if (text != text_) {
    text_ = text;
    dirty_ = true;
  }
  const auto t = Clock::now();
  const bool due = drawn_ == false || std::chrono::duration<double>(t - last_draw_).count() >=
                                          1.0 / kMaxRedrawsPerSecond;
  if ((now || due) && (dirty_ || !drawn_)) draw_locked();
}

void ProgressLine::draw_locked() {
  if (g_partial_message || g_closed || text_.empty()) return;
  if (g_active != this) {
    // Another line is at the bottom of stderr (an inner task's progress inside an outer one's):
    // this one takes its row; the other is drawn again after this one finishes.
    if (g_active) g_active->drawn_ = false;
    below_ = g_active;
    g_active = this;
  }
  const std::string shown = fit_to_width(text_, terminal_columns(STDERR_FILENO) - 1);
  std::fprintf(stderr, "\r%s\033[K", shown.c_str());
  std::fflush(stderr);
  drawn_ = true;
  dirty_ = false;
  last_draw_ = Clock::now();
}

void ProgressLine::finish(const std::string& final_text) {
  if (mode_ == ProgressMode::none) return;
  if (mode_ == ProgressMode::plain) {
    if (!final_text.empty()) write_stderr(final_text + "\n");
    return;
  }
  std::lock_guard<std::mutex> lock(g_mutex);
  if (!final_text.empty() && final_text != text_) {
    text_ = final_text;
    dirty_ = true;
  }
  // A final text is shown even when the line was never drawn (work that ended within one redraw).
  if (!final_text.empty() && g_active != this) draw_locked();
  const bool active = g_active == this;
  if (active && (dirty_ || !drawn_)) draw_locked();
  if (active && drawn_ && !g_closed) {
    std::fputc('\n', stderr);
    std::fflush(stderr);
  }
  if (active) {
    g_active = below_;
  } else {
    // Not at the bottom: unlink this line from the lines drawn above it, if any.
    for (ProgressLine* l = g_active; l; l = l->below_)
      if (l->below_ == this) l->below_ = below_;
  }
  below_ = nullptr;
  drawn_ = false;
  dirty_ = false;
  text_.clear();
}

}  // namespace gpt
