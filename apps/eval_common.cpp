// What gpt-eval's tasks share: report tables, the progress line, loading a (fine-tuned) model and
// its tokenizer, and the meta.json that gpt-prepare writes beside the shards.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "apps/app_common.h"
#include "apps/eval_tasks.h"
#include "engine/checkpoint.h"
#include "engine/safetensors.h"
#include "models/finetune_io.h"

namespace fs = std::filesystem;

namespace gpt {

// ---- reports ----------------------------------------------------------------------------------

std::string format_fixed(double value, int decimals) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, value);
  return buf;
}

EvalTable metric_table(const std::string& title,
                       const std::vector<std::pair<std::string, std::string>>& rows) {
  EvalTable t;
  t.title = title;
  t.header = {"metric", "value"};
  for (const auto& [name, value] : rows) t.rows.push_back({name, value});
  return t;
}

namespace {

// Display width of UTF-8 text: one column per code point (enough for label words and names).
size_t display_width(const std::string& text) {
  size_t n = 0;
  for (unsigned char c : text)
    if ((c & 0xC0) != 0x80) ++n;
  return n;
}

std::string padded(const std::string& text, size_t width, bool left) {
  const size_t w = display_width(text);
  const std::string fill(w < width ? width - w : 0, ' ');
  return left ? text + fill : fill + text;
}

}  // namespace

std::string render_tables(const std::vector<EvalTable>& tables) {
  std::string out;
  for (size_t i = 0; i < tables.size(); ++i) {
    const EvalTable& t = tables[i];
    if (i > 0) out += "\n";
    if (!t.title.empty()) out += t.title + "\n";
    std::vector<size_t> width(t.header.size(), 0);
    for (size_t c = 0; c < t.header.size(); ++c) width[c] = display_width(t.header[c]);
    for (const auto& row : t.rows)
      for (size_t c = 0; c < row.size() && c < width.size(); ++c)
        width[c] = std::max(width[c], display_width(row[c]));
    auto line = [&](const std::vector<std::string>& cells) {
      std::string l;
      for (size_t c = 0; c < width.size(); ++c) {
        if (c > 0) l += "  ";
        l += padded(c < cells.size() ? cells[c] : "", width[c], c == 0);
      }
      while (!l.empty() && l.back() == ' ') l.pop_back();
      out += l + "\n";
    };
    line(t.header);
    std::vector<std::string> rule;
    for (size_t w : width) rule.push_back(std::string(w, '-'));
    line(rule);
    for (const auto& row : t.rows) line(row);
  }
  return out;
}

// ---- progress ---------------------------------------------------------------------------------

namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

namespace {
ProgressMode g_eval_progress = ProgressMode::plain;
}  // namespace

void set_eval_progress_mode(ProgressMode mode) { g_eval_progress = mode; }

EvalProgress::EvalProgress(std::string label, int64_t total, std::string unit)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(total),
      mode_(g_eval_progress),
      start_(now_seconds()),
      last_draw_(start_),
      line_(g_eval_progress, /*plain_every_s=*/10.0) {}

void EvalProgress::update(int64_t done) {
  done_ = done;
  const double t = now_seconds();
  if (mode_ == ProgressMode::line && t - last_draw_ < 0.5) return;
  last_draw_ = t;
  line_.update(text(done, false));
}

void EvalProgress::finish() {
  if (finished_) return;
  finished_ = true;
  line_.finish(mode_ == ProgressMode::line || now_seconds() - start_ > 2.0 ? text(done_, true) : "");
}

std::string EvalProgress::text(int64_t done, bool final_line) const {
  const double elapsed = now_seconds() - start_;
  const double pct = total_ > 0 ? 100.0 * static_cast<double>(done) / total_ : 100.0;
  char eta[48] = "";
  if (!final_line && done > 0 && total_ > done)
    std::snprintf(eta, sizeof(eta), "  ETA %.1f s", elapsed / done * (total_ - done));
  char buf[512];
  std::snprintf(buf, sizeof(buf), "gpt-eval: %s  %lld/%lld %s (%.0f%%)  %.1f s%s", label_.c_str(),
                static_cast<long long>(done), static_cast<long long>(total_), unit_.c_str(), pct,
                elapsed, eta);
  return buf;
}

namespace {
std::string g_start_banner;
bool g_announced = false;
}  // namespace

void set_start_banner(std::string text) {
  g_start_banner = std::move(text);
}

void announce_start() {
  if (g_announced) return;
  g_announced = true;
  std::fputs(g_start_banner.c_str(), stderr);
  std::fflush(stderr);
}

// ---- models and tokenizers --------------------------------------------------------------------

bool checkpoint_has_class_head(const std::string& path) {
  std::error_code ec;
  if (!looks_like_checkpoint(path)) return false;
  return fs::is_regular_file(fs::path(resolve_checkpoint(path)) / "head.safetensors", ec);
}

LoadedModel build_eval_model(GptWeights weights, const std::string& path, const std::string& adapter,
                             Backend& backend, int max_batch, int max_seq, HeadUse use) {
  LoadOptions options;
  options.max_batch = max_batch;
  options.max_seq = max_seq;
  options.adapter = adapter;
  options.head = use;
  options.freeze = true;  // evaluation only: no gradients, one layer of activations
  return load_model(std::move(weights), path, backend, options);
}

PrepareTokenizer load_eval_tokenizer(const std::string& spec, const std::string& near_first,
                                     const std::string& near_second) {
  if (!spec.empty()) return load_app_tokenizer(spec, "");
  if (!near_first.empty()) {
    try {
      return load_app_tokenizer("", near_first);
    } catch (const std::exception&) {
      // not beside the data: try the model
    }
  }
  try {
    return load_app_tokenizer("", near_second);
  } catch (const std::exception&) {
    throw std::runtime_error("no tokenizer found beside " +
                             (near_first.empty() ? "" : "the data (" + near_first + ") or ") +
                             "the model (" + near_second + "): pass --tokenizer bytes|gpt2|DIR");
  }
}

std::string data_meta_path(const std::string& pattern) {
  const fs::path dir = fs::path(pattern).parent_path();
  return (dir.empty() ? fs::path("meta.json") : dir / "meta.json").string();
}

nlohmann::json read_data_meta(const std::string& pattern) {
  const std::string path = data_meta_path(pattern);
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return nlohmann::json();
  std::ifstream in(path);
  try {
    nlohmann::json meta = nlohmann::json::parse(in);
    if (!meta.is_object()) throw std::runtime_error("expected a JSON object");
    return meta;
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": malformed JSON: " + e.what());
  }
}

void check_data_vocab(const nlohmann::json& meta, const std::string& pattern,
                      const GptConfig& config, const std::string& model_path) {
  if (!meta.is_object() || !meta.contains("vocab_size")) return;
  const nlohmann::json& v = meta["vocab_size"];
  if (!v.is_number_integer())
    throw std::runtime_error(data_meta_path(pattern) + ": field 'vocab_size': expected an integer");
  if (v.get<int64_t>() != config.vocab_size)
    throw std::runtime_error(data_meta_path(pattern) + ": the data's vocab_size " + v.dump() +
                             " does not match the model's vocab_size " +
                             std::to_string(config.vocab_size) + " in " + model_path);
}

}  // namespace gpt
