// Chat templates (data/chat_template.h): recognition from the template text, renderings equal to
// transformers' apply_chat_template (tests/fixtures/chat_reference.json, written by
// tests/reference/make_chat_reference.py), trained spans, token ids, and the refusals.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "data/bpe_tokenizer.h"
#include "data/chat_template.h"
#include "data/finetune.h"
#include "data/generation_prompt.h"
#include "data/shard.h"
#include "tests/temp_dir.h"

namespace {

using gpt::ChatMessage;
using gpt::ChatSegment;
using gpt::ChatTemplate;

std::string fixture(const std::string& rel) {
  return std::string(GPT_SOURCE_DIR) + "/tests/fixtures/" + rel;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const nlohmann::json& reference() {
  static const nlohmann::json j = nlohmann::json::parse(read_text(fixture("chat_reference.json")));
  return j;
}

std::vector<ChatMessage> conversation(const nlohmann::json& c) {
  std::vector<ChatMessage> m;
  for (const auto& x : c)
    m.push_back({x["role"].get<std::string>(), x["content"].get<std::string>()});
  return m;
}

// The template of a reference entry, with the bos token it renders with.
ChatTemplate template_of(const nlohmann::json& entry) {
  const std::string source = entry["source"].get<std::string>();
  if (source.rfind("hub/", 0) == 0) {
    const gpt::ModelChatConfig c = gpt::read_model_chat_config(fixture(source));
    return ChatTemplate::recognise(c.chat_template, c.bos_token);
  }
  return ChatTemplate::recognise(read_text(fixture(source)), entry["bos_token"].get<std::string>());
}

TEST(ChatTemplate, RecognisesEachFixtureTemplate) {
  const std::map<std::string, std::pair<std::string, std::string>> expected = {
      {"llama3", {"llama3", ""}},
      {"qwen2", {"chatml", "You are a helpful assistant."}},
      {"qwen3", {"qwen3", ""}},
      {"smollm2",
       {"chatml", "You are a helpful AI assistant named SmolLM, trained by Hugging Face"}},
      {"chatml", {"chatml", ""}},
      {"qwen2.5",
       {"chatml", "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."}},
      {"llama3.2", {"llama3.1", ""}},
  };
  for (const auto& [name, entry] : reference()["templates"].items()) {
    SCOPED_TRACE(name);
    const ChatTemplate t = template_of(entry);
    EXPECT_EQ(t.name(), expected.at(name).first);
    EXPECT_EQ(t.default_system(), expected.at(name).second);
  }
}

TEST(ChatTemplate, RendersAsTransformers) {
  const auto& ref = reference();
  for (const auto& [name, entry] : ref["templates"].items()) {
    const ChatTemplate t = template_of(entry);
    for (size_t c = 0; c < ref["conversations"].size(); ++c) {
      for (int g = 0; g < 2; ++g) {
        SCOPED_TRACE(name + " conversation " + std::to_string(c) + " generation prompt " +
                     std::to_string(g));
        std::string want = entry["text"][c][g].get<std::string>();
        const size_t at = want.find("@DATE@");
        if (at != std::string::npos) want.replace(at, 6, gpt::llama_today_date());
        EXPECT_EQ(t.render_text(conversation(ref["conversations"][c]), g == 1), want);
      }
    }
  }
}

std::string trained_text(const std::vector<ChatSegment>& segs) {
  std::string s;
  for (const ChatSegment& x : segs)
    if (x.assistant) s += x.text;
  return s;
}

TEST(ChatTemplate, AssistantSpansAreContentAndEndOfTurn) {
  const std::vector<ChatMessage> m = {
      {"user", "Hi"}, {"assistant", " one "}, {"user", "More"}, {"assistant", "two"}};
  const ChatTemplate chatml =
      ChatTemplate::recognise(read_text(fixture("chat_templates/chatml.jinja")), "");
  EXPECT_EQ(trained_text(chatml.render(m, false)), " one <|im_end|>two<|im_end|>");
  EXPECT_EQ(trained_text(chatml.render(m, true)), " one <|im_end|>two<|im_end|>");
  const gpt::ModelChatConfig l = gpt::read_model_chat_config(fixture("hub/llama3"));
  const ChatTemplate llama = ChatTemplate::recognise(l.chat_template, l.bos_token);
  EXPECT_EQ(trained_text(llama.render(m, false)), "one<|eot_id|>two<|eot_id|>");
  const gpt::ModelChatConfig q = gpt::read_model_chat_config(fixture("hub/qwen3"));
  const ChatTemplate qwen3 = ChatTemplate::recognise(q.chat_template, "");
  EXPECT_EQ(trained_text(qwen3.render(m, false)),
            " one <|im_end|><think>\n\n</think>\n\ntwo<|im_end|>");
  EXPECT_TRUE(trained_text(chatml.render({{"user", "Hi"}}, true)).empty());
}

TEST(ChatTemplate, ReadsTheModelConfig) {
  const gpt::ModelChatConfig c = gpt::read_model_chat_config(fixture("hub/llama3"));
  EXPECT_EQ(c.bos_token, "<|begin_of_text|>");
  EXPECT_EQ(c.eos_token, "<|eot_id|>");
  EXPECT_TRUE(c.add_bos_token);
  EXPECT_EQ(c.eos_ids, (std::vector<int32_t>{801, 804}));
  const gpt::ModelChatConfig s = gpt::read_model_chat_config(fixture("hub/smollm2"));
  EXPECT_EQ(s.eos_ids, (std::vector<int32_t>{802}));
  EXPECT_EQ(s.pad_token, "<|im_end|>");
}

// gpt-generate's prompts: plain (<|endoftext|> + text) or rendered with the directory's template,
// and the end tokens the directory names.
TEST(GenerationPrompts, PlainAndChatPromptsAndEndTokens) {
  const std::string dir = fixture("hub/qwen2");
  const gpt::PrepareTokenizer tok(gpt::BpeTokenizer::load(dir), "path", dir);
  EXPECT_EQ(gpt::tokenizer_directory(tok), dir);
  EXPECT_EQ(gpt::tokenizer_directory(gpt::PrepareTokenizer::bytes()), "");
  const gpt::ModelChatConfig c = gpt::read_model_chat_config(dir);
  const int32_t im_end = tok.bpe()->special_token_id("<|im_end|>");
  std::vector<int32_t> ends;
  if (tok.eot_token() >= 0) ends.push_back(tok.eot_token());
  ends.insert(ends.end(), c.eos_ids.begin(), c.eos_ids.end());
  ends.push_back(im_end);  // tokenizer_config.json eos_token
  const gpt::GenerationPrompts plain(tok, false, "");
  EXPECT_EQ(plain.end_tokens(), ends);
  const gpt::GenerationPrompts::Prompt p = plain.encode("Hello");
  std::vector<int32_t> ids;
  if (tok.eot_token() >= 0) ids.push_back(tok.eot_token());
  tok.encode_append("Hello", &ids);
  EXPECT_EQ(p.ids, ids);
  EXPECT_EQ(p.text, "Hello");

  const gpt::GenerationPrompts chat(tok, true, "Be brief.");
  const gpt::GenerationPrompts::Prompt q = chat.encode("Hello");
  const ChatTemplate t = ChatTemplate::recognise(c.chat_template, c.bos_token);
  const std::vector<ChatSegment> segments =
      t.render({{"system", "Be brief."}, {"user", "Hello"}}, true);
  EXPECT_EQ(q.ids, gpt::encode_chat(*tok.bpe(), segments).ids);
  EXPECT_EQ(q.text, t.render_text({{"system", "Be brief."}, {"user", "Hello"}}, true));
  // No template to render with: bytes, or a directory without tokenizer_config.json.
  EXPECT_THROW(gpt::GenerationPrompts(gpt::PrepareTokenizer::bytes(), true, ""),
               std::invalid_argument);
  EXPECT_NO_THROW(gpt::GenerationPrompts(gpt::PrepareTokenizer::bytes(), false, ""));
}

TEST(ChatTemplate, FixedDateLlama31) {
  // Llama 3.1 and 3.3 set date_string to a fixed default where Llama 3.2 calls strftime_now.
  std::string fixed = read_text(fixture("chat_templates/llama3.2.jinja"));
  const size_t b = fixed.find("{%- if strftime_now is defined %}");
  ASSERT_NE(b, std::string::npos);
  const size_t e = fixed.find("{%- endif %}", b);
  fixed.replace(b, e + 12 - b, "{%- set date_string = \"26 Jul 2024\" %}");
  const ChatTemplate l = ChatTemplate::recognise(fixed, "<|begin_of_text|>");
  EXPECT_EQ(l.date(), "26 Jul 2024");
  EXPECT_EQ(
      l.render_text({{"system", " S "}, {"user", "U"}}, false),
      "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: "
      "December 2023\nToday Date: 26 Jul 2024\n\nS<|eot_id|><|start_header_id|>user<|end_header_"
      "id|>\n\nU<|eot_id|>");
}

TEST(ChatTemplate, RefusesUnknownTemplatesNamingThem) {
  const std::string zephyr =
      "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + "
      "message['content'] + eos_token }}{% endif %}{% endfor %}";
  try {
    ChatTemplate::recognise(zephyr, "");
    FAIL() << "accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("{% for message in messages %}\\n{% if"),
              std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("no Jinja interpreter"), std::string::npos);
  }
  // ChatML with another layout of the turn is not guessed at.
  std::string odd = read_text(fixture("chat_templates/chatml.jinja"));
  odd.replace(odd.find("'<|im_end|>'"), 12, "'<|im_end|>\\n'");
  EXPECT_THROW(ChatTemplate::recognise(odd, ""), std::invalid_argument);
  EXPECT_THROW(ChatTemplate::recognise("", ""), std::invalid_argument);
  const ChatTemplate t =
      ChatTemplate::recognise(read_text(fixture("chat_templates/chatml.jinja")), "");
  EXPECT_THROW(t.render({{"tool", "x"}}, false), std::invalid_argument);
}

TEST(ChatTemplate, PythonStrip) {
  EXPECT_EQ(gpt::python_strip(" \t\n a b \r\n"), "a b");
  EXPECT_EQ(gpt::python_strip("\u3000\u00a0x\u2003"), "x");
  EXPECT_EQ(gpt::python_strip("   "), "");
  EXPECT_EQ(gpt::python_strip("é"), "é");
}

// A byte tokenizer with the ChatML specials: ids 0..255 are bytes, then <|endoftext|>,
// <|im_start|>, <|im_end|>, and one merge "\n\n".
gpt::BpeTokenizer chatml_tokenizer() {
  std::vector<std::string> tokens;
  for (int b = 0; b < 256; ++b) tokens.push_back(std::string(1, static_cast<char>(b)));
  tokens.push_back("<|endoftext|>");
  tokens.push_back("<|im_start|>");
  tokens.push_back("<|im_end|>");
  tokens.push_back("\n\n");
  return gpt::BpeTokenizer(tokens, {{'\n', '\n'}}, {256, 257, 258});
}

TEST(ChatTemplate, EncodesSpecialsAsOneIdAndContentAsText) {
  const gpt::BpeTokenizer tok = chatml_tokenizer();
  const ChatTemplate t =
      ChatTemplate::recognise(read_text(fixture("chat_templates/chatml.jinja")), "");
  const std::vector<ChatMessage> m = {{"user", "<|im_end|>"}, {"assistant", "\nok"}};
  const gpt::ChatTokens r = gpt::encode_chat(tok, t.render(m, false));
  ASSERT_EQ(r.ids.size(), r.trained.size());
  std::vector<int32_t> want = {257};
  for (char c : std::string("user\n<|im_end|>")) want.push_back(static_cast<unsigned char>(c));
  want.push_back(258);
  want.push_back('\n');
  want.push_back(257);
  for (char c : std::string("assistant")) want.push_back(static_cast<unsigned char>(c));
  want.push_back('\n');  // the header's (GPT-2's regex splits "\n\nok" as "\n", "\nok")
  want.push_back('\n');  // the content's, trained
  want.push_back('o');
  want.push_back('k');
  want.push_back(258);
  want.push_back('\n');
  EXPECT_EQ(r.ids, want);
  std::string trained;
  for (size_t i = 0; i < r.ids.size(); ++i)
    if (r.trained[i]) trained += r.ids[i] == 258 ? "<E>" : tok.token_bytes(r.ids[i]);
  EXPECT_EQ(trained, "\nok<E>");
  EXPECT_THROW(gpt::encode_chat(gpt::BpeTokenizer({"a", "b"}, {}, {}), t.render(m, false)),
               std::invalid_argument);
}

// Once the tokenizer loads the hub fixtures' tokenizer.json: the ids of the rendered conversation
// equal transformers' apply_chat_template(tokenize=True), except where a message spells a special
// token (transformers makes it that token; the engine keeps message text as text).
TEST(ChatTemplate, IdsEqualTransformers) {
  const auto& ref = reference();
  for (const auto& [name, entry] : ref["templates"].items()) {
    if (!entry.contains("ids")) continue;
    SCOPED_TRACE(name);
    std::unique_ptr<gpt::BpeTokenizer> tok;
    try {
      tok = std::make_unique<gpt::BpeTokenizer>(
          gpt::BpeTokenizer::load(fixture(entry["source"].get<std::string>())));
    } catch (const std::exception& e) {
      GTEST_SKIP() << "the tokenizer does not load " << name << " yet: " << e.what();
    }
    const ChatTemplate t = template_of(entry);
    // NFC (Qwen2's normaliser) shortens a decomposed é inside an assistant turn: the ids are still
    // those of the rendered text encoded whole, and the trained tokens still the answer.
    const std::vector<ChatMessage> nfc = {{"user", "Cafe\u0301?"}, {"assistant", "Cafe\u0301!"}};
    const gpt::ChatTokens r = gpt::encode_chat(*tok, t.render(nfc, false));
    EXPECT_EQ(r.ids, tok->encode(t.render_text(nfc, false), gpt::SpecialTokens::kAllowed));
    std::vector<int32_t> trained;
    for (size_t i = 0; i < r.ids.size(); ++i)
      if (r.trained[i]) trained.push_back(r.ids[i]);
    const std::string answer = tok->decode(trained);
    const std::string composed = name.rfind("qwen", 0) == 0 ? "Caf\u00e9!<|" : "Cafe\u0301!<|";
    EXPECT_NE(answer.find(composed), std::string::npos) << answer;
    for (size_t c = 0; c < ref["conversations"].size(); ++c) {
      const std::vector<ChatMessage> m = conversation(ref["conversations"][c]);
      bool spells_special = false;
      for (const ChatMessage& x : m)
        for (int32_t id : tok->special_ids())
          spells_special =
              spells_special || x.content.find(tok->token_bytes(id)) != std::string::npos;
      if (spells_special) continue;
      for (int g = 0; g < 2; ++g) {
        SCOPED_TRACE("conversation " + std::to_string(c) + " generation prompt " +
                     std::to_string(g));
        EXPECT_EQ(gpt::encode_chat(*tok, t.render(m, g == 1)).ids,
                  entry["ids"][c][g].get<std::vector<int32_t>>());
      }
    }
  }
}

// ---- conversation SFT (gpt-prepare --task sft --format chat)
// --------------------------------------

// A model directory with the byte tokenizer above and a ChatML template with a default system.
std::string chatml_model_dir(const gpt::TempDir& tmp) {
  const std::string dir = tmp.file("model");
  chatml_tokenizer().save_hf(dir);
  const gpt::ModelChatConfig qwen2 = gpt::read_model_chat_config(fixture("hub/qwen2"));
  nlohmann::json cfg = {{"eos_token", "<|im_end|>"}, {"chat_template", qwen2.chat_template}};
  std::ofstream(dir + "/tokenizer_config.json") << cfg.dump();
  return dir;
}

gpt::FinetuneOptions chat_options(const gpt::TempDir& tmp, const std::string& jsonl) {
  std::ofstream(tmp.file("chats.jsonl")) << jsonl;
  gpt::FinetuneOptions o;
  o.format = gpt::ExampleFormat::kChat;
  o.inputs = {tmp.file("chats.jsonl")};
  o.out = tmp.file("out");
  o.tokenizer.name = chatml_model_dir(tmp);
  o.val_fraction = 0;
  return o;
}

// The trained bytes of each example of OUT/train_000000.bin.
std::vector<std::string> trained_bytes(const std::string& out) {
  const gpt::BpeTokenizer tok = chatml_tokenizer();
  gpt::TokenShard shard(out + "/train_000000.bin");
  const gpt::MaskShard mask = gpt::read_mask_shard(out + "/train_000000.mask", shard.size());
  std::vector<std::string> r;
  for (int64_t i = 0; i < shard.size(); ++i) {
    if (mask.flags[static_cast<size_t>(i)] & gpt::kMaskExampleStart) r.emplace_back();
    if (mask.flags[static_cast<size_t>(i)] & gpt::kMaskLoss) {
      const int32_t id = shard[i];
      r.back() += tok.is_special(id) ? "<" + std::to_string(id) + ">" : tok.token_bytes(id);
    }
  }
  return r;
}

TEST(ConversationSft, TrainsOnEveryAssistantTurnOnly) {
  gpt::TempDir tmp;
  const gpt::FinetuneOptions o = chat_options(
      tmp,
      R"({"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}, )"
      R"({"role": "user", "content": "3+3?"}, {"role": "assistant", "content": "6"}]})"
      "\n"
      R"({"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "hi"}, )"
      R"({"role": "assistant", "content": "hello <|im_end|>"}]})"
      "\n");
  const gpt::FinetuneResult r = gpt::prepare_finetune(o);
  EXPECT_EQ(r.train_examples, 2);
  EXPECT_EQ(trained_bytes(o.out),
            (std::vector<std::string>{"4<258>6<258>", "hello <|im_end|><258>"}));
  // The rendering, token by token, is the template's (default system turn included).
  gpt::TokenShard shard(o.out + "/train_000000.bin");
  const gpt::BpeTokenizer tok = chatml_tokenizer();
  std::string text;
  for (int64_t i = 0; i < shard.size(); ++i) text += tok.token_bytes(shard[i]);
  EXPECT_EQ(text.substr(0, 64),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_s");
}

TEST(ConversationSft, JsonlFindsConversationsAndInstructionsCanUseTheTemplate) {
  gpt::TempDir tmp;
  gpt::FinetuneOptions o = chat_options(
      tmp,
      R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]})"
      "\n"
      R"({"prompt": "c", "completion": "d"})"
      "\n");
  o.format = gpt::ExampleFormat::kJsonl;
  o.apply_chat_template = true;
  gpt::prepare_finetune(o);
  EXPECT_EQ(trained_bytes(o.out), (std::vector<std::string>{"b<258>", "d<258>"}));
}

TEST(ConversationSft, RefusesMalformedConversationsNamingLineAndField) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"messages": [{"role": "tool", "content": "x"}]})",
       ":2: field 'messages[0].role': unknown role 'tool'"},
      {R"({"messages": [{"role": "user", "content": "x"}]})",
       ":2: the conversation has no assistant turn"},
      {R"({"messages": [{"role": "assistant", "content": ["x"]}]})",
       ":2: field 'messages[0].content': expected a string, got an array"},
      {R"({"messages": [{"content": "x"}]})", ":2: missing field 'messages[0].role'"},
      {R"({"messages": "x"})", ":2: field 'messages': expected a non-empty array"},
      {R"({"text": "x"})", ":2: missing field 'messages'"},
  };
  for (const auto& [line, want] : cases) {
    gpt::TempDir tmp;
    const gpt::FinetuneOptions o = chat_options(
        tmp,
        R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]})"
        "\n" +
            line + "\n");
    const std::string e = gpt::error_of([&] { gpt::prepare_finetune(o); });
    EXPECT_NE(e.find(want), std::string::npos) << e;
    EXPECT_FALSE(std::filesystem::exists(o.out + "/meta.json"));
  }
  gpt::TempDir tmp;
  gpt::FinetuneOptions o = chat_options(tmp, "");
  o.tokenizer.name = "bytes";
  EXPECT_NE(
      gpt::error_of([&] { gpt::prepare_finetune(o); }).find("conversations need --tokenizer DIR"),
      std::string::npos);
}

}  // namespace
