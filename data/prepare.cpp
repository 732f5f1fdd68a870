#include "data/prepare.h"

#include <omp.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <regex>

#include "data/bpe_trainer.h"
#include "data/shard.h"
#include "engine/files.h"

namespace gpt {

namespace fs = std::filesystem;

// ---- the tokenizer ------------------------------------------------------------------------------

constexpr int32_t kByteEot = 256;

PrepareTokenizer PrepareTokenizer::bytes() {
  return PrepareTokenizer();
}

PrepareTokenizer::PrepareTokenizer(BpeTokenizer bpe, std::string kind, std::string source)
    : bpe_(std::make_shared<const BpeTokenizer>(std::move(bpe))),
      kind_(std::move(kind)),
      source_(std::move(source)) {
  if (bpe_->eot_token() < 0) {
    throw std::runtime_error(source_ +
                             ": the tokenizer has no <|endoftext|> special token (gpt-prepare "
                             "puts it between documents)");
  }
}

void PrepareTokenizer::encode_append(std::string_view text, std::vector<int32_t>* out) const {
  if (bpe_) {
    bpe_->encode_append(text, SpecialTokens::kAsText, out);
  } else {
    for (unsigned char c : text) out->push_back(c);
  }
}

std::vector<int32_t> PrepareTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> ids;
  encode_append(text, &ids);
  return ids;
}

std::string PrepareTokenizer::decode(const std::vector<int32_t>& ids) const {
  if (bpe_) return bpe_->decode(ids);
  std::string out;
  for (int32_t id : ids) {
    if (id < 0 || id > kByteEot)
      throw std::out_of_range("byte token " + std::to_string(id) + " out of range");
    if (id < kByteEot)
      out += static_cast<char>(id);
    else
      out += "<|endoftext|>";
  }
  return out;
}

size_t PrepareTokenizer::token_text_bytes(int32_t id) const {
  if (id == eot_token()) return 0;
  return bpe_ ? bpe_->token_bytes(id).size() : 1;
}

int PrepareTokenizer::vocab_size() const {
  return bpe_ ? bpe_->vocab_size() : kByteEot + 1;
}
int PrepareTokenizer::eot_token() const {
  return bpe_ ? bpe_->eot_token() : kByteEot;
}

void check_tokenizer_spec(const TokenizerSpec& spec) {
  if (spec.train) {
    if (spec.name != "bytes")
      throw std::invalid_argument("--train-tokenizer learns a new vocabulary: drop --tokenizer " +
                                  spec.name);
    if (spec.vocab_size < 257)
      throw std::invalid_argument(
          "--vocab-size " + std::to_string(spec.vocab_size) +
          ": a trained tokenizer needs at least 257 tokens (256 bytes + <|endoftext|>)");
    return;
  }
  if (spec.vocab_size != 0)
    throw std::invalid_argument("--vocab-size is only for --train-tokenizer");
  if (spec.name == "bytes") return;
  const std::string path = resolve_tokenizer_path(spec.name);  // throws for gpt2 without files
  std::error_code ec;
  if (!fs::exists(path, ec))
    throw std::invalid_argument(
        "--tokenizer '" + spec.name +
        "': no such file or directory (expected bytes, gpt2, or a directory with "
        "tokenizer.json, vocab.json + merges.txt, or encoder.json + vocab.bpe)");
}

PrepareTokenizer make_tokenizer(const TokenizerSpec& spec,
                                const std::vector<std::string_view>& training_texts) {
  check_tokenizer_spec(spec);
  if (spec.train) {
    BpeTrainerOptions options;
    options.vocab_size = spec.vocab_size;
    options.special_tokens = {"<|endoftext|>"};
    BpeTrainer trainer(options);
    for (std::string_view text : training_texts) trainer.add_text(text);
    return PrepareTokenizer(trainer.train(), "trained",
                            "trained here (vocab_size " + std::to_string(spec.vocab_size) + ")");
  }
  if (spec.name == "bytes") return PrepareTokenizer::bytes();
  const std::string path = resolve_tokenizer_path(spec.name);
  return PrepareTokenizer(BpeTokenizer::load(path), spec.name == "gpt2" ? "gpt2" : "path", path);
}

// ---- progress -----------------------------------------------------------------------------------

Progress::Progress(std::string label, int64_t total_bytes, ProgressMode mode)
    : label_(std::move(label)),
      total_(std::max<int64_t>(total_bytes, 1)),
      mode_(mode),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_),
      line_(mode, /*plain_every_s=*/10.0) {}

Progress::~Progress() {
  finish();
}

void Progress::add(int64_t bytes) {
  done_.fetch_add(bytes, std::memory_order_relaxed);
  if (mode_ == ProgressMode::none || omp_get_thread_num() != 0) return;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_draw_ < std::chrono::milliseconds(200)) return;
  last_draw_ = now;
  line_.update(text(false));
}

void Progress::finish() {
  if (mode_ == ProgressMode::none || finished_) return;
  finished_ = true;
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  line_.finish(mode_ == ProgressMode::line || seconds > 2.0 ? text(true) : "");
}

std::string Progress::text(bool final_line) const {
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double done = static_cast<double>(done_.load(std::memory_order_relaxed));
  const double mb_per_s = seconds > 0 ? done / 1e6 / seconds : 0.0;
  char eta[32] = "";
  if (!final_line && mb_per_s > 0)
    std::snprintf(eta, sizeof(eta), "  ETA %s",
                  format_duration((static_cast<double>(total_) - done) / 1e6 / mb_per_s).c_str());
  else if (final_line)
    std::snprintf(eta, sizeof(eta), "  %.1fs", seconds);
  // kB below a megabyte, so that small inputs do not read 0.0/0.0 MB.
  const bool small = total_ < 1000000;
  const double unit = small ? 1e3 : 1e6;
  char buf[256];
  std::snprintf(buf, sizeof(buf), "%s %5.1f%%  %.1f/%.1f %s  %.1f MB/s%s", label_.c_str(),
                100.0 * done / static_cast<double>(total_), done / unit,
                static_cast<double>(total_) / unit, small ? "kB" : "MB", mb_per_s, eta);
  return buf;
}

// ---- encoding -----------------------------------------------------------------------------------

std::vector<size_t> chunk_cut_points(std::string_view text, size_t chunk_bytes, PreTokenizer kind) {
  const bool split = kind == PreTokenizer::kLlama3 || kind == PreTokenizer::kQwen2;
  auto cut_after = [&](unsigned char prev) {
    if (split) return std::isalnum(prev) != 0 && prev < 0x80;
    return prev > 0x20 && prev < 0x7f;
  };
  std::vector<size_t> cuts;
  if (chunk_bytes == 0) chunk_bytes = 1;
  size_t from = chunk_bytes;
  while (from < text.size()) {
    size_t p = text.find('\n', from);
    while (p != std::string_view::npos) {
      const unsigned char prev = static_cast<unsigned char>(text[p - 1]);
      if (cut_after(prev)) break;
      p = text.find('\n', p + 1);
    }
    if (p == std::string_view::npos) break;
    cuts.push_back(p);
    from = p + chunk_bytes;
  }
  return cuts;
}

std::vector<std::vector<int32_t>> encode_texts(const PrepareTokenizer& tokenizer,
                                               const std::vector<std::string_view>& texts,
                                               int threads, Progress* progress,
                                               size_t chunk_bytes) {
  struct Work {
    size_t text;
    std::string_view piece;
  };
  std::vector<Work> work;
  std::vector<size_t> first_work(texts.size() + 1);
  const PreTokenizer kind =
      tokenizer.bpe() ? tokenizer.bpe()->pre_tokenizer() : PreTokenizer::kGpt2;
  for (size_t i = 0; i < texts.size(); ++i) {
    first_work[i] = work.size();
    size_t begin = 0;
    if (texts[i].size() > chunk_bytes) {
      for (size_t cut : chunk_cut_points(texts[i], chunk_bytes, kind)) {
        work.push_back({i, texts[i].substr(begin, cut - begin)});
        begin = cut;
      }
    }
    work.push_back({i, texts[i].substr(begin)});
  }
  first_work[texts.size()] = work.size();

  std::vector<std::vector<int32_t>> pieces(work.size());
  const int nthreads = threads > 0 ? threads : omp_get_max_threads();
  const int64_t n = static_cast<int64_t>(work.size());
#pragma omp parallel for schedule(dynamic, 1) num_threads(nthreads)
  for (int64_t w = 0; w < n; ++w) {
    tokenizer.encode_append(work[w].piece, &pieces[w]);
    if (progress) progress->add(static_cast<int64_t>(work[w].piece.size()));
  }

  std::vector<std::vector<int32_t>> result(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    if (first_work[i + 1] - first_work[i] == 1) {
      result[i] = std::move(pieces[first_work[i]]);
      continue;
    }
    size_t total = 0;
    for (size_t w = first_work[i]; w < first_work[i + 1]; ++w) total += pieces[w].size();
    result[i].reserve(total);
    for (size_t w = first_work[i]; w < first_work[i + 1]; ++w) {
      result[i].insert(result[i].end(), pieces[w].begin(), pieces[w].end());
      std::vector<int32_t>().swap(pieces[w]);
    }
  }
  return result;
}

// ---- output -------------------------------------------------------------------------------------

OutputStage::OutputStage(const std::string& out_dir) : out_(out_dir) {
  if (out_.empty()) throw std::invalid_argument("--out is required");
  std::error_code ec;
  fs::create_directories(out_, ec);
  if (ec) throw std::runtime_error(out_ + ": cannot create the output directory: " + ec.message());
  // Staging folders of prepares that were killed (their pid is gone) are removed; a live one's
  // (another prepare into the same OUT right now) is left alone.
  static const std::regex staging_name(R"(\.prepare-staging-([0-9]+))");
  for (const fs::directory_entry& e : fs::directory_iterator(out_, ec)) {
    std::smatch m;
    const std::string name = e.path().filename().string();
    if (!std::regex_match(name, m, staging_name)) continue;
    const long pid = std::stol(m[1].str());
    if (pid != ::getpid() && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH)
      fs::remove_all(e.path(), ec);
  }
  staging_ = (fs::path(out_) / (".prepare-staging-" + std::to_string(::getpid()))).string();
  fs::remove_all(staging_, ec);
  fs::create_directories(staging_, ec);
  if (ec) throw std::runtime_error(staging_ + ": cannot create: " + ec.message());
}

OutputStage::~OutputStage() {
  std::error_code ec;
  if (!staging_.empty()) fs::remove_all(staging_, ec);
}

std::string OutputStage::path(const std::string& name) const {
  return staging_ + "/" + name;
}

void OutputStage::write_text(const std::string& name, const std::string& text) const {
  write_file_atomic(path(name), text);
}

void OutputStage::commit() {
  if (committed_) return;
  // What an earlier prepare wrote: removed first, so no stale shard survives beside the new ones.
  static const std::regex ours(R"((train|val)_[0-9]+\.(bin|mask))");
  std::error_code ec;
  // The marker goes first and is removed last: a prepare killed anywhere in here leaves it beside
  // a mix of old and new shards, and every reader of shards refuses that folder (expand_glob,
  // data/shard.h) until a prepare into it completes. meta.json is removed too, so that tools that
  // read only it see no data set either.
  const fs::path marker = fs::path(out_) / kPrepareIncompleteMarker;
  {
    std::ofstream m(marker, std::ios::trunc);
    m << "gpt-prepare (pid " << ::getpid() << ") is moving a new data set in; if it is gone, it "
      << "was killed: run it again\n";
    m.flush();
    if (!m) throw std::runtime_error(marker.string() + ": cannot write (disk full?)");
  }
  fs::remove(fs::path(out_) / "meta.json");
  for (const fs::directory_entry& e : fs::directory_iterator(out_)) {
    const std::string name = e.path().filename().string();
    if (std::regex_match(name, ours) || name == "tokenizer") fs::remove_all(e.path());
  }
  // meta.json last, so a reader that sees it finds the shards it names.
  std::vector<fs::path> staged;
  for (const fs::directory_entry& e : fs::directory_iterator(staging_)) staged.push_back(e.path());
  std::sort(staged.begin(), staged.end(), [](const fs::path& a, const fs::path& b) {
    const bool ma = a.filename() == "meta.json", mb = b.filename() == "meta.json";
    return ma != mb ? mb : a < b;
  });
  // Test hook (tests/cli/kill_writes.sh): GPT_TEST_KILL_IN_PREPARE_COMMIT=N sends this process
  // SIGKILL after N of the moves, the worst moment for a kill.
  const char* kill_env = std::getenv("GPT_TEST_KILL_IN_PREPARE_COMMIT");
  const long kill_after = kill_env && *kill_env ? std::strtol(kill_env, nullptr, 10) : -1;
  long moved = 0;
  for (const fs::path& p : staged) {
    if (moved++ == kill_after) ::raise(SIGKILL);
    fs::rename(p, fs::path(out_) / p.filename());
  }
  fs::remove(marker);
  fs::remove_all(staging_, ec);
  committed_ = true;
}

std::vector<std::string> write_token_shards(const OutputStage& stage, const std::string& prefix,
                                            const std::vector<int32_t>& tokens,
                                            int64_t shard_tokens) {
  std::vector<std::string> names;
  const int64_t n = static_cast<int64_t>(tokens.size());
  for (int64_t begin = 0, index = 0; begin < n; begin += shard_tokens, ++index) {
    const int64_t end = std::min(begin + shard_tokens, n);
    char name[64];
    std::snprintf(name, sizeof(name), "%s_%06lld.bin", prefix.c_str(),
                  static_cast<long long>(index));
    write_token_shard(stage.path(name),
                      std::vector<int32_t>(tokens.begin() + begin, tokens.begin() + end));
    names.push_back(name);
  }
  return names;
}

void stage_tokenizer(const OutputStage& stage, const PrepareTokenizer& tokenizer,
                     nlohmann::ordered_json* meta) {
  (*meta)["tokenizer"] = tokenizer.kind();
  if (tokenizer.bpe()) {
    tokenizer.bpe()->save_hf(stage.path("tokenizer"));
    copy_hub_tokenizer_files(tokenizer.source(), stage.path("tokenizer"));
    (*meta)["tokenizer_dir"] = "tokenizer";
    (*meta)["tokenizer_source"] = tokenizer.source();
  }
  (*meta)["vocab_size"] = tokenizer.vocab_size();
  (*meta)["eot_token"] = tokenizer.eot_token();
}

// ---- pretraining --------------------------------------------------------------------------------

namespace {

struct SourceDocument {
  std::string_view text;
};

// A run of text that goes into one split; starts_document: an <|endoftext|> precedes it.
struct Segment {
  std::string_view text;
  bool starts_document;
};

std::vector<SourceDocument> read_pretraining_documents(const PrepareOptions& o,
                                                       const std::vector<std::string>& files,
                                                       std::deque<std::string>* storage) {
  std::vector<SourceDocument> docs;
  for (size_t f = 0; f < files.size(); ++f) {
    storage->push_back(read_input_file(files[f]));
    const std::string& text = storage->back();
    if (o.format == InputFormat::kText) {
      for (const DocumentView& d : split_documents(text, o.split))
        if (!d.text.empty()) docs.push_back({d.text});
      continue;
    }
    std::vector<std::string> lines;
    for_each_line(text, [&](std::string_view line, int64_t number) {
      if (is_blank_line(line)) return;
      const nlohmann::json object = parse_jsonl_object(line, files[f], number);
      std::string doc = json_string_field(object, o.field, files[f], number);
      if (!doc.empty()) lines.push_back(std::move(doc));
    });
    storage->pop_back();  // the raw JSONL is no longer needed
    for (std::string& doc : lines) {
      storage->push_back(std::move(doc));
      docs.push_back({storage->back()});
    }
  }
  return docs;
}

// The first cut at or after `offset` that starts a line; else `offset` moved to a UTF-8 character
// start (a document without line breaks is still split).
size_t line_cut(std::string_view text, size_t offset) {
  if (offset == 0 || offset >= text.size()) return std::min(offset, text.size());
  if (text[offset - 1] == '\n') return offset;
  const size_t nl = text.find('\n', offset);
  if (nl != std::string_view::npos && nl + 1 < text.size()) return nl + 1;
  while (offset < text.size() && (static_cast<unsigned char>(text[offset]) & 0xC0) == 0x80)
    ++offset;
  return offset;
}

void split_segments(const PrepareOptions& o, const std::vector<SourceDocument>& docs,
                    std::vector<Segment>* train, std::vector<Segment>* val) {
  const size_t n = docs.size();
  if (o.val_docs > 0) {
    if (static_cast<size_t>(o.val_docs) >= n) {
      throw std::invalid_argument("--val-docs " + std::to_string(o.val_docs) +
                                  " leaves no training documents (the inputs hold " +
                                  std::to_string(n) + ")");
    }
    for (size_t i = 0; i < n; ++i)
      (i < n - static_cast<size_t>(o.val_docs) ? train : val)->push_back({docs[i].text, true});
    return;
  }
  int64_t total = 0;
  for (const SourceDocument& d : docs) total += static_cast<int64_t>(d.text.size());
  const int64_t cut =
      total - static_cast<int64_t>(std::floor(static_cast<double>(total) * o.val_fraction));
  int64_t before = 0;
  for (size_t i = 0; i < n; ++i) {
    const int64_t size = static_cast<int64_t>(docs[i].text.size());
    if (before + size <= cut) {
      train->push_back({docs[i].text, true});
    } else if (before >= cut) {
      val->push_back({docs[i].text, true});
    } else {
      const size_t at = line_cut(docs[i].text, static_cast<size_t>(cut - before));
      if (at > 0) train->push_back({docs[i].text.substr(0, at), true});
      if (at < docs[i].text.size()) val->push_back({docs[i].text.substr(at), at == 0});
    }
    before += size;
  }
}

std::vector<int32_t> assemble(const std::vector<Segment>& segments,
                              std::vector<std::vector<int32_t>>& ids, size_t first, int32_t eot) {
  size_t total = 0;
  for (size_t i = 0; i < segments.size(); ++i) total += ids[first + i].size() + 1;
  std::vector<int32_t> tokens;
  tokens.reserve(total);
  for (size_t i = 0; i < segments.size(); ++i) {
    if (segments[i].starts_document) tokens.push_back(eot);
    tokens.insert(tokens.end(), ids[first + i].begin(), ids[first + i].end());
    std::vector<int32_t>().swap(ids[first + i]);
  }
  return tokens;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

PrepareResult prepare_pretraining(const PrepareOptions& o) {
  if (o.out.empty()) throw std::invalid_argument("--out is required");
  if (!(o.val_fraction >= 0.0 && o.val_fraction < 1.0))
    throw std::invalid_argument("--val-fraction must be in [0, 1)");
  if (o.val_docs < 0) throw std::invalid_argument("--val-docs must be >= 0");
  if (o.shard_tokens <= 0) throw std::invalid_argument("--shard-tokens must be positive");
  if (o.format == InputFormat::kJsonl && o.field.empty())
    throw std::invalid_argument("--field must not be empty");
  check_tokenizer_spec(o.tokenizer);

  const std::vector<std::string> files = expand_inputs(o.inputs);
  std::deque<std::string> storage;
  const std::vector<SourceDocument> docs = read_pretraining_documents(o, files, &storage);
  if (docs.empty()) {
    std::string names;
    for (const std::string& f : files) names += (names.empty() ? "" : ", ") + f;
    throw std::invalid_argument("no (non-empty) documents in " + names);
  }
  std::vector<Segment> train, val;
  split_segments(o, docs, &train, &val);

  PrepareResult r;
  r.documents = static_cast<int64_t>(docs.size());
  for (const Segment& s : val) {
    r.val_bytes += static_cast<int64_t>(s.text.size());
    r.val_documents += s.starts_document;
  }
  std::vector<std::string_view> texts;
  for (const Segment& s : train) texts.push_back(s.text);
  auto t0 = std::chrono::steady_clock::now();
  const PrepareTokenizer tokenizer = make_tokenizer(o.tokenizer, texts);
  r.tokenizer_seconds = seconds_since(t0);
  for (const Segment& s : val) texts.push_back(s.text);
  for (std::string_view t : texts) r.input_bytes += static_cast<int64_t>(t.size());

  t0 = std::chrono::steady_clock::now();
  std::vector<std::vector<int32_t>> ids;
  {
    Progress progress("tokenizing", r.input_bytes, o.progress);
    ids = encode_texts(tokenizer, texts, o.threads, &progress);
  }
  r.tokenize_seconds = seconds_since(t0);
  const std::vector<int32_t> train_tokens = assemble(train, ids, 0, tokenizer.eot_token());
  const std::vector<int32_t> val_tokens = assemble(val, ids, train.size(), tokenizer.eot_token());
  r.train_tokens = static_cast<int64_t>(train_tokens.size());
  r.val_tokens = static_cast<int64_t>(val_tokens.size());
  r.vocab_size = tokenizer.vocab_size();
  if (r.train_tokens < 2)
    throw std::invalid_argument("the training split holds " + std::to_string(r.train_tokens) +
                                " token(s): too small to train on");

  OutputStage stage(o.out);
  nlohmann::ordered_json meta;
  meta["task"] = "pretrain";
  stage_tokenizer(stage, tokenizer, &meta);
  meta["format"] = o.format == InputFormat::kText ? "text" : "jsonl";
  if (o.format == InputFormat::kText)
    meta["split_docs"] = o.split == DocumentSplit::kWholeFile ? "file" : "blank-lines";
  else
    meta["field"] = o.field;
  meta["inputs"] = files;
  meta["documents"] = r.documents;
  meta["val_documents"] = r.val_documents;
  if (o.val_docs > 0)
    meta["val_docs"] = o.val_docs;
  else
    meta["val_fraction"] = o.val_fraction;
  meta["input_bytes"] = r.input_bytes;
  meta["train_bytes"] = r.input_bytes - r.val_bytes;
  meta["val_bytes"] = r.val_bytes;
  meta["train_tokens"] = r.train_tokens;
  meta["val_tokens"] = r.val_tokens;
  r.shards = write_token_shards(stage, "train", train_tokens, o.shard_tokens);
  const std::vector<std::string> val_shards =
      write_token_shards(stage, "val", val_tokens, o.shard_tokens);
  r.shards.insert(r.shards.end(), val_shards.begin(), val_shards.end());
  meta["shards"] = r.shards;
  stage.write_text("meta.json",
                   meta.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
  stage.commit();
  return r;
}

}  // namespace gpt
