// Checkpoints (engine/checkpoint.*): SHA-256 against the FIPS 180-4 test vectors, the directory
// format, the `latest` and `best` pointers, retention, what a crash at each stage of a write leaves
// behind (a gtest death test runs the writer with GPT_TEST_CRASH_IN_CHECKPOINT), corrupted and
// truncated files, the optimizer state, and exact resume through the Trainer: 6 steps equal 3
// steps, a checkpoint, and 3 more in fresh objects, bit for bit.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/checkpoint.h"
#include "engine/optimizer.h"
#include "engine/trainer.h"
#include "models/gpt.h"
#include "models/gpt_interop.h"

namespace fs = std::filesystem;

namespace {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "gpt_ckpt_XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// A checkpoint whose tensors are derived from `seed`, with an optional validation loss.
gpt::CheckpointContents contents(float seed, const std::string& copy_file = "",
                                 double val_loss = -1) {
  gpt::CheckpointContents c;
  std::vector<float> a(37), b(5);
  for (size_t i = 0; i < a.size(); ++i) a[i] = seed + 0.25f * static_cast<float>(i);
  for (size_t i = 0; i < b.size(); ++i) b[i] = -seed * static_cast<float>(i);
  gpt::SafeTensorsFile model, opt;
  model.tensors.emplace_back("a", gpt::make_f32_tensor({37}, a.data()));
  opt.tensors.emplace_back("b", gpt::make_f32_tensor({5}, b.data()));
  c.tensor_files = {{"model.safetensors", model}, {"optimizer.safetensors", opt}};
  if (!copy_file.empty()) c.copy_files.push_back(copy_file);
  c.state["seed"] = seed;
  if (val_loss >= 0) c.state["val_loss"] = val_loss;
  return c;
}

float first_value(const gpt::Checkpoint& ck) {
  const std::vector<float> v =
      gpt::tensor_as_f32(ck.read_tensors("model.safetensors").tensors.at(0).second, "a");
  return v[0];
}

// ---- SHA-256 ------------------------------------------------------------------------------------

TEST(Sha256, MatchesTheStandardTestVectors) {
  EXPECT_EQ(gpt::sha256_hex("", 0),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(gpt::sha256_hex("abc", 3),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  EXPECT_EQ(gpt::sha256_hex(two_blocks.data(), two_blocks.size()),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  const std::string million(1000000, 'a');
  EXPECT_EQ(gpt::sha256_hex(million.data(), million.size()),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  // Fed in uneven pieces, the digest is the same.
  gpt::Sha256 s;
  for (size_t pos = 0, step = 1; pos < million.size(); pos += step, step = step * 3 % 1000 + 1)
    s.update(million.data() + pos, std::min(step, million.size() - pos));
  EXPECT_EQ(s.hex_digest(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

// ---- the directory format -----------------------------------------------------------------------

TEST(Checkpoint, SaveWritesADirectoryThatOpensAndVerifies) {
  TempDir tmp;
  std::ofstream(tmp / "meta.json") << "{\"vocab_size\": 257}\n";
  const std::string dir =
      gpt::save_checkpoint(tmp / "run", 120, contents(1.5f, tmp / "meta.json"), {});
  EXPECT_EQ(dir, tmp / "run/ckpt_000120");
  EXPECT_EQ(read_text(tmp / "run/latest"), "ckpt_000120\n");
  const gpt::Checkpoint ck = gpt::Checkpoint::open(dir);
  EXPECT_EQ(ck.step(), 120);
  EXPECT_EQ(ck.state()["format"], "gpt-engine-checkpoint");
  EXPECT_EQ(ck.state()["seed"], 1.5);
  for (const char* f : {"model.safetensors", "optimizer.safetensors", "meta.json"}) {
    ASSERT_TRUE(ck.has_file(f)) << f;
    EXPECT_EQ(ck.state()["files"][f]["sha256"], gpt::sha256_file(ck.path(f)))
        << f;  // sha256sum agrees
    EXPECT_EQ(ck.state()["files"][f]["bytes"], fs::file_size(ck.path(f))) << f;
  }
  EXPECT_EQ(read_text(ck.path("meta.json")), "{\"vocab_size\": 257}\n");
  EXPECT_EQ(first_value(ck), 1.5f);
  // Every way a user names it resolves to the same directory.
  EXPECT_EQ(gpt::resolve_checkpoint(dir), dir);
  EXPECT_EQ(gpt::resolve_checkpoint(tmp / "run"), dir);
  EXPECT_EQ(gpt::resolve_checkpoint(tmp / "run/latest"), dir);
  EXPECT_EQ(gpt::latest_checkpoint(tmp / "run"), dir);
  EXPECT_EQ(gpt::latest_checkpoint(tmp / "nothing"), "");
  EXPECT_NE(error_of([&] { gpt::resolve_checkpoint(tmp.path()); }).find("not a checkpoint"),
            std::string::npos);
  // No temporary left behind.
  for (const auto& e : fs::directory_iterator(tmp / "run"))
    EXPECT_NE(e.path().filename().string()[0], '.');
}

TEST(Checkpoint, SavingTheSameStepAgainReplacesItWhole) {
  TempDir tmp;
  gpt::save_checkpoint(tmp.path(), 3, contents(1.0f), {});
  gpt::save_checkpoint(tmp.path(), 3, contents(2.0f), {});
  EXPECT_EQ(first_value(gpt::Checkpoint::open(tmp / "ckpt_000003")), 2.0f);
  int entries = 0;
  for (const auto& e : fs::directory_iterator(tmp.path()))
    entries += e.path().filename() != "latest";
  EXPECT_EQ(entries, 1);
}

TEST(Checkpoint, RetentionKeepsTheNewestAndTheBest) {
  TempDir tmp;
  gpt::RetentionPolicy keep2;
  keep2.keep_last = 2;
  const double val[] = {3.0, 1.0, 2.0, 4.0, 5.0};
  for (int s = 1; s <= 5; ++s)
    gpt::save_checkpoint(tmp.path(), s, contents(static_cast<float>(s), "", val[s - 1]), keep2);
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(tmp.path()))
    if (e.is_directory()) left.push_back(e.path().filename().string());
  std::sort(left.begin(), left.end());
  EXPECT_EQ(left, (std::vector<std::string>{"ckpt_000002", "ckpt_000004", "ckpt_000005"}));
  EXPECT_EQ(read_text(tmp / "best"), "ckpt_000002\n");
  EXPECT_EQ(read_text(tmp / "latest"), "ckpt_000005\n");
  EXPECT_EQ(gpt::resolve_checkpoint(tmp / "best"), tmp / "ckpt_000002");
}

// ---- crashes ------------------------------------------------------------------------------------

class CheckpointCrash : public ::testing::TestWithParam<const char*> {};

// The writer dies at the given stage of the second checkpoint (as kill -9 would): the first stays
// loadable through `latest`, and the next save cleans the temporary up and succeeds.
TEST_P(CheckpointCrash, LeavesThePreviousCheckpointLoadable) {
  GTEST_FLAG_SET(death_test_style, "fast");  // the child must share this temporary directory
  TempDir tmp;
  gpt::save_checkpoint(tmp.path(), 10, contents(1.0f), {});
  const std::string stage = GetParam();
  EXPECT_EXIT(
      {
        setenv("GPT_TEST_CRASH_IN_CHECKPOINT", (stage + ":20").c_str(), 1);
        gpt::save_checkpoint(tmp.path(), 20, contents(2.0f), {});
      },
      ::testing::ExitedWithCode(1), "simulated crash at " + stage);
  EXPECT_EQ(read_text(tmp / "latest"), "ckpt_000010\n");
  EXPECT_EQ(first_value(gpt::Checkpoint::open(gpt::resolve_checkpoint(tmp.path()))), 1.0f);
  // Before the rename, the new checkpoint is only a dot-named temporary; after it, it is complete.
  if (stage == "before_latest") {
    EXPECT_EQ(first_value(gpt::Checkpoint::open(tmp / "ckpt_000020")), 2.0f);
  } else {
    EXPECT_TRUE(fs::is_directory(tmp / ".ckpt_000020.tmp"));  // what the crashed writer left
    EXPECT_FALSE(fs::exists(tmp / "ckpt_000020"));
  }
  gpt::save_checkpoint(tmp.path(), 20, contents(3.0f), {});
  EXPECT_EQ(first_value(gpt::Checkpoint::open(gpt::resolve_checkpoint(tmp.path()))), 3.0f);
  for (const auto& e : fs::directory_iterator(tmp.path()))
    EXPECT_NE(e.path().filename().string()[0], '.');
}

INSTANTIATE_TEST_SUITE_P(Stages, CheckpointCrash,
                         ::testing::Values("after_model", "after_optimizer", "before_rename",
                                           "before_latest"));

// ---- bad files ----------------------------------------------------------------------------------

TEST(Checkpoint, CorruptedTruncatedOrMissingFilesAreReportedNotLoaded) {
  TempDir tmp;
  const std::string dir = gpt::save_checkpoint(tmp.path(), 7, contents(1.0f), {});
  const std::string model = dir + "/model.safetensors";
  const std::string pristine = read_text(model);
  auto open_error = [&]() { return error_of([&] { gpt::Checkpoint::open(dir); }); };

  {  // one flipped bit in the tensor data
    std::fstream f(model, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(static_cast<std::streamoff>(pristine.size() - 10));
    f.put(static_cast<char>(pristine[pristine.size() - 10] ^ 0x01));
  }
  std::string e = open_error();
  EXPECT_NE(e.find(model + ": checksum mismatch"), std::string::npos) << e;
  EXPECT_NE(e.find("corrupted"), std::string::npos) << e;

  std::ofstream(model, std::ios::binary) << pristine.substr(0, pristine.size() - 3);
  e = open_error();
  EXPECT_NE(e.find(model + ": size"), std::string::npos) << e;
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;

  fs::remove(model);
  e = open_error();
  EXPECT_NE(e.find(model + ": missing"), std::string::npos) << e;
  std::ofstream(model, std::ios::binary) << pristine;
  EXPECT_EQ(open_error(), "(no error)");

  const std::string state_path = dir + "/trainer_state.json";
  const std::string state = read_text(state_path);
  std::ofstream(state_path) << state.substr(0, state.size() / 2);
  e = open_error();
  EXPECT_NE(e.find(state_path + ": malformed JSON"), std::string::npos) << e;
  std::ofstream(state_path)
      << "{\"format\": \"something-else\", \"version\": 1, \"step\": 7, \"files\": {}}";
  EXPECT_NE(open_error().find("field 'format'"), std::string::npos);
  std::ofstream(state_path)
      << "{\"format\": \"gpt-engine-checkpoint\", \"version\": 99, \"step\": 7, \"files\": {}}";
  EXPECT_NE(open_error().find("version 99 is not supported"), std::string::npos);

  std::ofstream(tmp / "latest") << "ckpt_000999\n";
  e = error_of([&] { gpt::resolve_checkpoint(tmp / "latest"); });
  EXPECT_NE(e.find("points to ckpt_000999"), std::string::npos) << e;
}

TEST(Checkpoint, RequireTensorNamesTheFileAndTheTensor) {
  gpt::SafeTensorsFile f;
  const float x[6] = {};
  f.tensors.emplace_back("w", gpt::make_f32_tensor({2, 3}, x));
  EXPECT_EQ(&gpt::require_tensor(f, "m.st", "w", "F32", {2, 3}), f.find("w"));
  EXPECT_EQ(error_of([&] {
              gpt::require_tensor(f, "m.st", "v", "F32", {2, 3});
            }),
            "m.st: missing tensor 'v'");
  EXPECT_EQ(error_of([&] {
              gpt::require_tensor(f, "m.st", "w", "F32", {3, 2});
            }),
            "m.st: tensor 'w' has shape [2,3], expected [3,2]");
  EXPECT_EQ(error_of([&] {
              gpt::require_tensor(f, "m.st", "w", "F64", {2, 3});
            }),
            "m.st: tensor 'w' has dtype F32, expected F64");
}

TEST(Checkpoint, RngStateRoundTripsExactly) {
  gpt::Rng a(12345);
  for (int i = 0; i < 17; ++i) a.next_u64();
  const nlohmann::json j = gpt::rng_state_to_json(a);
  gpt::Rng b(1);
  gpt::rng_state_from_json(b, nlohmann::json::parse(j.dump()), "test");
  for (int i = 0; i < 5; ++i) EXPECT_EQ(a.next_u64(), b.next_u64());
  EXPECT_THROW(gpt::rng_state_from_json(b, nlohmann::json::object(), "test"), std::runtime_error);
}

// ---- optimizer state and exact resume -----------------------------------------------------------

gpt::GptConfig tiny_config() {
  gpt::GptConfig c;
  c.n_layer = 2;
  c.n_head = 2;
  c.n_embd = 16;
  c.max_seq_len = 8;
  c.vocab_size = 61;
  return c;
}

constexpr int kB = 2, kT = 8;

// A deterministic stream of batches whose state is one integer (like TrainLoader's position).
struct Batches {
  long next = 0;
  int operator()(int32_t* tokens, int32_t* targets) {
    for (int i = 0; i < kB * kT; ++i) {
      tokens[i] = static_cast<int32_t>((next * 7 + i * 13 + i * i) % 61);
      targets[i] = (i + next) % 5 == 0 ? -1 : static_cast<int32_t>((next * 3 + i * 11) % 61);
    }
    ++next;
    return kT;
  }
};

struct TrainingRun {
  std::unique_ptr<gpt::Backend> backend = gpt::make_backend("cpu", gpt::DType::f32);
  gpt::GptModel model{tiny_config(), *backend, kB, kT};
  gpt::AdamW optimizer{*backend, model.parameters(), gpt::AdamWConfig{}};
  Batches batches;
  std::vector<double> losses;
  // Trains up to step `stop_at` of a `total`-step schedule.
  void train(long total, long stop_at) {
    gpt::TrainerConfig tc;
    tc.steps = total;
    tc.batch_size = kB;
    tc.seq_len = kT;
    tc.lr = 1e-2f;
    tc.min_lr = 1e-3f;
    tc.warmup_steps = 2;
    gpt::Trainer trainer(model, optimizer, tc, std::ref(batches), nullptr);
    trainer.set_after_step([&](const gpt::StepRecord& r) {
      losses.push_back(r.train_loss);
      return r.step >= stop_at ? gpt::StepAction::stop : gpt::StepAction::keep_going;
    });
    trainer.run();
  }
};

TEST(OptimizerState, RoundTripsBitForBitAndRejectsMismatches) {
  TrainingRun a;
  a.model.init_weights(3);
  a.train(4, 4);
  const gpt::SafeTensorsFile st = gpt::optimizer_state_to_safetensors(a.optimizer);
  EXPECT_EQ(st.metadata.at("step"), "4");
  constexpr int kGpt2Tensors = 16;                  // the optimizer's groups
  EXPECT_EQ(st.tensors.size(), 2u * kGpt2Tensors);  // m and v; no master weights in f32
  TrainingRun b;
  gpt::optimizer_state_from_safetensors(b.optimizer, st, "opt.st");
  EXPECT_EQ(b.optimizer.step_count(), 4);
  for (int i = 0; i < kGpt2Tensors; ++i) {
    EXPECT_EQ(std::memcmp(a.optimizer.m(i).data, b.optimizer.m(i).data, a.optimizer.m(i).bytes()),
              0);
    EXPECT_EQ(std::memcmp(a.optimizer.v(i).data, b.optimizer.v(i).data, a.optimizer.v(i).bytes()),
              0);
  }
  auto error_with = [&](const std::function<void(gpt::SafeTensorsFile&)>& edit) {
    gpt::SafeTensorsFile bad = st;
    edit(bad);
    TrainingRun c;
    return error_of([&] { gpt::optimizer_state_from_safetensors(c.optimizer, bad, "opt.st"); });
  };
  EXPECT_EQ(error_with([](auto& f) { f.tensors.erase(f.tensors.begin()); }),
            "opt.st: missing tensor 'wte.m'");
  EXPECT_EQ(error_with([](auto& f) {
              f.tensors[2].second.shape = {1, 2};
            }),
            "opt.st: tensor 'wpe.m' has shape [1,2], expected [8,16]");
  EXPECT_EQ(error_with([](auto& f) { f.tensors.emplace_back("extra.m", f.tensors[0].second); }),
            "opt.st: tensor 'extra.m' does not belong to this model's optimizer");
  EXPECT_NE(error_with([](auto& f) { f.metadata["step"] = "x"; }).find("metadata field 'step'"),
            std::string::npos);
  EXPECT_NE(error_with([](auto& f) { f.metadata["world_size"] = "4"; }).find("one shard of 4"),
            std::string::npos);
}

// 6 steps of a 6-step schedule == 3 steps, a checkpoint on disk, and 3 more in fresh objects.
TEST(Resume, IsBitExactThroughACheckpoint) {
  TempDir tmp;
  TrainingRun straight;
  straight.model.init_weights(11);
  straight.train(6, 6);

  TrainingRun first;
  first.model.init_weights(11);
  first.train(6, 3);
  gpt::CheckpointContents c;
  c.tensor_files = {
      {"model.safetensors", gpt::gpt_weights_to_safetensors(gpt::download_weights(first.model))},
      {"optimizer.safetensors", gpt::optimizer_state_to_safetensors(first.optimizer)}};
  c.state["batches_next"] = first.batches.next;
  c.state["model_config"] = nlohmann::json{{"n_layer", 2}};
  gpt::save_checkpoint(tmp.path(), first.optimizer.step_count(), c, {});

  TrainingRun second;  // fresh objects, nothing shared with `first` but the files
  const gpt::Checkpoint ck = gpt::Checkpoint::open(gpt::resolve_checkpoint(tmp.path()));
  gpt::upload_weights(second.model,
                      gpt::gpt_weights_from_safetensors(ck.read_tensors("model.safetensors"),
                                                        tiny_config(), "model.safetensors"));
  gpt::optimizer_state_from_safetensors(second.optimizer, ck.read_tensors("optimizer.safetensors"),
                                        "optimizer");
  second.batches.next = ck.state()["batches_next"].get<long>();
  second.train(6, 6);

  std::vector<double> resumed = first.losses;
  resumed.insert(resumed.end(), second.losses.begin(), second.losses.end());
  ASSERT_EQ(resumed.size(), straight.losses.size());
  for (size_t i = 0; i < resumed.size(); ++i)
    EXPECT_EQ(resumed[i], straight.losses[i]) << "step " << i + 1;
  const gpt::GptWeights a = gpt::download_weights(straight.model),
                        b = gpt::download_weights(second.model);
  for (int p = 0; p < gpt::kNumParams; ++p)
    EXPECT_TRUE(a.params[p] == b.params[p]) << gpt::param_name(static_cast<gpt::Param>(p));
}

}  // namespace
