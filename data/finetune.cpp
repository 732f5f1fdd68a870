// Fine-tuning data sets: mask shards, examples as tokens, and prepare_finetune (data/finetune.h).
#include "data/finetune.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>

#include <omp.h>

#include "data/shard.h"
#include "engine/errors.h"
#include "engine/files.h"

namespace gpt {

// ---- mask shards --------------------------------------------------------------------------------

std::string mask_path_for(const std::string& token_shard_path) {
  const std::string ext = ".bin";
  if (token_shard_path.size() > ext.size() &&
      token_shard_path.compare(token_shard_path.size() - ext.size(), ext.size(), ext) == 0)
    return token_shard_path.substr(0, token_shard_path.size() - ext.size()) + ".mask";
  return token_shard_path + ".mask";
}

void write_mask_shard(const std::string& path, const std::vector<uint8_t>& flags,
                      const std::vector<int32_t>& labels, int num_classes) {
  if (flags.empty()) fail(path, "refusing to write an empty mask shard");
  if (flags.size() > static_cast<size_t>(INT32_MAX)) fail(path, "too many tokens for one shard");
  if (!(flags[0] & kMaskExampleStart)) fail(path, "the first token must start an example");
  int64_t examples = 0;
  for (uint8_t f : flags) {
    if (f & ~(kMaskLoss | kMaskExampleStart)) fail(path, "unknown flag bits");
    examples += (f & kMaskExampleStart) != 0;
  }
  if (num_classes < 0) fail(path, "negative number of classes");
  if (num_classes > 0) {
    if (static_cast<int64_t>(labels.size()) != examples)
      fail(path,
           std::to_string(labels.size()) + " labels for " + std::to_string(examples) + " examples");
    for (int32_t l : labels)
      if (l < 0 || l >= num_classes)
        fail(path,
             "class id " + std::to_string(l) + " outside [0, " + std::to_string(num_classes) + ")");
  } else if (!labels.empty()) {
    fail(path, "labels given without a number of classes");
  }
  std::vector<int32_t> header(kShardHeaderInts, 0);
  header[0] = kMaskMagic;
  header[1] = kMaskVersion;
  header[2] = static_cast<int32_t>(flags.size());
  header[3] = static_cast<int32_t>(examples);
  header[4] = num_classes;
  write_file_atomic(path, [&](AtomicFileWriter& out) {
    out.write(header.data(), header.size() * sizeof(int32_t));
    out.write(flags.data(), flags.size());
    out.write(labels.data(), labels.size() * sizeof(int32_t));
  });
}

MaskShard read_mask_shard(const std::string& path, int64_t expected_tokens) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, std::string("cannot open mask shard: ") + std::strerror(errno));
  std::vector<int32_t> header(kShardHeaderInts, 0);
  in.read(reinterpret_cast<char*>(header.data()),
          static_cast<std::streamsize>(header.size() * sizeof(int32_t)));
  if (in.gcount() != static_cast<std::streamsize>(header.size() * sizeof(int32_t)))
    fail(path, "not a mask shard: shorter than the 1024-byte header");
  if (header[0] != kMaskMagic)
    fail(path, "bad magic " + std::to_string(header[0]) + " (expected " +
                   std::to_string(kMaskMagic) + " for a mask shard)");
  if (header[1] != kMaskVersion)
    fail(path, "unsupported mask shard version " + std::to_string(header[1]) + " (expected 1)");
  const int64_t tokens = header[2], examples = header[3];
  MaskShard m;
  m.num_classes = header[4];
  m.num_examples = examples;
  if (tokens <= 0 || examples <= 0 || m.num_classes < 0)
    fail(path, "bad header: " + std::to_string(tokens) + " tokens, " + std::to_string(examples) +
                   " examples, " + std::to_string(m.num_classes) + " classes");
  if (expected_tokens >= 0 && tokens != expected_tokens)
    fail(path, "holds " + std::to_string(tokens) + " tokens but its token shard holds " +
                   std::to_string(expected_tokens));
  m.flags.resize(static_cast<size_t>(tokens));
  in.read(reinterpret_cast<char*>(m.flags.data()), static_cast<std::streamsize>(tokens));
  if (m.num_classes > 0) {
    m.labels.resize(static_cast<size_t>(examples));
    in.read(reinterpret_cast<char*>(m.labels.data()),
            static_cast<std::streamsize>(examples * sizeof(int32_t)));
  }
  if (!in) fail(path, "size mismatch: the file is shorter than its header says");
  if (in.peek() != std::char_traits<char>::eof())
    fail(path, "size mismatch: the file is longer than its header says");
  if (!(m.flags[0] & kMaskExampleStart)) fail(path, "the first token does not start an example");
  int64_t starts = 0;
  for (size_t i = 0; i < m.flags.size(); ++i) {
    if (m.flags[i] & ~(kMaskLoss | kMaskExampleStart))
      fail(path, "unknown flag bits at token " + std::to_string(i));
    starts += (m.flags[i] & kMaskExampleStart) != 0;
  }
  if (starts != examples)
    fail(path, "header says " + std::to_string(examples) + " examples but " +
                   std::to_string(starts) + " start flags are set");
  for (size_t i = 0; i < m.labels.size(); ++i)
    if (m.labels[i] < 0 || m.labels[i] >= m.num_classes)
      fail(path, "class id " + std::to_string(m.labels[i]) + " of example " + std::to_string(i) +
                     " outside [0, " + std::to_string(m.num_classes) + ")");
  return m;
}

// ---- examples -----------------------------------------------------------------------------------

TokenExample make_token_example(const std::vector<int32_t>& prompt_ids,
                                const std::vector<int32_t>& completion_ids, int32_t label,
                                int32_t eot, bool class_head) {
  TokenExample e;
  e.label = class_head ? label : -1;
  e.tokens.reserve(prompt_ids.size() + completion_ids.size() + 2);
  e.tokens.push_back(eot);
  e.tokens.insert(e.tokens.end(), prompt_ids.begin(), prompt_ids.end());
  e.loss.assign(e.tokens.size(), 0);
  if (!class_head) {
    e.tokens.insert(e.tokens.end(), completion_ids.begin(), completion_ids.end());
  }
  e.tokens.push_back(eot);
  e.loss.resize(e.tokens.size(), class_head ? 0 : 1);
  return e;
}

int64_t example_row_length(int64_t num_tokens, bool class_head) {
  return class_head ? num_tokens : num_tokens - 1;
}

bool truncate_example(TokenExample* e, int seq_len, bool class_head) {
  const int64_t n = static_cast<int64_t>(e->tokens.size());
  if (example_row_length(n, class_head) <= seq_len) return false;
  if (class_head) {
    const int32_t last = e->tokens.back();
    e->tokens.resize(static_cast<size_t>(std::max(seq_len - 1, 0)));
    e->tokens.push_back(last);
    e->loss.assign(e->tokens.size(), 0);
  } else {
    e->tokens.resize(static_cast<size_t>(seq_len) + 1);
    e->loss.resize(static_cast<size_t>(seq_len) + 1);
  }
  return true;
}

// ---- prepare ------------------------------------------------------------------------------------

namespace {

struct SplitOutput {
  std::vector<std::string> shards;
  int64_t tokens = 0, targets = 0;
};

// Packs whole examples into shard pairs of at most shard_tokens tokens (an example longer than that
// gets a shard of its own).
SplitOutput write_example_shards(const OutputStage& stage, const std::string& prefix,
                                 const std::vector<TokenExample>& examples, size_t first,
                                 size_t last, int64_t shard_tokens, int num_classes) {
  SplitOutput out;
  std::vector<int32_t> tokens, labels;
  std::vector<uint8_t> flags;
  int index = 0;
  auto flush = [&]() {
    if (tokens.empty()) return;
    char name[64];
    std::snprintf(name, sizeof(name), "%s_%06d.bin", prefix.c_str(), index++);
    write_token_shard(stage.path(name), tokens);
    const std::string mask = mask_path_for(name);
    write_mask_shard(stage.path(mask), flags, labels, num_classes);
    out.shards.push_back(name);
    out.shards.push_back(mask);
    tokens.clear();
    flags.clear();
    labels.clear();
  };
  for (size_t i = first; i < last; ++i) {
    const TokenExample& e = examples[i];
    if (!tokens.empty() && static_cast<int64_t>(tokens.size() + e.tokens.size()) > shard_tokens)
      flush();
    tokens.insert(tokens.end(), e.tokens.begin(), e.tokens.end());
    for (size_t k = 0; k < e.loss.size(); ++k) {
      flags.push_back(
          static_cast<uint8_t>((e.loss[k] ? kMaskLoss : 0) | (k == 0 ? kMaskExampleStart : 0)));
      out.targets += e.loss[k] != 0;
    }
    if (num_classes > 0) {
      labels.push_back(e.label);
      ++out.targets;  // the class id at the last token
    }
    out.tokens += static_cast<int64_t>(e.tokens.size());
  }
  flush();
  return out;
}

// The chat template of --tokenizer DIR (tokenizer_config.json). Throws std::invalid_argument
// saying what is missing.
ChatTemplate tokenizer_chat_template(const TokenizerSpec& spec) {
  const std::string dir = spec.name;
  if (spec.train || !std::filesystem::is_directory(dir))
    throw std::invalid_argument(
        "conversations need --tokenizer DIR, a model directory whose tokenizer_config.json has "
        "a chat template (got --tokenizer " +
        (spec.train ? std::string("with --train-tokenizer") : dir) + ")");
  const ModelChatConfig c = read_model_chat_config(dir);
  if (c.chat_template.empty())
    throw std::invalid_argument("conversations need a chat template, and " + dir +
                                "/tokenizer_config.json has no \"chat_template\"");
  return ChatTemplate::recognise(c.chat_template, c.bos_token);
}

}  // namespace

FinetuneResult prepare_finetune(const FinetuneOptions& o) {
  if (o.out.empty()) throw std::invalid_argument("--out is required");
  if (!(o.val_fraction >= 0.0 && o.val_fraction < 1.0))
    throw std::invalid_argument("--val-fraction must be in [0, 1)");
  if (o.val_docs < 0) throw std::invalid_argument("--val-docs must be >= 0");
  if (o.shard_tokens <= 0) throw std::invalid_argument("--shard-tokens must be positive");
  if (o.seq_len < 0) throw std::invalid_argument("--seq-len must be >= 0");
  if (o.truncate && o.seq_len == 0) throw std::invalid_argument("--truncate needs --seq-len");
  check_tokenizer_spec(o.tokenizer);
  const bool class_head = o.task == FinetuneTask::kClassify && o.label_words.empty();
  if (class_head && o.seq_len == 1)
    throw std::invalid_argument("--seq-len must be at least 2 for a class head");

  if (o.apply_chat_template && o.task != FinetuneTask::kSft)
    throw std::invalid_argument("--apply-chat-template is for --task sft");
  std::optional<ChatTemplate> chat;
  if (o.format == ExampleFormat::kChat || o.apply_chat_template)
    chat = tokenizer_chat_template(o.tokenizer);

  const std::vector<std::string> files = expand_inputs(o.inputs);
  std::vector<TextExample> texts = read_examples(o, files);
  const size_t n = texts.size();
  bool conversations = o.apply_chat_template;
  for (const TextExample& t : texts) conversations = conversations || !t.messages.empty();
  if (conversations && !chat) chat = tokenizer_chat_template(o.tokenizer);
  if (o.apply_chat_template) {
    for (TextExample& t : texts) {
      if (!t.messages.empty()) continue;
      t.messages = {{"user", t.prompt}, {"assistant", t.completion}};
      t.prompt.clear();
      t.completion.clear();
    }
  }
  if (n == 0) {
    std::string names;
    for (const std::string& f : files) names += (names.empty() ? "" : ", ") + f;
    throw std::invalid_argument("no examples in " + names);
  }
  size_t n_val = o.val_docs > 0
                     ? static_cast<size_t>(o.val_docs)
                     : static_cast<size_t>(std::floor(static_cast<double>(n) * o.val_fraction));
  if (n_val >= n)
    throw std::invalid_argument("the validation split (" + std::to_string(n_val) +
                                " examples) leaves no training examples (the inputs hold " +
                                std::to_string(n) + ")");
  const size_t n_train = n - n_val;

  // Two texts per example: prompt, completion. The tokenizer trains on the training examples only.
  std::vector<std::string_view> parts;
  parts.reserve(2 * n);
  for (const TextExample& t : texts) {
    parts.push_back(t.prompt);
    parts.push_back(t.completion);
  }
  const PrepareTokenizer tokenizer = make_tokenizer(
      o.tokenizer, std::vector<std::string_view>(parts.begin(), parts.begin() + 2 * n_train));
  if (conversations && tokenizer.bpe() == nullptr)
    throw std::invalid_argument(
        "conversations need a BPE tokenizer with the template's special "
        "tokens (--tokenizer DIR)");
  std::vector<std::vector<ChatSegment>> rendered(n);
  for (size_t i = 0; i < n; ++i)
    if (!texts[i].messages.empty()) rendered[i] = chat->render(texts[i].messages, false);
  int64_t text_bytes = 0, val_bytes = 0;
  for (size_t i = 0; i < n; ++i) {
    int64_t b = static_cast<int64_t>(texts[i].prompt.size() + texts[i].completion.size());
    for (const ChatSegment& seg : rendered[i]) b += static_cast<int64_t>(seg.text.size());
    text_bytes += b;
    if (i >= n_train) val_bytes += b;
  }
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::vector<int32_t>> ids;
  {
    Progress progress("tokenizing", text_bytes, o.progress);
    ids = encode_texts(tokenizer, parts, o.threads, &progress);
  }
  FinetuneResult r;
  r.tokenize_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  std::vector<TokenExample> examples(n);
  if (conversations) {
    // The rendered conversations: their own ids, trained on the assistant spans only.
    std::string error;
#pragma omp parallel for schedule(dynamic, 16) \
    num_threads(o.threads > 0 ? o.threads : omp_get_max_threads())
    for (int64_t i = 0; i < static_cast<int64_t>(n); ++i) {
      const size_t k = static_cast<size_t>(i);
      if (rendered[k].empty()) continue;
      try {
        ChatTokens c = encode_chat(*tokenizer.bpe(), rendered[k]);
        examples[k].tokens = std::move(c.ids);
        examples[k].loss = std::move(c.trained);
      } catch (const std::exception& e) {
#pragma omp critical
        if (error.empty()) error = e.what();
      }
    }
    if (!error.empty()) throw std::invalid_argument(error);
  }
  for (size_t i = 0; i < n; ++i) {
    if (rendered[i].empty())
      examples[i] = make_token_example(ids[2 * i], ids[2 * i + 1], texts[i].label,
                                       tokenizer.eot_token(), class_head);
    std::vector<int32_t>().swap(ids[2 * i]);
    std::vector<int32_t>().swap(ids[2 * i + 1]);
    const int64_t tokens = static_cast<int64_t>(examples[i].tokens.size());
    if (o.seq_len > 0 && example_row_length(tokens, class_head) > o.seq_len) {
      if (!o.truncate) {
        throw InputError(files[texts[i].input], texts[i].line,
                         "example " + std::to_string(i) + " has " + std::to_string(tokens) +
                             " tokens, more than a row of --seq-len " + std::to_string(o.seq_len) +
                             " holds (" + std::to_string(o.seq_len + (class_head ? 0 : 1)) +
                             " tokens); use --truncate or a larger --seq-len");
      }
      truncate_example(&examples[i], o.seq_len, class_head);
      ++r.truncated;
    }
    r.max_example_tokens =
        std::max<int64_t>(r.max_example_tokens, static_cast<int64_t>(examples[i].tokens.size()));
  }

  const int num_classes = o.task != FinetuneTask::kClassify ? 0
                          : !o.label_words.empty()          ? static_cast<int>(o.label_words.size())
                          : o.num_classes > 0               ? o.num_classes
                                                            : 2;
  OutputStage stage(o.out);
  const SplitOutput train = write_example_shards(stage, "train", examples, 0, n_train,
                                                 o.shard_tokens, class_head ? num_classes : 0);
  const SplitOutput val = write_example_shards(stage, "val", examples, n_train, n, o.shard_tokens,
                                               class_head ? num_classes : 0);
  r.train_examples = static_cast<int64_t>(n_train);
  r.val_examples = static_cast<int64_t>(n_val);
  r.train_tokens = train.tokens;
  r.val_tokens = val.tokens;
  r.train_targets = train.targets;
  r.val_targets = val.targets;
  r.vocab_size = tokenizer.vocab_size();
  r.shards = train.shards;
  r.shards.insert(r.shards.end(), val.shards.begin(), val.shards.end());

  nlohmann::ordered_json meta;
  meta["task"] = o.task == FinetuneTask::kSft ? "sft" : "classify";
  stage_tokenizer(stage, tokenizer, &meta);
  meta["format"] = example_format_name(o.format);
  if (conversations) {
    meta["chat_template"] = chat->name();
    meta["loss"] = "assistant turns: content and end-of-turn token (docs/data.md)";
  }
  meta["inputs"] = files;
  if (o.task == FinetuneTask::kClassify) {
    meta["classification"] =
        class_head ? "class head: the target is the class id at the last token"
                   : "label words: the target is the label word's tokens after the text";
    meta["num_classes"] = num_classes;
    if (!o.label_words.empty()) meta["label_words"] = o.label_words;
  }
  meta["mask_format"] =
      "NAME.mask beside NAME.bin: uint8 flags per token, bit 0 loss, bit 1 example start "
      "(docs/data.md)";
  meta["train_examples"] = r.train_examples;
  meta["val_examples"] = r.val_examples;
  meta["train_tokens"] = r.train_tokens;
  meta["val_tokens"] = r.val_tokens;
  meta["train_targets"] = r.train_targets;
  meta["val_targets"] = r.val_targets;
  meta["val_bytes"] = val_bytes;
  meta["max_example_tokens"] = r.max_example_tokens;
  if (o.seq_len > 0) {
    meta["seq_len"] = o.seq_len;
    meta["truncated_examples"] = r.truncated;
  }
  meta["shards"] = r.shards;
  stage.write_text("meta.json",
                   meta.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
  stage.commit();
  return r;
}

}  // namespace gpt
