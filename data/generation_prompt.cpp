#include "data/generation_prompt.h"

#include <filesystem>
#include <stdexcept>

#include "data/bpe_tokenizer.h"

namespace gpt {

std::string tokenizer_directory(const PrepareTokenizer& tokenizer) {
  if (tokenizer.kind() != "path") return "";
  std::error_code ec;
  const std::filesystem::path p = tokenizer.source();
  return std::filesystem::is_directory(p, ec) ? p.string() : p.parent_path().string();
}

GenerationPrompts::GenerationPrompts(const PrepareTokenizer& tokenizer, bool chat,
                                     std::string system)
    : tokenizer_(tokenizer), system_(std::move(system)) {
  if (tokenizer.eot_token() >= 0) end_tokens_.push_back(tokenizer.eot_token());
  const std::string dir = tokenizer_directory(tokenizer);
  const ModelChatConfig config = dir.empty() ? ModelChatConfig{} : read_model_chat_config(dir);
  for (int32_t id : config.eos_ids) end_tokens_.push_back(id);
  if (!config.eos_token.empty() && tokenizer.bpe() != nullptr &&
      tokenizer.bpe()->special_token_id(config.eos_token) >= 0)
    end_tokens_.push_back(tokenizer.bpe()->special_token_id(config.eos_token));
  if (!chat) return;
  if (tokenizer.bpe() == nullptr || config.chat_template.empty())
    throw std::invalid_argument(
        "--chat needs the model's chat template: tokenizer_config.json with \"chat_template\" "
        "in the tokenizer's directory (" +
        (dir.empty() ? std::string("none: the tokenizer is ") + tokenizer.kind() : dir) +
        "); pass --tokenizer MODEL_DIR");
  chat_template_ = ChatTemplate::recognise(config.chat_template, config.bos_token);
}

GenerationPrompts::Prompt GenerationPrompts::encode(const std::string& prompt) const {
  Prompt p;
  if (!chat_template_) {
    if (tokenizer_.eot_token() >= 0) p.ids.push_back(tokenizer_.eot_token());
    tokenizer_.encode_append(prompt, &p.ids);
    p.text = prompt;
    return p;
  }
  std::vector<ChatMessage> messages;
  if (!system_.empty()) messages.push_back({"system", system_});
  messages.push_back({"user", prompt});
  const std::vector<ChatSegment> segments = chat_template_->render(messages, true);
  p.ids = encode_chat(*tokenizer_.bpe(), segments).ids;
  for (const ChatSegment& s : segments) p.text += s.text;
  return p;
}

}  // namespace gpt
