// Unit tests of eval/metrics: hand-checked small cases and values computed once with the
// reference packages (sacrebleu 2.6.0, rouge-score 0.1.2 with NLTK 3.10.4, scikit-learn 1.9.1) and
// hard-coded here. The cross-check on real data is tests/reference/check_metrics.py.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "eval/metrics.h"

namespace {

using gpt::BleuScore;
using gpt::ClassificationReport;
using gpt::RougeScores;

constexpr double kExact = 1e-12;  // values that must reproduce the reference to rounding

// ---- classification -----------------------------------------------------------------------------

// y = [0,0,1,1,2,2,2], p = [0,1,1,1,0,2,1], K = 4 (class 3 neither present nor predicted).
// By hand: class 0 tp 1 of 2 predicted, 2 true; class 1 tp 2 of 4 predicted, 2 true; class 2 tp 1
// of 1 predicted, 3 true. scikit-learn gives the same numbers (precision_recall_fscore_support
// with labels=[0,1,2,3], zero_division=0).
TEST(Classification, HandCheckedFourClasses) {
  const std::vector<int> y = {0, 0, 1, 1, 2, 2, 2};
  const std::vector<int> p = {0, 1, 1, 1, 0, 2, 1};
  const ClassificationReport r = gpt::classification_report(y, p, 4);
  EXPECT_EQ(r.num_classes, 4);
  EXPECT_EQ(r.num_examples, 7);
  EXPECT_DOUBLE_EQ(r.accuracy, 4.0 / 7.0);
  const std::vector<std::vector<int64_t>> confusion = {
      {1, 1, 0, 0}, {0, 2, 0, 0}, {1, 1, 1, 0}, {0, 0, 0, 0}};
  EXPECT_EQ(r.confusion, confusion);
  EXPECT_EQ(r.support, (std::vector<int64_t>{2, 2, 3, 0}));
  const double precision[] = {0.5, 0.5, 1.0, 0.0};
  const double recall[] = {0.5, 1.0, 1.0 / 3.0, 0.0};
  const double f1[] = {0.5, 2.0 / 3.0, 0.5, 0.0};
  for (int k = 0; k < 4; ++k) {
    EXPECT_DOUBLE_EQ(r.per_class[k].precision, precision[k]) << "class " << k;
    EXPECT_DOUBLE_EQ(r.per_class[k].recall, recall[k]) << "class " << k;
    EXPECT_DOUBLE_EQ(r.per_class[k].f1, f1[k]) << "class " << k;
  }
  // sklearn: macro (0.5, 0.4583333333333333, 0.41666666666666663),
  //          micro (0.5714285714285714,) * 3, weighted (0.7142857142857143, 0.5714285714285714,
  //          0.5476190476190476).
  EXPECT_NEAR(r.macro.precision, 0.5, kExact);
  EXPECT_NEAR(r.macro.recall, 0.4583333333333333, kExact);
  EXPECT_NEAR(r.macro.f1, 0.41666666666666663, kExact);
  EXPECT_NEAR(r.micro.precision, 4.0 / 7.0, kExact);
  EXPECT_NEAR(r.micro.recall, 4.0 / 7.0, kExact);
  EXPECT_NEAR(r.micro.f1, 4.0 / 7.0, kExact);
  EXPECT_NEAR(r.weighted.precision, 0.7142857142857143, kExact);
  EXPECT_NEAR(r.weighted.recall, 0.5714285714285714, kExact);
  EXPECT_NEAR(r.weighted.f1, 0.5476190476190476, kExact);
}

TEST(Classification, ZeroDivisionGivesZero) {
  // Class 1 is never predicted (precision 0/0), class 2 never present (recall 0/0) but predicted.
  const std::vector<int> y = {0, 0, 1, 1};
  const std::vector<int> p = {0, 2, 0, 0};
  const ClassificationReport r = gpt::classification_report(y, p, 3);
  EXPECT_EQ(r.per_class[1].precision, 0.0);
  EXPECT_EQ(r.per_class[1].recall, 0.0);
  EXPECT_EQ(r.per_class[1].f1, 0.0);
  EXPECT_EQ(r.per_class[2].precision, 0.0);  // 0 of 1 predicted
  EXPECT_EQ(r.per_class[2].recall, 0.0);     // no true example
  EXPECT_EQ(r.per_class[2].f1, 0.0);
  EXPECT_DOUBLE_EQ(r.per_class[0].precision, 1.0 / 3.0);
  EXPECT_DOUBLE_EQ(r.per_class[0].recall, 0.5);
  EXPECT_DOUBLE_EQ(r.per_class[0].f1, 0.4);  // 2·1 / (2 + 3)
  EXPECT_DOUBLE_EQ(r.macro.f1, 0.4 / 3.0);   // absent classes count as 0 in the macro mean
  EXPECT_DOUBLE_EQ(r.weighted.f1, 0.2);      // (0.4·2 + 0·2) / 4
}

TEST(Classification, PerfectPredictions) {
  const std::vector<int> y = {2, 0, 1, 1};
  const ClassificationReport r = gpt::classification_report(y, y, 3);
  EXPECT_EQ(r.accuracy, 1.0);
  EXPECT_EQ(r.macro.f1, 1.0);
  EXPECT_EQ(r.weighted.precision, 1.0);
  EXPECT_EQ(gpt::accuracy(y, y), 1.0);
  EXPECT_EQ(gpt::confusion_matrix(y, y, 3)[1][1], 2);
}

TEST(Classification, BadInputThrows) {
  EXPECT_THROW(gpt::classification_report({}, {}, 2), std::invalid_argument);
  EXPECT_THROW(gpt::classification_report({0, 1}, {0}, 2), std::invalid_argument);
  EXPECT_THROW(gpt::classification_report({0, 2}, {0, 1}, 2), std::invalid_argument);
  EXPECT_THROW(gpt::classification_report({0, 1}, {0, -1}, 2), std::invalid_argument);
  EXPECT_THROW(gpt::classification_report({0}, {0}, 0), std::invalid_argument);
  EXPECT_THROW(gpt::accuracy({}, {}), std::invalid_argument);
  EXPECT_THROW(gpt::confusion_matrix({0, 5}, {0, 1}, 2), std::invalid_argument);
}

// ---- BLEU ---------------------------------------------------------------------------------------

TEST(Bleu, Tokenizer13aMatchesSacrebleu) {
  // Outputs of sacrebleu.metrics.BLEU()._preprocess_segment (rstrip + Tokenizer13a).
  const std::pair<const char*, const char*> cases[] = {
      {"Hello, world! It's 3.14 or 1,000-2 items.",
       "Hello , world ! It's 3.14 or 1,000 - 2 items ."},
      {"A &quot;quote&quot; &amp;lt; x<skipped>y -\nz\xc2\xa0"
       "end\xe2\x80\x83 ",
       "A \" quote \" < xy z end"},
      {"U.S.A. e.g. (test) [x]{y} a/b $5 50% ...",
       "U . S . A . e . g . ( test ) [ x ] { y } a / b $ 5 50 % . . ."},
      {"Mr. Smith's car-park, 2-3 km.", "Mr . Smith's car-park , 2 - 3 km ."},
      {"", ""},
      {" \t\n", ""},
  };
  for (const auto& [in, expected] : cases) EXPECT_EQ(gpt::tokenize_13a(in), expected) << in;
}

TEST(Bleu, IdenticalIs100) {
  const std::vector<std::string> lines = {"A man sleeping in a green room on a couch.",
                                          "A boy wearing headphones sits on a woman's shoulders."};
  const BleuScore s = gpt::corpus_bleu(lines, {lines});
  EXPECT_NEAR(s.score, 100.0, kExact);
  for (double p : s.precisions) EXPECT_NEAR(p, 100.0, kExact);
  EXPECT_EQ(s.brevity_penalty, 1.0);
  EXPECT_EQ(s.sys_len, s.ref_len);
}

TEST(Bleu, EmptyHypothesisScoresZero) {
  const BleuScore s = gpt::corpus_bleu({""}, {{"the cat"}});
  EXPECT_EQ(s.score, 0.0);
  EXPECT_EQ(s.sys_len, 0);
  EXPECT_EQ(s.ref_len, 2);
  EXPECT_EQ(s.brevity_penalty, 0.0);
  for (double p : s.precisions) EXPECT_EQ(p, 0.0);
}

struct BleuCase {
  std::vector<std::string> hypotheses;
  std::vector<std::vector<std::string>> references;
  double score;
  std::array<double, 4> precisions;
  double bp;
  int64_t sys_len, ref_len;
};

TEST(Bleu, KnownSacrebleuValues) {
  // Computed once with sacrebleu 2.6.0: sacrebleu.corpus_bleu(hypotheses, references).
  const BleuCase cases[] = {
      {{"The cat sat on the mat.", "It is raining today!"},
       {{"The cat is on the mat.", "It rains today!"}},
       35.355339059327385,
       {75.0, 50.0, 25.0, 16.666666666666668},
       1.0,
       12,
       11},
      // two reference streams
      {{"The cat sat on the mat.", "It is raining today!"},
       {{"The cat is on the mat.", "It rains today!"},
        {"A cat sat on the mat.", "It is raining now!"}},
       72.82376575609855,
       {100.0, 90.0, 62.5, 50.0},
       1.0,
       12,
       12},
      // no bigram, trigram or 4-gram matches: exp smoothing 100 / (2^k · total)
      {{"the the the the"},
       {{"the cat"}},
       15.97357760615681,
       {25.0, 100.0 / 6, 12.5, 12.5},
       1.0,
       4,
       2},
      // too short: brevity penalty, and no 4-gram at all makes the score 0
      {{"a b c"}, {{"a b c d e f g"}}, 0.0, {100.0, 100.0, 100.0, 0.0}, 0.2635971381157267, 3, 7},
      {{"the cat sat on a mat"},
       {{"the cat sat on the mat"}},
       53.7284965911771,
       {83.33333333333333, 60.0, 50.0, 33.333333333333336},
       1.0,
       6,
       6},
  };
  for (const BleuCase& c : cases) {
    const BleuScore s = gpt::corpus_bleu(c.hypotheses, c.references);
    EXPECT_NEAR(s.score, c.score, 1e-9) << c.hypotheses[0];
    for (int n = 0; n < 4; ++n) EXPECT_NEAR(s.precisions[n], c.precisions[n], 1e-9) << n;
    EXPECT_NEAR(s.brevity_penalty, c.bp, kExact);
    EXPECT_EQ(s.sys_len, c.sys_len);
    EXPECT_EQ(s.ref_len, c.ref_len);
  }
}

TEST(Bleu, ClosestReferenceLengthTiesToTheShorter) {
  // Hypothesis of 4 tokens, references of 6 and 2: both 2 away, the shorter (2) is used.
  const BleuScore s = gpt::corpus_bleu({"a b c d"}, {{"a b c d e f"}, {"a b"}});
  EXPECT_EQ(s.ref_len, 2);
  const BleuScore t = gpt::corpus_bleu({"a b c"}, {{"a b c d e f"}, {"a b"}});
  EXPECT_EQ(t.ref_len, 2);  // 1 away beats 3 away
}

TEST(Bleu, BadInputThrows) {
  EXPECT_THROW(gpt::corpus_bleu({}, {{}}), std::invalid_argument);
  EXPECT_THROW(gpt::corpus_bleu({"a"}, {}), std::invalid_argument);
  EXPECT_THROW(gpt::corpus_bleu({"a", "b"}, {{"a"}}), std::invalid_argument);
}

// ---- Porter stemmer and ROUGE -------------------------------------------------------------------

TEST(Porter, MatchesNltk) {
  // nltk.stem.porter.PorterStemmer().stem(word), NLTK 3.10.4 (NLTK_EXTENSIONS): the examples of
  // Porter's paper for every step plus NLTK's irregular forms and departures.
  const std::pair<const char*, const char*> cases[] = {{"caresses", "caress"},
                                                       {"ponies", "poni"},
                                                       {"ties", "tie"},
                                                       {"caress", "caress"},
                                                       {"cats", "cat"},
                                                       {"feed", "feed"},
                                                       {"agreed", "agre"},
                                                       {"plastered", "plaster"},
                                                       {"bled", "bled"},
                                                       {"motoring", "motor"},
                                                       {"sing", "sing"},
                                                       {"conflated", "conflat"},
                                                       {"troubled", "troubl"},
                                                       {"sized", "size"},
                                                       {"hopping", "hop"},
                                                       {"tanned", "tan"},
                                                       {"falling", "fall"},
                                                       {"hissing", "hiss"},
                                                       {"fizzed", "fizz"},
                                                       {"failing", "fail"},
                                                       {"filing", "file"},
                                                       {"happy", "happi"},
                                                       {"sky", "sky"},
                                                       {"skies", "sky"},
                                                       {"dying", "die"},
                                                       {"lying", "lie"},
                                                       {"tying", "tie"},
                                                       {"news", "news"},
                                                       {"innings", "inning"},
                                                       {"outings", "outing"},
                                                       {"cannings", "canning"},
                                                       {"howe", "howe"},
                                                       {"proceed", "proceed"},
                                                       {"exceed", "exceed"},
                                                       {"succeed", "succeed"},
                                                       {"relational", "relat"},
                                                       {"conditional", "condit"},
                                                       {"rational", "ration"},
                                                       {"valenci", "valenc"},
                                                       {"digitizer", "digit"},
                                                       {"radicalli", "radic"},
                                                       {"differentli", "differ"},
                                                       {"vileli", "vile"},
                                                       {"analogousli", "analog"},
                                                       {"vietnamization", "vietnam"},
                                                       {"predication", "predic"},
                                                       {"operator", "oper"},
                                                       {"feudalism", "feudal"},
                                                       {"decisiveness", "decis"},
                                                       {"callousness", "callous"},
                                                       {"formaliti", "formal"},
                                                       {"sensitiviti", "sensit"},
                                                       {"sensibiliti", "sensibl"},
                                                       {"triplicate", "triplic"},
                                                       {"formative", "form"},
                                                       {"formalize", "formal"},
                                                       {"electriciti", "electr"},
                                                       {"electrical", "electr"},
                                                       {"hopeful", "hope"},
                                                       {"goodness", "good"},
                                                       {"revival", "reviv"},
                                                       {"allowance", "allow"},
                                                       {"inference", "infer"},
                                                       {"airliner", "airlin"},
                                                       {"gyroscopic", "gyroscop"},
                                                       {"adjustable", "adjust"},
                                                       {"defensible", "defens"},
                                                       {"irritant", "irrit"},
                                                       {"replacement", "replac"},
                                                       {"adjustment", "adjust"},
                                                       {"dependent", "depend"},
                                                       {"adoption", "adopt"},
                                                       {"homologous", "homolog"},
                                                       {"communism", "commun"},
                                                       {"activate", "activ"},
                                                       {"angulariti", "angular"},
                                                       {"effective", "effect"},
                                                       {"bowdlerize", "bowdler"},
                                                       {"probate", "probat"},
                                                       {"rate", "rate"},
                                                       {"cease", "ceas"},
                                                       {"controll", "control"},
                                                       {"roll", "roll"},
                                                       {"generously", "gener"},
                                                       {"analogi", "analog"},
                                                       {"fulli", "fulli"},
                                                       {"helpfulli", "help"},
                                                       {"archaeology", "archaeolog"},
                                                       {"spied", "spi"},
                                                       {"died", "die"},
                                                       {"cried", "cri"},
                                                       {"enjoy", "enjoy"},
                                                       {"fly", "fli"},
                                                       {"spy", "spi"},
                                                       {"yyyy", "yyyi"},
                                                       {"syzygy", "syzygi"},
                                                       {"oed", "o"},
                                                       {"abed", "abe"},
                                                       {"ay", "ay"},
                                                       {"is", "is"},
                                                       {"as", "as"},
                                                       {"oxen", "oxen"},
                                                       {"boxing", "box"},
                                                       {"bowing", "bow"},
                                                       {"hoeing", "hoe"},
                                                       {"installing", "instal"},
                                                       {"12ing", "12ing"},
                                                       {"Running", "run"}};
  for (const auto& [word, stem] : cases) EXPECT_EQ(gpt::porter_stem(word), stem) << word;
}

TEST(Rouge, TokenizerMatchesRougeScore) {
  // rouge_scorer.RougeScorer([...], use_stemmer=True)._tokenizer.tokenize(text): İ lowercases to
  // "i" + a combining dot, the Kelvin sign to "k"; other non-ASCII letters separate tokens.
  const std::vector<std::string> expected = {"run", "dog",  "i",  "stanbul", "kelvin", "caf", "na",
                                             "ve",  "42nd", "ab", "cd",      "1",      "000"};
  EXPECT_EQ(gpt::rouge_tokenize("Running DOGS, \xc4\xb0stanbul \xe2\x84\xaa"
                                "elvin; caf\xc3\xa9 na\xc3\xafve 42nd ab_cd 1,000"),
            expected);
  EXPECT_TRUE(gpt::rouge_tokenize(" ,.;\xe2\x80\x94 ").empty());
}

void expect_rouge(const gpt::RougeScore& s, double p, double r, double f, const char* what) {
  EXPECT_NEAR(s.precision, p, kExact) << what;
  EXPECT_NEAR(s.recall, r, kExact) << what;
  EXPECT_NEAR(s.fmeasure, f, kExact) << what;
}

TEST(Rouge, KnownRougeScoreValues) {
  // RougeScorer(['rouge1', 'rouge2', 'rougeL'], use_stemmer=True).score(target, prediction),
  // rouge-score 0.1.2.
  const RougeScores a = gpt::rouge_score("The quick brown fox jumps over the lazy dog",
                                         "The quick brown dog jumps on the log.");
  expect_rouge(a.rouge1, 0.75, 0.6666666666666666, 0.7058823529411765, "rouge1");
  expect_rouge(a.rouge2, 0.2857142857142857, 0.25, 0.26666666666666666, "rouge2");
  expect_rouge(a.rougeL, 0.625, 0.5555555555555556, 0.5882352941176471, "rougeL");
  // Stemming makes cats/cat, running/runs, garden/gardens match.
  const RougeScores b =
      gpt::rouge_score("The cats are running in the garden.", "A cat runs in gardens");
  expect_rouge(b.rouge1, 0.8, 0.5714285714285714, 0.6666666666666666, "rouge1");
  expect_rouge(b.rouge2, 0.25, 0.16666666666666666, 0.2, "rouge2");
  expect_rouge(b.rougeL, 0.8, 0.5714285714285714, 0.6666666666666666, "rougeL");
  // score_multi: the best target per ROUGE type.
  const RougeScores c = gpt::rouge_score_multi(
      {"The cats are running in the garden.", "cats run in the garden"}, "A cat runs in gardens");
  expect_rouge(c.rouge1, 0.8, 0.8, 0.8000000000000002, "multi rouge1");
  expect_rouge(c.rouge2, 0.5, 0.5, 0.5, "multi rouge2");
  expect_rouge(c.rougeL, 0.8, 0.8, 0.8000000000000002, "multi rougeL");
}

TEST(Rouge, MultiTieKeepsTheFirstTarget) {
  // rouge1 F is 2/3 against both targets (P 0.5 R 1, and P 1 R 0.5): np.argmax keeps the first.
  // rouge2 is chosen separately: F 0.5 against the first target, 0.6 against the second.
  const RougeScores first = gpt::rouge_score_multi({"a b", "a b c d e f g h"}, "a b c d");
  expect_rouge(first.rouge1, 0.5, 1.0, 0.6666666666666666, "rouge1");
  expect_rouge(first.rouge2, 1.0, 0.42857142857142855, 0.6, "rouge2");
  expect_rouge(first.rougeL, 0.5, 1.0, 0.6666666666666666, "rougeL");
  const RougeScores swapped = gpt::rouge_score_multi({"a b c d e f g h", "a b"}, "a b c d");
  expect_rouge(swapped.rouge1, 1.0, 0.5, 0.6666666666666666, "rouge1 swapped");
  expect_rouge(swapped.rougeL, 1.0, 0.5, 0.6666666666666666, "rougeL swapped");
}

TEST(Rouge, EmptyPredictionAndCorpusMean) {
  const RougeScores empty = gpt::rouge_score("the cat", "");
  expect_rouge(empty.rouge1, 0, 0, 0, "rouge1");
  expect_rouge(empty.rougeL, 0, 0, 0, "rougeL");
  const gpt::RougeCorpus corpus =
      gpt::rouge_corpus({"the cat sat", ""}, {{"the cat sat"}, {"a dog"}});
  ASSERT_EQ(corpus.per_example.size(), 2u);
  EXPECT_DOUBLE_EQ(corpus.per_example[0].rouge2.fmeasure, 1.0);
  EXPECT_DOUBLE_EQ(corpus.mean.rouge1.fmeasure, 0.5);
  EXPECT_DOUBLE_EQ(corpus.mean.rougeL.recall, 0.5);
  EXPECT_THROW(gpt::rouge_score_multi({}, "x"), std::invalid_argument);
  EXPECT_THROW(gpt::rouge_corpus({}, {}), std::invalid_argument);
  EXPECT_THROW(gpt::rouge_corpus({"a"}, {{}}), std::invalid_argument);
  EXPECT_THROW(gpt::rouge_corpus({"a", "b"}, {{"a"}}), std::invalid_argument);
}

// ---- diversity ----------------------------------------------------------------------------------

TEST(Diversity, DistinctN) {
  // unigrams: the cat sat the cat ran -> 4 distinct of 6; bigrams: "the cat" twice, "cat sat",
  // "cat ran" -> 3 of 4. No bigram spans "sat" and "the" (different generations).
  const gpt::Diversity d = gpt::distinct_n({"the cat sat", "the  cat\tran"});
  EXPECT_EQ(d.unigrams, 6);
  EXPECT_EQ(d.distinct_unigrams, 4);
  EXPECT_EQ(d.bigrams, 4);
  EXPECT_EQ(d.distinct_bigrams, 3);
  EXPECT_DOUBLE_EQ(d.distinct1, 4.0 / 6.0);
  EXPECT_DOUBLE_EQ(d.distinct2, 0.75);
  const gpt::Diversity case_kept = gpt::distinct_n({"The the"});
  EXPECT_DOUBLE_EQ(case_kept.distinct1, 1.0);
  const gpt::Diversity short_ones = gpt::distinct_n({"", "a"});
  EXPECT_EQ(short_ones.distinct1, 1.0);
  EXPECT_EQ(short_ones.distinct2, 0.0);  // no bigram at all
  EXPECT_THROW(gpt::distinct_n({}), std::invalid_argument);
}

// ---- GSM8K --------------------------------------------------------------------------------------

TEST(Gsm8k, ExtractsTheFinalAnswer) {
  const std::pair<const char*, const char*> ok[] = {
      {"She makes 9 * 2 = $<<9*2=18>>18 every day.\n#### 18", "18"},
      {"#### 1,200", "1200"},
      {"x\n#### $1,200.50", "1200.5"},
      {"#### -7", "-7"},
      {"#### -$7", "-7"},
      {"#### $-7", "-7"},
      {"####  18.00\n\n", "18"},
      {"#### 007", "7"},
      {"#### -0", "0"},
      {"#### 5.", "5"},
      {"#### 0.25", "0.25"},
      {"#### 3\n#### 4", "4"},  // the last marker counts
      {"####42", "42"},
  };
  for (const auto& [text, value] : ok) {
    const auto got = gpt::extract_gsm8k_answer(text);
    ASSERT_TRUE(got.has_value()) << text;
    EXPECT_EQ(*got, value) << text;
  }
  const char* malformed[] = {
      "The answer is 18", "#### 72 dollars",        "#### ",    "#### 1,,000", "#### 1,000,",
      "#### x",           "#### 3 and then #### x", "#### --5", "#### .5",     "#### 5\nbut wait"};
  for (const char* text : malformed) EXPECT_FALSE(gpt::extract_gsm8k_answer(text)) << text;
}

TEST(Gsm8k, ScoresFormatAndAccuracy) {
  const std::vector<std::string> references = {"a\n#### 1,200", "b\n#### 18", "c\n#### -3",
                                               "d\n#### 5"};
  const std::vector<std::string> completions = {"so #### 1200", "#### $18.00", "no marker -3",
                                                "#### 6"};
  const gpt::Gsm8kScore s = gpt::gsm8k_score(completions, references);
  EXPECT_EQ(s.total, 4);
  EXPECT_EQ(s.well_formed, 3);
  EXPECT_EQ(s.correct, 2);
  EXPECT_DOUBLE_EQ(s.format_rate, 0.75);
  EXPECT_DOUBLE_EQ(s.accuracy, 0.5);
  EXPECT_THROW(gpt::gsm8k_score({"#### 1"}, {"no answer"}), std::invalid_argument);
  EXPECT_THROW(gpt::gsm8k_score({}, {}), std::invalid_argument);
  EXPECT_THROW(gpt::gsm8k_score({"#### 1"}, {"#### 1", "#### 2"}), std::invalid_argument);
}

// ---- language-model helpers ---------------------------------------------------------------------

TEST(LanguageModel, PerplexityAndBitsPerByte) {
  EXPECT_DOUBLE_EQ(gpt::perplexity(0.0), 1.0);
  EXPECT_NEAR(gpt::perplexity(std::log(50257.0)), 50257.0, 1e-8);
  EXPECT_DOUBLE_EQ(gpt::bits_per_token(std::log(2.0) * 3), 3.0);
  // 4 bits per token at 4 bytes per token is 1 bit per byte.
  EXPECT_DOUBLE_EQ(gpt::bits_per_byte(std::log(2.0) * 4, 4.0), 1.0);
  EXPECT_NEAR(gpt::bits_per_byte(3.0, 4.2), 3.0 / std::log(2.0) / 4.2, 1e-15);
  EXPECT_THROW(gpt::perplexity(std::nan("")), std::invalid_argument);
  EXPECT_THROW(gpt::perplexity(-1.0), std::invalid_argument);
  EXPECT_THROW(gpt::bits_per_byte(1.0, 0.0), std::invalid_argument);
  EXPECT_THROW(gpt::bits_per_byte(INFINITY, 4.0), std::invalid_argument);
}

}  // namespace
