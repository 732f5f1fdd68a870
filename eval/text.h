// Text helpers of the generation and multiple-choice tasks.
#pragma once

#include <cstddef>
#include <string>

namespace gpt {

// The text without leading and trailing ASCII white space.
std::string strip(const std::string& text);

// The text with every byte that is not part of a well-formed UTF-8 sequence replaced by U+FFFD
// (a completion may end inside a character; the metrics and JSON need valid UTF-8).
std::string to_valid_utf8(const std::string& s);

// One line for stdout: line breaks shown as "\n", cut to max_chars code points.
std::string one_line(const std::string& text, size_t max_chars);

}  // namespace gpt
