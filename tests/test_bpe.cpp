// Tests of the byte-level BPE tokenizer (data/bpe_tokenizer.h), its pre-tokenizer and its trainer.
// Known GPT-2 ids come from tiktoken (tests/reference/check_tokenizer.py does the large
// comparison).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>

#include "data/bpe_tokenizer.h"
#include "data/bpe_trainer.h"
#include "data/pretokenizer.h"
#include "data/token_text.h"
#include "data/unicode_classes.h"

namespace gpt {
namespace {

namespace fs = std::filesystem;

const fs::path kGpt2Dir = fs::path(GPT_SHARED_DATA) / "gpt2";

// GPT-2's tokenizer, loaded once for all tests; nullptr when ../shared/data is absent.
const BpeTokenizer* gpt2() {
  static const std::unique_ptr<BpeTokenizer> tok = []() -> std::unique_ptr<BpeTokenizer> {
    if (!fs::exists(kGpt2Dir / "encoder.json")) return nullptr;
    return std::make_unique<BpeTokenizer>(BpeTokenizer::load(kGpt2Dir.string()));
  }();
  return tok.get();
}
#define REQUIRE_GPT2()                                                     \
  if (!gpt2()) GTEST_SKIP() << "no GPT-2 tokenizer files in " << kGpt2Dir; \
  [[maybe_unused]] const BpeTokenizer& tok = *gpt2()

// A fresh scratch folder per test, removed at the end.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() / ("test_bpe_" + std::to_string(::getpid()) + "_" +
                                         info->test_suite_name() + "_" + info->name());
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void write_file(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary);
  out << text;
}
std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> pieces(std::string_view text) {
  std::vector<std::string> out;
  for_each_gpt2_piece(text, [&](std::string_view p) { out.emplace_back(p); });
  return out;
}

// A small training corpus with punctuation, numbers, a special token, UTF-8 and invalid bytes.
const std::string kSmallCorpus =
    "the cat sat on the mat. the cat ate the rat! that's that.\n"
    "the theme of the thesis: there, then, the other thing. 1234 1234 12 34\n"
    "<|endoftext|>caf\xC3\xA9 caf\xC3\xA9 \xE6\x9D\xB1\xE4\xBA\xAC\xE6\x9D\xB1\xE4\xBA\xAC "
    "\xFF\xFE";

// ---------------------------------------------------------------------------------------------
// Unicode classes and the pre-tokenizer
// ---------------------------------------------------------------------------------------------

TEST(Unicode, ClassesOfKnownCharacters) {
  const UnicodeClassTable& t = UnicodeClassTable::get();
  EXPECT_EQ(t.of('a'), CharClass::kLetter);
  EXPECT_EQ(t.of('7'), CharClass::kNumber);
  EXPECT_EQ(t.of(' '), CharClass::kSpace);
  EXPECT_EQ(t.of('\n'), CharClass::kSpace);
  EXPECT_EQ(t.of('!'), CharClass::kOther);
  EXPECT_EQ(t.of(0x00E9), CharClass::kLetter);   // é
  EXPECT_EQ(t.of(0x6771), CharClass::kLetter);   // 東 (Lo)
  EXPECT_EQ(t.of(0x0663), CharClass::kNumber);   // Arabic-Indic digit three (Nd)
  EXPECT_EQ(t.of(0x2163), CharClass::kNumber);   // Roman numeral four (Nl)
  EXPECT_EQ(t.of(0x00BD), CharClass::kNumber);   // ½ (No)
  EXPECT_EQ(t.of(0x3000), CharClass::kSpace);    // ideographic space
  EXPECT_EQ(t.of(0x0085), CharClass::kSpace);    // next line
  EXPECT_EQ(t.of(0x200B), CharClass::kOther);    // zero width space: not White_Space
  EXPECT_EQ(t.of(0x0301), CharClass::kOther);    // combining acute accent (Mn)
  EXPECT_EQ(t.of(0x1F600), CharClass::kOther);   // 😀
  EXPECT_EQ(t.of(0x20000), CharClass::kLetter);  // CJK extension B
  EXPECT_EQ(t.of(0x10FFFF), CharClass::kOther);
  EXPECT_LT(t.distinct_blocks(), 1024u);
}

TEST(Unicode, DecodeUtf8RejectsInvalidSequences) {
  auto len = [](std::string s) {
    uint32_t cp = 0;
    return decode_utf8(reinterpret_cast<const unsigned char*>(s.data()), s.size(), &cp);
  };
  EXPECT_EQ(len("a"), 1);
  EXPECT_EQ(len("\xC3\xA9"), 2);
  EXPECT_EQ(len("\xE6\x9D\xB1"), 3);
  EXPECT_EQ(len("\xF0\x9F\x98\x80"), 4);
  EXPECT_EQ(len("\x80"), 0);              // stray continuation byte
  EXPECT_EQ(len("\xC0\xAF"), 0);          // overlong '/'
  EXPECT_EQ(len("\xE0\x80\xAF"), 0);      // overlong
  EXPECT_EQ(len("\xED\xA0\x80"), 0);      // surrogate U+D800
  EXPECT_EQ(len("\xF4\x90\x80\x80"), 0);  // U+110000
  EXPECT_EQ(len("\xE6\x9D"), 0);          // truncated
  EXPECT_EQ(len("\xFF"), 0);
}

TEST(PreTokenizer, SplitsLikeGpt2Regex) {
  using V = std::vector<std::string>;
  EXPECT_EQ(pieces("Hello world"), (V{"Hello", " world"}));
  EXPECT_EQ(pieces("Hello  world"), (V{"Hello", " ", " world"}));
  EXPECT_EQ(pieces("I'll've we're"), (V{"I", "'ll", "'ve", " we", "'re"}));
  EXPECT_EQ(pieces("DON'T"), (V{"DON", "'", "T"}));  // contractions are case-sensitive
  EXPECT_EQ(pieces("x?'s"), (V{"x", "?'", "s"}));
  EXPECT_EQ(pieces("abc123 456!!"), (V{"abc", "123", " 456", "!!"}));
  EXPECT_EQ(pieces("a \n\n b"), (V{"a", " \n\n", " b"}));
  EXPECT_EQ(pieces("a\nb"), (V{"a", "\n", "b"}));
  EXPECT_EQ(pieces("end   "), (V{"end", "   "}));
  EXPECT_EQ(pieces("  "), (V{"  "}));
  EXPECT_EQ(pieces(" "), (V{" "}));
  EXPECT_EQ(pieces("'"), (V{"'"}));
  EXPECT_EQ(pieces("\t\t x"), (V{"\t\t", " x"}));
  EXPECT_EQ(pieces("caf\xC3\xA9 \xE6\x9D\xB1\xE4\xBA\xAC"),
            (V{"caf\xC3\xA9", " \xE6\x9D\xB1\xE4\xBA\xAC"}));
  // Invalid bytes are "other" characters, one byte each.
  EXPECT_EQ(pieces("ab\xFF\xFE!cd"), (V{"ab", "\xFF\xFE!", "cd"}));
  EXPECT_EQ(pieces(" \x80x"), (V{" \x80", "x"}));
}

TEST(PreTokenizer, SplitsOnSpecialTokensLongestFirst) {
  const std::vector<std::string_view> specials = {"<a>", "<a>>", "<|x|>"};
  std::string trace;
  split_on_specials(
      "1<a>2<a>>3<|x|><a><|x|>", specials,
      [&](std::string_view t) { trace += "[" + std::string(t) + "]"; },
      [&](size_t k) { trace += "#" + std::to_string(k); });
  EXPECT_EQ(trace, "[1]#0[2]#1[3]#2[]#0[]#2[]");
}

TEST(PreTokenizer, PiecesTileArbitraryBytes) {
  std::mt19937 rng(1234);
  for (int trial = 0; trial < 2000; ++trial) {
    std::string s(rng() % 64, '\0');
    for (char& c : s) c = static_cast<char>(rng() % 256);
    std::string joined;
    for (const std::string& p : pieces(s)) {
      ASSERT_FALSE(p.empty());
      joined += p;
    }
    ASSERT_EQ(joined, s);
  }
}

// ---------------------------------------------------------------------------------------------
// GPT-2
// ---------------------------------------------------------------------------------------------

TEST(Gpt2, LoadsTheRealVocabulary) {
  REQUIRE_GPT2();
  EXPECT_EQ(tok.vocab_size(), 50257);
  EXPECT_EQ(tok.num_merges(), 50000);
  EXPECT_EQ(tok.eot_token(), 50256);
  EXPECT_EQ(tok.special_ids(), std::vector<int32_t>{50256});
  EXPECT_EQ(tok.token_bytes(15496), "Hello");
  EXPECT_EQ(tok.token_bytes(995), " world");
  EXPECT_EQ(tok.token_bytes(188), std::string(1, '\0'));  // byte 0 is GPT-2's token 188
  EXPECT_THROW(tok.token_bytes(50257), std::out_of_range);
}

TEST(Gpt2, KnownIdsFromTiktoken) {
  REQUIRE_GPT2();
  using V = std::vector<int32_t>;
  EXPECT_EQ(tok.encode("Hello world"), (V{15496, 995}));
  EXPECT_EQ(tok.encode("Hello, world! How's it going?"),
            (V{15496, 11, 995, 0, 1374, 338, 340, 1016, 30}));
  EXPECT_EQ(tok.encode(" The quick brown fox jumps over the lazy dog.\n\n"),
            (V{383, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290, 13, 628}));
  EXPECT_EQ(
      tok.encode("na\xC3\xAFve caf\xC3\xA9 \xE2\x80\x94 \xE6\x9D\xB1\xE4\xBA\xAC \xF0\x9F\xA4\x96 "
                 "\xD9\xA1\xD9\xA2\xD9\xA3 12345"),
      (V{2616, 38776, 40304, 851, 10545, 251, 109, 12859, 105,   12520,
         97,   244,   18923, 94,  149,   95,  149, 96,    17031, 2231}));
  EXPECT_EQ(tok.encode("I'll've we're they'd   spaced\t\ttabs\n"),
            (V{40, 1183, 1053, 356, 821, 484, 1549, 220, 220, 38980, 197, 197, 8658, 82, 198}));
  EXPECT_EQ(tok.encode(""), V{});
}

TEST(Gpt2, SpecialTokensAllowedOrAsText) {
  REQUIRE_GPT2();
  using V = std::vector<int32_t>;
  const std::string text = "<|endoftext|>hi<|endoftext|>";
  EXPECT_EQ(tok.encode(text, SpecialTokens::kAllowed), (V{50256, 5303, 50256}));
  EXPECT_EQ(tok.encode("<|endoftext|>", SpecialTokens::kAsText),
            (V{27, 91, 437, 1659, 5239, 91, 29}));
  EXPECT_EQ(tok.decode(tok.encode(text, SpecialTokens::kAsText)), text);
  EXPECT_EQ(tok.decode(tok.encode(text)), text);
  EXPECT_EQ(tok.special_token_id("<|endoftext|>"), 50256);
  EXPECT_EQ(tok.special_token_id("<|pad|>"), -1);
}

TEST(Gpt2, RoundTripsArbitraryText) {
  REQUIRE_GPT2();
  const std::vector<std::string> samples = {
      "",
      "plain ASCII text, with punctuation!? and numbers 3.14159",
      "emoji \xF0\x9F\x98\x80\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD family "
      "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9",
      "CJK \xE4\xBD\xA0\xE5\xA5\xBD\xE4\xB8\x96\xE7\x95\x8C "
      "\xE3\x81\x93\xE3\x82\x93\xE3\x81\xAB\xE3\x81\xA1\xE3\x81\xAF",
      "combining e\xCC\x81 a\xCC\x8A\xCC\x81 Zalgo Z\xCD\x91\xCD\x97\xCD\x8E",
      "whitespace   runs\t\t\n\n\r\n \xE3\x80\x80 \xC2\xA0\xC2\xA0"
      "end   ",
      "invalid \xFF\xFE \x80\x81 \xC3 \xED\xA0\x80 \xF4\x90\x80\x80 bytes",
      std::string("nul \0 inside", 12),
      std::string(100000, 'a'),      // a very long word (heap merge path)
      std::string(5000, ' ') + "x",  // a long whitespace run
      std::string(3000, '!') + std::string(3000, '7'),
  };
  for (const std::string& s : samples) {
    const std::vector<int32_t> ids = tok.encode(s);
    EXPECT_EQ(tok.decode(ids), s) << "sample starting " << s.substr(0, 40);
    tok.clear_cache();
    EXPECT_EQ(tok.encode(s), ids) << "cold cache gives other ids";
  }
  std::mt19937 rng(42);
  for (int trial = 0; trial < 3000; ++trial) {
    std::string s(rng() % 200, '\0');
    for (char& c : s) c = static_cast<char>(rng() % 256);
    ASSERT_EQ(tok.decode(tok.encode(s)), s);
  }
}

TEST(Gpt2, LongPiecesMatchShortPieceMerging) {
  // Pieces over 64 bytes take the heap path, shorter ones the linear scan: both must give
  // tiktoken's ids. The 45-letter word merges the same way alone (linear) and three times in a
  // row (one 135-byte piece, heap), since no merge spans the seam.
  REQUIRE_GPT2();
  using V = std::vector<int32_t>;
  const std::string word = "Pneumonoultramicroscopicsilicovolcanoconiosis";
  const V word_ids = {47,  25668, 261, 25955, 859,  2500,  1416, 404,
                      873, 41896, 709, 349,   5171, 36221, 42960};
  EXPECT_EQ(tok.encode(word), word_ids);
  V thrice;
  for (int i = 0; i < 3; ++i) thrice.insert(thrice.end(), word_ids.begin(), word_ids.end());
  EXPECT_EQ(tok.encode(word + word + word), thrice);
  EXPECT_EQ(tok.encode(std::string(100, 'z')), V(50, 3019));
  std::string letters;  // "ahovcjqxel..." (100 letters, i * 7 mod 26)
  for (int i = 0; i < 100; ++i) letters += static_cast<char>('a' + (i * 7) % 26);
  const V period = {993, 709, 66, 73, 80, 87, 1424, 89, 4593, 549, 541, 16993, 74, 563, 69, 16762};
  V expected;
  for (int i = 0; i < 3; ++i) expected.insert(expected.end(), period.begin(), period.end());
  expected.insert(expected.end(), period.begin(), period.begin() + 12);
  expected.push_back(38584);
  EXPECT_EQ(tok.encode(letters), expected);
  for (size_t n = 60; n < 140; ++n) {
    EXPECT_EQ(tok.decode(tok.encode(letters.substr(0, n % 100) + std::string(n, 'q'))),
              letters.substr(0, n % 100) + std::string(n, 'q'));
  }
}

TEST(Gpt2, BatchEqualsSequential) {
  REQUIRE_GPT2();
  std::vector<std::string> docs;
  for (int i = 0; i < 300; ++i)
    docs.push_back("Document " + std::to_string(i) + ": it's a test \xF0\x9F\x98\x80 " +
                   std::string(i % 7, ' '));
  const auto batch = tok.encode_batch(docs, SpecialTokens::kAllowed, 2);
  ASSERT_EQ(batch.size(), docs.size());
  for (size_t i = 0; i < docs.size(); ++i) EXPECT_EQ(batch[i], tok.encode(docs[i]));
}

TEST(Gpt2, SaveHfAndReloadGivesSameIds) {
  REQUIRE_GPT2();
  TempDir tmp;
  tok.save_hf(tmp.path().string());
  for (const char* f : {"vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json"}) {
    EXPECT_TRUE(fs::exists(tmp.path() / f)) << f;
  }
  // vocab.json and merges.txt are byte-identical in content to GPT-2's files (modulo JSON layout).
  EXPECT_EQ(read_file(tmp.path() / "merges.txt").substr(0, 14), "#version: 0.2\n");
  const BpeTokenizer from_json = BpeTokenizer::load((tmp.path() / "tokenizer.json").string());
  fs::remove(tmp.path() / "tokenizer.json");
  const BpeTokenizer from_vocab = BpeTokenizer::load(tmp.path().string());
  const std::string text =
      "Round trip through Hugging Face's formats <|endoftext|> \xE6\x9D\xB1 \xFF ok";
  EXPECT_EQ(from_json.encode(text), tok.encode(text));
  EXPECT_EQ(from_vocab.encode(text), tok.encode(text));
  EXPECT_EQ(from_json.eot_token(), 50256);
  EXPECT_EQ(from_vocab.vocab_size(), 50257);
}

TEST(Gpt2, FindsTheFilesThroughTheEnvironment) {
  REQUIRE_GPT2();
  setenv("GPT_TOKENIZER_DIR", kGpt2Dir.c_str(), 1);
  EXPECT_EQ(resolve_tokenizer_path("gpt2"), kGpt2Dir.string());
  unsetenv("GPT_TOKENIZER_DIR");
  EXPECT_EQ(resolve_tokenizer_path("some/dir"), "some/dir");
}

// ---------------------------------------------------------------------------------------------
// Malformed files
// ---------------------------------------------------------------------------------------------

// Expects load(dir) to throw std::runtime_error whose message names `file` and contains `what`.
void expect_load_error(const fs::path& dir, const std::string& file, const std::string& what) {
  try {
    BpeTokenizer::load(dir.string());
    ADD_FAILURE() << "no error for " << file;
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(file), std::string::npos) << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << msg;
  }
}

// A tiny valid vocabulary in GPT-2's alphabet: all bytes, then "ab", then "abc", then a special.
std::string tiny_vocab_json(const std::string& extra = "") {
  std::string json = "{";
  const std::vector<uint8_t>& order = gpt2_byte_order();
  for (int id = 0; id < 256; ++id) {
    std::string key = bytes_to_gpt2_unicode(std::string(1, static_cast<char>(order[id])));
    if (key == "\"" || key == "\\") key = "\\" + key;
    json += "\"" + key + "\": " + std::to_string(id) + ", ";
  }
  json += "\"ab\": 256, \"abc\": 257, \"<|endoftext|>\": 258" + extra + "}";
  return json;
}

TEST(Malformed, TinyVocabularyLoads) {
  TempDir tmp;
  write_file(tmp.path() / "vocab.json", tiny_vocab_json());
  write_file(tmp.path() / "merges.txt", "#version: 0.2\na b\nab c\n");
  const BpeTokenizer tok = BpeTokenizer::load(tmp.path().string());
  EXPECT_EQ(tok.vocab_size(), 259);
  EXPECT_EQ(tok.eot_token(), 258);
  EXPECT_EQ(tok.encode("abcab<|endoftext|>"), (std::vector<int32_t>{257, 256, 258}));
}

// gpt-tokenize's formats: records split, encoded a line of ids each, and decoded back.
TEST(TokenText, RecordsEncodeAndDecode) {
  TempDir tmp;
  write_file(tmp.path() / "vocab.json", tiny_vocab_json());
  write_file(tmp.path() / "merges.txt", "#version: 0.2\na b\nab c\n");
  const BpeTokenizer tok = BpeTokenizer::load(tmp.path().string());
  EXPECT_EQ(split_records("ab\nc\n", Records::kLines), (std::vector<std::string_view>{"ab", "c"}));
  EXPECT_EQ(split_records(std::string_view("ab\0\0c", 5), Records::kNul),
            (std::vector<std::string_view>{"ab", "", "c"}));
  EXPECT_EQ(split_records("ab\nc\n", Records::kWhole).size(), 1u);
  std::string out;
  auto append = [&](std::string_view piece) { out += piece; };
  encode_records(tok, "abcab\nc<|endoftext|>\n", Records::kLines, SpecialTokens::kAllowed, false, 1,
                 append);
  EXPECT_EQ(out, "257 256\n" + std::to_string(tok.encode("c")[0]) + " 258\n");
  const std::string ids = out;
  out.clear();
  decode_records(tok, ids, Records::kLines, append);
  EXPECT_EQ(out, "abcab\nc<|endoftext|>\n");
  out.clear();
  decode_records(tok, " 257\t256\r\n", Records::kNul, append);
  EXPECT_EQ(out, std::string("abcab\0", 6));
  EXPECT_THROW(decode_records(tok, "1\n2x\n", Records::kLines, append), std::runtime_error);
  EXPECT_THROW(decode_records(tok, "259\n", Records::kLines, append), std::runtime_error);
}

TEST(Malformed, RepeatedMergeKeepsItsLastRank) {
  // As in GPT-2's encoder.py and Hugging Face: "a b" at ranks 0 and 2 counts as rank 2, so
  // "b c" (rank 1) merges first in "abc".
  TempDir tmp;
  write_file(tmp.path() / "vocab.json", tiny_vocab_json(", \"bc\": 259"));
  write_file(tmp.path() / "merges.txt", "a b\nb c\na b\n");
  const BpeTokenizer tok = BpeTokenizer::load(tmp.path().string());
  EXPECT_EQ(tok.encode("abc"), (std::vector<int32_t>{'a' - '!', 259}));
  EXPECT_EQ(tok.encode("ab"), (std::vector<int32_t>{256}));
}

TEST(Malformed, ErrorsNameTheFileAndTheProblem) {
  TempDir tmp;
  const fs::path d = tmp.path();
  const std::string good = tiny_vocab_json();
  // Truncated JSON.
  write_file(d / "vocab.json", good.substr(0, good.size() / 2));
  write_file(d / "merges.txt", "a b\n");
  expect_load_error(d, "vocab.json", "invalid JSON");
  // Not an object / id not an integer / ids with a gap / a duplicated id.
  write_file(d / "vocab.json", "[1, 2]");
  expect_load_error(d, "vocab.json", "JSON object");
  write_file(d / "vocab.json", "{\"a\": \"x\"}");
  expect_load_error(d, "vocab.json", "not an integer");
  write_file(d / "vocab.json", tiny_vocab_json(", \"zz\": 300"));
  expect_load_error(d, "vocab.json", "outside");
  // A merge that names an unknown token, a merge whose result is missing, a malformed line.
  write_file(d / "vocab.json", good);
  write_file(d / "merges.txt", "a b\nab q\xC3\xA7\n");
  expect_load_error(d, "merges.txt", "line 2: token 'q\xC3\xA7' is not in the vocabulary");
  write_file(d / "merges.txt", "a b\nb c\n");
  expect_load_error(d, "merges.txt", "merged token 'bc'");
  write_file(d / "merges.txt", "a b\nabc\n");
  expect_load_error(d, "merges.txt", "expected 'left right'");
  // A vocabulary missing one of the 256 bytes ('!' is byte 33, GPT-2 id 0).
  std::string no_bang = good;
  no_bang.replace(no_bang.find("\"!\": 0, "), 8, "");
  no_bang.replace(no_bang.find("\"<|endoftext|>\": 258"), 20, "\"<|endoftext|>\": 0");
  write_file(d / "vocab.json", no_bang);
  write_file(d / "merges.txt", "a b\nab c\n");
  expect_load_error(d, "vocab.json", "no token for the byte");
  // Nothing there at all, and a path that does not exist.
  fs::remove(d / "vocab.json");
  fs::remove(d / "merges.txt");
  expect_load_error(d, d.string(), "no tokenizer files");
  expect_load_error(d / "missing", "missing", "neither a directory");
}

TEST(Malformed, TokenizerJsonErrors) {
  TempDir tmp;
  const fs::path f = tmp.path() / "tokenizer.json";
  write_file(f, "{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merg");
  expect_load_error(f, "tokenizer.json", "invalid JSON");
  write_file(f, "{\"model\": {\"type\": \"WordPiece\"}}");
  expect_load_error(f, "tokenizer.json", "only BPE");
  write_file(f,
             "{\"pre_tokenizer\": {\"type\": \"Whitespace\"}, \"model\": {\"type\": \"BPE\", "
             "\"vocab\": " +
                 tiny_vocab_json() + ", \"merges\": []}}");
  expect_load_error(f, "tokenizer.json", "ByteLevel");
  write_file(f,
             "{\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false}, "
             "\"model\": {\"type\": \"BPE\", \"vocab\": " +
                 tiny_vocab_json() + ", \"merges\": [\"a b\", [\"ab\", \"zzz\"]]}}");
  expect_load_error(f, "tokenizer.json", "model.merges[1]: token 'zzz'");
  write_file(f,
             "{\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false}, "
             "\"model\": {\"type\": \"BPE\", \"vocab\": " +
                 tiny_vocab_json() + ", \"merges\": [\"a b\", [\"ab\", \"c\"]]}}");
  const BpeTokenizer tok = BpeTokenizer::load(f.string());
  EXPECT_EQ(tok.encode("abc"), std::vector<int32_t>{257});
}

TEST(Malformed, TruncatedRealFilesFailCleanly) {
  if (!fs::exists(kGpt2Dir / "encoder.json")) GTEST_SKIP() << "no GPT-2 files";
  TempDir tmp;
  const std::string encoder = read_file(kGpt2Dir / "encoder.json");
  const std::string merges = read_file(kGpt2Dir / "vocab.bpe");
  write_file(tmp.path() / "encoder.json", encoder.substr(0, encoder.size() - 1000));
  write_file(tmp.path() / "vocab.bpe", merges);
  expect_load_error(tmp.path(), "encoder.json", "invalid JSON");
  // Full vocabulary, merges cut in the middle of a line: the last line is malformed.
  write_file(tmp.path() / "encoder.json", encoder);
  std::string cut = merges.substr(0, merges.size() / 2);
  cut = cut.substr(0, cut.rfind('\n') + 3);
  if (cut.find(' ', cut.rfind('\n')) != std::string::npos) cut.pop_back();
  write_file(tmp.path() / "vocab.bpe", cut);
  EXPECT_THROW(BpeTokenizer::load(tmp.path().string()), std::runtime_error);
}

TEST(Malformed, AnyTruncationIsACleanError) {
  // Cut each file of a saved tokenizer at many points: load must either succeed (a merges file cut
  // at a line end is still valid) or throw std::runtime_error, never crash or throw anything else.
  BpeTrainerOptions opt;
  opt.vocab_size = 300;
  const BpeTokenizer tok = train_bpe({kSmallCorpus}, opt);
  TempDir tmp;
  const fs::path full = tmp.path() / "full";
  tok.save_hf(full.string());
  for (const char* name : {"tokenizer.json", "vocab.json", "merges.txt"}) {
    const std::string text = read_file(full / name);
    const fs::path cut_dir = tmp.path() / "cut";
    for (size_t cut = 0; cut < text.size(); cut += 1 + text.size() / 150) {
      fs::remove_all(cut_dir);
      fs::create_directories(cut_dir);
      if (std::string(name) == "tokenizer.json") {
        write_file(cut_dir / name, text.substr(0, cut));
      } else {
        fs::copy_file(full / "vocab.json", cut_dir / "vocab.json");
        fs::copy_file(full / "merges.txt", cut_dir / "merges.txt");
        write_file(cut_dir / name, text.substr(0, cut));
      }
      try {
        BpeTokenizer::load(cut_dir.string());
      } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
      }
    }
  }
}

TEST(Decode, RejectsIdsOutsideTheVocabulary) {
  TempDir tmp;
  write_file(tmp.path() / "vocab.json", tiny_vocab_json());
  write_file(tmp.path() / "merges.txt", "a b\nab c\n");
  const BpeTokenizer tok = BpeTokenizer::load(tmp.path().string());
  EXPECT_THROW(tok.decode({0, 259}), std::out_of_range);
  EXPECT_THROW(tok.decode({-1}), std::out_of_range);
}

// ---------------------------------------------------------------------------------------------
// Trainer
// ---------------------------------------------------------------------------------------------

TEST(Trainer, LearnsTheMostFrequentPairsFirst) {
  BpeTrainerOptions opt;
  opt.vocab_size = 256 + 3 + 1;
  const BpeTokenizer tok = train_bpe({"aaab aaab aaab ba"}, opt);
  ASSERT_EQ(tok.num_merges(), 3);
  // Words: "aaab" x1, " aaab" x2, " ba" x1. Pair counts: (a,a) 6 > (a,b) 3 = ( ,a) 2+... ; first
  // merge aa.
  EXPECT_EQ(tok.token_bytes(256), "aa");
  EXPECT_EQ(tok.vocab_size(), 260);
  EXPECT_EQ(tok.eot_token(), 259);
  // The first 256 tokens are the bytes in GPT-2's order.
  EXPECT_EQ(tok.token_bytes(0), "!");
  EXPECT_EQ(tok.token_bytes(188), std::string(1, '\0'));
}

TEST(Trainer, IsDeterministicAndRoundTrips) {
  BpeTrainerOptions opt;
  opt.vocab_size = 400;
  const BpeTokenizer a = train_bpe({kSmallCorpus, kSmallCorpus + " again"}, opt);
  const BpeTokenizer b = train_bpe({kSmallCorpus, kSmallCorpus + " again"}, opt);
  EXPECT_EQ(a.merges(), b.merges());
  EXPECT_GT(a.num_merges(), 20);
  EXPECT_LE(a.vocab_size(), 400);
  EXPECT_EQ(a.special_ids(), std::vector<int32_t>{a.vocab_size() - 1});
  const std::string probe = "the cat's thesis \xE6\x9D\xB1 \xFF\x80 <|endoftext|> 12345";
  EXPECT_EQ(a.decode(a.encode(probe)), probe);
  EXPECT_EQ(a.encode("<|endoftext|>"), std::vector<int32_t>{a.eot_token()});
  // Encoding the training words reproduces what training built: "the" is one token.
  EXPECT_EQ(a.encode(" the").size(), 1u);
}

TEST(Trainer, SavedTokenizerReloadsWithSameIds) {
  BpeTrainerOptions opt;
  opt.vocab_size = 350;
  opt.special_tokens = {"<|endoftext|>", "<|pad|>"};
  const BpeTokenizer tok = train_bpe({kSmallCorpus}, opt);
  TempDir tmp;
  tok.save_hf(tmp.path().string());
  const BpeTokenizer back = BpeTokenizer::load(tmp.path().string());
  EXPECT_EQ(back.vocab_size(), tok.vocab_size());
  EXPECT_EQ(back.merges(), tok.merges());
  EXPECT_EQ(back.special_ids(), tok.special_ids());
  for (int id = 0; id < tok.vocab_size(); ++id)
    ASSERT_EQ(back.token_bytes(id), tok.token_bytes(id));
  EXPECT_EQ(back.encode(kSmallCorpus + "<|pad|>"), tok.encode(kSmallCorpus + "<|pad|>"));
}

TEST(Trainer, RejectsAVocabularyTooSmall) {
  BpeTrainerOptions opt;
  opt.vocab_size = 256;  // no room for <|endoftext|>
  EXPECT_THROW(train_bpe({"abc"}, opt), std::invalid_argument);
}

TEST(Trainer, TinyShakespeare) {
  const fs::path corpus = fs::path(GPT_SHARED_DATA) / "tinyshakespeare" / "input.txt";
  if (!fs::exists(corpus)) GTEST_SKIP() << "no " << corpus;
  BpeTrainerOptions opt;
  opt.vocab_size = 4096;
  BpeTrainer trainer(opt);
  trainer.add_file(corpus.string());
  const BpeTokenizer tok = trainer.train();
  EXPECT_EQ(tok.vocab_size(), 4096);
  const std::string text = read_file(corpus);
  const std::vector<int32_t> ids = tok.encode(text);
  EXPECT_EQ(tok.decode(ids), text);
  // A vocabulary fitted to the text compresses it well (GPT-2: ~3.3 bytes per token).
  EXPECT_GT(static_cast<double>(text.size()) / ids.size(), 3.0);
}

}  // namespace
}  // namespace gpt
