// Chat formats: a model's chat template, recognised from its text, applied to conversations.
//
// A Hugging Face model directory states its chat format as a Jinja template (tokenizer_config.json
// "chat_template"). The engine has no Jinja interpreter: it recognises the published templates of
// the families it supports from their text and renders conversations with its own code, for the
// case without tools, exactly as transformers' apply_chat_template does
// (tests/reference/make_chat_reference.py checks the text of each against transformers):
//
//   chatml    '<|im_start|>' + role + '\n' + content + '<|im_end|>' + '\n' per message; with or
//             without a default system turn when the first message is not a system message
//             (Qwen2-Instruct "You are a helpful assistant.", SmolLM2-Instruct "You are a helpful
//             AI assistant named SmolLM, trained by Hugging Face", OpenHermes: none). The default
//             system text is read out of the template. Qwen2.5-Instruct's template (with its
//             tools branch, never taken: the engine passes no tools) renders as ChatML with its
//             default "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
//   qwen3     Qwen3's ChatML with reasoning: an assistant turn after the last user turn that is
//             the last message, or carries reasoning, is written '<think>\n' + reasoning +
//             '\n</think>\n\n' + answer (the reasoning is the part of the content before
//             '</think>'); the generation prompt is '<|im_start|>assistant\n' (enable_thinking
//             unset). Tools and tool turns are refused.
//   llama3    Llama 3 Instruct: bos, then '<|start_header_id|>' + role + '<|end_header_id|>\n\n' +
//             content|trim + '<|eot_id|>' per message.
//   llama3.1  Llama 3.1 / 3.2 / 3.3 Instruct without tools: bos, a system header that always
//             holds "Cutting Knowledge Date: December 2023\nToday Date: <date>\n\n" + the trimmed
//             system message (empty without one), then the llama3 turns. The date is the
//             template's default ("26 Jul 2024", Llama 3.1 and 3.3) or today's date as "%d %b %Y"
//             (Llama 3.2, whose template calls strftime_now), as transformers renders it.
// Anything else is refused by ChatTemplate::recognise, naming the template by an excerpt.
//
// Rendering gives segments: text (encoded as ordinary text: a message that spells <|im_end|>
// stays text), special tokens (one id each) and, per segment, whether it belongs to an assistant
// turn. The trained part of an assistant turn is what the model must produce after the template's
// assistant header: its content (qwen3: with the think block) and its end-of-turn token
// (<|im_end|>, <|eot_id|>), as TRL's assistant_only_loss and torchtune's train_on_input=False do.
// The "\n" the ChatML templates write after <|im_end|> is not trained: generation stops at
// <|im_end|>, so the model never has to produce it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gpt {

class BpeTokenizer;

struct ChatMessage {
  std::string role;  // system, user or assistant
  std::string content;
};

struct ChatSegment {
  std::string text;
  bool special = false;    // one special token whose text this is
  bool assistant = false;  // part of an assistant turn's trained span
};

// tokenizer_config.json and generation_config.json of a model directory, as far as chat needs.
struct ModelChatConfig {
  std::string bos_token, eos_token, pad_token;  // "" when absent or null
  bool add_bos_token = false;
  std::string chat_template;     // the Jinja text ("" when the file has none)
  std::vector<int32_t> eos_ids;  // generation_config.json eos_token_id (an int or a list)
  std::string config_path;       // the tokenizer_config.json read ("" when there is none)
};

// Reads DIR/tokenizer_config.json and DIR/generation_config.json (each optional). chat_template
// may be a string or the list form [{"name", "template"}] (the one named "default" is taken).
// Token fields may be strings or {"content": ...} objects. Throws std::runtime_error naming the
// file for malformed JSON or fields of the wrong type.
ModelChatConfig read_model_chat_config(const std::string& dir);

class ChatTemplate {
 public:
  enum class Kind { kChatml, kQwen3, kLlama3, kLlama31 };

  // Recognises a template from its text. bos_token is the model's (llama3, llama3.1 write it).
  // Throws std::invalid_argument naming the template by an excerpt when it is not one of the
  // formats above (or is one of them with a part this engine does not render).
  static ChatTemplate recognise(const std::string& jinja, const std::string& bos_token);

  // Segments of a conversation; with add_generation_prompt the assistant header follows. Roles
  // must be system, user or assistant (else std::invalid_argument naming the message).
  std::vector<ChatSegment> render(const std::vector<ChatMessage>& messages,
                                  bool add_generation_prompt) const;
  // The segments' text concatenated: apply_chat_template(tokenize=False).
  std::string render_text(const std::vector<ChatMessage>& messages,
                          bool add_generation_prompt) const;

  Kind kind() const { return kind_; }
  const char* name() const;  // "chatml", "qwen3", "llama3", "llama3.1"
  const std::string& default_system() const { return default_system_; }  // chatml
  const std::string& date() const { return date_; }                      // llama3.1
  // The special tokens the template writes (each must be one id of the tokenizer).
  std::vector<std::string> special_tokens() const;

 private:
  Kind kind_ = Kind::kChatml;
  std::string default_system_, date_, bos_;
};

// A rendered conversation as token ids: text segments encoded as ordinary text, special segments
// as their id. Text between two special tokens is encoded as one piece (as transformers encodes
// the rendered string), and a token is trained when any of its bytes lies in an assistant span.
// (Should the tokenizer's normaliser change non-ASCII text that precedes an assistant span within
// one piece, which the supported templates never produce, the segments are encoded one by one.)
struct ChatTokens {
  std::vector<int32_t> ids;
  std::vector<uint8_t> trained;  // 1 for the tokens of assistant spans
};
// Throws std::invalid_argument naming a special token the tokenizer does not have.
ChatTokens encode_chat(const BpeTokenizer& tokenizer, const std::vector<ChatSegment>& segments);

// Today's date as Llama 3.2's template writes it (strftime "%d %b %Y", local time).
std::string llama_today_date();

// Python's str.strip() (Jinja's trim filter) on UTF-8 text: removes leading and trailing
// whitespace characters (ASCII and Unicode White_Space, as str.isspace()).
std::string python_strip(const std::string& text);

}  // namespace gpt
