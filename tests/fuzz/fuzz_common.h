// What the fuzz targets share (docs/testing.md, "Fuzzing"). Each target feeds one parser of the
// project's input files with bytes from libFuzzer (or, in the normal builds, from the files of its
// seed corpus and its regressions, see replay_main.cpp). A target may only end in two ways:
//   - the parser accepts the input, or
//   - the parser throws a std::exception whose message names the file it read (the project's
//     promise: a clear error naming what was wrong).
// Anything else is a finding: a sanitizer report, a crash, an exception of another type, an error
// that does not name its file, or an allocation larger than libFuzzer's -malloc_limit_mb (a parser
// that allocates what a header claims). check_error() turns a nameless message into an abort, so
// libFuzzer saves the input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gpt::fuzz {

// A private scratch directory for this process (under $TMPDIR, else /tmp), created on first use.
const std::string& scratch_dir();
// Empties the scratch directory (called at the start of every input).
void clear_scratch();
// Writes bytes to scratch_dir()/name (creating parent folders) and returns the path, or "" when
// the name clashes with a file or folder already written (an archive naming both "a" and "a/b").
std::string write_scratch(const std::string& name, std::string_view bytes);

// A multi-file input: files one after another, each introduced by a line "=== NAME" (NAME: a
// relative path of [A-Za-z0-9._-] parts joined by '/'); a file's bytes run to the newline before
// the next "\n=== " line or to the end (one final newline dropped). Entries with a bad name are
// skipped. tests/fuzz/make_seeds.sh writes this format.
std::vector<std::pair<std::string, std::string>> unpack(std::string_view input);

// Aborts (a finding) unless `what` names `must_name`. Call from a catch (const std::exception&).
void check_error(const char* target, const std::string& what, const std::string& must_name);

}  // namespace gpt::fuzz

// Runs `body`; an exception is the parser refusing the input and must name `must_name`.
#define GPT_FUZZ_EXPECT_CLEAN(target, must_name, body)       \
  do {                                                       \
    try {                                                    \
      body;                                                  \
    } catch (const std::exception& e) {                      \
      ::gpt::fuzz::check_error(target, e.what(), must_name); \
    }                                                        \
  } while (0)
