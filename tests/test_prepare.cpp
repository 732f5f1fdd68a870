// gpt-prepare's library: inputs, pretraining shards, fine-tuning examples with masks, the
// fine-tuning loader. Tests that read ../shared/data skip when it is absent.
#include <gtest/gtest.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "data/bpe_trainer.h"
#include "data/finetune.h"
#include "data/finetune_loader.h"
#include "data/prepare.h"
#include "data/shard.h"

namespace gpt {
namespace {

namespace fs = std::filesystem;
const fs::path kData = fs::path(GPT_SHARED_DATA);

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/gpt_prepare_test_XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(file(name), std::ios::binary) << text;
    return file(name);
  }

 private:
  std::string path_;
};

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<int32_t> shard_tokens(const std::string& path) {
  TokenShard s(path);
  std::vector<int32_t> t(static_cast<size_t>(s.size()));
  s.read(0, s.size(), t.data());
  return t;
}

// Tokens of every shard PREFIX_*.bin in dir, concatenated.
std::vector<int32_t> all_tokens(const std::string& dir, const std::string& prefix) {
  std::vector<int32_t> out;
  for (const std::string& f : expand_glob(dir + "/" + prefix + "_*.bin")) {
    const std::vector<int32_t> t = shard_tokens(f);
    out.insert(out.end(), t.begin(), t.end());
  }
  return out;
}

nlohmann::json read_meta(const std::string& dir) {
  return nlohmann::json::parse(slurp(dir + "/meta.json"));
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// A trained BPE small enough to build in every test that needs one.
const PrepareTokenizer& small_bpe() {
  static const PrepareTokenizer tok = [] {
    std::string corpus;
    for (int i = 0; i < 200; ++i)
      corpus += "The quick brown fox " + std::to_string(i) +
                " jumps over the lazy dog's back.\nIt isn't late!\n\n";
    TokenizerSpec spec;
    spec.name = "bytes";
    spec.train = true;
    spec.vocab_size = 400;
    return make_tokenizer(spec, {corpus});
  }();
  return tok;
}

// Random text that exercises the pre-tokenizer: words, digits, punctuation, runs of spaces and
// newlines, multi-byte UTF-8 and invalid bytes.
std::string random_text(std::mt19937& rng, size_t n) {
  static const std::vector<std::string> atoms = {"a",
                                                 "b",
                                                 "the",
                                                 "Fox",
                                                 " ",
                                                 "  ",
                                                 "\n",
                                                 "\n\n",
                                                 "\t",
                                                 "'s",
                                                 "'ll",
                                                 "1",
                                                 "23",
                                                 "!",
                                                 "?.",
                                                 "\xC3\xA9",
                                                 "\xE4\xB8\xAD",
                                                 "\xF0\x9F\x98\x80",
                                                 "\xFF",
                                                 "\x80",
                                                 "\r\n",
                                                 "<|endoftext|>",
                                                 " x",
                                                 "-",
                                                 "\"",
                                                 "\n "};
  std::string s;
  while (s.size() < n) s += atoms[rng() % atoms.size()];
  return s;
}

// ---- inputs -------------------------------------------------------------------------------------

TEST(TextInput, LinesDocumentsAndQuoting) {
  std::vector<std::pair<std::string, int64_t>> lines;
  for_each_line(
      "\xEF\xBB\xBF"
      "a\r\nb\n\nc",
      [&](std::string_view l, int64_t n) { lines.emplace_back(std::string(l), n); });
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0], (std::pair<std::string, int64_t>{"a", 1}));
  EXPECT_EQ(lines[1].first, "b");
  EXPECT_EQ(lines[2].first, "");
  EXPECT_EQ(lines[3], (std::pair<std::string, int64_t>{"c", 4}));

  const std::string text = "\n\nfirst doc\nline two\n \t\nsecond\n\n\nthird";
  const std::vector<DocumentView> docs = split_documents(text, DocumentSplit::kBlankLines);
  ASSERT_EQ(docs.size(), 3u);
  EXPECT_EQ(docs[0].text, "first doc\nline two");
  EXPECT_EQ(docs[0].line, 3);
  EXPECT_EQ(docs[1].text, "second");
  EXPECT_EQ(docs[1].line, 6);
  EXPECT_EQ(docs[2].text, "third");
  EXPECT_EQ(split_documents(text, DocumentSplit::kWholeFile)[0].text, text);
  EXPECT_EQ(quote_for_error("ok\n\xFF"), "ok\\x0A\\xFF");
  EXPECT_EQ(quote_for_error(std::string(100, 'x'), 10), std::string(10, 'x') + "...");
}

TEST(TextInput, MissingFilesAndEmptyGlobsNameTheArgument) {
  EXPECT_NE(error_of([] {
              expand_inputs({"/nonexistent/file.txt"});
            }).find("/nonexistent/file.txt: cannot open"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              expand_inputs({"/nonexistent/*.txt"});
            }).find("/nonexistent/*.txt: no files match"),
            std::string::npos);
}

// ---- chunked encoding ---------------------------------------------------------------------------

TEST(Encoding, ChunksGiveTheSameIdsAsWholeText) {
  std::mt19937 rng(7);
  const PrepareTokenizer& bpe = small_bpe();
  for (int trial = 0; trial < 200; ++trial) {
    const std::string text = random_text(rng, 50 + rng() % 3000);
    const size_t chunk = 1 + rng() % 64;
    const std::vector<size_t> cuts = chunk_cut_points(text, chunk);
    for (size_t c : cuts) {
      ASSERT_EQ(text[c], '\n');
      ASSERT_GT(text[c - 1], ' ');
    }
    const std::vector<std::vector<int32_t>> ids = encode_texts(bpe, {text}, 2, nullptr, chunk);
    ASSERT_EQ(ids[0], bpe.encode(text)) << "trial " << trial << " chunk " << chunk;
    ASSERT_EQ(bpe.decode(ids[0]), text);
  }
}

// The hub fixtures' tokenizers (Llama 3's and Qwen2's Split, whose punctuation pieces take the line
// ends after them; SmolLM2's Digits; Qwen2's NFC) cut at their own safe points.
TEST(Encoding, ChunksOfHubTokenizersGiveTheSameIds) {
  std::mt19937 rng(11);
  for (const char* family : {"llama3", "qwen2", "smollm2"}) {
    const fs::path dir = fs::path(GPT_SOURCE_DIR) / "tests" / "fixtures" / "hub" / family;
    const PrepareTokenizer tok(BpeTokenizer::load(dir.string()), "path", dir.string());
    for (int trial = 0; trial < 100; ++trial) {
      std::string text = random_text(rng, 50 + rng() % 3000);
      text += "e\xCC\x81.\r\n\n!\nx\n";  // a mark to compose; punctuation before line ends
      const size_t chunk = 1 + rng() % 64;
      const std::vector<std::vector<int32_t>> ids = encode_texts(tok, {text}, 2, nullptr, chunk);
      ASSERT_EQ(ids[0], tok.encode(text)) << family << " trial " << trial << " chunk " << chunk;
    }
  }
}

TEST(Encoding, ChunkedGpt2OnTinyShakespeare) {
  const fs::path corpus = kData / "tinyshakespeare" / "input.txt";
  if (!fs::exists(corpus) || !fs::exists(kData / "gpt2" / "encoder.json"))
    GTEST_SKIP() << "no shared data";
  const std::string text = slurp(corpus.string());
  const PrepareTokenizer gpt2(BpeTokenizer::load((kData / "gpt2").string()), "gpt2", "");
  const std::vector<std::vector<int32_t>> ids = encode_texts(gpt2, {text}, 2, nullptr, 4096);
  EXPECT_GT(chunk_cut_points(text, 4096).size(), 200u);
  EXPECT_EQ(ids[0], gpt2.encode(text));
  EXPECT_EQ(ids[0].size(), 338025u);  // tiktoken's encode_ordinary gives 338,025 ids
}

// ---- pretraining --------------------------------------------------------------------------------

PrepareOptions pretrain_options(const std::vector<std::string>& inputs, const std::string& out) {
  PrepareOptions o;
  o.inputs = inputs;
  o.out = out;
  return o;
}

TEST(PreparePretraining, BytesRoundTripWithBlankLineDocuments) {
  TempDir dir;
  const std::string a = dir.write("a.txt", "doc one\nstill one\n\n\ndoc two\n");
  const std::string b = dir.write("b.txt", "doc three");
  PrepareOptions o = pretrain_options({a, b}, dir.file("out"));
  o.split = DocumentSplit::kBlankLines;
  o.val_docs = 1;
  const PrepareResult r = prepare_pretraining(o);
  EXPECT_EQ(r.documents, 3);
  auto bytes_of = [](const std::string& s) { return std::vector<int32_t>(s.begin(), s.end()); };
  std::vector<int32_t> expect_train{256};
  for (int32_t t : bytes_of("doc one\nstill one")) expect_train.push_back(t);
  expect_train.push_back(256);
  for (int32_t t : bytes_of("doc two")) expect_train.push_back(t);
  std::vector<int32_t> expect_val{256};
  for (int32_t t : bytes_of("doc three")) expect_val.push_back(t);
  EXPECT_EQ(all_tokens(o.out, "train"), expect_train);
  EXPECT_EQ(all_tokens(o.out, "val"), expect_val);
  const nlohmann::json meta = read_meta(o.out);
  EXPECT_EQ(meta["vocab_size"], 257);
  EXPECT_EQ(meta["eot_token"], 256);
  EXPECT_EQ(meta["tokenizer"], "bytes");
  EXPECT_EQ(meta["train_tokens"], expect_train.size());
  EXPECT_EQ(meta["val_tokens"], expect_val.size());
  EXPECT_EQ(meta["val_bytes"], 9);
  EXPECT_FALSE(fs::exists(o.out + "/tokenizer"));
}

TEST(PreparePretraining, TrainedTokenizerRoundTripAndSavedFiles) {
  TempDir dir;
  std::string text;
  for (int i = 0; i < 400; ++i)
    text += "Line " + std::to_string(i % 37) + ": to be, or not to be?\n";
  const std::string in = dir.write("in.txt", text);
  PrepareOptions o = pretrain_options({in}, dir.file("out"));
  o.tokenizer.train = true;
  o.tokenizer.vocab_size = 300;
  o.val_fraction = 0.25;
  o.shard_tokens = 500;  // several shards
  const PrepareResult r = prepare_pretraining(o);
  EXPECT_GT(r.shards.size(), 4u);
  const nlohmann::json meta = read_meta(o.out);
  EXPECT_EQ(meta["tokenizer"], "trained");
  EXPECT_EQ(meta["vocab_size"], 300);
  EXPECT_EQ(meta["eot_token"], 299);
  EXPECT_EQ(meta["tokenizer_dir"], "tokenizer");
  for (const char* f : {"vocab.json", "merges.txt", "tokenizer.json"})
    EXPECT_TRUE(fs::exists(o.out + "/tokenizer/" + f)) << f;
  const BpeTokenizer saved = BpeTokenizer::load(o.out + "/tokenizer");
  std::vector<int32_t> train = all_tokens(o.out, "train"), val = all_tokens(o.out, "val");
  ASSERT_EQ(train[0], 299);
  const std::string train_text = saved.decode(std::vector<int32_t>(train.begin() + 1, train.end()));
  const std::string val_text = saved.decode(val);
  EXPECT_EQ(train_text + val_text, text);
  // The validation text starts at a line start and is the last quarter of the bytes, give or take a
  // line.
  EXPECT_EQ(text[train_text.size() - 1], '\n');
  EXPECT_EQ(meta["val_bytes"], val_text.size());
  EXPECT_NEAR(static_cast<double>(val_text.size()), 0.25 * static_cast<double>(text.size()), 40.0);
  EXPECT_EQ(saved.encode(train_text, SpecialTokens::kAsText),
            std::vector<int32_t>(train.begin() + 1, train.end()));
}

TEST(PreparePretraining, JsonlDocumentsAndTheirErrors) {
  TempDir dir;
  const std::string in =
      dir.write("d.jsonl", "{\"body\": \"first\", \"id\": 1}\n\n{\"body\": \"second\\nline\"}\n");
  PrepareOptions o = pretrain_options({in}, dir.file("out"));
  o.format = InputFormat::kJsonl;
  o.field = "body";
  o.val_fraction = 0;
  prepare_pretraining(o);
  const std::vector<int32_t> t = all_tokens(o.out, "train");
  EXPECT_EQ(PrepareTokenizer::bytes().decode(t), "<|endoftext|>first<|endoftext|>second\nline");
  EXPECT_FALSE(fs::exists(o.out + "/val_000000.bin"));

  const std::string bad = dir.write("bad.jsonl", "{\"body\": \"ok\"}\n{\"body\": 7}\n");
  o.inputs = {bad};
  o.out = dir.file("out_bad");
  EXPECT_EQ(error_of([&] { prepare_pretraining(o); }),
            bad + ":2: field 'body': expected a string, got an integer");
  EXPECT_FALSE(fs::exists(o.out));
}

TEST(PreparePretraining, FailureLeavesAnEarlierOutputUntouchedAndRerunsRemoveStaleShards) {
  TempDir dir;
  const std::string good = dir.write("good.txt", std::string(3000, 'x'));
  PrepareOptions o = pretrain_options({good}, dir.file("out"));
  o.shard_tokens = 1000;
  prepare_pretraining(o);
  const std::string before = slurp(o.out + "/meta.json");
  ASSERT_TRUE(fs::exists(o.out + "/train_000002.bin"));

  o.inputs = {good, dir.file("missing.txt")};
  EXPECT_NE(error_of([&] { prepare_pretraining(o); }).find("missing.txt"), std::string::npos);
  EXPECT_EQ(slurp(o.out + "/meta.json"), before);

  o.inputs = {good};
  o.shard_tokens = 100'000;
  prepare_pretraining(o);
  EXPECT_FALSE(fs::exists(o.out + "/train_000001.bin"));
  EXPECT_FALSE(fs::exists(o.out + "/train_000002.bin"));
  for (const fs::directory_entry& e : fs::directory_iterator(o.out))
    EXPECT_EQ(e.path().filename().string().find(".prepare-staging"), std::string::npos);
}

// The same inputs give the same bytes with 1 and 2 threads (BPE with chunked documents and many
// documents, the byte tokenizer).
TEST(PreparePretraining, OutputIsIdenticalForOneAndTwoThreads) {
  TempDir dir;
  std::mt19937 rng(11);
  std::vector<std::string> inputs;
  const fs::path shakespeare = kData / "tinyshakespeare" / "input.txt";
  if (fs::exists(shakespeare)) inputs.push_back(shakespeare.string());
  for (int i = 0; i < 3; ++i)
    inputs.push_back(dir.write("r" + std::to_string(i) + ".txt", random_text(rng, 200'000)));
  struct Variant {
    bool train;
    DocumentSplit split;
  };
  for (const Variant v :
       {Variant{true, DocumentSplit::kWholeFile}, Variant{true, DocumentSplit::kBlankLines},
        Variant{false, DocumentSplit::kWholeFile}}) {
    const bool train = v.train;
    std::map<std::string, std::string> first;
    for (int threads : {1, 2}) {
      PrepareOptions o = pretrain_options(inputs, dir.file("out" + std::to_string(threads)));
      o.split = v.split;
      o.tokenizer.train = train;
      o.tokenizer.vocab_size = train ? 1000 : 0;
      o.threads = threads;
      o.shard_tokens = 300'000;
      prepare_pretraining(o);
      std::map<std::string, std::string> files;
      for (const fs::directory_entry& e : fs::recursive_directory_iterator(o.out))
        if (e.is_regular_file())
          files[fs::relative(e.path(), o.out).string()] = slurp(e.path().string());
      if (threads == 1) {
        first = files;
        EXPECT_GE(files.size(), 3u);
      } else {
        ASSERT_EQ(files.size(), first.size());
        for (const auto& [name, bytes] : files)
          EXPECT_TRUE(first[name] == bytes) << name << " differs (train " << train << ")";
      }
    }
  }
}

// ---- fine-tuning: examples and masks ----------------------------------------------------------

struct ShardPair {
  std::vector<int32_t> tokens;
  MaskShard mask;
};

std::vector<ShardPair> read_pairs(const std::string& dir, const std::string& prefix) {
  std::vector<ShardPair> out;
  for (const std::string& f : expand_glob(dir + "/" + prefix + "_*.bin")) {
    ShardPair p;
    p.tokens = shard_tokens(f);
    p.mask = read_mask_shard(mask_path_for(f), static_cast<int64_t>(p.tokens.size()));
    out.push_back(std::move(p));
  }
  return out;
}

FinetuneOptions finetune_options(FinetuneTask task, ExampleFormat format,
                                 const std::vector<std::string>& inputs, const std::string& out) {
  FinetuneOptions o;
  o.task = task;
  o.format = format;
  o.inputs = inputs;
  o.out = out;
  o.val_fraction = 0;
  return o;
}

TEST(Finetune, CompletionOnlyLossTokenByToken) {
  TempDir dir;
  const std::vector<std::pair<std::string, std::string>> pc = {
      {"Q: 2+2?\nA:", " 4"}, {"Say hi", " hi there"}, {"", "x"}};
  std::string jsonl;
  for (const auto& [p, c] : pc)
    jsonl += nlohmann::json{{"prompt", p}, {"completion", c}}.dump() + "\n";
  const std::string in = dir.write("pc.jsonl", jsonl);
  for (bool bpe : {false, true}) {
    FinetuneOptions o = finetune_options(FinetuneTask::kSft, ExampleFormat::kJsonl, {in},
                                         dir.file(bpe ? "bpe" : "bytes"));
    if (bpe) {
      o.tokenizer.train = true;
      o.tokenizer.vocab_size = 270;
    }
    const FinetuneResult r = prepare_finetune(o);
    EXPECT_EQ(r.train_examples, 3);
    const std::vector<ShardPair> shards = read_pairs(o.out, "train");
    ASSERT_EQ(shards.size(), 1u);
    const ShardPair& s = shards[0];
    EXPECT_EQ(s.mask.num_examples, 3);
    EXPECT_EQ(s.mask.num_classes, 0);
    const BpeTokenizer* saved_bpe = nullptr;
    std::unique_ptr<BpeTokenizer> loaded;
    if (bpe) {
      loaded = std::make_unique<BpeTokenizer>(BpeTokenizer::load(o.out + "/tokenizer"));
      saved_bpe = loaded.get();
    }
    auto encode = [&](const std::string& t) {
      return saved_bpe ? saved_bpe->encode(t, SpecialTokens::kAsText)
                       : PrepareTokenizer::bytes().encode(t);
    };
    const int32_t eot = read_meta(o.out)["eot_token"];
    std::vector<int32_t> expect_tokens;
    std::vector<uint8_t> expect_flags;
    for (const auto& [p, c] : pc) {
      const std::vector<int32_t> pt = encode(p), ct = encode(c);
      expect_tokens.push_back(eot);
      expect_flags.push_back(kMaskExampleStart);
      for (int32_t t : pt) {
        expect_tokens.push_back(t);
        expect_flags.push_back(0);
      }
      for (int32_t t : ct) {
        expect_tokens.push_back(t);
        expect_flags.push_back(kMaskLoss);
      }
      expect_tokens.push_back(eot);
      expect_flags.push_back(kMaskLoss);
    }
    EXPECT_EQ(s.tokens, expect_tokens);
    EXPECT_EQ(s.mask.flags, expect_flags);
    EXPECT_EQ(r.train_targets, std::count(expect_flags.begin(), expect_flags.end(), kMaskLoss));
  }
}

TEST(Finetune, InstructionTemplateAndSeedTasks) {
  EXPECT_EQ(instruction_prompt("Add.", "1 and 2"),
            "### Instruction:\nAdd.\n\n### Input:\n1 and 2\n\n### Response:\n");
  EXPECT_EQ(instruction_prompt("Say hi.", ""), "### Instruction:\nSay hi.\n\n### Response:\n");
  TempDir dir;
  const std::string in = dir.write(
      "seed.jsonl",
      R"({"instruction": "Add.", "instances": [{"input": "1 and 2", "output": "3"}, {"input": "", "output": "0"}]})"
      "\n"
      R"({"instruction": "Name it.", "instances": [{"output": "x"}]})"
      "\n");
  FinetuneOptions o =
      finetune_options(FinetuneTask::kSft, ExampleFormat::kSeedTasks, {in}, dir.file("out"));
  const std::vector<TextExample> ex = read_examples(o, {in});
  ASSERT_EQ(ex.size(), 3u);
  EXPECT_EQ(ex[0].prompt, instruction_prompt("Add.", "1 and 2"));
  EXPECT_EQ(ex[0].completion, "3");
  EXPECT_EQ(ex[1].prompt, instruction_prompt("Add.", ""));
  EXPECT_EQ(ex[2].line, 2);
  // The generic JSONL reader takes instruction/input/output too.
  const std::string alpaca =
      dir.write("alpaca.jsonl", R"({"instruction": "Add.", "input": "1 and 2", "output": "3"})"
                                "\n");
  o.format = ExampleFormat::kJsonl;
  EXPECT_EQ(read_examples(o, {alpaca})[0].prompt, ex[0].prompt);
}

TEST(Finetune, ClassificationWithLabelWordsAndClassHead) {
  TempDir dir;
  const std::string tsv = dir.write("s.tsv", "label\tsentence\n1\tgreat film\n0\tdull\n");
  FinetuneOptions o =
      finetune_options(FinetuneTask::kClassify, ExampleFormat::kSst2, {tsv}, dir.file("words"));
  o.label_words = {"negative", "positive"};
  std::vector<TextExample> ex = read_examples(o, {tsv});
  ASSERT_EQ(ex.size(), 2u);
  EXPECT_EQ(ex[0].prompt, "great film\nLabel:");
  EXPECT_EQ(ex[0].completion, " positive");
  EXPECT_EQ(ex[1].completion, " negative");
  EXPECT_EQ(ex[1].line, 3);
  prepare_finetune(o);
  const ShardPair s = read_pairs(o.out, "train")[0];
  std::string target_text;
  for (size_t i = 0; i < s.tokens.size(); ++i)
    if (s.mask.flags[i] & kMaskLoss) target_text += PrepareTokenizer::bytes().decode({s.tokens[i]});
  EXPECT_EQ(target_text, " positive<|endoftext|> negative<|endoftext|>");

  o.label_words.clear();
  o.out = dir.file("head");
  const FinetuneResult r = prepare_finetune(o);
  EXPECT_EQ(r.train_targets, 2);
  const ShardPair h = read_pairs(o.out, "train")[0];
  EXPECT_EQ(h.mask.num_classes, 2);
  EXPECT_EQ(h.mask.labels, (std::vector<int32_t>{1, 0}));
  EXPECT_EQ(PrepareTokenizer::bytes().decode(h.tokens),
            "<|endoftext|>great film<|endoftext|><|endoftext|>dull<|endoftext|>");
  for (uint8_t f : h.mask.flags) EXPECT_EQ(f & kMaskLoss, 0);

  // UCI: sentence<TAB>label, no header; JSONL labels as ids or words.
  const std::string uci = dir.write("u.txt", "Nice phone.  \t1\nBad.\t0\n");
  o.format = ExampleFormat::kUci;
  ex = read_examples(o, {uci});
  EXPECT_EQ(ex[0].prompt, "Nice phone.");
  EXPECT_EQ(ex[0].label, 1);
  const std::string jl = dir.write("c.jsonl", R"({"text": "a", "label": "positive"})"
                                              "\n"
                                              R"({"text": "b", "label": 0})"
                                              "\n");
  o.format = ExampleFormat::kJsonl;
  o.label_words = {"negative", "positive"};
  ex = read_examples(o, {jl});
  EXPECT_EQ(ex[0].label, 1);
  EXPECT_EQ(ex[1].label, 0);
}

TEST(Finetune, BadLabelsNameFileAndLine) {
  TempDir dir;
  FinetuneOptions o =
      finetune_options(FinetuneTask::kClassify, ExampleFormat::kSst2, {}, dir.file("out"));
  o.label_words = {"negative", "positive"};
  const std::string tsv = dir.write("s.tsv", "label\tsentence\n1\tok\n2\tbad label\n");
  EXPECT_EQ(error_of([&] { read_examples(o, {tsv}); }),
            tsv + ":3: label '2' is not in the label set {0=negative, 1=positive}");
  const std::string jl = dir.write("c.jsonl", R"({"text": "a", "label": "neutral"})"
                                              "\n");
  o.format = ExampleFormat::kJsonl;
  EXPECT_EQ(error_of([&] { read_examples(o, {jl}); }),
            jl + ":1: label 'neutral' is not in the label set {0=negative, 1=positive}");
  o.label_words.clear();
  o.num_classes = 3;
  const std::string big = dir.write("b.jsonl", R"({"text": "a", "label": 3})"
                                               "\n");
  EXPECT_EQ(error_of([&] { read_examples(o, {big}); }),
            big + ":1: label 3 is not in the label set {0..2}");
  o.inputs = {big};
  EXPECT_FALSE(fs::exists(o.out));
}

TEST(Finetune, LongExamplesFailWithTheirLineOrAreTruncated) {
  TempDir dir;
  const std::string in = dir.write(
      "pc.jsonl", R"({"prompt": "short", "completion": "!"})"
                  "\n"
                  R"({"prompt": "a much longer prompt", "completion": " and its completion"})"
                  "\n");
  FinetuneOptions o =
      finetune_options(FinetuneTask::kSft, ExampleFormat::kJsonl, {in}, dir.file("out"));
  o.seq_len = 16;
  const std::string e = error_of([&] { prepare_finetune(o); });
  EXPECT_EQ(e.rfind(in + ":2: example 1 has 41 tokens", 0), 0u) << e;
  EXPECT_FALSE(fs::exists(o.out));
  o.truncate = true;
  const FinetuneResult r = prepare_finetune(o);
  EXPECT_EQ(r.truncated, 1);
  EXPECT_EQ(r.max_example_tokens, 17);
}

// ---- malformed and random inputs ----------------------------------------------------------------

// Every input either parses or fails with one line that names the file; nothing crashes.
void expect_clean(const std::function<void()>& fn, const std::string& file) {
  try {
    fn();
  } catch (const std::exception& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    EXPECT_NE(what.find(file), std::string::npos) << what;
  }
}

TEST(Finetune, RandomAndMalformedInputsGiveErrorsOrValidExamples) {
  TempDir dir;
  std::mt19937 rng(5);
  const std::vector<std::pair<FinetuneTask, ExampleFormat>> formats = {
      {FinetuneTask::kSft, ExampleFormat::kJsonl},
      {FinetuneTask::kSft, ExampleFormat::kGsm8k},
      {FinetuneTask::kSft, ExampleFormat::kSeedTasks},
      {FinetuneTask::kSft, ExampleFormat::kDialogsum},
      {FinetuneTask::kClassify, ExampleFormat::kJsonl},
      {FinetuneTask::kClassify, ExampleFormat::kSst2},
      {FinetuneTask::kClassify, ExampleFormat::kUci}};
  const std::vector<std::string> valid = {
      R"({"prompt": "p", "completion": "c"})",
      R"({"question": "q", "answer": "a"})",
      R"({"instruction": "i", "instances": [{"input": "x", "output": "y"}]})",
      R"({"dialogue": "d", "summary": "s"})",
      R"({"text": "t", "label": 1})",
      "1\tsentence",
      "sentence\t0"};
  for (int trial = 0; trial < 300; ++trial) {
    const size_t k = static_cast<size_t>(trial) % formats.size();
    std::string content;
    switch (trial % 5) {
      case 0:  // random bytes
        for (size_t i = 0, n = rng() % 300; i < n; ++i) content += static_cast<char>(rng() % 256);
        break;
      case 1:  // a valid record cut short
        content = valid[k].substr(0, rng() % valid[k].size());
        break;
      case 2:  // a valid record with random bytes overwritten
        content = valid[k];
        for (int i = 0; i < 3; ++i)
          content[rng() % content.size()] = static_cast<char>(rng() % 256);
        break;
      case 3:  // wrong types and missing fields
        content = std::vector<std::string>{R"({"prompt": 1, "completion": "c"})",
                                           R"({"question": null})",
                                           R"({"instances": 5, "instruction": "i"})",
                                           R"({"instruction": "i", "instances": [3]})",
                                           R"({"text": "t", "label": [1]})",
                                           "[]",
                                           "\"str\"",
                                           "{}",
                                           R"({"text": "t", "label": 1.5})",
                                           "x\ty\tz"}[rng() % 10];
        break;
      case 4:  // invalid UTF-8 inside otherwise valid records
        content = valid[k];
        content.insert(content.size() / 2, "\xC3\x28\xFF");
        break;
    }
    const std::string file =
        dir.write("in" + std::to_string(trial), content + (rng() % 2 ? "\n" : ""));
    FinetuneOptions o = finetune_options(formats[k].first, formats[k].second, {file},
                                         dir.file("o" + std::to_string(trial)));
    if (o.task == FinetuneTask::kClassify && trial % 2) o.label_words = {"no", "yes"};
    expect_clean([&] { prepare_finetune(o); }, file);
  }
  // A truncated JSON line names its line.
  const std::string cut =
      dir.write("cut.jsonl", std::string(R"({"question": "q", "answer": "a"})") + "\n" +
                                 R"({"question": "q", "ans)");
  FinetuneOptions o =
      finetune_options(FinetuneTask::kSft, ExampleFormat::kGsm8k, {cut}, dir.file("cut"));
  EXPECT_EQ(error_of([&] { prepare_finetune(o); }).rfind(cut + ":2: malformed JSON", 0), 0u);
  // Invalid UTF-8 in a TSV is just bytes: the byte tokenizer keeps them.
  const std::string raw = dir.write("raw.tsv", "label\tsentence\n1\tbad \xFF\xFE bytes\n");
  o = finetune_options(FinetuneTask::kClassify, ExampleFormat::kSst2, {raw}, dir.file("raw"));
  o.label_words = {"no", "yes"};
  prepare_finetune(o);
  EXPECT_NE(PrepareTokenizer::bytes()
                .decode(read_pairs(o.out, "train")[0].tokens)
                .find("bad \xFF\xFE bytes"),
            std::string::npos);
}

TEST(MaskShard, RoundTripAndCorruptFiles) {
  TempDir dir;
  const std::vector<uint8_t> flags = {2, 0, 1, 3, 1};
  write_mask_shard(dir.file("a.mask"), flags, {1, 0}, 2);
  const MaskShard m = read_mask_shard(dir.file("a.mask"), 5);
  EXPECT_EQ(m.flags, flags);
  EXPECT_EQ(m.labels, (std::vector<int32_t>{1, 0}));
  EXPECT_EQ(m.num_examples, 2);
  EXPECT_NE(error_of([&] { read_mask_shard(dir.file("a.mask"), 6); }).find("holds 5 tokens"),
            std::string::npos);
  std::string bytes = slurp(dir.file("a.mask"));
  dir.write("short.mask", bytes.substr(0, bytes.size() - 1));
  EXPECT_NE(error_of([&] { read_mask_shard(dir.file("short.mask")); }).find("size mismatch"),
            std::string::npos);
  std::string bad = bytes;
  bad[1024 + 1] = 8;
  dir.write("bits.mask", bad);
  EXPECT_NE(error_of([&] {
              read_mask_shard(dir.file("bits.mask"));
            }).find("unknown flag bits at token 1"),
            std::string::npos);
  bad = bytes;
  bad[0] = 0;
  dir.write("magic.mask", bad);
  EXPECT_NE(error_of([&] { read_mask_shard(dir.file("magic.mask")); }).find("bad magic"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              write_mask_shard(dir.file("b.mask"), {0, 1}, {}, 0);
            }).find("first token"),
            std::string::npos);
  EXPECT_EQ(mask_path_for("d/train_000001.bin"), "d/train_000001.mask");
}

// ---- FinetuneLoader -----------------------------------------------------------------------------

// Writes examples (token lists with loss flags) as one shard pair per group.
void write_examples(const std::string& dir, const std::vector<std::vector<TokenExample>>& shards,
                    int num_classes = 0) {
  for (size_t s = 0; s < shards.size(); ++s) {
    std::vector<int32_t> tokens, labels;
    std::vector<uint8_t> flags;
    for (const TokenExample& e : shards[s]) {
      for (size_t k = 0; k < e.tokens.size(); ++k) {
        tokens.push_back(e.tokens[k]);
        flags.push_back(
            static_cast<uint8_t>((e.loss[k] ? kMaskLoss : 0) | (k == 0 ? kMaskExampleStart : 0)));
      }
      if (num_classes) labels.push_back(e.label);
    }
    char name[64];
    std::snprintf(name, sizeof(name), "%s/train_%06zu.bin", dir.c_str(), s);
    write_token_shard(name, tokens);
    write_mask_shard(mask_path_for(name), flags, labels, num_classes);
  }
}

// Example i: tokens 0 (eot), then 10*i + 1 .. 10*i + len - 1, loss on the second half.
TokenExample numbered_example(int i, int len) {
  TokenExample e;
  e.tokens.push_back(0);
  for (int k = 1; k < len; ++k) e.tokens.push_back(10 * i + k);
  for (int k = 0; k < len; ++k) e.loss.push_back(k >= len / 2);
  e.label = i % 3;
  return e;
}

TEST(FinetuneLoader, PaddedRowsHoldOneExampleWithMaskedTargets) {
  TempDir dir;
  const std::vector<TokenExample> ex = {numbered_example(1, 5), numbered_example(2, 3),
                                        numbered_example(3, 7)};
  write_examples(dir.file(""), {{ex[0], ex[1]}, {ex[2]}});
  FinetuneLoaderOptions o;
  o.B = 2;
  o.T = 6;
  o.pad_token = 0;
  FinetuneLoader loader(dir.file("train_*.bin"), o);
  EXPECT_EQ(loader.num_examples(), 3);
  EXPECT_EQ(loader.batches_per_epoch(), 2);
  std::vector<int32_t> tok(12), tgt(12);
  EXPECT_EQ(loader.next_batch(tok.data(), tgt.data()), 3 + 2);
  // Example 1: tokens 0 11 12 13 14, loss on positions 2..4 -> targets of inputs 1..3.
  EXPECT_EQ(tok, (std::vector<int32_t>{0, 11, 12, 13, 0, 0, 0, 21, 0, 0, 0, 0}));
  EXPECT_EQ(tgt, (std::vector<int32_t>{-1, 12, 13, 14, -1, -1, 21, 22, -1, -1, -1, -1}));
  EXPECT_EQ(loader.last_batch_examples(), (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(loader.next_batch(tok.data(), tgt.data()), 4);
  EXPECT_EQ(tok, (std::vector<int32_t>{0, 31, 32, 33, 34, 35, 0, 0, 0, 0, 0, 0}));
  EXPECT_EQ(tgt, (std::vector<int32_t>{-1, -1, 33, 34, 35, 36, -1, -1, -1, -1, -1,
                                       -1}));  // second row: padding
  EXPECT_EQ(loader.last_batch_examples(), (std::vector<int64_t>{2, -1}));
  EXPECT_EQ(loader.state().epoch, 0);
  loader.next_batch(tok.data(), tgt.data());
  EXPECT_EQ(loader.state().epoch, 1);

  o.T = 5;  // example 3 has 6 (input, target) pairs
  const std::string e = error_of([&] { FinetuneLoader l(dir.file("train_*.bin"), o); });
  EXPECT_NE(e.find("train_000001.bin: example 2 (tokens [0, 7)) has 7 tokens"), std::string::npos)
      << e;
  o.long_examples = LongExamples::kTruncate;
  FinetuneLoader cut(dir.file("train_*.bin"), o);
  std::vector<int32_t> t5(10), g5(10);
  cut.next_batch(t5.data(), g5.data());
  cut.next_batch(t5.data(), g5.data());
  EXPECT_EQ(std::vector<int32_t>(t5.begin(), t5.begin() + 5),
            (std::vector<int32_t>{0, 31, 32, 33, 34}));
  EXPECT_EQ(std::vector<int32_t>(g5.begin(), g5.begin() + 5),
            (std::vector<int32_t>{-1, -1, 33, 34, 35}));
}

TEST(FinetuneLoader, ClassHeadRowsHaveOneTargetAtTheLastToken) {
  TempDir dir;
  TokenExample a = numbered_example(1, 4), b = numbered_example(2, 6);
  for (TokenExample* e : {&a, &b}) std::fill(e->loss.begin(), e->loss.end(), 0);
  write_examples(dir.file(""), {{a, b}}, 3);
  FinetuneLoaderOptions o;
  o.B = 2;
  o.T = 5;
  o.pad_token = 9;
  o.long_examples = LongExamples::kTruncate;
  FinetuneLoader loader(dir.file("train_*.bin"), o);
  EXPECT_EQ(loader.num_classes(), 3);
  std::vector<int32_t> tok(10), tgt(10);
  EXPECT_EQ(loader.next_batch(tok.data(), tgt.data()), 2);
  EXPECT_EQ(tok, (std::vector<int32_t>{0, 11, 12, 13, 9, 0, 21, 22, 23,
                                       25}));  // b: first 4 + its last token
  EXPECT_EQ(tgt, (std::vector<int32_t>{-1, -1, -1, 1, -1, -1, -1, -1, -1, 2}));
  o.layout = FinetuneLayout::kPacked;
  EXPECT_NE(error_of([&] { FinetuneLoader l(dir.file("train_*.bin"), o); }).find("padded layout"),
            std::string::npos);
}

TEST(FinetuneLoader, PackedRowsConcatenateExamplesAndKeepMasks) {
  TempDir dir;
  std::vector<TokenExample> ex;
  for (int i = 0; i < 5; ++i) ex.push_back(numbered_example(i + 1, 3 + i));
  write_examples(dir.file(""), {{ex[0], ex[1], ex[2]}, {ex[3], ex[4]}});
  // The expected stream of (input, target) pairs.
  std::vector<int32_t> inputs, targets;
  for (const TokenExample& e : ex)
    for (size_t k = 0; k + 1 < e.tokens.size(); ++k) {
      inputs.push_back(e.tokens[k]);
      targets.push_back(e.loss[k + 1] ? e.tokens[k + 1] : -1);
    }
  FinetuneLoaderOptions o;
  o.B = 3;
  o.T = 4;
  o.pad_token = 0;
  o.layout = FinetuneLayout::kPacked;
  FinetuneLoader loader(dir.file("train_*.bin"), o);
  const size_t rows = (inputs.size() + 3) / 4;
  EXPECT_EQ(loader.batches_per_epoch(), static_cast<int64_t>((rows + 2) / 3));
  std::vector<int32_t> got_in, got_tgt, tok(12), tgt(12);
  for (int64_t b = 0; b < loader.batches_per_epoch(); ++b) {
    loader.next_batch(tok.data(), tgt.data());
    got_in.insert(got_in.end(), tok.begin(), tok.end());
    got_tgt.insert(got_tgt.end(), tgt.begin(), tgt.end());
  }
  ASSERT_GE(got_in.size(), inputs.size());
  EXPECT_EQ(std::vector<int32_t>(got_in.begin(), got_in.begin() + inputs.size()), inputs);
  EXPECT_EQ(std::vector<int32_t>(got_tgt.begin(), got_tgt.begin() + targets.size()), targets);
  for (size_t i = targets.size(); i < got_tgt.size(); ++i) EXPECT_EQ(got_tgt[i], -1);
}

// Over one epoch, the ranks together yield every example exactly once, in padded and packed
// layouts, shuffled or not; and a loader resumed from a saved state continues identically.
TEST(FinetuneLoader, EveryExampleOncePerEpochAcrossRanksAndExactResume) {
  TempDir dir;
  std::vector<std::vector<TokenExample>> shards(3);
  std::vector<TokenExample> all;
  for (int i = 0; i < 23; ++i) {
    all.push_back(numbered_example(i + 1, 3 + i % 5));
    shards[static_cast<size_t>(i) % 3].push_back(all.back());
  }
  write_examples(dir.file(""), shards);
  for (FinetuneLayout layout : {FinetuneLayout::kPadded, FinetuneLayout::kPacked}) {
    for (bool shuffle : {false, true}) {
      for (int world : {1, 2, 3}) {
        std::multiset<int32_t> seen;  // example ids from their token values 10*i + k
        for (int rank = 0; rank < world; ++rank) {
          FinetuneLoaderOptions o;
          o.B = 2;
          o.T = 6;
          o.layout = layout;
          o.shuffle = shuffle;
          o.seed = 42;
          o.rank = rank;
          o.world_size = world;
          FinetuneLoader loader(dir.file("train_*.bin"), o);
          std::vector<int32_t> tok(12), tgt(12);
          const int64_t batches = loader.batches_per_epoch();
          for (int64_t b = 0; b < batches; ++b) {
            loader.next_batch(tok.data(), tgt.data());
            for (int32_t t : tok)
              if (t % 10 == 1) seen.insert(t / 10);  // the first token after an example's eot
          }
          EXPECT_EQ(loader.state().epoch, 0);
          loader.next_batch(tok.data(), tgt.data());
          EXPECT_EQ(loader.state().epoch, 1);
        }
        std::multiset<int32_t> expect;
        for (int i = 0; i < 23; ++i) expect.insert(i + 1);
        EXPECT_EQ(seen, expect) << "layout " << static_cast<int>(layout) << " shuffle " << shuffle
                                << " world " << world;
      }
    }
    FinetuneLoaderOptions o;
    o.B = 3;
    o.T = 5;
    o.layout = layout;
    o.long_examples = LongExamples::kTruncate;
    o.shuffle = true;
    o.seed = 9;
    FinetuneLoader a(dir.file("train_*.bin"), o), b(dir.file("train_*.bin"), o);
    std::vector<int32_t> ta(15), ga(15), tb(15), gb(15);
    for (int i = 0; i < 7; ++i) a.next_batch(ta.data(), ga.data());
    b.set_state(a.state());
    for (int i = 0; i < 20; ++i) {
      a.next_batch(ta.data(), ga.data());
      b.next_batch(tb.data(), gb.data());
      ASSERT_EQ(ta, tb);
      ASSERT_EQ(ga, gb);
    }
  }
}

// Trimming cuts each batch's rows to its longest example and keeps their content; grouping by
// length visits every example once per epoch, batches examples of similar length (so the trimmed
// rows hold the least padding possible within a megabatch) and resumes exactly.
TEST(FinetuneLoader, TrimmedRowsAndGroupingByLength) {
  TempDir dir;
  std::vector<TokenExample> all;
  for (int i = 0; i < 23; ++i) all.push_back(numbered_example(i + 1, 2 + (i * 7) % 9));
  write_examples(dir.file(""), {all});
  FinetuneLoaderOptions o;
  o.B = 3;
  o.T = 9;
  FinetuneLoader full(dir.file("train_*.bin"), o);
  o.trim = true;
  FinetuneLoader trim(dir.file("train_*.bin"), o);
  std::vector<int32_t> tf(27), gf(27), tt(27), gt(27);
  for (int64_t b = 0; b < full.batches_per_epoch(); ++b) {
    const int64_t nf = full.next_batch(tf.data(), gf.data());
    EXPECT_EQ(trim.next_batch(tt.data(), gt.data()), nf);
    const int T = trim.last_batch_T();
    int longest = 1;  // pairs of the batch's longest example: its length - 1
    for (int64_t e : trim.last_batch_examples())
      if (e >= 0) longest = std::max(longest, 1 + (static_cast<int>(e) * 7) % 9);
    EXPECT_EQ(T, longest) << "batch " << b;
    EXPECT_EQ(full.last_batch_T(), 9);
    for (int r = 0; r < 3; ++r) {
      for (int t = 0; t < 9; ++t) {
        if (t < T) {
          EXPECT_EQ(tt[r * T + t], tf[r * 9 + t]);
          EXPECT_EQ(gt[r * T + t], gf[r * 9 + t]);
        } else {
          EXPECT_EQ(gf[r * 9 + t], -1) << "a target was trimmed away";
        }
      }
    }
  }
  o.group_by_length = true;
  o.shuffle = true;
  o.seed = 5;
  FinetuneLoader grouped(dir.file("train_*.bin"), o);
  std::multiset<int64_t> seen;
  int64_t positions = 0;
  for (int64_t b = 0; b < grouped.batches_per_epoch(); ++b) {
    grouped.next_batch(tt.data(), gt.data());
    positions += grouped.last_batch_T();
    for (int64_t e : grouped.last_batch_examples())
      if (e >= 0) seen.insert(e);
  }
  EXPECT_EQ(seen.size(), 23u);
  EXPECT_EQ(std::set<int64_t>(seen.begin(), seen.end()).size(), 23u);
  // The fewest row positions: the sorted lengths in batches of 3, each costing its longest.
  std::vector<int> pairs;
  for (int i = 0; i < 23; ++i) pairs.push_back(1 + (i * 7) % 9);
  std::sort(pairs.rbegin(), pairs.rend());
  int64_t least = 0;
  for (size_t i = 0; i < pairs.size(); i += 3) least += pairs[i];
  EXPECT_EQ(positions, least);
  FinetuneLoader a(dir.file("train_*.bin"), o), c(dir.file("train_*.bin"), o);
  std::vector<int32_t> ta(27), ga(27), tc(27), gc(27);
  for (int i = 0; i < 10; ++i) a.next_batch(ta.data(), ga.data());
  c.set_state(a.state());
  for (int i = 0; i < 20; ++i) {
    a.next_batch(ta.data(), ga.data());
    c.next_batch(tc.data(), gc.data());
    ASSERT_EQ(a.last_batch_T(), c.last_batch_T());
    const size_t n = 3 * static_cast<size_t>(a.last_batch_T());
    ASSERT_EQ(std::vector<int32_t>(ta.begin(), ta.begin() + n),
              std::vector<int32_t>(tc.begin(), tc.begin() + n));
  }
  o.layout = FinetuneLayout::kPacked;
  EXPECT_NE(error_of([&] { FinetuneLoader l(dir.file("train_*.bin"), o); }).find("padded layout"),
            std::string::npos);
}

// ---- the shared data sets -----------------------------------------------------------------------

TEST(SharedData, EveryImporterReadsItsDataSet) {
  if (!fs::exists(kData / "sst2")) GTEST_SKIP() << "no " << kData;
  struct Case {
    FinetuneTask task;
    ExampleFormat format;
    std::vector<std::string> inputs;
    size_t examples;
  };
  std::vector<Case> cases = {
      {FinetuneTask::kClassify, ExampleFormat::kSst2, {"sst2/dev.tsv"}, 872},
      {FinetuneTask::kClassify,
       ExampleFormat::kUci,
       {"uci_sentiment/imdb_labelled.txt", "uci_sentiment/yelp_labelled.txt"},
       2000},
      {FinetuneTask::kSft, ExampleFormat::kGsm8k, {"gsm8k/test.jsonl"}, 1319},
      {FinetuneTask::kSft, ExampleFormat::kSeedTasks, {"instructions/seed_tasks.jsonl"}, 175},
      {FinetuneTask::kSft,
       ExampleFormat::kDialogsum,
       {"dialogsum/dialogsum.dev.jsonl", "dialogsum/dialogsum.test.jsonl"},
       1000},
  };
  if (gzip_supported())
    cases.push_back({FinetuneTask::kSft, ExampleFormat::kMulti30k, {"multi30k/val.en.gz"}, 1014});
  for (const Case& c : cases) {
    FinetuneOptions o;
    o.task = c.task;
    o.format = c.format;
    if (c.task == FinetuneTask::kClassify) o.label_words = {"negative", "positive"};
    std::vector<std::string> files;
    for (const std::string& f : c.inputs) files.push_back((kData / f).string());
    const std::vector<TextExample> ex = read_examples(o, files);
    EXPECT_EQ(ex.size(), c.examples) << c.inputs[0];
    for (const TextExample& e : ex) {
      EXPECT_FALSE(e.prompt.empty());
      EXPECT_FALSE(e.completion.empty());
    }
  }
  FinetuneOptions o;
  o.format = ExampleFormat::kMulti30k;
  if (gzip_supported()) {
    const std::vector<TextExample> ex =
        read_examples(o, {(kData / "multi30k" / "train.en.gz").string()});
    ASSERT_EQ(ex.size(), 29000u);
    EXPECT_EQ(ex[0].prompt,
              "English: Two young, White males are outside near many bushes.\nGerman:");
    EXPECT_EQ(ex[0].completion,
              " Zwei junge weiße Männer sind im Freien in der Nähe vieler Büsche.");
    TempDir dir;
    const std::string gz = slurp((kData / "multi30k" / "val.en.gz").string());
    dir.write("cut.en.gz", gz.substr(0, gz.size() / 2));
    dir.write("cut.de.gz", slurp((kData / "multi30k" / "val.de.gz").string()));
    EXPECT_NE(error_of([&] {
                read_examples(o, {dir.file("cut.en.gz")});
              }).find("cut.en.gz: gzip stream is truncated"),
              std::string::npos);
  }
}

}  // namespace
}  // namespace gpt
