// Progress on stderr, as the apps show it: on a terminal, one line redrawn in place (like tqdm or
// pip); elsewhere (a log file, a pipe, a Slurm output), ordinary lines now and then.
//
// A ProgressLine in line mode redraws with "\r" + text + "\033[K" (clear to the end of the line),
// at most kMaxRedrawsPerSecond times a second, cut to the terminal's width so that it never wraps
// (a wrapped line could not be redrawn in place). Every other message of the process goes through
// print_stderr()/write_stderr(), which clear the line, print the message, and draw the line again
// below it: messages stay as permanent lines above the progress line, and nothing is garbled.
// finish() (or the destructor, also when an exception unwinds) leaves the last state of the line
// on screen and ends it with a newline, so an error message after it starts on its own line.
//
// Output is serialised by one lock, so other threads (the communicator's watchdog, OpenMP
// workers) may print too. models/ and kernels/ never print progress.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace gpt {

// How progress is shown. line: one line redrawn in place; plain: ordinary lines (each app says how
// often); none: nothing (the ranks other than 0 of a data-parallel job).
enum class ProgressMode { line, plain, none };

// "auto" (line when stderr is a terminal, else plain), "line" or "plain". Throws
// std::invalid_argument naming `flag` and the allowed values for anything else.
ProgressMode progress_mode_from_name(const std::string& name, const std::string& flag);
const char* progress_mode_name(ProgressMode mode);

bool stderr_is_terminal();
// The width of the terminal on fd (ioctl TIOCGWINSZ); 80 when fd is not a terminal or reports 0.
int terminal_columns(int fd);

// text cut to at most `columns` characters (UTF-8 aware: counts code points and never cuts one in
// two), with line breaks and tabs turned into spaces so that it stays on one line.
std::string fit_to_width(std::string_view text, int columns);

// "42s", "3m07s", "2h05m" (rounded to the second).
std::string format_duration(double seconds);

// A message on stderr: clears an active progress line first and redraws it after the message (when
// the message ends a line). print_stderr formats as printf does.
void write_stderr(const std::string& text);
void print_stderr(const char* format, ...) __attribute__((format(printf, 1, 2)));
// The last words of a process that is about to _Exit (an abort, a watchdog): an active progress
// line is ended with a newline (it stays on screen) and is never drawn again; then text.
void write_stderr_final(const std::string& text);

class ProgressLine {
 public:
  static constexpr double kMaxRedrawsPerSecond = 10.0;

  // plain_every_s > 0: in plain mode update() also prints its text as a line when that many
  // seconds have passed since the last such line (0: update() prints nothing in plain mode).
  explicit ProgressLine(ProgressMode mode, double plain_every_s = 0.0);
  ~ProgressLine();
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;

  ProgressMode mode() const { return mode_; }
  bool in_place() const { return mode_ == ProgressMode::line; }
  // The line's new text. Line mode: drawn now when the last redraw is at least
  // 1 / kMaxRedrawsPerSecond old, or when `now` is set; otherwise kept and drawn by the next update
  // or finish(). Plain mode: see plain_every_s. Thread-safe.
  void update(const std::string& text, bool now = false);
  // Ends the line. Line mode: draws final_text (or the latest text when final_text is empty) and a
  // newline, when anything was drawn at all. Plain mode: prints final_text as a line unless empty.
  // A later update() starts a new line.
  void finish(const std::string& final_text = "");

 private:
  friend void write_stderr(const std::string& text);
  friend void write_stderr_final(const std::string& text);
  void draw_locked();
  ProgressMode mode_;
  double plain_every_s_;
  std::string text_;               // the latest text given
  bool drawn_ = false;             // this line is on screen (the bottom line of stderr)
  bool dirty_ = false;             // text_ changed since it was drawn
  ProgressLine* below_ = nullptr;  // the line that was active when this one was first drawn
  std::chrono::steady_clock::time_point last_draw_{}, last_plain_;
};

}  // namespace gpt
