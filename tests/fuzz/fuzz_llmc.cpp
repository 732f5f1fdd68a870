// llm.c's GPT-2 model file (.bin): the 256-int32 header (magic, version 3 fp32 / 5 bf16,
// max_seq_len, vocab, layers, heads, channels, padded vocab) and the parameter arrays it announces.
#include <cstdio>
#include <cstdlib>

#include "models/gpt_interop.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  gpt::fuzz::clear_scratch();
  const std::string path = gpt::fuzz::write_scratch(
      "gpt2_124M.bin", std::string_view(reinterpret_cast<const char*>(data), size));
  GPT_FUZZ_EXPECT_CLEAN("fuzz_llmc", path, {
    const gpt::GptWeights w = gpt::read_llmc_gpt2(path);
    for (int p = 0; p < gpt::kNumParams; ++p) {
      size_t n = 1;
      for (int64_t d : gpt::gpt_param_shape(w.config, static_cast<gpt::Param>(p)))
        n *= static_cast<size_t>(d);
      if (w.params[p].size() != n) {
        std::fprintf(stderr, "fuzz_llmc: FINDING: parameter %d has %zu values, its shape %zu\n", p,
                     w.params[p].size(), n);
        std::abort();
      }
    }
  });
  return 0;
}
