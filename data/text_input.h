// Reading the raw inputs of gpt-prepare: files (plain or gzip), globs, documents, JSONL and TSV
// records. Everything read remembers the file and line it came from, so that every error can say
// `<file>:<line>: <what>` (docs/data.md lists the formats).
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace gpt {

// An error in an input: what() is "<file>:<line>: <what>", or "<file>: <what>" when line is 0.
// Always one line: `what` must not hold a line break (quote_for_error makes text safe).
class InputError : public std::runtime_error {
 public:
  InputError(const std::string& file, int64_t line, const std::string& what);
};

// Expands --input arguments in order: an argument with a glob character (* ? [) is a glob (its
// matches sorted; it must match at least one file); any other argument is a file that must exist.
// Throws InputError naming the argument.
std::vector<std::string> expand_inputs(const std::vector<std::string>& patterns);

// The whole file as bytes. A file that starts with gzip's magic (1f 8b) is decompressed (zlib).
// Throws InputError naming the file when it cannot be read, or the gzip stream is corrupt or cut
// short.
std::string read_input_file(const std::string& path);

// Whether this build reads gzip files (it links zlib).
bool gzip_supported();

// Text quoted for an error message: printable ASCII kept, any other byte as \xNN, cut to about
// max_chars characters (with "..."), so a message stays one readable line whatever the input.
std::string quote_for_error(std::string_view text, size_t max_chars = 40);

// Calls fn(line, line_number) for each line of text: line numbers start at 1, the line excludes its
// '\n' and a trailing '\r' (CRLF files), and a UTF-8 byte-order mark at the start is skipped. A
// final line without '\n' counts; the empty string after a final '\n' does not.
void for_each_line(std::string_view text,
                   const std::function<void(std::string_view line, int64_t line_number)>& fn);

// True when the line holds only spaces, tabs and '\r' (or nothing).
bool is_blank_line(std::string_view line);

// How a text file becomes documents.
enum class DocumentSplit {
  kWholeFile,   // the file is one document
  kBlankLines,  // documents are separated by one or more blank lines
};

// One document of a text input, with where it starts (line 1 for a whole file).
struct DocumentView {
  std::string_view text;
  int64_t line = 1;
};

// Cuts file_text into documents. kWholeFile: the whole text (one document, even when empty).
// kBlankLines: each run of non-blank lines is a document, from the start of its first line to the
// end of its last line (the final line break excluded); blank lines are dropped.
std::vector<DocumentView> split_documents(std::string_view file_text, DocumentSplit split);

// Parses one JSONL line as a JSON object. Throws InputError naming file:line with the reason
// (malformed JSON with its column, invalid UTF-8, or "expected a JSON object, got <type>").
nlohmann::json parse_jsonl_object(std::string_view line, const std::string& file,
                                  int64_t line_number);

// The string field `key` of a JSONL object. Throws InputError "missing field 'key'" or
// "field 'key': expected a string, got <type>". With `optional`, a missing field (or null) is "".
std::string json_string_field(const nlohmann::json& object, const std::string& key,
                              const std::string& file, int64_t line_number, bool optional = false);

// "a string", "an integer", "null", ... for error messages.
const char* json_type_name(const nlohmann::json& value);

// The fields of a TSV line (split at every tab; no quoting, as in SST-2 and the UCI files).
std::vector<std::string_view> split_tabs(std::string_view line);

// Spaces, tabs and '\r' removed from both ends.
std::string_view trim_blanks(std::string_view text);

// A comma-separated list, each item trimmed (trim_blanks): "negative, positive" -> {"negative",
// "positive"}. Every comma separates two items, so "a," gives {"a", ""} and "" gives {""}.
std::vector<std::string> split_commas(std::string_view text);

}  // namespace gpt
