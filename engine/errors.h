// The one error helper: a failure tied to something the user named (a file, a flag value) is a
// std::runtime_error reading "WHERE: WHAT", so that every message names what it is about the same
// way. Header-only, so that libraries below the engine (the tokenizer) use it too.
#pragma once

#include <stdexcept>
#include <string>

namespace gpt {

// Throws std::runtime_error(where + ": " + what).
[[noreturn]] inline void fail(const std::string& where, const std::string& what) {
  throw std::runtime_error(where + ": " + what);
}

}  // namespace gpt
