// Token shards (llm.c's formats: 256 int32 header, uint16 or uint32 tokens) and the fine-tuning
// mask shards beside them. The first input byte picks what is read: bit 0 a mask shard instead of
// a token shard, bits 1-2 the vocabulary the tokens are checked against.
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "data/finetune.h"
#include "data/shard.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  gpt::fuzz::clear_scratch();
  const uint8_t mode = data[0];
  const std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  if (mode & 1) {
    const std::string path = gpt::fuzz::write_scratch("train_000000.mask", bytes);
    const int64_t expected = (mode & 2) ? -1 : 64;
    GPT_FUZZ_EXPECT_CLEAN("fuzz_shard", path, { gpt::read_mask_shard(path, expected); });
    return 0;
  }
  static const int kVocabs[4] = {0, 256, 50257, 70000};
  const int vocab = kVocabs[(mode >> 1) & 3];
  const std::string path = gpt::fuzz::write_scratch("train_000000.bin", bytes);
  GPT_FUZZ_EXPECT_CLEAN("fuzz_shard", path, {
    const gpt::TokenShard shard(path, vocab);
    if (shard.size() > 0) {
      std::vector<int32_t> tokens(static_cast<size_t>(shard.size()));
      shard.read(0, shard.size(), tokens.data());
      const int32_t top = shard.max_token();
      for (int32_t t : tokens)
        if (t < 0 || t > top || (vocab > 0 && t >= vocab)) {
          std::fprintf(stderr, "fuzz_shard: FINDING: token %d outside [0, max %d] (vocab %d)\n", t,
                       top, vocab);
          std::abort();
        }
    }
  });
  return 0;
}
