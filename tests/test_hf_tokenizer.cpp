// Tokenizers of published model families read from tokenizer.json (data/bpe_tokenizer.h): the hub
// fixtures' Llama 3, Qwen2, Qwen3 and SmolLM2 tokenizers give Hugging Face tokenizers' ids exactly
// (tests/fixtures/hf_tokenizer/, written by tests/reference/make_hf_tokenizer_reference.py), plus
// the pre-tokenizer scanners, NFC and what the loader refuses.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "data/bpe_tokenizer.h"
#include "data/pretokenizer.h"
#include "data/unicode_normalize.h"
#include "tests/temp_dir.h"

namespace gpt {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kHub = fs::path(GPT_SOURCE_DIR) / "tests" / "fixtures" / "hub";
const fs::path kExpected = fs::path(GPT_SOURCE_DIR) / "tests" / "fixtures" / "hf_tokenizer";

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> pieces(PreTokenizer kind, std::string_view text) {
  std::vector<std::string> out;
  for_each_piece(kind, text, [&](std::string_view p) { out.emplace_back(p); });
  return out;
}
using Pieces = std::vector<std::string>;

class HubTokenizer : public ::testing::TestWithParam<const char*> {};

TEST_P(HubTokenizer, IdsEqualHuggingFace) {
  const BpeTokenizer tok = BpeTokenizer::load((kHub / GetParam()).string());
  const json expected = json::parse(read_text(kExpected / (std::string(GetParam()) + ".json")));
  ASSERT_GT(expected["cases"].size(), 30u);
  for (const json& c : expected["cases"]) {
    const std::string text = c["text"].get<std::string>();
    SCOPED_TRACE(text.substr(0, 80));
    EXPECT_EQ(tok.encode(text, SpecialTokens::kAllowed), c["ids"].get<std::vector<int32_t>>());
    EXPECT_EQ(tok.encode(text, SpecialTokens::kAsText),
              c["ids_as_text"].get<std::vector<int32_t>>());
    EXPECT_EQ(tok.encode_with_template(text), c["ids_with_template"].get<std::vector<int32_t>>());
  }
}

TEST_P(HubTokenizer, DecodeGivesBackTextAndInvalidUtf8) {
  const BpeTokenizer tok = BpeTokenizer::load((kHub / GetParam()).string());
  for (const std::string& text :
       {std::string("plain text, DON'T 123456 \r\n\t x"), std::string("bad \xff\xfe utf8\xc3"),
        std::string("\x80 lone continuation, 'S\xe2\x82 truncated \xf0\x9f\x98"),
        std::string("\xc3\xa9\xcc\x81 \xed\xa0\x80 surrogate")}) {
    std::string expected_text = text;
    if (tok.normalizer() == Normalizer::kNfc) {
      std::string buffer;
      expected_text = std::string(nfc_normalize(text, &buffer));
    }
    EXPECT_EQ(tok.decode(tok.encode(text, SpecialTokens::kAsText)), expected_text);
  }
}

INSTANTIATE_TEST_SUITE_P(Families, HubTokenizer,
                         ::testing::Values("llama3", "qwen2", "qwen3", "smollm2"));

TEST(HubTokenizer, PipelineAndTemplateAreRead) {
  const BpeTokenizer llama = BpeTokenizer::load((kHub / "llama3").string());
  EXPECT_EQ(llama.pre_tokenizer(), PreTokenizer::kLlama3);
  EXPECT_EQ(llama.normalizer(), Normalizer::kNone);
  EXPECT_EQ(llama.prefix_ids(), std::vector<int32_t>{llama.special_token_id("<|begin_of_text|>")});
  EXPECT_TRUE(llama.suffix_ids().empty());
  const BpeTokenizer qwen = BpeTokenizer::load((kHub / "qwen2" / "tokenizer.json").string());
  EXPECT_EQ(qwen.pre_tokenizer(), PreTokenizer::kQwen2);
  EXPECT_EQ(qwen.normalizer(), Normalizer::kNfc);
  EXPECT_TRUE(qwen.prefix_ids().empty());
  EXPECT_GE(qwen.special_token_id("<|im_start|>"), 0);
  // Text that spells a special token is text unless special tokens are allowed.
  EXPECT_EQ(qwen.encode("<|im_start|>", SpecialTokens::kAllowed),
            std::vector<int32_t>{qwen.special_token_id("<|im_start|>")});
  EXPECT_GT(qwen.encode("<|im_start|>", SpecialTokens::kAsText).size(), 1u);
  const BpeTokenizer smol = BpeTokenizer::load((kHub / "smollm2").string());
  EXPECT_EQ(smol.pre_tokenizer(), PreTokenizer::kDigitsGpt2);
}

// Each rule of the Split regex on its own (data/pretokenizer.h numbers them).
TEST(SplitScanner, RulesOfTheLlama3Regex) {
  const PreTokenizer k = PreTokenizer::kLlama3;
  EXPECT_EQ(pieces(k, "DON'T it's 'LL 'Ve"),
            (Pieces{"DON", "'T", " it", "'s", " '", "LL", " '", "Ve"}));
  EXPECT_EQ(pieces(k, "'Sand'tree"), (Pieces{"'S", "and", "'t", "ree"}));
  EXPECT_EQ(pieces(k, "'\xc5\xbfx"), (Pieces{"'\xc5\xbf", "x"}));  // 'ſ folds to 's
  EXPECT_EQ(pieces(k, "(word\tword \"q"), (Pieces{"(word", "\tword", " \"", "q"}));
  EXPECT_EQ(pieces(k, "1234567"), (Pieces{"123", "456", "7"}));
  EXPECT_EQ(pieces(PreTokenizer::kQwen2, "x123"), (Pieces{"x", "1", "2", "3"}));
  EXPECT_EQ(pieces(k, "a ...\r\n\r\nb"), (Pieces{"a", " ...\r\n\r\n", "b"}));
  EXPECT_EQ(pieces(k, "  \n\n  x"), (Pieces{"  \n\n", " ", " x"}));
  EXPECT_EQ(pieces(k, "a\n b"), (Pieces{"a", "\n", " b"}));
  EXPECT_EQ(pieces(k, "a   1"), (Pieces{"a", "  ", " ", "1"}));
  EXPECT_EQ(pieces(k, "a \t"), (Pieces{"a", " \t"}));
  EXPECT_EQ(pieces(k, "\n"), (Pieces{"\n"}));
  // An invalid byte counts as an "other" character: the same cuts as with '!' in its place.
  const std::string bad =
      "a\xff"
      "b \xfe\xfe\r\nc 'x\xff";
  std::string good = bad;
  for (char& c : good)
    if (static_cast<unsigned char>(c) >= 0x80) c = '!';
  for (PreTokenizer kind :
       {PreTokenizer::kLlama3, PreTokenizer::kQwen2, PreTokenizer::kDigitsGpt2}) {
    const Pieces a = pieces(kind, bad), b = pieces(kind, good);
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].size(), b[i].size());
  }
}

TEST(SplitScanner, DigitsThenGpt2) {
  EXPECT_EQ(pieces(PreTokenizer::kDigitsGpt2, "ab 12x \xd9\xa3"),
            (Pieces{"ab", " ", "1", "2", "x", " ", "\xd9\xa3"}));
}

TEST(Nfc, ComposesReordersAndKeepsBytes) {
  auto nfc = [](const std::string& s) {
    std::string buffer;
    return std::string(nfc_normalize(s, &buffer));
  };
  EXPECT_EQ(nfc("e\xcc\x81"), "\xc3\xa9");                                 // e + U+0301 -> é
  EXPECT_EQ(nfc("\xe1\x84\x80\xe1\x85\xa1\xe1\x86\xa8"), "\xea\xb0\x81");  // jamo -> 각
  EXPECT_EQ(nfc("\xea\xb0\x80\xe1\x86\xa8"), "\xea\xb0\x81");              // 가 + jamo T -> 각
  EXPECT_EQ(nfc("q\xcc\x87\xcc\xa3"), "q\xcc\xa3\xcc\x87");    // dot below before dot above
  EXPECT_EQ(nfc("\xe2\x84\xab"), "\xc3\x85");                  // Angstrom sign -> Å
  EXPECT_EQ(nfc("\xe0\xa5\x98"), "\xe0\xa4\x95\xe0\xa4\xbc");  // excluded: stays apart
  EXPECT_EQ(nfc("\xff"
                "e\xcc\x81\xfe"),
            "\xff\xc3\xa9\xfe");  // invalid bytes kept
  EXPECT_EQ(nfc("\xcc\x81"
                "e"),
            "\xcc\x81"
            "e");  // a leading mark stays
  const std::string plain =
      "Plain ASCII and \xc3\xbc"
      "ber \xe4\xb8\xad";
  std::string buffer;
  EXPECT_EQ(nfc_normalize(plain, &buffer).data(), plain.data());  // already NFC: no copy
}

// A tokenizer.json that the engine does not know is refused, naming what it does not know.
TEST(HubTokenizer, RefusesUnknownPipelines) {
  const json base = json::parse(read_text(kHub / "qwen2" / "tokenizer.json"));
  TempDir dir;
  auto error_with = [&](const std::function<void(json&)>& edit) {
    json j = base;
    edit(j);
    std::ofstream(dir.file("tokenizer.json")) << j.dump();
    return error_of([&] { BpeTokenizer::load(dir.file("tokenizer.json")); });
  };
  EXPECT_EQ(error_with([](json&) {}), "");
  EXPECT_NE(error_with([](json& j) {
              j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\w+";
            }).find("Split pattern {\"Regex\":\"\\\\w+\"} is not one the engine knows"),
            std::string::npos);
  EXPECT_NE(error_with([](json& j) {
              j["normalizer"] = {{"type", "NFKC"}};
            }).find("NFKC"),
            std::string::npos);
  EXPECT_NE(error_with([](json& j) {
              j["pre_tokenizer"] = {{"type", "Metaspace"}};
            }).find("Metaspace"),
            std::string::npos);
  EXPECT_NE(error_with([](json& j) {
              j["decoder"] = {{"type", "WordPiece"}};
            }).find("WordPiece"),
            std::string::npos);
  EXPECT_NE(error_with([](json& j) { j["added_tokens"][0]["lstrip"] = true; }).find("lstrip"),
            std::string::npos);
}

// An added token with "special": false is matched in the text whatever SpecialTokens says, as
// Hugging Face does.
TEST(HubTokenizer, AddedTokensThatAreNotSpecial) {
  json j = json::parse(read_text(kHub / "qwen2" / "tokenizer.json"));
  const int32_t id = static_cast<int32_t>(j["model"]["vocab"].size() + j["added_tokens"].size());
  j["added_tokens"].push_back({{"id", id},
                               {"content", "<tool_call>"},
                               {"single_word", false},
                               {"lstrip", false},
                               {"rstrip", false},
                               {"normalized", false},
                               {"special", false}});
  TempDir dir;
  std::ofstream(dir.file("tokenizer.json")) << j.dump();
  const BpeTokenizer tok = BpeTokenizer::load(dir.file("tokenizer.json"));
  EXPECT_FALSE(tok.is_special(id));
  EXPECT_EQ(tok.added_ids(), std::vector<int32_t>{id});
  const std::vector<int32_t> ids = tok.encode("a<tool_call>b", SpecialTokens::kAsText);
  EXPECT_EQ(ids, (std::vector<int32_t>{tok.encode("a")[0], id, tok.encode("b")[0]}));
  EXPECT_EQ(tok.decode(ids), "a<tool_call>b");
}

// save_hf writes the pipeline back: the saved tokenizer loads with the same ids and template.
TEST(HubTokenizer, SaveHfKeepsThePipeline) {
  const json expected = json::parse(read_text(kExpected / "llama3.json"));
  for (const char* folder : {"llama3", "qwen2", "smollm2"}) {
    const BpeTokenizer tok = BpeTokenizer::load((kHub / folder).string());
    TempDir dir;
    tok.save_hf(dir.path());
    const BpeTokenizer again = BpeTokenizer::load(dir.file("tokenizer.json"));
    EXPECT_EQ(again.pre_tokenizer(), tok.pre_tokenizer());
    EXPECT_EQ(again.normalizer(), tok.normalizer());
    EXPECT_EQ(again.prefix_ids(), tok.prefix_ids());
    for (const json& c : expected["cases"]) {
      const std::string text = c["text"].get<std::string>();
      EXPECT_EQ(again.encode(text), tok.encode(text));
    }
  }
}

}  // namespace
}  // namespace gpt
