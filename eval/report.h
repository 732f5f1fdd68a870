// What an evaluation task returns: its numbers as JSON (gpt-eval --out-json writes them) and the
// same numbers as tables for stdout, plus lines printed after the tables (sample generations).
// Nothing in a report depends on time or on the machine's thread count, so two runs give identical
// reports.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace gpt {

// A table for stdout: the first column is left-aligned, the others right-aligned.
struct EvalTable {
  std::string title;
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
};

struct EvalReport {
  nlohmann::ordered_json json = nlohmann::ordered_json::object();  // "model", "metrics", ...
  std::vector<EvalTable> tables;
  std::vector<std::string> text;  // lines printed after the tables (sample generations)
};

// "%.*f" of a number ("nan" and "inf" as such).
std::string format_fixed(double value, int decimals);
// A table with one (name, value) row per metric.
EvalTable metric_table(const std::string& title,
                       const std::vector<std::pair<std::string, std::string>>& rows);
// The tables, aligned, separated by blank lines.
std::string render_tables(const std::vector<EvalTable>& tables);

}  // namespace gpt
