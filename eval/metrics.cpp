// Evaluation metrics. The text metrics follow their reference packages rule by rule; the comments
// name the rule of the package each piece reproduces (sacrebleu 2.x, rouge-score 0.1.2, NLTK 3.x
// PorterStemmer, scikit-learn 1.x). See eval/metrics.h and docs/metrics.md.
#include "eval/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace gpt {
namespace {

[[noreturn]] void invalid(const std::string& what) {
  throw std::invalid_argument(what);
}

// ---- Python's notion of white space over UTF-8 -------------------------------------------------
// str.split() and str.rstrip() split on every code point for which str.isspace() holds: ASCII
// \t \n \v \f \r, \x1c-\x1f and space, plus U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029,
// U+202F, U+205F, U+3000. Returns the byte length of such a character starting at s[i], else 0.
// Scanning byte by byte is safe: the lead bytes tested never occur as UTF-8 continuation bytes.
size_t python_space_at(std::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return k < s.size() ? static_cast<unsigned char>(s[k]) : 0u; };
  const unsigned c = byte(i);
  if (c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F)) return 1;
  if (c == 0xC2 && (byte(i + 1) == 0x85 || byte(i + 1) == 0xA0)) return 2;
  if (c == 0xE1 && byte(i + 1) == 0x9A && byte(i + 2) == 0x80) return 3;  // U+1680
  if (c == 0xE2 && byte(i + 1) == 0x80) {
    const unsigned b = byte(i + 2);
    if ((b >= 0x80 && b <= 0x8A) || b == 0xA8 || b == 0xA9 || b == 0xAF) return 3;
  }
  if (c == 0xE2 && byte(i + 1) == 0x81 && byte(i + 2) == 0x9F) return 3;  // U+205F
  if (c == 0xE3 && byte(i + 1) == 0x80 && byte(i + 2) == 0x80) return 3;  // U+3000
  return 0;
}

std::vector<std::string_view> split_whitespace(std::string_view s) {
  std::vector<std::string_view> out;
  size_t start = std::string_view::npos;
  for (size_t i = 0; i < s.size();) {
    const size_t space = python_space_at(s, i);
    if (space) {
      if (start != std::string_view::npos) out.push_back(s.substr(start, i - start));
      start = std::string_view::npos;
      i += space;
    } else {
      if (start == std::string_view::npos) start = i;
      ++i;
    }
  }
  if (start != std::string_view::npos) out.push_back(s.substr(start));
  return out;
}

std::string_view rstrip_whitespace(std::string_view s) {
  size_t end = 0;  // one past the last byte that is not white space
  for (size_t i = 0; i < s.size();) {
    const size_t space = python_space_at(s, i);
    i += space ? space : 1;
    if (!space) end = i;
  }
  return s.substr(0, end);
}

// Python's str.replace(from, to): every non-overlapping occurrence, left to right.
void replace_all(std::string& s, std::string_view from, std::string_view to) {
  std::string out;
  size_t pos = 0;
  for (size_t hit; (hit = s.find(from, pos)) != std::string::npos; pos = hit + from.size()) {
    out.append(s, pos, hit - pos);
    out.append(to);
  }
  if (pos == 0) return;
  out.append(s, pos, std::string::npos);
  s = std::move(out);
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// n-grams of one order as keys: the tokens joined by a single space (tokens hold no white space).
std::string join_ngram(const std::vector<std::string_view>& tokens, size_t start, int n) {
  std::string key(tokens[start]);
  for (int k = 1; k < n; ++k) {
    key += ' ';
    key += tokens[start + k];
  }
  return key;
}

using NgramCounts = std::unordered_map<std::string, int64_t>;

}  // namespace

// ---- classification -----------------------------------------------------------------------------

namespace {
void check_labels(const std::vector<int>& labels, const std::vector<int>& predictions,
                  int num_classes, const char* who) {
  const std::string name(who);
  if (labels.empty()) invalid(name + ": no examples (labels and predictions are empty)");
  if (labels.size() != predictions.size())
    invalid(name + ": " + std::to_string(labels.size()) + " labels but " +
            std::to_string(predictions.size()) + " predictions");
  if (num_classes < 1) invalid(name + ": num_classes must be at least 1");
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] < 0 || labels[i] >= num_classes)
      invalid(name + ": label " + std::to_string(labels[i]) + " at index " + std::to_string(i) +
              " is outside [0, " + std::to_string(num_classes) + ")");
    if (predictions[i] < 0 || predictions[i] >= num_classes)
      invalid(name + ": prediction " + std::to_string(predictions[i]) + " at index " +
              std::to_string(i) + " is outside [0, " + std::to_string(num_classes) + ")");
  }
}

// sklearn's _prf_divide with zero_division=0.
double ratio_or_zero(double numerator, double denominator) {
  return denominator == 0.0 ? 0.0 : numerator / denominator;
}
}  // namespace

std::vector<std::vector<int64_t>> confusion_matrix(const std::vector<int>& labels,
                                                   const std::vector<int>& predictions,
                                                   int num_classes) {
  check_labels(labels, predictions, num_classes, "confusion_matrix");
  std::vector<std::vector<int64_t>> confusion(num_classes, std::vector<int64_t>(num_classes, 0));
  for (size_t i = 0; i < labels.size(); ++i) ++confusion[labels[i]][predictions[i]];
  return confusion;
}

double accuracy(const std::vector<int>& labels, const std::vector<int>& predictions) {
  if (labels.empty()) invalid("accuracy: no examples (labels and predictions are empty)");
  if (labels.size() != predictions.size())
    invalid("accuracy: " + std::to_string(labels.size()) + " labels but " +
            std::to_string(predictions.size()) + " predictions");
  int64_t correct = 0;
  for (size_t i = 0; i < labels.size(); ++i) correct += labels[i] == predictions[i];
  return static_cast<double>(correct) / static_cast<double>(labels.size());
}

ClassificationReport classification_report(const std::vector<int>& labels,
                                           const std::vector<int>& predictions, int num_classes) {
  check_labels(labels, predictions, num_classes, "classification_report");
  ClassificationReport r;
  r.num_classes = num_classes;
  r.num_examples = static_cast<int64_t>(labels.size());
  r.confusion = confusion_matrix(labels, predictions, num_classes);
  r.accuracy = accuracy(labels, predictions);
  r.per_class.resize(num_classes);
  r.support.assign(num_classes, 0);

  int64_t tp_all = 0, predicted_all = 0, true_all = 0;
  for (int k = 0; k < num_classes; ++k) {
    int64_t predicted = 0, actual = 0;
    for (int j = 0; j < num_classes; ++j) {
      predicted += r.confusion[j][k];
      actual += r.confusion[k][j];
    }
    const int64_t tp = r.confusion[k][k];
    r.support[k] = actual;
    PrecisionRecallF1& c = r.per_class[k];
    c.precision = ratio_or_zero(static_cast<double>(tp), static_cast<double>(predicted));
    c.recall = ratio_or_zero(static_cast<double>(tp), static_cast<double>(actual));
    // sklearn: F_beta = (1 + beta^2) tp / (beta^2 (tp + fn) + (tp + fp)), beta = 1.
    c.f1 = ratio_or_zero(2.0 * static_cast<double>(tp), static_cast<double>(actual + predicted));
    tp_all += tp;
    predicted_all += predicted;
    true_all += actual;
  }

  double support_sum = 0.0;
  for (int k = 0; k < num_classes; ++k) {
    const PrecisionRecallF1& c = r.per_class[k];
    const double w = static_cast<double>(r.support[k]);
    r.macro.precision += c.precision;
    r.macro.recall += c.recall;
    r.macro.f1 += c.f1;
    r.weighted.precision += c.precision * w;
    r.weighted.recall += c.recall * w;
    r.weighted.f1 += c.f1 * w;
    support_sum += w;
  }
  r.macro.precision /= num_classes;
  r.macro.recall /= num_classes;
  r.macro.f1 /= num_classes;
  // support_sum > 0: every label lies in [0, K) and there is at least one example.
  r.weighted.precision /= support_sum;
  r.weighted.recall /= support_sum;
  r.weighted.f1 /= support_sum;

  r.micro.precision =
      ratio_or_zero(static_cast<double>(tp_all), static_cast<double>(predicted_all));
  r.micro.recall = ratio_or_zero(static_cast<double>(tp_all), static_cast<double>(true_all));
  r.micro.f1 = ratio_or_zero(2.0 * static_cast<double>(tp_all),
                             static_cast<double>(true_all + predicted_all));
  return r;
}

// ---- BLEU (sacrebleu) ---------------------------------------------------------------------------

namespace {
// The characters of 13a's first regex, [\{-\~\[-\` -\&\(-\+\:-\@\/]: every printable ASCII symbol
// except ' , - . (and the space, which it also matches, is harmless).
bool is_13a_symbol(char c) {
  return (c >= '{' && c <= '~') || (c >= '[' && c <= '`') || (c >= ' ' && c <= '&') ||
         (c >= '(' && c <= '+') || (c >= ':' && c <= '@') || c == '/';
}
}  // namespace

std::string tokenize_13a(std::string_view segment) {
  // sacrebleu's BLEU._preprocess_segment strips trailing white space, then Tokenizer13a runs.
  std::string line(rstrip_whitespace(segment));
  replace_all(line, "<skipped>", "");
  replace_all(line, "-\n", "");
  replace_all(line, "\n", " ");
  if (line.find('&') != std::string::npos) {  // in this order: "&amp;lt;" becomes "<"
    replace_all(line, "&quot;", "\"");
    replace_all(line, "&amp;", "&");
    replace_all(line, "&lt;", "<");
    replace_all(line, "&gt;", ">");
  }
  line = " " + line + " ";

  // The four regex substitutions of TokenizerRegexp, each a left-to-right scan of non-overlapping
  // matches. The two-character patterns work on bytes: a multi-byte UTF-8 character is never a
  // digit, '.', ',' or '-', so byte and code-point scans find the same matches.
  std::string a;
  for (char c : line) {  // ([\{-\~\[-\` -\&\(-\+\:-\@\/]) -> " \1 "
    if (is_13a_symbol(c)) {
      a += ' ';
      a += c;
      a += ' ';
    } else {
      a += c;
    }
  }
  std::string b;
  for (size_t i = 0; i < a.size();) {  // ([^0-9])([\.,]) -> "\1 \2 "
    if (i + 1 < a.size() && !is_digit(a[i]) && (a[i + 1] == '.' || a[i + 1] == ',')) {
      b += a[i];
      b += ' ';
      b += a[i + 1];
      b += ' ';
      i += 2;
    } else {
      b += a[i++];
    }
  }
  std::string c;
  for (size_t i = 0; i < b.size();) {  // ([\.,])([^0-9]) -> " \1 \2"
    if (i + 1 < b.size() && (b[i] == '.' || b[i] == ',') && !is_digit(b[i + 1])) {
      c += ' ';
      c += b[i];
      c += ' ';
      c += b[i + 1];
      i += 2;
    } else {
      c += b[i++];
    }
  }
  std::string d;
  for (size_t i = 0; i < c.size();) {  // ([0-9])(-) -> "\1 \2 "
    if (i + 1 < c.size() && is_digit(c[i]) && c[i + 1] == '-') {
      d += c[i];
      d += " - ";
      i += 2;
    } else {
      d += c[i++];
    }
  }
  // ' '.join(line.split())
  std::string out;
  for (std::string_view token : split_whitespace(d)) {
    if (!out.empty()) out += ' ';
    out += token;
  }
  return out;
}

namespace {
// sacrebleu's extract_all_word_ngrams: counts of every n-gram, 1 <= n <= 4, of a tokenized line.
NgramCounts bleu_ngrams(const std::vector<std::string_view>& tokens) {
  NgramCounts counts;
  for (int n = 1; n <= kBleuMaxOrder; ++n)
    for (size_t i = 0; i + n <= tokens.size(); ++i) ++counts[join_ngram(tokens, i, n)];
  return counts;
}

// BLEU._get_closest_ref_len: the reference length closest to the hypothesis length, the shorter on
// ties.
int64_t closest_ref_len(int64_t hyp_len, const std::vector<int64_t>& ref_lens) {
  int64_t best_diff = -1, best_len = -1;
  for (int64_t len : ref_lens) {
    const int64_t diff = std::llabs(hyp_len - len);
    if (best_diff == -1 || diff < best_diff) {
      best_diff = diff;
      best_len = len;
    } else if (diff == best_diff && len < best_len) {
      best_len = len;
    }
  }
  return best_len;
}

// sacrebleu's my_log: log, with log(0) floored to -9999999999.
double floored_log(double x) {
  return x == 0.0 ? -9999999999.0 : std::log(x);
}
}  // namespace

BleuScore corpus_bleu(const std::vector<std::string>& hypotheses,
                      const std::vector<std::vector<std::string>>& references) {
  if (hypotheses.empty()) invalid("corpus_bleu: no hypotheses");
  if (references.empty()) invalid("corpus_bleu: no reference streams");
  for (size_t r = 0; r < references.size(); ++r)
    if (references[r].size() != hypotheses.size())
      invalid("corpus_bleu: reference stream " + std::to_string(r) + " has " +
              std::to_string(references[r].size()) + " lines but there are " +
              std::to_string(hypotheses.size()) + " hypotheses");

  BleuScore s;
  for (size_t i = 0; i < hypotheses.size(); ++i) {
    // References: n-gram counts merged by maximum over the references
    // (BLEU._extract_reference_info).
    NgramCounts ref_counts;
    std::vector<int64_t> ref_lens;
    for (const auto& stream : references) {
      const std::string ref = tokenize_13a(stream[i]);
      const std::vector<std::string_view> tokens = split_whitespace(ref);
      ref_lens.push_back(static_cast<int64_t>(tokens.size()));
      for (auto& [ngram, count] : bleu_ngrams(tokens)) {
        int64_t& merged = ref_counts[ngram];
        merged = std::max(merged, count);
      }
    }
    const std::string hyp = tokenize_13a(hypotheses[i]);
    const std::vector<std::string_view> tokens = split_whitespace(hyp);
    const int64_t hyp_len = static_cast<int64_t>(tokens.size());
    s.sys_len += hyp_len;
    s.ref_len += closest_ref_len(hyp_len, ref_lens);
    for (int n = 1; n <= kBleuMaxOrder; ++n) {
      // Hypothesis n-grams of this order, counted, then clipped by the reference counts.
      NgramCounts hyp_counts;
      for (size_t k = 0; k + n <= tokens.size(); ++k) ++hyp_counts[join_ngram(tokens, k, n)];
      for (const auto& [ngram, count] : hyp_counts) {
        s.totals[n - 1] += count;
        const auto it = ref_counts.find(ngram);
        if (it != ref_counts.end()) s.matches[n - 1] += std::min(count, it->second);
      }
    }
  }

  // BLEU.compute_bleu with smooth_method="exp", effective_order=False.
  s.brevity_penalty = 1.0;
  if (s.sys_len < s.ref_len)
    s.brevity_penalty =
        s.sys_len > 0 ? std::exp(1.0 - static_cast<double>(s.ref_len) / s.sys_len) : 0.0;
  bool any_match = false;
  for (int64_t m : s.matches) any_match = any_match || m != 0;
  if (!any_match) return s;  // score 0, precisions 0

  double smooth = 1.0;
  for (int n = 0; n < kBleuMaxOrder; ++n) {
    if (s.totals[n] == 0) break;  // the remaining precisions stay 0
    if (s.matches[n] == 0) {
      smooth *= 2.0;
      s.precisions[n] = 100.0 / (smooth * static_cast<double>(s.totals[n]));
    } else {
      s.precisions[n] =
          100.0 * static_cast<double>(s.matches[n]) / static_cast<double>(s.totals[n]);
    }
  }
  double log_sum = 0.0;
  for (double p : s.precisions) log_sum += floored_log(p);
  s.score = s.brevity_penalty * std::exp(log_sum / kBleuMaxOrder);
  return s;
}

// ---- ROUGE (rouge-score) ------------------------------------------------------------------------

std::vector<std::string> rouge_tokenize(std::string_view text) {
  // text.lower(), then [^a-z0-9]+ -> " ", split, stem tokens longer than 3 characters. Only two
  // non-ASCII code points lowercase to something holding [a-z0-9]: U+212A KELVIN SIGN -> "k", and
  // U+0130 (I with dot above) -> "i" + U+0307, which ends the token after the "i".
  std::vector<std::string> tokens;
  std::string current;
  const auto flush = [&]() {
    if (current.empty()) return;
    tokens.push_back(current.size() > 3 ? porter_stem(current) : current);
    current.clear();
  };
  for (size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      if (c >= 'A' && c <= 'Z') {
        current += static_cast<char>(c - 'A' + 'a');
      } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
        current += static_cast<char>(c);
      } else {
        flush();
      }
      ++i;
      continue;
    }
    if (text.substr(i, 3) == "\xE2\x84\xAA") {  // U+212A
      current += 'k';
      i += 3;
      continue;
    }
    if (text.substr(i, 2) == "\xC4\xB0") {  // U+0130
      current += 'i';
      flush();
      i += 2;
      continue;
    }
    flush();
    // Skip the whole code point (a stray byte counts as one).
    const size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    i += std::min(len, text.size() - i);
  }
  flush();
  return tokens;
}

namespace {
double fmeasure(double precision, double recall) {
  return precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0.0;
}

// rouge_scorer._score_ngrams: precision = overlap / max(#prediction n-grams, 1), recall likewise.
RougeScore score_ngrams(const std::vector<std::string_view>& target,
                        const std::vector<std::string_view>& prediction, int n) {
  NgramCounts target_counts, prediction_counts;
  for (size_t i = 0; i + n <= target.size(); ++i) ++target_counts[join_ngram(target, i, n)];
  for (size_t i = 0; i + n <= prediction.size(); ++i)
    ++prediction_counts[join_ngram(prediction, i, n)];
  int64_t overlap = 0, target_total = 0, prediction_total = 0;
  for (const auto& [ngram, count] : target_counts) {
    target_total += count;
    const auto it = prediction_counts.find(ngram);
    if (it != prediction_counts.end()) overlap += std::min(count, it->second);
  }
  for (const auto& entry : prediction_counts) prediction_total += entry.second;
  RougeScore s;
  s.precision =
      static_cast<double>(overlap) / static_cast<double>(std::max<int64_t>(prediction_total, 1));
  s.recall = static_cast<double>(overlap) / static_cast<double>(std::max<int64_t>(target_total, 1));
  s.fmeasure = fmeasure(s.precision, s.recall);
  return s;
}

// rouge_scorer._score_lcs: the longest common subsequence of tokens (two-row dynamic programme).
RougeScore score_lcs(const std::vector<std::string_view>& target,
                     const std::vector<std::string_view>& prediction) {
  RougeScore s;
  if (target.empty() || prediction.empty()) return s;
  std::vector<int64_t> previous(prediction.size() + 1, 0), row(prediction.size() + 1, 0);
  for (size_t i = 1; i <= target.size(); ++i) {
    for (size_t j = 1; j <= prediction.size(); ++j)
      row[j] = target[i - 1] == prediction[j - 1] ? previous[j - 1] + 1
                                                  : std::max(previous[j], row[j - 1]);
    std::swap(previous, row);
  }
  const auto lcs = static_cast<double>(previous.back());
  s.precision = lcs / static_cast<double>(prediction.size());
  s.recall = lcs / static_cast<double>(target.size());
  s.fmeasure = fmeasure(s.precision, s.recall);
  return s;
}

std::vector<std::string_view> views(const std::vector<std::string>& tokens) {
  return std::vector<std::string_view>(tokens.begin(), tokens.end());
}
}  // namespace

RougeScores rouge_score(std::string_view target, std::string_view prediction) {
  const std::vector<std::string> target_tokens = rouge_tokenize(target);
  const std::vector<std::string> prediction_tokens = rouge_tokenize(prediction);
  const auto t = views(target_tokens), p = views(prediction_tokens);
  RougeScores s;
  s.rouge1 = score_ngrams(t, p, 1);
  s.rouge2 = score_ngrams(t, p, 2);
  s.rougeL = score_lcs(t, p);
  return s;
}

RougeScores rouge_score_multi(const std::vector<std::string>& targets,
                              std::string_view prediction) {
  if (targets.empty()) invalid("rouge_score_multi: no targets");
  RougeScores best;
  for (size_t k = 0; k < targets.size(); ++k) {
    const RougeScores s = rouge_score(targets[k], prediction);
    // np.argmax over the F-measures: the first maximum wins, so replace only on a strict increase.
    if (k == 0 || s.rouge1.fmeasure > best.rouge1.fmeasure) best.rouge1 = s.rouge1;
    if (k == 0 || s.rouge2.fmeasure > best.rouge2.fmeasure) best.rouge2 = s.rouge2;
    if (k == 0 || s.rougeL.fmeasure > best.rougeL.fmeasure) best.rougeL = s.rougeL;
  }
  return best;
}

RougeCorpus rouge_corpus(const std::vector<std::string>& predictions,
                         const std::vector<std::vector<std::string>>& references) {
  if (predictions.empty()) invalid("rouge_corpus: no predictions");
  if (references.size() != predictions.size())
    invalid("rouge_corpus: " + std::to_string(predictions.size()) + " predictions but " +
            std::to_string(references.size()) + " reference lists");
  RougeCorpus corpus;
  for (size_t i = 0; i < predictions.size(); ++i) {
    if (references[i].empty())
      invalid("rouge_corpus: prediction " + std::to_string(i) + " has no reference");
    corpus.per_example.push_back(rouge_score_multi(references[i], predictions[i]));
  }
  const auto add = [](RougeScore& sum, const RougeScore& s) {
    sum.precision += s.precision;
    sum.recall += s.recall;
    sum.fmeasure += s.fmeasure;
  };
  for (const RougeScores& s : corpus.per_example) {
    add(corpus.mean.rouge1, s.rouge1);
    add(corpus.mean.rouge2, s.rouge2);
    add(corpus.mean.rougeL, s.rougeL);
  }
  const auto n = static_cast<double>(predictions.size());
  for (RougeScore* s : {&corpus.mean.rouge1, &corpus.mean.rouge2, &corpus.mean.rougeL}) {
    s->precision /= n;
    s->recall /= n;
    s->fmeasure /= n;
  }
  return corpus;
}

// ---- diversity ----------------------------------------------------------------------------------

Diversity distinct_n(const std::vector<std::string>& generations) {
  if (generations.empty()) invalid("distinct_n: no generations");
  std::unordered_set<std::string> unigrams, bigrams;
  Diversity d;
  for (const std::string& text : generations) {
    const std::vector<std::string_view> tokens = split_whitespace(text);
    for (size_t i = 0; i < tokens.size(); ++i) {
      unigrams.insert(std::string(tokens[i]));
      ++d.unigrams;
      if (i + 1 < tokens.size()) {
        bigrams.insert(join_ngram(tokens, i, 2));
        ++d.bigrams;
      }
    }
  }
  d.distinct_unigrams = static_cast<int64_t>(unigrams.size());
  d.distinct_bigrams = static_cast<int64_t>(bigrams.size());
  d.distinct1 = d.unigrams ? static_cast<double>(d.distinct_unigrams) / d.unigrams : 0.0;
  d.distinct2 = d.bigrams ? static_cast<double>(d.distinct_bigrams) / d.bigrams : 0.0;
  return d;
}

// ---- GSM8K --------------------------------------------------------------------------------------

std::optional<std::string> extract_gsm8k_answer(std::string_view completion) {
  const size_t marker = completion.rfind("####");
  if (marker == std::string_view::npos) return std::nullopt;
  const std::string_view s = completion.substr(marker + 4);
  size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
  bool negative = false, dollar = false;
  for (int k = 0; k < 2 && i < s.size(); ++k) {  // "-", "$", "-$" or "$-"
    if (s[i] == '-' && !negative) {
      negative = true;
      ++i;
    } else if (s[i] == '$' && !dollar) {
      dollar = true;
      ++i;
    }
  }
  if (i >= s.size() || !is_digit(s[i])) return std::nullopt;
  std::string integer, fraction;
  while (i < s.size()) {  // digits; a comma only between two digits
    if (is_digit(s[i])) {
      integer += s[i++];
    } else if (s[i] == ',' && i + 1 < s.size() && is_digit(s[i + 1])) {
      ++i;
    } else {
      break;
    }
  }
  if (i + 1 < s.size() && s[i] == '.' && is_digit(s[i + 1])) {
    ++i;
    while (i < s.size() && is_digit(s[i])) fraction += s[i++];
  }
  if (i < s.size() && s[i] == '.') ++i;  // a sentence's full stop
  if (!rstrip_whitespace(s.substr(i)).empty()) return std::nullopt;

  // Canonical decimal: "007" -> "7", "2.50" -> "2.5", "3.0" -> "3", "-0" -> "0".
  const size_t first = integer.find_first_not_of('0');
  integer = first == std::string::npos ? "0" : integer.substr(first);
  while (!fraction.empty() && fraction.back() == '0') fraction.pop_back();
  std::string value = integer;
  if (!fraction.empty()) value += "." + fraction;
  if (negative && value != "0") value = "-" + value;
  return value;
}

Gsm8kScore gsm8k_score(const std::vector<std::string>& completions,
                       const std::vector<std::string>& references) {
  if (completions.empty()) invalid("gsm8k_score: no completions");
  if (completions.size() != references.size())
    invalid("gsm8k_score: " + std::to_string(completions.size()) + " completions but " +
            std::to_string(references.size()) + " references");
  Gsm8kScore s;
  s.total = static_cast<int64_t>(completions.size());
  for (size_t i = 0; i < completions.size(); ++i) {
    const std::optional<std::string> expected = extract_gsm8k_answer(references[i]);
    if (!expected)
      invalid("gsm8k_score: reference " + std::to_string(i) + " has no final '#### N' answer");
    const std::optional<std::string> got = extract_gsm8k_answer(completions[i]);
    if (!got) continue;
    ++s.well_formed;
    s.correct += *got == *expected;
  }
  s.format_rate = static_cast<double>(s.well_formed) / static_cast<double>(s.total);
  s.accuracy = static_cast<double>(s.correct) / static_cast<double>(s.total);
  return s;
}

// ---- language-model helpers ---------------------------------------------------------------------

namespace {
void check_loss(double mean_loss, const char* who) {
  if (!std::isfinite(mean_loss) || mean_loss < 0.0)
    invalid(std::string(who) + ": the mean loss must be a finite number >= 0, got " +
            std::to_string(mean_loss));
}
}  // namespace

double perplexity(double mean_loss) {
  check_loss(mean_loss, "perplexity");
  return std::exp(mean_loss);
}

double bits_per_token(double mean_loss) {
  check_loss(mean_loss, "bits_per_token");
  return mean_loss / std::log(2.0);
}

double bits_per_byte(double mean_loss, double bytes_per_token) {
  check_loss(mean_loss, "bits_per_byte");
  if (!std::isfinite(bytes_per_token) || bytes_per_token <= 0.0)
    invalid("bits_per_byte: bytes per token must be a finite number > 0, got " +
            std::to_string(bytes_per_token));
  return mean_loss / std::log(2.0) / bytes_per_token;
}

}  // namespace gpt
