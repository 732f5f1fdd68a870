// Direct tests of the evaluation library (eval/): the pieces the tasks are made of, on known logits
// and a tiny model, without the command line. The tasks end to end: tests/cli/eval.sh.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "eval/choice.h"
#include "eval/classify.h"
#include "eval/lm.h"
#include "eval/report.h"
#include "eval/tasks.h"
#include "eval/text.h"

namespace {

using gpt::ClassifyTally;
using gpt::LabelWordScorer;
using gpt::ScoredRows;

TEST(EvalClassify, ClassHeadTallyIsTheArgmaxOfEachScoredRow) {
  // Three rows of 2 positions, K = 3: row 1 is not scored (padding after the last example).
  const std::vector<float> logits = {0.1f, 2.0f, -1.0f,  // row 0: predicts 1
                                     9.0f, 0.0f, 0.0f,   // row 1: skipped
                                     0.5f, 0.4f, 0.6f};  // row 2: predicts 2
  const std::vector<int32_t> targets = {-1, 1, -1, -1, 0, -1};
  ScoredRows rows;
  rows.first = {1, -1, 0};
  rows.last = {1, -1, 0};
  rows.examples = {7, -1, 8};
  rows.row_length = 2;
  ClassifyTally tally;
  gpt::tally_class_head(logits, 3, targets.data(), rows, tally);
  EXPECT_EQ(tally.labels, (std::vector<int>{1, 0}));
  EXPECT_EQ(tally.predictions, (std::vector<int>{1, 2}));
  EXPECT_EQ(tally.example_ids, (std::vector<int64_t>{7, 8}));
  EXPECT_EQ(tally.loss_count, 2);
}

TEST(EvalClassify, LabelWordsOfTheByteTokenizerShareTheSpace) {
  const gpt::PrepareTokenizer tok = gpt::PrepareTokenizer::bytes();
  const LabelWordScorer sc({"no", "yes"}, tok);
  EXPECT_EQ(sc.prefix, 1);  // " " is common to " no" and " yes"
  EXPECT_EQ(sc.deciding, (std::vector<int32_t>{'n', 'y'}));
  EXPECT_EQ(sc.seqs[0].back(), tok.eot_token());
  EXPECT_EQ(LabelWordScorer({"no", "nope"}, tok).prefix, 3);  // parts at <eot> vs "p"
  EXPECT_THROW(LabelWordScorer({"no", "no"}, tok), std::invalid_argument);
}

TEST(EvalClassify, LabelWordTallyReadsTheDecidingPosition) {
  const gpt::PrepareTokenizer tok = gpt::PrepareTokenizer::bytes();
  const LabelWordScorer sc({"no", "yes"}, tok);
  const int Vp = 256 + 128, T = 4;
  // One row: targets " y e s <eot>" start at position 0; the deciding token 'y' at position 1.
  std::vector<int32_t> targets = {' ', 'y', 'e', 's'};
  std::vector<float> logits(static_cast<size_t>(T) * Vp, 0.0f);
  logits[static_cast<size_t>(1) * Vp + 'n'] = 3.0f;  // predicts "no"
  ScoredRows rows;
  rows.first = {0};
  rows.last = {3};
  rows.examples = {0};
  rows.row_length = T;
  ClassifyTally tally;
  gpt::tally_label_words(logits, Vp, targets.data(), rows, sc, "data", T, tally);
  EXPECT_EQ(tally.labels, (std::vector<int>{1}));
  EXPECT_EQ(tally.predictions, (std::vector<int>{0}));
  EXPECT_EQ(tally.loss_count, 4);
  targets[1] = 'm';  // no label word starts so
  EXPECT_THROW(gpt::tally_label_words(logits, Vp, targets.data(), rows, sc, "data", T, tally),
               std::runtime_error);
}

TEST(EvalChoice, TokenLossIsMinusLogSoftmax) {
  const std::vector<float> logits = {1.0f, 2.0f, 3.0f, 100.0f};  // the last is padding (V = 3)
  const double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  EXPECT_NEAR(gpt::token_loss(logits.data(), 3, 0), std::log(z) - 1.0, 1e-12);
  EXPECT_NEAR(gpt::token_loss(logits.data(), 3, 2), std::log(z) - 3.0, 1e-12);
  EXPECT_EQ(gpt::lowest_loss({2.0, 1.0, 1.0}), 1);  // ties: the first
}

TEST(EvalLm, BytesPerTokenComesFromTheSplitOfTheShards) {
  const nlohmann::json meta = {{"val_bytes", 300}, {"val_tokens", 100}, {"train_tokens", 0}};
  EXPECT_DOUBLE_EQ(gpt::bytes_per_token_of(meta, {"d/val_000.bin", "d/val_001.bin"}), 3.0);
  EXPECT_EQ(gpt::bytes_per_token_of(meta, {"d/val_000.bin", "d/train_000.bin"}), 0.0);
  EXPECT_EQ(gpt::bytes_per_token_of(meta, {"d/train_000.bin"}), 0.0);  // no train_bytes
}

TEST(EvalReport, TablesAlignAndFormatFixedSpellsNonFinite) {
  gpt::EvalTable t = gpt::metric_table("scores", {{"accuracy", "0.5000"}, {"examples", "12"}});
  EXPECT_EQ(gpt::render_tables({t}),
            "scores\nmetric     value\n--------  ------\naccuracy  0.5000\nexamples      12\n");
  EXPECT_EQ(gpt::format_fixed(NAN, 3), "nan");
  EXPECT_EQ(gpt::format_fixed(-INFINITY, 3), "-inf");
  EXPECT_EQ(gpt::format_fixed(0.125, 2), "0.12");
}

TEST(EvalText, InvalidUtf8BecomesReplacementCharacters) {
  EXPECT_EQ(gpt::to_valid_utf8("a\xC3"), "a\xEF\xBF\xBD");
  EXPECT_EQ(gpt::to_valid_utf8("\xC3\xA9"), "\xC3\xA9");
  EXPECT_EQ(gpt::one_line("a\nb", 10), "a\\nb");
  EXPECT_EQ(gpt::strip("  x \n"), "x");
}

TEST(EvalSettings, CheckNamesTheFlag) {
  gpt::EvalSettings s;
  s.model = "m";
  s.task = "lm";
  s.data = "d";
  EXPECT_NO_THROW(gpt::check_eval_settings(s));
  s.format = "gsm8k";
  try {
    gpt::check_eval_settings(s);
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "--format is for --task generate");
  }
}

}  // namespace
