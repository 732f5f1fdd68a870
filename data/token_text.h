// Token ids as text, gpt-tokenize's formats: input is split into records (lines, NUL-separated
// strings, or the whole input); each record is encoded on its own and its ids are written
// space-separated on one line. Decoding reads one record of ids per line and writes each record's
// text followed by the record separator.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "data/bpe_tokenizer.h"

namespace gpt {

enum class Records { kLines, kNul, kWhole };

// The records of text. With a separator, a trailing separator does not start an empty record.
std::vector<std::string_view> split_records(std::string_view text, Records mode);

// Encodes the records of text (chunks of records in parallel on `threads`; 0: all cores) and
// passes the output to `write` piece by piece, in order: one line of ids per record. With
// add_special_tokens, the tokenizer's post-processor ids (prefix_ids, suffix_ids) go around each
// record, as Hugging Face's add_special_tokens=True.
void encode_records(const BpeTokenizer& tokenizer, std::string_view text, Records mode,
                    SpecialTokens special, bool add_special_tokens, int threads,
                    const std::function<void(std::string_view)>& write);

// Decodes lines of space-separated ids (blanks, tabs and carriage returns between them), each
// line's text followed by the record separator (none for kWhole), passed to `write` line by
// line. Throws std::runtime_error naming the input line for a word that is not an id, or an id
// outside the vocabulary.
void decode_records(const BpeTokenizer& tokenizer, std::string_view text, Records mode,
                    const std::function<void(std::string_view)>& write);

}  // namespace gpt
