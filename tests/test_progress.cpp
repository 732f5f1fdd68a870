// engine/progress.h: the bytes a progress line writes (redraw in place, messages above it, the
// final state left on screen), cutting to the terminal's width without splitting a UTF-8 code
// point, the duration format and the --progress names.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

#include "engine/progress.h"

namespace gpt {
namespace {

// Runs fn with stderr sent to a file; returns what was written.
template <typename Fn>
std::string capture_stderr(Fn fn) {
  char path[] = "/tmp/test_progress_XXXXXX";
  const int fd = ::mkstemp(path);
  EXPECT_GE(fd, 0);
  std::fflush(stderr);
  const int saved = ::dup(STDERR_FILENO);
  ::dup2(fd, STDERR_FILENO);
  fn();
  std::fflush(stderr);
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  ::close(fd);
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  ::unlink(path);
  return ss.str();
}

TEST(Progress, LineModeRedrawsInPlaceAndKeepsMessagesAbove) {
  const std::string out = capture_stderr([] {
    ProgressLine line(ProgressMode::line);
    line.update("step 1", true);
    line.update("step 2", true);
    write_stderr("val 3.1\n");
    line.finish();
  });
  EXPECT_EQ(out,
            "\rstep 1\033[K"  // drawn
            "\rstep 2\033[K"  // redrawn over it
            "\r\033[K"
            "val 3.1\n"       // cleared, the message as a line of its own
            "\rstep 2\033[K"  // drawn again below it
            "\n");            // finish: the last state stays, the line ends
}

TEST(Progress, RedrawsAreRateLimitedButTheLastTextIsShown) {
  const std::string out = capture_stderr([] {
    ProgressLine line(ProgressMode::line);
    for (int i = 1; i <= 100; ++i) line.update("step " + std::to_string(i));
    line.finish();
  });
  EXPECT_LT(std::count(out.begin(), out.end(), '\r'), 10);  // far fewer than 100 redraws
  EXPECT_NE(out.find("\rstep 100\033[K\n"), std::string::npos) << out;
}

TEST(Progress, FinalTextIsShownEvenWhenNothingWasDrawn) {
  const std::string out = capture_stderr([] {
    ProgressLine line(ProgressMode::line);
    line.finish("done 100%");
  });
  EXPECT_EQ(out, "\rdone 100%\033[K\n");
}

TEST(Progress, PlainModeWritesLinesAndNoCarriageReturn) {
  const std::string out = capture_stderr([] {
    ProgressLine line(ProgressMode::plain, /*plain_every_s=*/1e9);
    line.update("first", /*now=*/true);
    line.update("not yet");  // within plain_every_s
    write_stderr("message\n");
    line.finish("last");
  });
  EXPECT_EQ(out, "first\nmessage\nlast\n");
}

TEST(Progress, NoneWritesNothing) {
  EXPECT_EQ(capture_stderr([] {
              ProgressLine line(ProgressMode::none);
              line.update("x", true);
              line.finish("y");
            }),
            "");
}

TEST(Progress, ExceptionUnwindingEndsTheLine) {
  const std::string out = capture_stderr([] {
    try {
      ProgressLine line(ProgressMode::line);
      line.update("step 7", true);
      throw std::runtime_error("boom");
    } catch (const std::runtime_error&) {
      std::fputs("app: error: boom\n", stderr);
    }
  });
  EXPECT_EQ(out, "\rstep 7\033[K\napp: error: boom\n");
}

TEST(Progress, FitToWidthCountsCodePointsAndFlattensLineBreaks) {
  EXPECT_EQ(fit_to_width("abcdef", 4), "abcd");
  EXPECT_EQ(fit_to_width("ab", 4), "ab");
  EXPECT_EQ(fit_to_width("a\nb\tc", 10), "a b c");
  // "é" is two bytes, "東" three: cut after 3 code points, never inside one.
  EXPECT_EQ(fit_to_width("é東xyz", 3), "é東x");
  EXPECT_EQ(fit_to_width("東京", 1), "東");
  EXPECT_EQ(fit_to_width("abc", 0), "");
}

TEST(Progress, DurationsAndModeNames) {
  EXPECT_EQ(format_duration(0.2), "0s");
  EXPECT_EQ(format_duration(42.4), "42s");
  EXPECT_EQ(format_duration(187), "3m07s");
  EXPECT_EQ(format_duration(7500), "2h05m");
  EXPECT_EQ(format_duration(-5), "0s");
  EXPECT_EQ(progress_mode_from_name("line", "--progress"), ProgressMode::line);
  EXPECT_EQ(progress_mode_from_name("plain", "--progress"), ProgressMode::plain);
  try {
    progress_mode_from_name("bar", "--progress");
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("--progress 'bar'"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace gpt
