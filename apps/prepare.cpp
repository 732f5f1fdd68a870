// gpt-prepare: text -> token shards for gpt-pretrain, and fine-tuning examples -> token shards
// with loss masks. A thin command line over data/prepare.h and data/finetune.h; docs/data.md
// describes every format and shows a command for each data set in ../shared/data.
//
//   gpt-prepare --input input.txt --out data/ts                                  # bytes tokenizer
//   gpt-prepare --train-tokenizer --vocab-size 4096 --input input.txt --out data/ts
//   gpt-prepare --tokenizer gpt2 --input 'books/*.txt' --split-docs blank-lines --out data/books
//   gpt-prepare --task sft --format gsm8k --tokenizer gpt2 --input train.jsonl --out data/gsm8k
//   gpt-prepare --task classify --format sst2 --label-words negative,positive --input train.tsv ...
//   gpt-prepare --task sft --format chat --tokenizer MODEL_DIR --input chats.jsonl --out data/chat
//     (conversations {"messages": [...]}, rendered with the model's chat template; the loss is on
//     the assistant turns only: data/chat_template.h)
//
// Errors are one line, `gpt-prepare: error: <file>:<line>: <what>`, with a non-zero exit, and
// nothing is written into --out unless everything was read and tokenized.
#include "data/prepare.h"
#include "apps/options.h"

#include <omp.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>
#include <vector>

#include "data/finetune.h"

namespace {

struct Flags {
  std::vector<std::string> inputs;
  std::string out;
  std::string task = "pretrain";
  std::string format;
  std::string field = "text";
  std::string split_docs = "file";
  std::string tokenizer = "bytes";
  bool train_tokenizer = false;
  int vocab_size = 0;
  double val_fraction = 0.1;
  int64_t val_docs = 0;
  int64_t shard_tokens = 100'000'000;
  int threads = 0;
  std::string progress = "auto";
  std::string label_words;
  int num_classes = 0;
  std::string source_lang = "en", target_lang = "de";
  int seq_len = 0;
  bool truncate = false;
  bool apply_chat_template = false;
};

void add_flags(CLI::App& app, Flags& f) {
  app.add_option("--input", f.inputs,
                 "input files or globs (quote globs), repeatable; read in the order given, glob "
                 "matches sorted")
      ->required()
      ->expected(1, -1);
  app.add_option(
         "--out", f.out,
         "output directory: train_NNNNNN.bin, val_NNNNNN.bin (+ .mask for fine-tuning), meta.json, "
         "tokenizer/ (BPE)")
      ->required();
  app.add_option("--task", f.task,
                 "pretrain: documents -> one token stream; sft: prompt/completion examples with "
                 "the loss on "
                 "the completion; classify: text + label")
      ->capture_default_str()
      ->check(CLI::IsMember({"pretrain", "sft", "classify"}));
  app.add_option(
      "--format", f.format,
      "input format. pretrain: text (default) or jsonl. sft: jsonl (default), gsm8k, seed-tasks, "
      "dialogsum, multi30k, chat (conversations {\"messages\": [{role, content}]}, also read by "
      "jsonl). classify: jsonl (default), sst2, uci");
  app.add_flag("--apply-chat-template", f.apply_chat_template,
               "sft: render every prompt/completion as the conversation [user: prompt, assistant: "
               "completion] with the chat template of --tokenizer DIR");
  app.add_option("--field", f.field,
                 "JSONL field holding the text (pretrain, and classify with --format jsonl)")
      ->capture_default_str();
  app.add_option(
         "--split-docs", f.split_docs,
         "text inputs: file = each file is one document; blank-lines = documents are separated by "
         "blank lines")
      ->capture_default_str()
      ->check(CLI::IsMember({"file", "blank-lines"}));
  app.add_option(
         "--tokenizer", f.tokenizer,
         "bytes (256 byte tokens + <|endoftext|> = 256), gpt2 (the real GPT-2 BPE; found as "
         "gpt-tokenize finds it), or a directory with tokenizer.json, vocab.json + merges.txt, or "
         "encoder.json + vocab.bpe")
      ->capture_default_str();
  app.add_flag(
      "--train-tokenizer", f.train_tokenizer,
      "train a byte-level BPE on the training split (<|endoftext|> reserved as the last id), save "
      "it into OUT/tokenizer/ and encode with it");
  app.add_option("--vocab-size", f.vocab_size,
                 "vocabulary size of --train-tokenizer (256 bytes + merges + 1)");
  app.add_option(
         "--val-fraction", f.val_fraction,
         "validation split: the last fraction of the text's bytes, cut at a line start (pretrain), "
         "or of the examples (sft, classify); 0: no validation")
      ->capture_default_str();
  app.add_option(
      "--val-docs", f.val_docs,
      "validation split: the last N documents (pretrain) or examples; overrides --val-fraction");
  app.add_option("--shard-tokens", f.shard_tokens, "at most this many tokens per shard")
      ->capture_default_str();
  app.add_option("--threads", f.threads,
                 "tokenizer threads (0: OMP_NUM_THREADS or all cores); the output is the same for "
                 "any count")
      ->capture_default_str();
  app.add_option(
      "--progress", f.progress,
      "progress on stderr: auto (line on a terminal, else plain), line (one line redrawn in "
      "place) or plain (a line every 10 s, and the last when it took over 2 s)");
}

// The flags of --task sft and classify only.
void add_finetune_flags(CLI::App& app, Flags& f) {
  app.add_option(
      "--label-words", f.label_words,
      "classify: comma-separated words for labels 0, 1, ... (\"negative,positive\"); the target "
      "is the word after \"<text>\\nLabel:\". Without it: class ids for a class head");
  app.add_option("--num-classes", f.num_classes,
                 "classify without --label-words: labels are class ids in [0, K) (default 2)");
  app.add_option("--source-lang", f.source_lang, "multi30k: the language of the --input files")
      ->capture_default_str();
  app.add_option("--target-lang", f.target_lang,
                 "multi30k: the language of the files beside them (the completion)")
      ->capture_default_str();
  app.add_option(
      "--seq-len", f.seq_len,
      "sft/classify: every example must fit a row of this many positions (error naming the "
      "example otherwise); 0: no check");
  app.add_flag("--truncate", f.truncate,
               "with --seq-len: cut long examples to fit instead of failing");
}

gpt::TokenizerSpec tokenizer_spec(const Flags& f) {
  gpt::TokenizerSpec spec;
  spec.name = f.tokenizer;
  spec.train = f.train_tokenizer;
  spec.vocab_size = f.vocab_size;
  return spec;
}

void require_unset(bool set, const char* flag, const std::string& task) {
  if (set) throw std::invalid_argument(std::string(flag) + " does not apply to --task " + task);
}

int threads_used(const Flags& f) {
  return f.threads > 0 ? f.threads : omp_get_max_threads();
}

int run_pretrain(const Flags& f, gpt::ProgressMode progress) {
  const bool fine_tuning_flags = !f.label_words.empty() || f.num_classes != 0 || f.seq_len != 0 ||
                                 f.truncate || f.apply_chat_template;
  require_unset(fine_tuning_flags,
                "--label-words/--num-classes/--seq-len/--truncate/--apply-chat-template",
                "pretrain");
  gpt::PrepareOptions o;
  if (f.format.empty() || f.format == "text") {
    o.format = gpt::InputFormat::kText;
  } else if (f.format == "jsonl") {
    o.format = gpt::InputFormat::kJsonl;
    require_unset(f.split_docs != "file", "--split-docs",
                  "pretrain --format jsonl (one document per line)");
  } else {
    throw std::invalid_argument(
        "--format '" + f.format +
        "' is not a pretraining format (text or jsonl; the others are for --task sft|classify)");
  }
  o.inputs = f.inputs;
  o.out = f.out;
  o.split =
      f.split_docs == "file" ? gpt::DocumentSplit::kWholeFile : gpt::DocumentSplit::kBlankLines;
  o.field = f.field;
  o.tokenizer = tokenizer_spec(f);
  o.val_fraction = f.val_fraction;
  o.val_docs = f.val_docs;
  o.shard_tokens = f.shard_tokens;
  o.threads = f.threads;
  o.progress = progress;
  const gpt::PrepareResult r = gpt::prepare_pretraining(o);
  if (f.train_tokenizer)
    std::fprintf(stderr, "gpt-prepare: trained a %d-token BPE in %.2fs\n", r.vocab_size,
                 r.tokenizer_seconds);
  std::fprintf(
      stderr,
      "gpt-prepare: %lld documents, %lld bytes -> %lld train + %lld val tokens (vocab %d, %.2f "
      "bytes/token) "
      "in %zu shard(s) under %s; tokenized at %.2f MB/s on %d thread(s)\n",
      static_cast<long long>(r.documents), static_cast<long long>(r.input_bytes),
      static_cast<long long>(r.train_tokens), static_cast<long long>(r.val_tokens), r.vocab_size,
      static_cast<double>(r.input_bytes) / static_cast<double>(r.train_tokens + r.val_tokens),
      r.shards.size(), f.out.c_str(),
      r.tokenize_seconds > 0 ? static_cast<double>(r.input_bytes) / 1e6 / r.tokenize_seconds : 0.0,
      threads_used(f));
  return 0;
}

int run_finetune(const Flags& f, gpt::ProgressMode progress) {
  require_unset(f.split_docs != "file", "--split-docs", f.task);
  gpt::FinetuneOptions o;
  o.task = f.task == "sft" ? gpt::FinetuneTask::kSft : gpt::FinetuneTask::kClassify;
  o.format = gpt::parse_example_format(f.format.empty() ? "jsonl" : f.format);
  o.inputs = f.inputs;
  o.out = f.out;
  o.field = f.field;
  if (!f.label_words.empty()) o.label_words = gpt::split_commas(f.label_words);
  o.num_classes = f.num_classes;
  o.source_lang = f.source_lang;
  o.target_lang = f.target_lang;
  o.tokenizer = tokenizer_spec(f);
  o.val_fraction = f.val_fraction;
  o.val_docs = f.val_docs;
  o.shard_tokens = f.shard_tokens;
  o.seq_len = f.seq_len;
  o.truncate = f.truncate;
  o.apply_chat_template = f.apply_chat_template;
  o.threads = f.threads;
  o.progress = progress;
  const gpt::FinetuneResult r = gpt::prepare_finetune(o);
  std::fprintf(stderr,
               "gpt-prepare: %lld train + %lld val examples -> %lld + %lld tokens (%lld + %lld "
               "with loss), longest "
               "example %lld tokens%s, vocab %d, in %zu file(s) under %s\n",
               static_cast<long long>(r.train_examples), static_cast<long long>(r.val_examples),
               static_cast<long long>(r.train_tokens), static_cast<long long>(r.val_tokens),
               static_cast<long long>(r.train_targets), static_cast<long long>(r.val_targets),
               static_cast<long long>(r.max_example_tokens),
               r.truncated > 0 ? (", " + std::to_string(r.truncated) + " truncated").c_str() : "",
               r.vocab_size, r.shards.size(), f.out.c_str());
  return 0;
}

int run(int argc, char** argv) {
  CLI::App app{
      "gpt-prepare: tokenize text into token shards (llm.c format) for gpt-pretrain, or "
      "fine-tuning examples "
      "into token shards with loss masks. Formats, templates and examples: docs/data.md."};
  Flags f;
  add_flags(app, f);
  add_finetune_flags(app, f);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    std::string what = e.what();
    for (char& c : what)
      if (c == '\n') c = ' ';
    std::fprintf(stderr, "gpt-prepare: error: %s (see --help)\n", what.c_str());
    return 2;
  }
  if (f.threads < 0) throw std::invalid_argument("--threads must be >= 0");
  const gpt::ProgressMode progress = gpt::progress_mode_from_name(f.progress, "--progress");
  return f.task == "pretrain" ? run_pretrain(f, progress) : run_finetune(f, progress);
}

}  // namespace

int main(int argc, char** argv) {
  return gpt::run_app("gpt-prepare", run, argc, argv);
}
