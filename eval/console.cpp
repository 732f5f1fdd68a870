// stderr output of the evaluation tasks (eval/console.h): the start banner, notes, progress.
#include "eval/console.h"

#include <chrono>
#include <cstdio>
#include <utility>

namespace gpt {

EvalConsole::EvalConsole(ProgressMode progress, std::string start_banner)
    : progress_(progress), start_banner_(std::move(start_banner)) {}

void EvalConsole::announce_start() {
  if (announced_) return;
  announced_ = true;
  std::fputs(start_banner_.c_str(), stderr);
  std::fflush(stderr);
}

void EvalConsole::note(const std::string& text) const {
  std::fprintf(stderr, "gpt-eval: note: %s\n", text.c_str());
}

namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

EvalProgress::EvalProgress(const EvalConsole& console, std::string label, int64_t total,
                           std::string unit)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(total),
      mode_(console.progress_mode()),
      start_(now_seconds()),
      last_draw_(start_),
      line_(mode_, /*plain_every_s=*/10.0) {}

void EvalProgress::update(int64_t done) {
  done_ = done;
  const double t = now_seconds();
  if (mode_ == ProgressMode::line && t - last_draw_ < 0.5) return;
  last_draw_ = t;
  line_.update(text(done, false));
}

void EvalProgress::finish() {
  if (finished_) return;
  finished_ = true;
  line_.finish(mode_ == ProgressMode::line || now_seconds() - start_ > 2.0 ? text(done_, true)
                                                                           : "");
}

std::string EvalProgress::text(int64_t done, bool final_line) const {
  const double elapsed = now_seconds() - start_;
  const double pct = total_ > 0 ? 100.0 * static_cast<double>(done) / total_ : 100.0;
  char eta[48] = "";
  if (!final_line && done > 0 && total_ > done)
    std::snprintf(eta, sizeof(eta), "  ETA %.1f s", elapsed / done * (total_ - done));
  char buf[512];
  std::snprintf(buf, sizeof(buf), "gpt-eval: %s  %lld/%lld %s (%.0f%%)  %.1f s%s", label_.c_str(),
                static_cast<long long>(done), static_cast<long long>(total_), unit_.c_str(), pct,
                elapsed, eta);
  return buf;
}

}  // namespace gpt
