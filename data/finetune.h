// Fine-tuning data sets: examples with a loss mask, stored as token shards plus mask shards.
//
// An example is a prompt (context, no loss) and a completion (the loss is on its tokens and on the
// closing <|endoftext|>):
//
//     tokens  <|endoftext|>  prompt ...  completion ...  <|endoftext|>
//     loss         0           0 ... 0     1 ... 1            1
//
// The leading <|endoftext|> is the same document start that pretraining puts before every document.
// For a classification head (no label words) the example is <|endoftext|> text <|endoftext|> with
// no loss flags and a class id; the loader puts the class id as the one target of the row, at the
// last token, which is where GptModel's class head reads (models/gpt.h).
//
// Formats (gpt-prepare --format) and the text each becomes (docs/data.md shows examples):
//   jsonl       sft: {"prompt","completion"} as is, or {"instruction","input"?,"output"} with the
//               instruction template; classify: {"text","label"} (--field names the text field;
//               the label is a class id or one of the label words)
//   gsm8k       {"question","answer"}:  "Question: <q>\nAnswer:" -> " <answer>"
//   seed-tasks  {"instruction","instances":[{"input","output"}]}: one example per instance, with
//   the
//               instruction template
//   dialogsum   {"dialogue","summary"} (or "summary1"): "Summarize:\n<dialogue>\nSummary:" -> "
//   <summary>" multi30k    aligned line files NAME.en(.gz) + NAME.de(.gz):  "English:
//   <en>\nGerman:" -> " <de>" sst2        TSV label<TAB>sentence with a header line (classify) uci
//   TSV sentence<TAB>0|1 (classify)
//   chat        {"messages": [{"role", "content"}, ...]} (TRL's and torchtune's conversation
//               format; also recognised under --format jsonl by its "messages" field): rendered
//               with the model's chat template (data/chat_template.h; --tokenizer names the model
//               directory), the loss on every assistant turn's content and end-of-turn token only
//   With apply_chat_template, the prompt/completion of every other sft format becomes the
//   conversation [user: prompt, assistant: completion] and is rendered the same way.
// A chat example's tokens are the template's rendering as is (its own start, e.g. Llama 3's
// <|begin_of_text|>; no <|endoftext|> is added around it).
// Instruction template (Alpaca's, without its preamble):
//   "### Instruction:\n<instruction>\n\n### Input:\n<input>\n\n### Response:\n" -> "<output>"
//   and without an input: "### Instruction:\n<instruction>\n\n### Response:\n" -> "<output>"
// Classification with label words: "<text>\nLabel:" -> " <word>".
//
// Mask shard (one per token shard: train_000000.bin has train_000000.mask; the name does not match
// the train_*.bin glob, so pretraining tools never mistake it for a token shard):
//   header  256 int32: [0] magic 20241118, [1] version 1, [2] tokens (= the token shard's),
//           [3] examples, [4] classes (0: language-model targets), rest zero
//   flags   one uint8 per token: bit 0 (1) = loss on this token (it is a target), bit 1 (2) = an
//           example starts here; other bits zero
//   labels  when classes > 0: one int32 class id per example, in order
// Every example lies inside one shard pair.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/chat_template.h"
#include "data/prepare.h"

namespace gpt {

// ---- mask shards --------------------------------------------------------------------------------

constexpr int32_t kMaskMagic = 20241118;
constexpr int32_t kMaskVersion = 1;
constexpr uint8_t kMaskLoss = 1;
constexpr uint8_t kMaskExampleStart = 2;

struct MaskShard {
  std::vector<uint8_t> flags;   // per token
  std::vector<int32_t> labels;  // per example, when num_classes > 0
  int64_t num_examples = 0;
  int num_classes = 0;
};

// "dir/train_000000.bin" -> "dir/train_000000.mask".
std::string mask_path_for(const std::string& token_shard_path);

// Writes a mask shard atomically (temporary file, fsync, rename). num_examples is the number of
// example-start flags; labels must hold one class id in [0, num_classes) per example when
// num_classes > 0, and be empty otherwise. Throws naming the file.
void write_mask_shard(const std::string& path, const std::vector<uint8_t>& flags,
                      const std::vector<int32_t>& labels, int num_classes);

// Reads and validates a mask shard (magic, version, sizes, flag bits, the first token starts an
// example, the example count, class ids in range); expected_tokens >= 0 must equal its token
// count. Throws std::runtime_error naming the file and the problem.
MaskShard read_mask_shard(const std::string& path, int64_t expected_tokens = -1);

// ---- examples -----------------------------------------------------------------------------------

enum class FinetuneTask { kSft, kClassify };
enum class ExampleFormat { kJsonl, kGsm8k, kSeedTasks, kDialogsum, kMulti30k, kSst2, kUci, kChat };

// "jsonl", "gsm8k", "seed-tasks", "dialogsum", "multi30k", "sst2", "uci", "chat"; throws
// std::invalid_argument listing the names for anything else.
ExampleFormat parse_example_format(const std::string& name);
const char* example_format_name(ExampleFormat format);

// One example as text, before tokenization.
struct TextExample {
  std::string prompt;                      // no loss
  std::string completion;                  // loss (empty for a class-head example)
  int32_t label = -1;                      // class id (classification), else -1
  std::vector<ChatMessage> messages = {};  // a conversation (chat), else empty
  size_t input = 0;                        // index into the input files
  int64_t line = 0;                        // line in that file (1-based)
};

// The instruction template applied to (instruction, input): the prompt; output is the completion.
std::string instruction_prompt(const std::string& instruction, const std::string& input);

struct FinetuneOptions {
  FinetuneTask task = FinetuneTask::kSft;
  ExampleFormat format = ExampleFormat::kJsonl;
  std::vector<std::string> inputs;  // files or globs
  std::string out;
  std::string field = "text";            // classify jsonl: the text field
  std::vector<std::string> label_words;  // classify: label i is word i; empty: class head
  int num_classes = 0;  // classify without label words: labels in [0, K); 0 means 2
  std::string source_lang = "en", target_lang = "de";  // multi30k
  TokenizerSpec tokenizer;
  double val_fraction = 0.1;  // the last fraction of the examples (used when val_docs == 0)
  int64_t val_docs = 0;       // the last N examples
  int64_t shard_tokens = 100'000'000;
  int seq_len = 0;                   // > 0: every example must fit a row of seq_len (see below)
  bool truncate = false;             // with seq_len: cut long examples instead of failing
  bool apply_chat_template = false;  // sft: render prompt/completion through the chat template
  int threads = 0;
  ProgressMode progress = ProgressMode::none;
};

// Reads the examples of the inputs (files, already expanded) in the given format. Throws
// InputError naming file:line for malformed records, missing fields, wrong types and labels outside
// the label set (conversations: naming the field, e.g. messages[2].role, for an unknown role or
// content that is not a string, and refusing a conversation without an assistant turn), or
// std::invalid_argument when the format does not fit the task.
std::vector<TextExample> read_examples(const FinetuneOptions& options,
                                       const std::vector<std::string>& files);

// One example as tokens.
struct TokenExample {
  std::vector<int32_t> tokens;
  std::vector<uint8_t> loss;  // 1 where the token is a target
  int32_t label = -1;
};

// <|endoftext|> prompt completion <|endoftext|> with the loss on the completion and the final
// <|endoftext|>; with class_head, <|endoftext|> prompt <|endoftext|>, no loss, and the label.
TokenExample make_token_example(const std::vector<int32_t>& prompt_ids,
                                const std::vector<int32_t>& completion_ids, int32_t label,
                                int32_t eot, bool class_head);

// Row length an example needs: tokens - 1 (inputs, shifted targets) for a language-model example,
// tokens for a class-head example.
int64_t example_row_length(int64_t num_tokens, bool class_head);

// Cuts an example to a row of seq_len: the first seq_len + 1 tokens (language model), or the first
// seq_len - 1 tokens plus the final <|endoftext|> (class head). Returns false when it already fit.
bool truncate_example(TokenExample* example, int seq_len, bool class_head);

struct FinetuneResult {
  int64_t train_examples = 0, val_examples = 0;
  int64_t train_tokens = 0, val_tokens = 0;
  int64_t train_targets = 0, val_targets = 0;  // tokens with the loss flag (class head: examples)
  int64_t truncated = 0;
  int64_t max_example_tokens = 0;
  int vocab_size = 0;
  double tokenize_seconds = 0.0;
  std::vector<std::string> shards;  // token and mask shard names written into OUT
};

// Reads, splits (the last examples are validation), tokenizes and writes a fine-tuning data set:
// OUT/{train,val}_NNNNNN.bin + .mask, meta.json, tokenizer/ (BPE). Nothing is written when an
// input is bad. Throws as read_examples does, and InputError naming the example's file:line when
// it does not fit seq_len (without truncate).
FinetuneResult prepare_finetune(const FinetuneOptions& options);

}  // namespace gpt
