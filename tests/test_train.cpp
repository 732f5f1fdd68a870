// The training library (train/): a pretraining job in its phases, best tracking and early stopping,
// validation split over the ranks, replay mixing as a data source, the run's state in checkpoints,
// tokenizer files.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "data/loader.h"
#include "data/shard.h"
#include "engine/backend.h"
#include "engine/communicator.h"
#include "engine/rng.h"
#include "tests/temp_dir.h"
#include "train/early_stopping.h"
#include "train/pretrain.h"
#include "train/replay.h"
#include "train/run_state.h"
#include "train/tokenizer_files.h"
#include "train/validation.h"

namespace gpt {
namespace {

using Verdict = BestTracker::Verdict;

TEST(BestTracker, PatienceCountsValidationsWithoutImprovement) {
  BestTracker best;
  EXPECT_FALSE(best.has_best());
  EXPECT_EQ(best.offer(2.0, 10, 2), Verdict::improved);
  EXPECT_EQ(best.offer(1.5, 20, 2), Verdict::improved);
  EXPECT_EQ(best.offer(1.5, 30, 2), Verdict::not_improved);  // equal is no improvement
  EXPECT_EQ(best.bad_validations(), 1);
  EXPECT_EQ(best.offer(1.0, 40, 2), Verdict::improved);  // an improvement resets the count
  EXPECT_EQ(best.bad_validations(), 0);
  EXPECT_EQ(best.offer(3.0, 50, 2), Verdict::not_improved);
  EXPECT_EQ(best.offer(3.0, 60, 2), Verdict::stop);
  EXPECT_EQ(best.best_step(), 40);
  EXPECT_EQ(best.best_score(), 1.0);
}

TEST(BestTracker, NoPatienceNeverStopsNorCounts) {
  BestTracker best;
  best.offer(1.0, 1);
  for (int i = 2; i < 10; ++i) EXPECT_EQ(best.offer(2.0, i), Verdict::not_improved);
  EXPECT_EQ(best.bad_validations(), 0);
}

TEST(BestTracker, FirstCountsTakesTheFirstScoreWhateverItIs) {
  BestTracker strict;
  EXPECT_EQ(strict.offer(std::nan(""), 1), Verdict::not_improved);
  EXPECT_FALSE(strict.has_best());
  BestTracker first(/*first_counts=*/true);
  EXPECT_EQ(first.offer(std::nan(""), 1), Verdict::improved);
  EXPECT_EQ(first.best_step(), 1);
  EXPECT_EQ(first.offer(0.5, 2), Verdict::not_improved);  // nothing is below NaN
}

TEST(BestTracker, JsonRoundTrip) {
  BestTracker best;
  best.offer(0.75, 12, 3);
  best.offer(0.8, 13, 3);
  BestTracker back;
  back.from_json(best.to_json());
  EXPECT_EQ(back.best_step(), 12);
  EXPECT_EQ(back.best_score(), 0.75);
  EXPECT_EQ(back.bad_validations(), 1);
  EXPECT_FALSE(BestTracker().to_json().contains("best_score"));
}

TEST(BestTracker, PretrainFieldsRoundTrip) {
  nlohmann::json st;
  BestTracker none(true);
  best_val_to_json(none, st);
  EXPECT_FALSE(st.contains("best_val_loss"));
  BestTracker best(true);
  best.offer(2.5, 7);
  best_val_to_json(best, st);
  EXPECT_EQ(st["best_val_loss"], 2.5);
  EXPECT_EQ(st["best_val_step"], 7);
  BestTracker back(true);
  best_val_from_json(st, back);
  EXPECT_EQ(back.best_step(), 7);
  EXPECT_EQ(back.offer(3.0, 8), Verdict::not_improved);
}

TEST(RankSplitSums, OneRankRunsEveryBatchAndSumsInOrder) {
  auto comm = make_single_communicator();
  std::vector<int64_t> read, ran;
  const std::vector<double> sums = rank_split_sums(
      *comm, 5, 2, [&](int64_t i) { read.push_back(i); },
      [&](int64_t i, double* v) {
        ran.push_back(i);
        v[0] = 0.5 * static_cast<double>(i);
        v[1] = 1.0;
      });
  EXPECT_EQ(read, (std::vector<int64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(ran, read);
  ASSERT_EQ(sums.size(), 2u);
  EXPECT_EQ(sums[0], 5.0);
  EXPECT_EQ(sums[1], 5.0);
}

constexpr int kB = 2, kT = 16;

// A replay shard of tokens 0..999 (no row of it is all 1s: the task's rows are).
std::string write_replay_shard(const TempDir& dir) {
  std::vector<int32_t> tokens(1000);
  for (int i = 0; i < 1000; ++i) tokens[i] = i;
  write_token_shard(dir.file("replay.bin"), tokens);
  return dir.file("replay.bin");
}

std::unique_ptr<ReplayMix> make_mix(const std::string& shard, bool class_head) {
  auto task = [](int32_t* t, int32_t* g) {
    std::fill(t, t + kB * kT, 1);
    std::fill(g, g + kB * kT, 2);
    return kT;
  };
  auto replay = std::make_unique<TrainLoader>(shard, kB, kT, 1000, true, 7);
  return std::make_unique<ReplayMix>(task, std::move(replay), 0.5, 42, kB, kT, class_head);
}

bool all_ones(const std::vector<int32_t>& t) {
  return std::all_of(t.begin(), t.end(), [](int32_t v) { return v == 1; });
}

TEST(ReplayMix, MixesByRatioAndRemembersEachBuffer) {
  TempDir dir;
  auto mix = make_mix(write_replay_shard(dir), false);
  std::vector<int32_t> t[2], g[2];
  int replayed = 0;
  for (int i = 0; i < 200; ++i) {
    std::vector<int32_t>& tb = t[i % 2];
    std::vector<int32_t>& gb = g[i % 2];
    tb.assign(kB * kT, 0);
    gb.assign(kB * kT, 0);
    EXPECT_EQ(mix->next_batch(tb.data(), gb.data()), kT);
    EXPECT_EQ(mix->replayed(tb.data()), !all_ones(tb));
    replayed += mix->replayed(tb.data());
  }
  EXPECT_GT(replayed, 60);
  EXPECT_LT(replayed, 140);
  int32_t unknown = 0;
  EXPECT_FALSE(mix->replayed(&unknown));
}

TEST(ReplayMix, WithAClassHeadAReplayedRowKeepsFewTargets) {
  TempDir dir;
  auto mix = make_mix(write_replay_shard(dir), true);
  std::vector<int32_t> t(kB * kT), g(kB * kT);
  int seen = 0;
  for (int i = 0; i < 50; ++i) {
    mix->next_batch(t.data(), g.data());
    if (!mix->replayed(t.data())) continue;
    ++seen;
    for (int b = 0; b < kB; ++b) {
      int kept = 0;
      for (int k = 0; k < kT; ++k) kept += g[b * kT + k] >= 0;
      EXPECT_GE(kept, 1);
      EXPECT_LE(kept, kReplayTargetsPerRowWithClassHead);
    }
  }
  EXPECT_GT(seen, 0);
}

std::vector<LoaderSlot> slots_of(ReplayMix& mix, LoaderState& train, const std::string& data) {
  TrainLoader* replay = mix.replay();
  return {{"train", data, 64, [&train] { return train; },
           [&train](const LoaderState& st) { train = st; }},
          {"replay", data, replay->num_samples(), [replay] { return replay->state(); },
           [replay](const LoaderState& st) { replay->set_state(st); }}};
}

// A run's state assembled into a checkpoint and restored: the restored mix continues with the
// same batches as the one that never stopped, and the other fields come back as they were.
TEST(RunState, FinetuneStateRoundTripContinuesTheSameBatches) {
  TempDir dir;
  const std::string shard = write_replay_shard(dir);
  auto a = make_mix(shard, true);
  std::vector<int32_t> t(kB * kT), g(kB * kT);
  for (int i = 0; i < 9; ++i) a->next_batch(t.data(), g.data());
  LoaderState train_a{3, 17};
  BestTracker best;
  best.offer(0.4, 30, 5);
  best.offer(0.9, 40, 5);
  const nlohmann::json saved =
      finetune_state_to_json(slots_of(*a, train_a, shard), best, &a->rng());
  EXPECT_EQ(saved["loaders"]["train"]["epoch"], 3);
  EXPECT_EQ(saved["loaders"]["train"]["samples"], 64);

  auto b = make_mix(shard, true);
  LoaderState train_b;
  BestTracker best_b;
  finetune_state_from_json(nlohmann::json::parse(saved.dump()), slots_of(*b, train_b, shard),
                           best_b, &b->rng(), "ckpt/trainer_state.json");
  EXPECT_EQ(train_b.epoch, 3);
  EXPECT_EQ(train_b.position, 17);
  EXPECT_EQ(best_b.best_step(), 30);
  EXPECT_EQ(best_b.best_score(), 0.4);
  EXPECT_EQ(best_b.bad_validations(), 1);
  std::vector<int32_t> tb(kB * kT), gb(kB * kT);
  for (int i = 0; i < 20; ++i) {
    a->next_batch(t.data(), g.data());
    b->next_batch(tb.data(), gb.data());
    EXPECT_EQ(t, tb);
    EXPECT_EQ(g, gb);
  }
}

TEST(RunState, ChangedDataIsRefusedNamingTheStateFile) {
  TempDir dir;
  const std::string shard = write_replay_shard(dir);
  auto mix = make_mix(shard, false);
  LoaderState train;
  BestTracker best;
  nlohmann::json saved = finetune_state_to_json(slots_of(*mix, train, shard), best, &mix->rng());
  saved["loaders"]["train"]["samples"] = 65;
  const std::string err = error_of([&] {
    finetune_state_from_json(saved, slots_of(*mix, train, shard), best, &mix->rng(), "st.json");
  });
  EXPECT_EQ(
      err.rfind("st.json: field 'finetune_state.loaders.train': the checkpoint's data had 65", 0),
      0u)
      << err;
  saved.erase("early_stopping");
  saved["loaders"]["train"]["samples"] = 64;
  const std::string missing = error_of([&] {
    finetune_state_from_json(saved, slots_of(*mix, train, shard), best, &mix->rng(), "st.json");
  });
  EXPECT_EQ(missing.rfind("st.json: field 'finetune_state': ", 0), 0u) << missing;
}

TEST(TokenizerFiles, FinetuneTakesTheDataFolderFirstThenItsTokenizerFolder) {
  TempDir dir;
  std::filesystem::create_directories(dir.file("tokenizer"));
  for (const char* f : {"vocab.json", "tokenizer/merges.txt", "tokenizer/vocab.json",
                        "tokenizer/meta.json", "tokenizer/encoder.json"})
    std::ofstream(dir.file(f)) << "x";
  const std::vector<std::string> files = finetune_tokenizer_files(dir.file("train_*.bin"));
  EXPECT_EQ(files,
            (std::vector<std::string>{dir.file("vocab.json"), dir.file("tokenizer/meta.json"),
                                      dir.file("tokenizer/merges.txt")}));
  // gpt-pretrain's: name by name, and a fallback when the data has none.
  EXPECT_EQ(pretrain_tokenizer_files(dir.file("train_*.bin"), "").size(), 4u);
  TempDir empty;
  EXPECT_EQ(pretrain_tokenizer_files(empty.file("x_*.bin"), dir.path()).size(), 4u);
  EXPECT_TRUE(pretrain_tokenizer_files(empty.file("x_*.bin"), "").empty());
}

// ---- a job in its phases
// --------------------------------------------------------------------------

std::unique_ptr<Backend> cpu_backend(const std::string&, const std::string&) {
  return make_backend("cpu", DType::f32);
}
void no_error_handler(RunErrorHandler) {}

PretrainSettings tiny_pretrain(const TempDir& dir, const std::string& out, long steps) {
  PretrainSettings s;
  s.train_data = dir.file("train_*.bin");
  s.val_data = dir.file("train_*.bin");
  s.out = out;
  s.n_layer = 1;
  s.n_head = 2;
  s.n_embd = 16;
  s.max_seq_len = 16;
  s.seq_len = 8;
  s.vocab_size = 50;
  s.batch_size = 2;
  s.steps = steps;
  s.warmup_steps = 1;
  s.eval_every = 2;
  s.save_every = 2;
  s.device = "cpu";
  s.progress = "plain";
  s.threads = 1;
  return s;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A job run through its phases to the end, and one resumed from its step-2 checkpoint, end with
// the same weights; the best validation comes back with the checkpoint.
TEST(PretrainJob, PhasesRunAndAResumedJobEndsWithTheSameWeights) {
  TempDir dir;
  std::vector<int32_t> tokens(400);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>((i * 7) % 50);
  write_token_shard(dir.file("train_000000.bin"), tokens);
  RunHooks hooks;
  hooks.make_backend = cpu_backend;
  hooks.set_error_handler = no_error_handler;
  auto given = [](const std::string&) { return false; };

  PretrainSettings a = tiny_pretrain(dir, dir.file("a"), 4);
  {
    PretrainJob job(a, std::nullopt, given, hooks);
    job.open();
    job.start(nlohmann::json{{"run", "a"}});
    ASSERT_TRUE(job.train());
    job.finish();
    EXPECT_EQ(job.trainer().history().back().step, 4);
    EXPECT_EQ(job.final_dir(), dir.file("a") + "/ckpt_000004");
  }
  const Checkpoint at2 = Checkpoint::open(dir.file("a") + "/ckpt_000002");
  EXPECT_TRUE(at2.state().contains("best_val_step"));
  PretrainSettings b = tiny_pretrain(dir, dir.file("b"), 4);
  {
    PretrainJob job(b, at2, given, hooks);
    job.open();
    EXPECT_EQ(job.tokens_base(), 2 * 2 * 8);
    job.start(nlohmann::json{{"run", "b"}});
    ASSERT_TRUE(job.train());
    job.finish();
    EXPECT_EQ(job.trainer().history().back().step, 4);
  }
  EXPECT_EQ(read_bytes(dir.file("a") + "/model.safetensors"),
            read_bytes(dir.file("b") + "/model.safetensors"));
}

}  // namespace
}  // namespace gpt
