// Token shards (llm.c formats) and the loaders.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "data/loader.h"
#include "data/shard.h"
#include "data/text_input.h"
#include "data/tokenizer_finder.h"
#include "engine/files.h"
#include "tests/temp_dir.h"

namespace gpt {
namespace {

namespace fs = std::filesystem;

void write_raw(const std::string& path, const std::vector<int32_t>& header,
               const std::vector<uint16_t>& body) {
  std::ofstream out(path, std::ios::binary);
  std::vector<int32_t> h(256, 0);
  for (size_t i = 0; i < header.size(); ++i) h[i] = header[i];
  out.write(reinterpret_cast<const char*>(h.data()), 1024);
  out.write(reinterpret_cast<const char*>(body.data()),
            static_cast<std::streamsize>(body.size() * 2));
}

TEST(TokenShard, RoundTripU16AndU32) {
  TempDir dir;
  std::vector<int32_t> small{0, 1, 2, 65535, 7};
  write_token_shard(dir.file("a.bin"), small);
  TokenShard a(dir.file("a.bin"));
  EXPECT_EQ(a.bytes_per_token(), 2);
  ASSERT_EQ(a.size(), 5);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(a[i], small[i]);
  EXPECT_EQ(fs::file_size(dir.file("a.bin")), 1024u + 10u);

  std::vector<int32_t> big{0, 70000, 100257, 3};
  write_token_shard(dir.file("b.bin"), big);
  TokenShard b(dir.file("b.bin"));
  EXPECT_EQ(b.bytes_per_token(), 4);
  std::vector<int32_t> back(4);
  b.read(0, 4, back.data());
  EXPECT_EQ(back, big);
  EXPECT_FALSE(fs::exists(atomic_temp_path(dir.file("b.bin"))));
}

// A rejected shard must not keep its file mapped (found by fuzz_shard: each bad shard leaked one
// mapping, and a long run of them ran out of mappings).
TEST(TokenShard, ARejectedShardIsUnmapped) {
  TempDir dir;
  write_raw(dir.file("range.bin"), {20240520, 1, 3}, {1, 300, 3});
  auto mappings = [] {
    std::ifstream maps("/proc/self/maps");
    std::string line;
    int n = 0;
    while (std::getline(maps, line)) n += line.find("range.bin") != std::string::npos;
    return n;
  };
  for (int i = 0; i < 20; ++i)
    EXPECT_THROW(TokenShard(dir.file("range.bin"), 257), std::runtime_error);
  EXPECT_EQ(mappings(), 0);
  {
    const TokenShard kept(dir.file("range.bin"));
    EXPECT_EQ(mappings(), 1);
  }
  EXPECT_EQ(mappings(), 0);
}

TEST(TokenShard, RejectsBadMagicVersionSizeAndTokens) {
  TempDir dir;
  write_raw(dir.file("magic.bin"), {12345, 1, 3}, {1, 2, 3});
  std::string e = error_of([&] { TokenShard s(dir.file("magic.bin")); });
  EXPECT_NE(e.find("bad magic 12345"), std::string::npos) << e;
  EXPECT_NE(e.find("magic.bin"), std::string::npos) << e;

  write_raw(dir.file("version.bin"), {20240520, 2, 3}, {1, 2, 3});
  e = error_of([&] { TokenShard s(dir.file("version.bin")); });
  EXPECT_NE(e.find("unsupported version 2"), std::string::npos) << e;

  write_raw(dir.file("size.bin"), {20240520, 1, 5}, {1, 2, 3});
  e = error_of([&] { TokenShard s(dir.file("size.bin")); });
  EXPECT_NE(e.find("size mismatch"), std::string::npos) << e;

  { std::ofstream(dir.file("short.bin")) << "abc"; }
  e = error_of([&] { TokenShard s(dir.file("short.bin")); });
  EXPECT_NE(e.find("shorter than the 1024-byte header"), std::string::npos) << e;

  write_raw(dir.file("range.bin"), {20240520, 1, 3}, {1, 300, 3});
  EXPECT_NO_THROW(TokenShard(dir.file("range.bin"), 0));
  e = error_of([&] { TokenShard s(dir.file("range.bin"), 257); });
  EXPECT_NE(e.find("token 300 at position 1"), std::string::npos) << e;
  EXPECT_NE(e.find("vocab_size 257"), std::string::npos) << e;

  e = error_of([&] { TokenShard s(dir.file("missing.bin")); });
  EXPECT_NE(e.find("missing.bin"), std::string::npos) << e;
  e = error_of([&] { expand_glob(dir.file("nothing_*.bin")); });
  EXPECT_NE(e.find("no files match"), std::string::npos) << e;
}

// Every target of the training data is seen exactly once per epoch, across ranks, shuffled or not.
TEST(TrainLoader, EveryTargetOncePerEpochAcrossRanks) {
  TempDir dir;
  const int T = 4;
  // Two shards with distinct token values so that each (shard, position) is identifiable.
  std::vector<int32_t> s0, s1;
  for (int i = 0; i < 41; ++i) s0.push_back(i);         // 10 samples of 4+1
  for (int i = 0; i < 33; ++i) s1.push_back(1000 + i);  // 8 samples
  write_token_shard(dir.file("train_000000.bin"), s0);
  write_token_shard(dir.file("train_000001.bin"), s1);
  for (bool shuffle : {false, true}) {
    for (int world : {1, 2, 3}) {
      std::multiset<int32_t> seen;
      const int B = 2;
      for (int rank = 0; rank < world; ++rank) {
        TrainLoader loader(dir.path() + "/train_*.bin", B, T, 2000, shuffle, 42, rank, world);
        EXPECT_EQ(loader.num_samples(), 18);
        const int64_t per_rank = (18 - rank + world - 1) / world;  // samples this rank owns
        const int64_t batches = per_rank / B;
        std::vector<int32_t> tok(B * T), tgt(B * T);
        for (int64_t k = 0; k < batches; ++k) {
          loader.next_batch(tok.data(), tgt.data());
          for (int i = 0; i < B * T; ++i) {
            seen.insert(tgt[i]);
            EXPECT_EQ(tgt[i], tok[i] + 1);  // targets are the inputs shifted by one
          }
        }
        EXPECT_EQ(loader.state().epoch, 0);
      }
      // Ranks drop at most B-1 samples each at the epoch's end; what was read is unique.
      for (int32_t v : seen) EXPECT_EQ(seen.count(v), 1u) << "target " << v << " read twice";
      EXPECT_GE(seen.size(), static_cast<size_t>((18 - world * (B - 1)) * T));
    }
  }
}

TEST(TrainLoader, ShuffleIsDeterministicAndStateResumes) {
  TempDir dir;
  std::vector<int32_t> s;
  for (int i = 0; i < 401; ++i) s.push_back(i % 250);
  write_token_shard(dir.file("t.bin"), s);
  const int B = 3, T = 4;
  TrainLoader a(dir.file("t.bin"), B, T, 250, true, 7);
  TrainLoader b(dir.file("t.bin"), B, T, 250, true, 7);
  std::vector<int32_t> ta(B * T), ga(B * T), tb(B * T), gb(B * T);
  for (int k = 0; k < 50; ++k) {  // crosses epoch boundaries (100 samples, 33 batches per epoch)
    a.next_batch(ta.data(), ga.data());
    b.next_batch(tb.data(), gb.data());
    ASSERT_EQ(ta, tb);
  }
  EXPECT_EQ(a.state().epoch, 1);
  // Restore a third loader from a's state: it continues identically.
  TrainLoader c(dir.file("t.bin"), B, T, 250, true, 7);
  c.set_state(a.state());
  for (int k = 0; k < 40; ++k) {
    a.next_batch(ta.data(), ga.data());
    c.next_batch(tb.data(), gb.data());
    ASSERT_EQ(ta, tb);
    ASSERT_EQ(ga, gb);
  }
  // A different seed gives a different order.
  TrainLoader d(dir.file("t.bin"), B, T, 250, true, 8);
  TrainLoader e(dir.file("t.bin"), B, T, 250, true, 7);
  d.next_batch(ta.data(), ga.data());
  e.next_batch(tb.data(), gb.data());
  EXPECT_NE(ta, tb);
}

TEST(TrainLoader, TooLittleDataIsAClearError) {
  TempDir dir;
  write_token_shard(dir.file("t.bin"), std::vector<int32_t>(10, 1));
  const std::string e = error_of([&] { TrainLoader l(dir.file("t.bin"), 4, 8, 10, false, 1); });
  EXPECT_NE(e.find("fewer than one batch"), std::string::npos) << e;
}

TEST(ValidationSet, ScoresEveryTokenExactlyOnce) {
  TempDir dir;
  std::vector<int32_t> s;
  for (int i = 0; i < 23; ++i) s.push_back(i);
  write_token_shard(dir.file("v.bin"), s);
  const int B = 2, T = 5;
  ValidationSet val(dir.file("v.bin"), B, T, 100);
  EXPECT_EQ(val.num_targets(), 22);
  std::vector<int32_t> tok(B * T), tgt(B * T);
  std::multiset<int32_t> seen;
  int64_t total = 0;
  for (int64_t i = 0; i < val.num_batches(); ++i) {
    total += val.batch(i, tok.data(), tgt.data());
    for (int j = 0; j < B * T; ++j)
      if (tgt[j] >= 0) {
        seen.insert(tgt[j]);
        EXPECT_EQ(tgt[j], tok[j] + 1);
      }
  }
  EXPECT_EQ(total, 22);
  EXPECT_EQ(seen.size(), 22u);
  for (int i = 1; i < 23; ++i) EXPECT_EQ(seen.count(i), 1u);
}

TEST(TextInput, SplitsCommaLists) {
  EXPECT_EQ(split_commas("negative, positive"), (std::vector<std::string>{"negative", "positive"}));
  EXPECT_EQ(split_commas("a,\tb ,"), (std::vector<std::string>{"a", "b", ""}));
  EXPECT_EQ(split_commas(""), (std::vector<std::string>{""}));
}

// The tokenizer beside a model or data set: tokenizer.json there or in tokenizer/, else a meta.json
// naming one; nothing found is an error naming the directory.
TEST(FindTokenizer, LooksBesideTheModelOrData) {
  EXPECT_EQ(find_tokenizer("bytes", "").kind(), "bytes");
  EXPECT_THROW(find_tokenizer("", ""), std::invalid_argument);
  TempDir dir;
  const std::string hf = std::string(GPT_SOURCE_DIR) + "/tests/fixtures/hub/qwen2";
  EXPECT_EQ(find_tokenizer("", hf).source(), hf);
  std::filesystem::create_directories(dir.file("run/tokenizer"));
  std::filesystem::copy_file(hf + "/tokenizer.json", dir.file("run/tokenizer/tokenizer.json"));
  const PrepareTokenizer nested = find_tokenizer("", dir.file("run"));
  EXPECT_EQ(nested.kind(), "path");
  EXPECT_EQ(nested.source(), dir.file("run/tokenizer"));
  EXPECT_EQ(find_tokenizer("", dir.file("run/tokenizer/tokenizer.json")).source(),
            dir.file("run/tokenizer"));  // a file: its directory
  std::filesystem::create_directories(dir.file("data"));
  std::ofstream(dir.file("data/meta.json")) << R"({"tokenizer": "bytes"})";
  EXPECT_EQ(find_tokenizer("", dir.file("data")).kind(), "bytes");
  std::filesystem::create_directories(dir.file("empty"));
  EXPECT_NE(error_of([&] { find_tokenizer("", dir.file("empty")); }).find(dir.file("empty")),
            std::string::npos);
}

}  // namespace
}  // namespace gpt
