// The tables of an evaluation report (eval/report.h).
#include "eval/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace gpt {

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

}  // namespace gpt
