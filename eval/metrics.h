// Evaluation metrics: classification, corpus BLEU, ROUGE, diversity, GSM8K answers, LM helpers.
//
// Each text metric reproduces one reference implementation exactly, so that a number printed by
// gpt-eval can be put next to a number from a paper that used the same package:
//
//   corpus_bleu        sacrebleu.corpus_bleu(hyps, [refs...]) with default settings (2.x): the 13a
//                      tokenizer, n-grams up to 4, "exp" smoothing, brevity penalty against the
//                      closest reference length, case-sensitive.
//   rouge_*            rouge_score.rouge_scorer.RougeScorer(['rouge1', 'rouge2', 'rougeL'],
//                      use_stemmer=True): its tokenizer and NLTK's Porter stemmer
//                      (NLTK_EXTENSIONS).
//   classification_*   sklearn.metrics (precision_recall_fscore_support with labels=range(K) and
//                      zero_division=0, confusion_matrix, accuracy_score).
//
// tests/reference/check_metrics.py compares every one of them with the Python package on real data;
// docs/metrics.md gives the definitions, the conventions and the measured agreement.
//
// All strings are UTF-8. Bad input (empty corpora, mismatched lengths, labels out of range, a
// malformed reference answer) throws std::invalid_argument with a message saying what is wrong.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gpt {

// ---- classification -----------------------------------------------------------------------------
// Labels and predictions are class ids in [0, K). Every class 0..K-1 is reported, whether or not it
// occurs (scikit-learn with labels=range(K)). A ratio whose denominator is zero is 0
// (zero_division=0): precision of a class never predicted, recall of a class never present, F1 of a
// class neither predicted nor present. F1 = 2·tp / (2·tp + fp + fn), which equals the harmonic mean
// of precision and recall wherever both are defined.
struct PrecisionRecallF1 {
  double precision = 0.0;
  double recall = 0.0;
  double f1 = 0.0;
};

struct ClassificationReport {
  int num_classes = 0;
  int64_t num_examples = 0;
  double accuracy = 0.0;
  // confusion[t][p]: examples of true class t predicted as p (sklearn's confusion_matrix layout).
  std::vector<std::vector<int64_t>> confusion;
  std::vector<PrecisionRecallF1> per_class;  // (K)
  std::vector<int64_t> support;              // (K) examples whose true class is k
  PrecisionRecallF1 macro;     // unweighted mean over the K classes (absent classes count as 0)
  PrecisionRecallF1 micro;     // from tp, fp, fn summed over classes: all three equal accuracy
  PrecisionRecallF1 weighted;  // mean over classes weighted by support
};

// Throws std::invalid_argument when the vectors are empty or differ in length, when num_classes <
// 1, or when a label or prediction lies outside [0, num_classes).
ClassificationReport classification_report(const std::vector<int>& labels,
                                           const std::vector<int>& predictions, int num_classes);
double accuracy(const std::vector<int>& labels, const std::vector<int>& predictions);
std::vector<std::vector<int64_t>> confusion_matrix(const std::vector<int>& labels,
                                                   const std::vector<int>& predictions,
                                                   int num_classes);

// ---- BLEU (sacrebleu) ---------------------------------------------------------------------------
constexpr int kBleuMaxOrder = 4;

struct BleuScore {
  double score = 0.0;                              // 0..100
  std::array<double, kBleuMaxOrder> precisions{};  // n-gram precisions in percent, n = 1..4
  std::array<int64_t, kBleuMaxOrder> matches{};    // clipped n-gram matches summed over segments
  std::array<int64_t, kBleuMaxOrder> totals{};     // hypothesis n-grams summed over segments
  double brevity_penalty = 0.0;
  int64_t sys_len = 0;  // hypothesis tokens
  int64_t ref_len = 0;  // closest reference lengths, summed
};

// sacrebleu's 13a tokenizer (mteval-v13a.pl): drops "<skipped>", joins "-\n", unescapes &quot;
// &amp; &lt; &gt;, splits off punctuation (and '.' ',' unless between digits, '-' after a digit),
// then collapses white space (Python's str.split(): Unicode white space). The segment's trailing
// white space is stripped first, as sacrebleu does before tokenizing.
std::string tokenize_13a(std::string_view segment);

// references[r][i] is reference r of hypothesis i (sacrebleu's layout: one stream per reference).
// Every stream must have as many lines as there are hypotheses (sacrebleu would silently truncate).
BleuScore corpus_bleu(const std::vector<std::string>& hypotheses,
                      const std::vector<std::vector<std::string>>& references);

// ---- ROUGE (rouge-score with use_stemmer=True) --------------------------------------------------
struct RougeScore {
  double precision = 0.0;
  double recall = 0.0;
  double fmeasure = 0.0;
};
struct RougeScores {
  RougeScore rouge1, rouge2, rougeL;
};

// NLTK's PorterStemmer().stem(word) in its default NLTK_EXTENSIONS mode. Meant for ASCII words (the
// ROUGE tokenizer feeds it [a-z0-9]+); only ASCII upper case is lowered.
std::string porter_stem(std::string_view word);
// rouge-score's tokenizer: lowercase, every run of characters outside [a-z0-9] becomes a separator,
// tokens longer than 3 characters are Porter-stemmed.
std::vector<std::string> rouge_tokenize(std::string_view text);
// RougeScorer.score(target, prediction): the reference comes first.
RougeScores rouge_score(std::string_view target, std::string_view prediction);
// RougeScorer.score_multi(targets, prediction): for each ROUGE type separately, the scores against
// the target with the highest F-measure (the first one on ties). Throws when targets is empty.
RougeScores rouge_score_multi(const std::vector<std::string>& targets, std::string_view prediction);

struct RougeCorpus {
  std::vector<RougeScores> per_example;
  RougeScores mean;  // arithmetic mean of each field over the examples
};
// references[i] holds the reference(s) of predictions[i] (scored with rouge_score_multi).
RougeCorpus rouge_corpus(const std::vector<std::string>& predictions,
                         const std::vector<std::vector<std::string>>& references);

// ---- diversity ----------------------------------------------------------------------------------
// distinct-n = (number of distinct n-grams) / (number of n-grams), both counted over all
// generations together; tokens are split on white space (as Python's str.split()), case is kept,
// and n-grams never cross from one generation to the next. 0 when no generation has n tokens.
struct Diversity {
  double distinct1 = 0.0;
  double distinct2 = 0.0;
  int64_t unigrams = 0, distinct_unigrams = 0;
  int64_t bigrams = 0, distinct_bigrams = 0;
};
Diversity distinct_n(const std::vector<std::string>& generations);

// ---- GSM8K --------------------------------------------------------------------------------------
// The final answer of a completion in GSM8K's format: the text ends with "#### N" (white space may
// follow). N: an optional '-' and/or '$' (either order), digits with optional thousands commas, an
// optional decimal part, an optional final '.'. Returned normalised: no '$' or commas, no leading
// zeros, no trailing decimal zeros, "-0" -> "0" ("$1,200.50" -> "1200.5"). nullopt when the last
// "####" is not followed by such a number up to the end of the text.
std::optional<std::string> extract_gsm8k_answer(std::string_view completion);

struct Gsm8kScore {
  int64_t total = 0;
  int64_t well_formed = 0;   // completions with an extractable "#### N"
  int64_t correct = 0;       // extracted N equal to the reference's N
  double format_rate = 0.0;  // well_formed / total
  double accuracy = 0.0;     // correct / total (a malformed completion counts as wrong)
};
// references are GSM8K "answer" fields (or anything ending in "#### N"); one that has no answer
// throws std::invalid_argument naming its index.
Gsm8kScore gsm8k_score(const std::vector<std::string>& completions,
                       const std::vector<std::string>& references);

// ---- language-model helpers ---------------------------------------------------------------------
// mean_loss: mean cross-entropy per token in nats.
double perplexity(double mean_loss);                             // exp(loss)
double bits_per_token(double mean_loss);                         // loss / ln 2
double bits_per_byte(double mean_loss, double bytes_per_token);  // loss / ln 2 / bytes_per_token

}  // namespace gpt
