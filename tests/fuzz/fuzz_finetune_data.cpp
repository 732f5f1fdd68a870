// The fine-tuning readers (data/finetune.h, read_examples): JSONL (text/label or
// prompt/completion records), GSM8K, self-instruct seed tasks, DialogSum, Multi30k's aligned
// .en/.de lines, SST-2 and UCI TSV. The first input byte picks the format (bits 0-2), the task
// (bit 3: classify) and, for classification, label words or a class count (bit 4); the rest is a
// multi-file archive (fuzz_common.h) of the input files, read in name order. Every example read
// must point at a line of a file it came from.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

#include "data/finetune.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  gpt::fuzz::clear_scratch();
  static const char* kFormats[] = {"jsonl",    "gsm8k", "seed-tasks", "dialogsum",
                                   "multi30k", "sst2",  "uci",        "jsonl"};
  const uint8_t mode = data[0];
  gpt::FinetuneOptions o;
  o.format = gpt::parse_example_format(kFormats[mode & 7]);
  o.task = (mode & 8) ? gpt::FinetuneTask::kClassify : gpt::FinetuneTask::kSft;
  if (o.task == gpt::FinetuneTask::kClassify) {
    if (mode & 16)
      o.label_words = {"negative", "positive"};
    else
      o.num_classes = 3;
  }
  std::vector<std::string> paths;
  for (const auto& [name, bytes] :
       gpt::fuzz::unpack(std::string_view(reinterpret_cast<const char*>(data + 1), size - 1))) {
    const std::string path = gpt::fuzz::write_scratch("data/" + name, bytes);
    if (!path.empty()) paths.push_back(path);
  }
  if (paths.empty()) return 0;
  std::sort(paths.begin(), paths.end());
  paths.erase(std::unique(paths.begin(), paths.end()), paths.end());
  GPT_FUZZ_EXPECT_CLEAN("fuzz_finetune_data", gpt::fuzz::scratch_dir(), {
    std::vector<gpt::TextExample> examples;
    try {
      examples = gpt::read_examples(o, paths);
    } catch (const std::invalid_argument& e) {  // settings that do not fit (sst2 for sft, ...)
      if (std::string(e.what()).rfind("--", 0) == 0) return 0;
      throw;
    }
    for (const gpt::TextExample& e : examples) {
      const bool label_ok = o.task == gpt::FinetuneTask::kSft ||
                            (e.label >= 0 && e.label < (o.label_words.empty() ? o.num_classes : 2));
      if (e.input >= paths.size() || e.line < 1 || !label_ok) {
        std::fprintf(stderr,
                     "fuzz_finetune_data: FINDING: example from input %zu line %ld, label %d\n",
                     e.input, static_cast<long>(e.line), e.label);
        std::abort();
      }
    }
  });
  return 0;
}
