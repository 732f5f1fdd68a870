// What an evaluation task writes on stderr while it works: the start banner, notes and a progress
// line. Never stdout: the report is the app's to print.
#pragma once

#include <cstdint>
#include <string>

#include "engine/progress.h"

namespace gpt {

class EvalConsole {
 public:
  // `start_banner`: what announce_start() prints (gpt-eval: the resolved config and the backend).
  explicit EvalConsole(ProgressMode progress = ProgressMode::plain, std::string start_banner = "");

  ProgressMode progress_mode() const { return progress_; }
  // A task calls announce_start() once every input has been checked and the model is built, so
  // that bad input gives exactly one line on stderr: the error. Prints the banner the first time.
  void announce_start();
  // "gpt-eval: note: <text>" on stderr.
  void note(const std::string& text) const;

 private:
  ProgressMode progress_;
  std::string start_banner_;
  bool announced_ = false;
};

// A progress line on stderr: "gpt-eval: lm  40/120 batches (33%)  4.1 s  ETA 8.2 s" (engine/
// progress.h). Line mode: redrawn in place, at most every 0.5 s; plain: one line every 10 s, plus
// the final one when the work took longer than 2 s.
class EvalProgress {
 public:
  EvalProgress(const EvalConsole& console, std::string label, int64_t total, std::string unit);
  void update(int64_t done);
  void finish();

 private:
  std::string text(int64_t done, bool final_line) const;
  std::string label_, unit_;
  int64_t total_;
  ProgressMode mode_;
  bool finished_ = false;
  int64_t done_ = 0;
  double start_ = 0.0, last_draw_ = 0.0;
  ProgressLine line_;
};

}  // namespace gpt
