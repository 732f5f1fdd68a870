// The text side of generation (gpt-generate): a prompt as the ids a model continues, and the
// tokens that end a completion.
//
// A plain prompt is <|endoftext|> (the document start every training document had, when the
// tokenizer has one) and then the prompt as text. A chat prompt is a conversation (the system
// message, when given, and the prompt as the user's message) rendered with the chat template of the
// tokenizer's directory and its assistant header (data/chat_template.h). A completion ends at
// <|endoftext|> and at the end tokens the tokenizer's directory names (generation_config.json
// eos_token_id, tokenizer_config.json eos_token).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "data/chat_template.h"
#include "data/prepare.h"

namespace gpt {

// The directory a tokenizer was loaded from ("" for bytes and gpt2): where its model's
// tokenizer_config.json and generation_config.json are.
std::string tokenizer_directory(const PrepareTokenizer& tokenizer);

class GenerationPrompts {
 public:
  // Reads the chat configuration of the tokenizer's directory. With chat, its template is
  // required: throws std::invalid_argument (naming the directory, and --tokenizer MODEL_DIR) when
  // there is none, or when the template is not one data/chat_template.h renders. The tokenizer
  // must outlive this.
  GenerationPrompts(const PrepareTokenizer& tokenizer, bool chat, std::string system);

  struct Prompt {
    std::vector<int32_t> ids;
    std::string text;  // what the ids stand for: the prompt, or the rendered conversation
  };
  Prompt encode(const std::string& prompt) const;
  // <|endoftext|> (when the tokenizer has it), then the directory's end tokens.
  const std::vector<int32_t>& end_tokens() const { return end_tokens_; }

 private:
  const PrepareTokenizer& tokenizer_;
  std::string system_;
  std::optional<ChatTemplate> chat_template_;
  std::vector<int32_t> end_tokens_;
};

}  // namespace gpt
