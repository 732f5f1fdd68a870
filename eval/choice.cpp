// --task choice: HellaSwag-style multiple choice, each ending scored by its loss after the context.
#include "eval/choice.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "data/text_input.h"
#include "eval/tasks.h"
#include "eval/text.h"

namespace gpt {

namespace {

std::string choice_context(const nlohmann::json& obj, const std::string& file, int64_t number) {
  if (obj.contains("ctx")) return json_string_field(obj, "ctx", file, number);
  if (!obj.contains("ctx_a"))
    throw InputError(file, number, "missing field 'ctx' (or 'ctx_a' and 'ctx_b')");
  std::string context = json_string_field(obj, "ctx_a", file, number);
  const std::string b = json_string_field(obj, "ctx_b", file, number, true);
  if (!b.empty()) context += " " + b;
  return context;
}

std::vector<std::string> choice_endings(const nlohmann::json& obj, const std::string& file,
                                        int64_t number) {
  const auto endings = obj.find("endings");
  if (endings == obj.end()) throw InputError(file, number, "missing field 'endings'");
  if (!endings->is_array() || endings->size() < 2)
    throw InputError(file, number, "field 'endings': expected an array of at least 2 strings");
  std::vector<std::string> out;
  for (size_t k = 0; k < endings->size(); ++k) {
    if (!(*endings)[k].is_string())
      throw InputError(file, number,
                       "field 'endings[" + std::to_string(k) + "]': expected a string, got " +
                           json_type_name((*endings)[k]));
    out.push_back((*endings)[k].get<std::string>());
  }
  return out;
}

int choice_label(const nlohmann::json& obj, size_t endings, const std::string& file,
                 int64_t number) {
  const auto label = obj.find("label");
  if (label == obj.end()) throw InputError(file, number, "missing field 'label'");
  int64_t id = -1;
  if (label->is_number_integer()) {
    id = label->get<int64_t>();
  } else if (label->is_string()) {
    const std::string l = label->get<std::string>();
    if (!l.empty() && l.size() < 10 && l.find_first_not_of("0123456789") == std::string::npos)
      id = std::stoll(l);
  } else {
    throw InputError(
        file, number,
        std::string("field 'label': expected an integer, got ") + json_type_name(*label));
  }
  if (id < 0 || id >= static_cast<int64_t>(endings))
    throw InputError(file, number,
                     "field 'label': " + quote_for_error(label->dump()) +
                         " is not an ending index in [0, " + std::to_string(endings) + ")");
  return static_cast<int>(id);
}

}  // namespace

std::vector<ChoiceItem> read_choice_items(const std::vector<std::string>& files) {
  std::vector<ChoiceItem> items;
  for (const std::string& file : files) {
    const std::string text = read_input_file(file);
    for_each_line(text, [&](std::string_view line, int64_t number) {
      if (is_blank_line(line)) return;
      const nlohmann::json obj = parse_jsonl_object(line, file, number);
      ChoiceItem item;
      item.file = file;
      item.line = number;
      item.context = choice_context(obj, file, number);
      item.endings = choice_endings(obj, file, number);
      item.label = choice_label(obj, item.endings.size(), file, number);
      items.push_back(std::move(item));
    });
  }
  return items;
}

double token_loss(const float* x, int V, int32_t target) {
  const float mx = *std::max_element(x, x + V);
  double sum = 0.0;
  for (int v = 0; v < V; ++v) sum += std::exp(static_cast<double>(x[v]) - mx);
  return static_cast<double>(mx) + std::log(sum) - x[target];
}

int lowest_loss(const std::vector<double>& losses) {
  return static_cast<int>(std::min_element(losses.begin(), losses.end()) - losses.begin());
}

namespace {

struct ChoiceRow {
  size_t item;
  std::vector<int32_t> tokens;  // <|endoftext|> context ending
  size_t ending_start;          // index of the ending's first token
};

// The scored rows of every item, one per ending. max_len: the longest row's input length.
struct ChoiceRows {
  std::vector<ChoiceRow> rows;
  int max_len = 1;
  int64_t truncated = 0;
};

// One row: <|endoftext|> context ending (encoded apart: the boundary is a token boundary; the
// ending with a leading space), its context's first tokens dropped under --truncate when too long.
ChoiceRow make_choice_row(const EvalSettings& s, const PrepareTokenizer& tok,
                          const ChoiceItem& item, size_t i, const std::vector<int32_t>& context,
                          size_t k, int ctx, int64_t& truncated) {
  const std::string& e = item.endings[k];
  const bool spaced = !e.empty() && (e[0] == ' ' || e[0] == '\n' || e[0] == '\t');
  const std::vector<int32_t> ending = tok.encode(spaced ? e : " " + e);
  if (strip(e).empty())
    throw InputError(item.file, item.line, "ending " + std::to_string(k) + " is empty");
  ChoiceRow row{i, context, context.size()};
  row.tokens.insert(row.tokens.end(), ending.begin(), ending.end());
  const int64_t len = static_cast<int64_t>(row.tokens.size()) - 1;
  if (len > ctx) {
    const int64_t cut = len - ctx;
    if (!s.truncate || cut >= static_cast<int64_t>(context.size()))
      throw InputError(
          item.file, item.line,
          "context and ending " + std::to_string(k) + " are " + std::to_string(row.tokens.size()) +
              " tokens, more than the context of " + std::to_string(ctx) + " tokens of " + s.model +
              (s.truncate ? " (the ending alone does not fit)"
                          : " (--truncate drops the context's first tokens)"));
    row.tokens.erase(row.tokens.begin(), row.tokens.begin() + cut);
    row.ending_start -= static_cast<size_t>(cut);
    ++truncated;
  }
  return row;
}

ChoiceRows make_choice_rows(const EvalSettings& s, const PrepareTokenizer& tok,
                            const std::vector<ChoiceItem>& items, int ctx) {
  ChoiceRows out;
  for (size_t i = 0; i < items.size(); ++i) {
    std::vector<int32_t> context = {tok.eot_token()};
    tok.encode_append(items[i].context, &context);
    for (size_t k = 0; k < items[i].endings.size(); ++k) {
      ChoiceRow row = make_choice_row(s, tok, items[i], i, context, k, ctx, out.truncated);
      out.max_len = std::max(out.max_len, static_cast<int>(row.tokens.size()) - 1);
      out.rows.push_back(std::move(row));
    }
  }
  return out;
}

// The summed loss and the number of ending tokens of every row, B rows per forward pass.
void score_choice_rows(LanguageModel& model, const std::vector<ChoiceRow>& rows, int B, int32_t eot,
                       size_t items, const EvalConsole& console, std::vector<double>& row_loss,
                       std::vector<int64_t>& row_tokens) {
  const int V = model.shape().vocab_size, Vp = model.shape().padded_vocab_size;
  row_loss.assign(rows.size(), 0.0);
  row_tokens.assign(rows.size(), 0);
  std::vector<int32_t> tokens;
  EvalProgress progress(console, "choice", static_cast<int64_t>(items), "items");
  for (size_t start = 0; start < rows.size(); start += static_cast<size_t>(B)) {
    const size_t end = std::min(rows.size(), start + static_cast<size_t>(B));
    int Tb = 1;
    for (size_t r = start; r < end; ++r)
      Tb = std::max(Tb, static_cast<int>(rows[r].tokens.size()) - 1);
    tokens.assign(static_cast<size_t>(B) * Tb, eot);
    for (size_t r = start; r < end; ++r)
      std::copy(rows[r].tokens.begin(), rows[r].tokens.end() - 1,
                tokens.begin() + static_cast<ptrdiff_t>((r - start) * static_cast<size_t>(Tb)));
    model.forward(tokens.data(), nullptr, B, Tb);
    const std::vector<float> logits = model.logits_to_host(B, Tb);
    for (size_t r = start; r < end; ++r) {
      const ChoiceRow& row = rows[r];
      for (size_t t = row.ending_start - 1; t + 1 < row.tokens.size(); ++t) {
        const float* x = logits.data() + ((r - start) * static_cast<size_t>(Tb) + t) * Vp;
        row_loss[r] += token_loss(x, V, row.tokens[t + 1]);
        ++row_tokens[r];
      }
    }
    progress.update(static_cast<int64_t>(rows[end - 1].item) + (end == rows.size() ? 1 : 0));
  }
  progress.finish();
}

// Per item: the ending with the lowest mean loss per token wins (ties: the first); the
// unnormalised variant compares the summed losses.
struct ChoiceVerdicts {
  int64_t correct = 0, correct_sum = 0;
  nlohmann::ordered_json per_item = nlohmann::ordered_json::array();
};

ChoiceVerdicts judge_items(const std::vector<ChoiceItem>& items, const std::vector<ChoiceRow>& rows,
                           const std::vector<double>& row_loss,
                           const std::vector<int64_t>& row_tokens) {
  ChoiceVerdicts v;
  size_t r = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    std::vector<double> mean, sum;
    for (; r < rows.size() && rows[r].item == i; ++r) {
      sum.push_back(row_loss[r]);
      mean.push_back(row_loss[r] / static_cast<double>(row_tokens[r]));
    }
    const int pred = lowest_loss(mean);
    const int pred_sum = lowest_loss(sum);
    v.correct += pred == items[i].label ? 1 : 0;
    v.correct_sum += pred_sum == items[i].label ? 1 : 0;
    v.per_item.push_back({{"source", items[i].file + ":" + std::to_string(items[i].line)},
                          {"label", items[i].label},
                          {"prediction", pred},
                          {"prediction_unnormalised", pred_sum},
                          {"mean_losses", mean},
                          {"losses", sum}});
  }
  return v;
}

EvalReport choice_report(const EvalSettings& s, const LoadedModel& m,
                         const std::vector<std::string>& files, size_t items,
                         const ChoiceRows& rows, ChoiceVerdicts verdicts) {
  const double n = static_cast<double>(items);
  EvalReport report;
  report.json["model"] = m.describe();
  report.json["data"] = {{"pattern", s.data}, {"files", files}};
  report.json["metrics"] = {
      {"accuracy", static_cast<double>(verdicts.correct) / n},
      {"accuracy_unnormalised", static_cast<double>(verdicts.correct_sum) / n},
      {"items", items},
      {"endings", rows.rows.size()},
      {"truncated_rows", rows.truncated}};
  report.json["items"] = std::move(verdicts.per_item);
  std::vector<std::pair<std::string, std::string>> table = {
      {"accuracy (mean loss per ending token)",
       format_fixed(static_cast<double>(verdicts.correct) / n, 4)},
      {"accuracy (summed loss)", format_fixed(static_cast<double>(verdicts.correct_sum) / n, 4)},
      {"items", std::to_string(items)},
      {"endings scored", std::to_string(rows.rows.size())}};
  if (rows.truncated > 0) table.push_back({"truncated rows", std::to_string(rows.truncated)});
  report.tables.push_back(metric_table("multiple choice: " + s.data, table));
  return report;
}

}  // namespace

EvalReport run_choice_task(const EvalSettings& s, EvalContext& context) {
  const std::vector<std::string> files = expand_inputs({s.data});
  std::vector<ChoiceItem> items = read_choice_items(files);
  if (s.max_examples > 0 && static_cast<int64_t>(items.size()) > s.max_examples)
    items.resize(static_cast<size_t>(s.max_examples));
  if (items.empty()) throw std::runtime_error(s.data + ": no items");

  GptWeights w = load_weights(s.model);
  const GptConfig config = w.config;
  const PrepareTokenizer tok =
      load_eval_tokenizer(context.load_tokenizer, s.tokenizer, "", s.model);
  check_tokenizer_fits(tok, config, s.model);
  const ChoiceRows rows = make_choice_rows(s, tok, items, config.max_seq_len);

  LoadedModel m = build_eval_model(std::move(w), s.model, s.adapter, context.backend, s.batch_size,
                                   rows.max_len, HeadUse::kLanguageModel);
  context.console.announce_start();
  std::vector<double> row_loss;
  std::vector<int64_t> row_tokens;
  score_choice_rows(*m.model, rows.rows, s.batch_size, tok.eot_token(), items.size(),
                    context.console, row_loss, row_tokens);
  return choice_report(s, m, files, items.size(), rows,
                       judge_items(items, rows.rows, row_loss, row_tokens));
}

}  // namespace gpt
