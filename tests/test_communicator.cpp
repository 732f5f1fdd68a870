// Communicators and the ZeRO-1 shard layout (engine/communicator.h, engine/data_parallel.h).
//
// Run plainly, this tests the single communicator, the rank-order fold, rank discovery from each
// launcher's variables, the NCCL-id bootstrap over file: and tcp: (ranks as threads), the shard
// layout for awkward parameter counts and the re-cut of optimizer shards written at another world
// size. Run under `mpirun -np N` (ctest does with N = 3), the Mpi* tests check the MPI
// communicator's collectives on real ranks: sizes 0, 1, not divisible by N and large, every sum in
// rank order.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "engine/arena.h"
#include "engine/backend.h"
#include "engine/communicator.h"
#include "engine/communicator_internal.h"
#include "engine/data_parallel.h"

namespace {

using gpt::CommDType;

// ---- rank discovery ---------------------------------------------------------------------------

// Sets variables for one test and restores the environment after it.
class ScopedEnv {
 public:
  ScopedEnv() {
    for (const char* k : kKeys) {
      const char* v = std::getenv(k);
      saved_.emplace_back(k, v ? std::optional<std::string>(v) : std::nullopt);
      unsetenv(k);
    }
  }
  ~ScopedEnv() {
    for (const auto& [k, v] : saved_) {
      if (v)
        setenv(k.c_str(), v->c_str(), 1);
      else
        unsetenv(k.c_str());
    }
  }
  void set(const char* k, const char* v) { setenv(k, v, 1); }

  static constexpr const char* kKeys[] = {"OMPI_COMM_WORLD_RANK",
                                          "OMPI_COMM_WORLD_SIZE",
                                          "OMPI_COMM_WORLD_LOCAL_RANK",
                                          "SLURM_PROCID",
                                          "SLURM_NTASKS",
                                          "SLURM_LOCALID",
                                          "SLURM_STEP_NUM_TASKS",
                                          "RANK",
                                          "WORLD_SIZE",
                                          "LOCAL_RANK",
                                          "PMI_RANK",
                                          "PMI_SIZE"};

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

TEST(DiscoverRanks, NoLauncherIsAWorldOfOne) {
  ScopedEnv env;
  const gpt::RankInfo r = gpt::discover_ranks();
  EXPECT_EQ(r.rank, 0);
  EXPECT_EQ(r.world_size, 1);
  EXPECT_EQ(r.local_rank, 0);
  EXPECT_EQ(r.launcher, "none");
}

TEST(DiscoverRanks, OpenMpiSlurmAndTorchrunVariables) {
  {
    ScopedEnv env;
    env.set("OMPI_COMM_WORLD_RANK", "5");
    env.set("OMPI_COMM_WORLD_SIZE", "8");
    env.set("OMPI_COMM_WORLD_LOCAL_RANK", "1");
    env.set("SLURM_PROCID", "2");  // OpenMPI's own variables win (mpirun inside an allocation)
    env.set("SLURM_NTASKS", "4");
    const gpt::RankInfo r = gpt::discover_ranks();
    EXPECT_EQ(r.rank, 5);
    EXPECT_EQ(r.world_size, 8);
    EXPECT_EQ(r.local_rank, 1);
    EXPECT_EQ(r.launcher, "openmpi");
  }
  {
    ScopedEnv env;
    env.set("SLURM_PROCID", "3");
    env.set("SLURM_NTASKS", "4");
    env.set("SLURM_LOCALID", "1");
    const gpt::RankInfo r = gpt::discover_ranks();
    EXPECT_EQ(r.rank, 3);
    EXPECT_EQ(r.world_size, 4);
    EXPECT_EQ(r.local_rank, 1);
    EXPECT_EQ(r.launcher, "slurm");
  }
  {
    ScopedEnv env;
    env.set("RANK", "1");
    env.set("WORLD_SIZE", "2");
    env.set("LOCAL_RANK", "1");
    const gpt::RankInfo r = gpt::discover_ranks();
    EXPECT_EQ(r.rank, 1);
    EXPECT_EQ(r.world_size, 2);
    EXPECT_EQ(r.local_rank, 1);
    EXPECT_EQ(r.launcher, "env");
  }
}

TEST(DiscoverRanks, MalformedValuesAreRefusedByName) {
  struct Case {
    const char *k1, *v1, *k2, *v2, *named;
  };
  const Case cases[] = {
      {"OMPI_COMM_WORLD_RANK", "x", "OMPI_COMM_WORLD_SIZE", "2", "OMPI_COMM_WORLD_RANK"},
      {"OMPI_COMM_WORLD_RANK", "2", "OMPI_COMM_WORLD_SIZE", "2", "OMPI_COMM_WORLD_RANK"},
      {"SLURM_PROCID", "0", "SLURM_NTASKS", "0", "SLURM_NTASKS"},
      {"RANK", "-1", "WORLD_SIZE", "2", "RANK"},
      {"RANK", "0", "WORLD_SIZE", "2x", "WORLD_SIZE"},
  };
  for (const Case& c : cases) {
    ScopedEnv env;
    env.set(c.k1, c.v1);
    env.set(c.k2, c.v2);
    try {
      gpt::discover_ranks();
      ADD_FAILURE() << c.k1 << "=" << c.v1 << " " << c.k2 << "=" << c.v2 << " was accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(c.named), std::string::npos) << e.what();
    }
  }
}

// ---- the single communicator and the fold -------------------------------------------------------

TEST(SingleCommunicator, CollectivesAreCopies) {
  auto comm = gpt::make_single_communicator();
  EXPECT_EQ(comm->kind(), "single");
  EXPECT_EQ(comm->world_size(), 1);
  for (size_t n : {size_t{0}, size_t{1}, size_t{7}, size_t{1} << 20}) {
    std::vector<float> send(n), recv(n, -1.0f);
    for (size_t i = 0; i < n; ++i) send[i] = static_cast<float>(i % 1000) * 0.5f;
    comm->reduce_scatter(send.data(), recv.data(), n, CommDType::f32, false);
    EXPECT_EQ(send, recv) << n;
    comm->reduce_scatter(send.data(), recv.data(), n, CommDType::f32, true);
    for (size_t i = 0; i < n; ++i) ASSERT_EQ(recv[i], 2.0f * send[i]) << i;
    std::vector<float> gathered(n, -1.0f);
    comm->all_gather(send.data(), gathered.data(), n, CommDType::f32);
    EXPECT_EQ(gathered, send) << n;
  }
  double d[2] = {1.5, -2.0};
  comm->all_reduce_sum(d, 2);
  EXPECT_EQ(d[0], 1.5);
  const auto parts = comm->gather_bytes("abc", 0);
  ASSERT_EQ(parts.size(), 1u);
  EXPECT_EQ(parts[0], "abc");
  EXPECT_THROW(gpt::make_communicator(gpt::CommOptions{"carrier-pigeon", "", 10.0, false}),
               std::invalid_argument);
}

TEST(FoldInRankOrder, AddsLeftToRight) {
  // In f32, (1e8 + 1) - 1e8 = 0 (1e8 + 1 rounds to 1e8) while 1e8 - 1e8 + 1 = 1: only a left fold
  // in rank order gives 0 for the first element.
  const float parts[3][2] = {{1e8f, 0.25f}, {1.0f, 0.5f}, {-1e8f, 1.0f}};
  float recv[2] = {0, 0};
  gpt::fold_in_rank_order(parts, 2, 3, recv, 2, CommDType::f32, false);
  EXPECT_EQ(recv[0], 0.0f);
  EXPECT_EQ(recv[1], 1.75f);
  recv[0] = 1.0f;  // accumulate: (((1 + 1e8) + 1) - 1e8) = 0 as well
  gpt::fold_in_rank_order(parts, 2, 3, recv, 2, CommDType::f32, true);
  EXPECT_EQ(recv[0], 0.0f);
  EXPECT_EQ(recv[1], 3.5f);
  const double dparts[2][1] = {{1e17}, {1.0}};
  double drecv = 0;
  gpt::fold_in_rank_order(dparts, 1, 2, &drecv, 1, CommDType::f64, false);
  EXPECT_EQ(drecv, 1e17);
}

// ---- bootstrap of the NCCL id without MPI -------------------------------------------------------

// Runs exchange_bootstrap_bytes on `world` threads; returns what each rank holds afterwards.
std::vector<std::string> exchange_on_threads(const std::string& spec, int world) {
  std::vector<std::string> held(static_cast<size_t>(world), std::string(128, '\0'));
  held[0] = std::string(128, 'x');
  for (int i = 0; i < 128; ++i) held[0][static_cast<size_t>(i)] = static_cast<char>(i * 7 + 3);
  std::vector<std::thread> threads;
  std::vector<std::string> errors(static_cast<size_t>(world));
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      try {
        gpt::exchange_bootstrap_bytes(spec, r, world, held[static_cast<size_t>(r)].data(), 128,
                                      20.0);
      } catch (const std::exception& e) {
        errors[static_cast<size_t>(r)] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < world; ++r) EXPECT_EQ(errors[static_cast<size_t>(r)], "") << "rank " << r;
  return held;
}

TEST(Bootstrap, FileAndTcpHandRankZerosBytesToEveryRank) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("gpt-bootstrap-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  for (const std::string& spec :
       {"file:" + (dir / "id").string(),
        std::string("tcp:127.0.0.1:") + std::to_string(29500 + ::getpid() % 2000)}) {
    const auto held = exchange_on_threads(spec, 4);
    for (size_t r = 1; r < held.size(); ++r) EXPECT_EQ(held[r], held[0]) << spec << " rank " << r;
  }
  std::filesystem::remove_all(dir);
}

TEST(Bootstrap, NoRankZeroTimesOutNamingTheSpec) {
  const std::string spec = "file:" + (std::filesystem::temp_directory_path() /
                                      ("gpt-none-" + std::to_string(::getpid())))
                                         .string();
  char buf[8];
  const auto t0 = std::chrono::steady_clock::now();
  try {
    gpt::exchange_bootstrap_bytes(spec, 1, 2, buf, sizeof(buf), 0.5);
    ADD_FAILURE() << "no error without rank 0";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(spec), std::string::npos) << e.what();
  }
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 10.0);
  EXPECT_THROW(gpt::exchange_bootstrap_bytes("smoke-signals:x", 0, 2, buf, 8, 0.5),
               std::runtime_error);
}

// ---- the ZeRO-1 layout --------------------------------------------------------------------------

// A communicator that only knows its place in a world (no collectives): enough to build the layout
// of rank `rank` of `world` in one process.
class PlaceOnlyCommunicator : public gpt::Communicator {
 public:
  PlaceOnlyCommunicator(int rank, int world) : rank_(rank), world_(world) {}
  std::string kind() const override { return "place-only"; }
  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  int local_rank() const override { return rank_; }
  void all_reduce_sum(double*, size_t) override { fail(); }
  void all_reduce_sum(int64_t*, size_t) override { fail(); }
  void all_reduce_max(int64_t*, size_t) override { fail(); }
  void all_gather_host(const void*, void*, size_t) override { fail(); }
  std::vector<std::string> gather_bytes(const std::string&, int) override { fail(); }
  void broadcast_host(void*, size_t, int) override { fail(); }
  void barrier() override { fail(); }
  void reduce_scatter(const void*, void*, size_t, CommDType, bool) override { fail(); }
  void all_gather(const void*, void*, size_t, CommDType) override { fail(); }
  [[noreturn]] void abort(const std::string& m) override { throw std::runtime_error(m); }

 private:
  [[noreturn]] static void fail() { throw std::logic_error("place-only communicator"); }
  int rank_, world_;
};

// Parameter groups of the given sizes (f32, CPU), with gradients.
struct Params {
  explicit Params(gpt::Backend& backend, const std::vector<int64_t>& sizes) {
    gpt::ArenaLayout layout;
    for (size_t i = 0; i < sizes.size(); ++i) {
      layout.add("p" + std::to_string(i), gpt::DType::f32, gpt::Shape{sizes[i]});
      layout.add("g" + std::to_string(i), gpt::DType::f32, gpt::Shape{sizes[i]});
    }
    arena = std::make_unique<gpt::Arena>(backend, std::move(layout));
    arena->zero();
    for (size_t i = 0; i < sizes.size(); ++i) {
      gpt::ParamGroup g;
      g.name = "w" + std::to_string(i);
      g.param = arena->get("p" + std::to_string(i));
      g.grad = arena->get("g" + std::to_string(i));
      g.weight_decay = i % 2 == 0;
      float* p = g.param.ptr<float>();
      for (int64_t j = 0; j < sizes[i]; ++j)
        p[j] = 0.01f * static_cast<float>((j * 37 + i) % 101) - 0.5f;
      groups.push_back(g);
    }
  }
  void set_gradients(int step) {
    for (size_t i = 0; i < groups.size(); ++i) {
      float* g = groups[i].grad.ptr<float>();
      for (int64_t j = 0; j < groups[i].grad.numel(); ++j)
        g[j] = std::sin(0.1f * static_cast<float>(j + 13 * i + 101 * static_cast<size_t>(step)));
    }
  }
  std::vector<float> flat_params() const {
    std::vector<float> out;
    for (const auto& g : groups)
      out.insert(out.end(), g.param.ptr<float>(), g.param.ptr<float>() + g.param.numel());
    return out;
  }
  std::unique_ptr<gpt::Arena> arena;
  std::vector<gpt::ParamGroup> groups;
};

TEST(ZeroLayout, ShardsCoverAnyParameterCountOnce) {
  auto backend = gpt::make_backend("cpu", gpt::DType::f32);
  struct Case {
    std::vector<int64_t> sizes;
    int world;
  };
  // 38784 = the CLI tests' model; 5 elements over 3 ranks (two empty shards); one element; a count
  // that divides neither N nor the block; one group bigger than a shard.
  const Case cases[] = {{{32 * 32 * 4, 257 * 32, 32, 32, 6144, 16000}, 4},
                        {{3, 2}, 3},
                        {{1}, 2},
                        {{4097, 3, 10001}, 3},
                        {{100000}, 4}};
  for (const Case& c : cases) {
    const int64_t P = std::accumulate(c.sizes.begin(), c.sizes.end(), int64_t{0});
    std::vector<int> owner(static_cast<size_t>(P), -1);
    for (int r = 0; r < c.world; ++r) {
      Params params(*backend, c.sizes);
      PlaceOnlyCommunicator comm(r, c.world);
      gpt::DataParallel dp(comm, *backend, params.groups, gpt::AdamWConfig{}, true);
      const int64_t S = dp.shard_elements();
      EXPECT_EQ(dp.flat_elements(), P);
      EXPECT_EQ(S % gpt::DataParallel::kNormBlock, 0);
      EXPECT_GE(S * c.world, P);
      EXPECT_LT(S, (P + c.world - 1) / c.world + gpt::DataParallel::kNormBlock);
      int64_t held = 0;
      std::vector<int64_t> offsets{0};
      for (int64_t s : c.sizes) offsets.push_back(offsets.back() + s);
      for (const auto& seg : dp.segments_of(r)) {
        EXPECT_EQ(seg.flat_begin, offsets[static_cast<size_t>(seg.group)] + seg.begin);
        EXPECT_GE(seg.flat_begin, r * S);
        EXPECT_LE(seg.flat_begin + (seg.end - seg.begin), (r + 1) * S);
        for (int64_t i = seg.flat_begin; i < seg.flat_begin + (seg.end - seg.begin); ++i) {
          EXPECT_EQ(owner[static_cast<size_t>(i)], -1) << "element " << i << " owned twice";
          owner[static_cast<size_t>(i)] = r;
        }
        held += seg.end - seg.begin;
      }
      // Optimizer state: m and v (f32) of this rank's elements only (each tensor 256-byte aligned).
      const size_t want = static_cast<size_t>(2 * held) * sizeof(float);
      const size_t n_seg = dp.segments_of(r).size();
      EXPECT_GE(dp.optimizer_bytes(), want);
      EXPECT_LE(dp.optimizer_bytes(), want + 2 * n_seg * gpt::ArenaLayout::kAlignment);
      EXPECT_EQ(held, std::max<int64_t>(0, std::min(S, P - r * S)));
    }
    for (int64_t i = 0; i < P; ++i) ASSERT_NE(owner[static_cast<size_t>(i)], -1) << "element " << i;
  }
}

// The state of a 3-rank checkpoint, written by hand from an unsharded one as the format says
// ("<group>@<begin>:<end>.m" for a part of a group), loads into 1 rank and into rank 1 of 2, and
// training goes on exactly as it would have from the unsharded state.
TEST(ZeroLayout, OptimizerShardsAreRecutAtAnotherWorldSize) {
  auto backend = gpt::make_backend("cpu", gpt::DType::f32);
  const std::vector<int64_t> sizes = {3000, 7, 2500, 1};
  auto single = gpt::make_single_communicator();
  gpt::AdamWConfig cfg;
  cfg.grad_clip = 0.5f;

  Params a(*backend, sizes);
  gpt::DataParallel dp(*single, *backend, a.groups, cfg, true);
  for (int s = 0; s < 2; ++s) {
    a.set_gradients(s);
    dp.reduce_round(true);
    dp.step(1e-2f);
  }
  const gpt::SafeTensorsFile whole = dp.shard_state();
  ASSERT_EQ(whole.metadata.at("step"), "2");

  // Cut it as 3 ranks with shards of S elements would have.
  const int64_t P = 5508, S = 2048;
  std::vector<int64_t> offsets{0};
  for (int64_t s : sizes) offsets.push_back(offsets.back() + s);
  std::vector<std::pair<std::string, gpt::SafeTensorsFile>> files;
  for (int r = 0; r < 3; ++r) {
    gpt::SafeTensorsFile f;
    f.metadata = whole.metadata;
    f.metadata["world_size"] = "3";
    f.metadata["rank"] = std::to_string(r);
    for (size_t g = 0; g < sizes.size(); ++g) {
      const int64_t lo = std::max(offsets[g], r * S),
                    hi = std::min({offsets[g + 1], (r + 1) * S, P});
      if (lo >= hi) continue;
      const int64_t b = lo - offsets[g], e = hi - offsets[g];
      for (const char* part : {"m", "v"}) {
        const gpt::SafeTensor* t = whole.find("w" + std::to_string(g) + "." + part);
        ASSERT_NE(t, nullptr);
        gpt::SafeTensor piece;
        piece.dtype = t->dtype;
        piece.shape = {e - b};
        piece.data.assign(t->data.begin() + b * 4, t->data.begin() + e * 4);
        const bool part_only = b != 0 || e != sizes[g];
        const std::string name =
            "w" + std::to_string(g) +
            (part_only ? "@" + std::to_string(b) + ":" + std::to_string(e) : "") + "." + part;
        f.tensors.emplace_back(name, std::move(piece));
      }
    }
    files.emplace_back("optimizer-0000" + std::to_string(r) + "-of-00003.safetensors",
                       std::move(f));
  }

  // One rank: the same state, and the same next step as the run that never stopped.
  Params b(*backend, sizes);
  for (size_t g = 0; g < sizes.size(); ++g)
    std::memcpy(b.groups[g].param.data, a.groups[g].param.data, a.groups[g].param.bytes());
  gpt::DataParallel resumed(*single, *backend, b.groups, cfg, true);
  resumed.load_state(files);
  EXPECT_EQ(resumed.step_count(), 2);
  a.set_gradients(2);
  dp.reduce_round(true);
  dp.step(1e-2f);
  b.set_gradients(2);
  resumed.reduce_round(true);
  resumed.step(1e-2f);
  EXPECT_EQ(a.flat_params(), b.flat_params());

  // Rank 1 of 2 (shard [4096, 5508)): its m and v are the whole state's elements there.
  Params c(*backend, sizes);
  PlaceOnlyCommunicator place(1, 2);
  gpt::DataParallel half(place, *backend, c.groups, cfg, true);
  half.load_state(files);
  const gpt::SafeTensorsFile mine = half.shard_state();
  std::vector<float> m_whole;
  for (size_t g = 0; g < sizes.size(); ++g) {
    const auto v = gpt::tensor_as_f32(*whole.find("w" + std::to_string(g) + ".m"), "m");
    m_whole.insert(m_whole.end(), v.begin(), v.end());
  }
  std::vector<float> m_half;
  for (const auto& seg : half.segments_of(1)) {
    const std::string g = "w" + std::to_string(seg.group);
    const bool whole_group = seg.begin == 0 && seg.end == sizes[static_cast<size_t>(seg.group)];
    const std::string name =
        whole_group ? g + ".m"
                    : g + "@" + std::to_string(seg.begin) + ":" + std::to_string(seg.end) + ".m";
    const gpt::SafeTensor* t = mine.find(name);
    ASSERT_NE(t, nullptr) << name;
    const auto v = gpt::tensor_as_f32(*t, name);
    m_half.insert(m_half.end(), v.begin(), v.end());
  }
  EXPECT_EQ(m_half, std::vector<float>(m_whole.begin() + 4096, m_whole.end()));

  // Without rank 1's file, w0 ends early and w2 starts late: refused, naming the file and tensor.
  auto gappy = files;
  gappy.erase(gappy.begin() + 1);
  Params d(*backend, sizes);
  gpt::DataParallel broken(*single, *backend, d.groups, cfg, true);
  try {
    broken.load_state(gappy);
    ADD_FAILURE() << "a missing shard was accepted";
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("optimizer-0000"), std::string::npos) << what;
    EXPECT_TRUE(what.find("'w0.m' ends at element 2048 of 3000") != std::string::npos ||
                what.find("'w2.m' has a gap at element 0") != std::string::npos)
        << what;
  }
}

// ---- MPI: real ranks (ctest runs this binary under mpirun -np 3) --------------------------------

gpt::Communicator* mpi_comm() {
  static std::unique_ptr<gpt::Communicator> comm = [] {
    std::unique_ptr<gpt::Communicator> c;
    if (gpt::mpi_built() && std::getenv("OMPI_COMM_WORLD_SIZE"))
      c = gpt::make_mpi_communicator(120.0);
    return c;
  }();
  return comm.get();
}

#define NEED_MPI()                      \
  gpt::Communicator* comm = mpi_comm(); \
  if (!comm || comm->world_size() < 2) GTEST_SKIP() << "not under mpirun -np N (N > 1)"

float value(int rank, size_t i) {
  return static_cast<float>((rank + 1) * 0.001) * static_cast<float>(i % 977) +
         1.0f / static_cast<float>(rank + 3);
}

TEST(MpiCommunicator, ReduceScatterSumsEachShardInRankOrder) {
  NEED_MPI();
  const int N = comm->world_size(), me = comm->rank();
  for (size_t count : {size_t{0}, size_t{1}, size_t{7}, size_t{1} << 18}) {
    std::vector<float> send(count * static_cast<size_t>(N)), recv(count, -1.0f);
    for (size_t i = 0; i < send.size(); ++i) send[i] = value(me, i);
    comm->reduce_scatter(send.data(), recv.data(), count, CommDType::f32, false);
    for (size_t i = 0; i < count; ++i) {
      const size_t at = static_cast<size_t>(me) * count + i;
      float want = 0.0f;
      for (int r = 0; r < N; ++r) want = r == 0 ? value(0, at) : want + value(r, at);
      ASSERT_EQ(recv[i], want) << "count " << count << " element " << i;
    }
  }
  // Order matters: rank 0 sends 1e8, rank 1 sends 1, the last rank -1e8 (others 0). Rank order
  // gives (1e8 + 1) - 1e8 = 0 in f32; any other order gives 1 or 2.
  std::vector<float> send(static_cast<size_t>(N), 0.0f), recv(1, -1.0f);
  const float mine = me == 0 ? 1e8f : me == 1 ? 1.0f : me == N - 1 ? -1e8f : 0.0f;
  std::fill(send.begin(), send.end(), mine);
  comm->reduce_scatter(send.data(), recv.data(), 1, CommDType::f32, false);
  EXPECT_EQ(recv[0], N == 2 ? 1e8f : 0.0f);
  // accumulate adds onto what recv holds.
  std::vector<double> dsend(3 * static_cast<size_t>(N), 1.0), drecv(3, 10.0);
  comm->reduce_scatter(dsend.data(), drecv.data(), 3, CommDType::f64, true);
  EXPECT_EQ(drecv, std::vector<double>(3, 10.0 + N));
}

TEST(MpiCommunicator, AllGatherInRankOrderAndInPlace) {
  NEED_MPI();
  const int N = comm->world_size(), me = comm->rank();
  for (size_t count : {size_t{0}, size_t{1}, size_t{7}, size_t{1} << 18}) {
    std::vector<float> recv(count * static_cast<size_t>(N), -1.0f);
    std::vector<float> send(count);
    for (size_t i = 0; i < count; ++i) send[i] = value(me, i);
    comm->all_gather(send.data(), recv.data(), count, CommDType::f32);
    for (int r = 0; r < N; ++r)
      for (size_t i = 0; i < count; ++i)
        ASSERT_EQ(recv[static_cast<size_t>(r) * count + i], value(r, i)) << "count " << count;
    // In place: this rank's part already sits in recv.
    std::vector<float> inplace(count * static_cast<size_t>(N), -1.0f);
    std::copy(send.begin(), send.end(), inplace.begin() + static_cast<long>(me * count));
    comm->all_gather(inplace.data() + me * count, inplace.data(), count, CommDType::f32);
    EXPECT_EQ(inplace, recv);
  }
}

TEST(MpiCommunicator, HostCollectives) {
  NEED_MPI();
  const int N = comm->world_size(), me = comm->rank();
  double d[2] = {1.0 / (me + 1), static_cast<double>(me)};
  comm->all_reduce_sum(d, 2);
  double want = 0.0;
  for (int r = 0; r < N; ++r) want += 1.0 / (r + 1);
  EXPECT_EQ(d[0], want);
  EXPECT_EQ(d[1], N * (N - 1) / 2.0);
  int64_t i[2] = {me, -me};
  comm->all_reduce_max(i, 2);
  EXPECT_EQ(i[0], N - 1);
  EXPECT_EQ(i[1], 0);
  int64_t s = me + 1;
  comm->all_reduce_sum(&s, 1);
  EXPECT_EQ(s, N * (N + 1) / 2);

  // Different lengths per rank, including empty.
  const std::string mine(static_cast<size_t>(me) * 1000, static_cast<char>('a' + me));
  const auto parts = comm->gather_bytes(mine, 0);
  if (me == 0) {
    ASSERT_EQ(parts.size(), static_cast<size_t>(N));
    for (int r = 0; r < N; ++r)
      EXPECT_EQ(parts[static_cast<size_t>(r)],
                std::string(static_cast<size_t>(r) * 1000, static_cast<char>('a' + r)));
  } else {
    EXPECT_TRUE(parts.empty());
  }
  int64_t all[16] = {};
  const int64_t me64 = me * 10;
  comm->all_gather_host(&me64, all, sizeof(me64));
  for (int r = 0; r < N; ++r) EXPECT_EQ(all[r], r * 10);
  char word[6] = "-----";
  if (me == N - 1) std::memcpy(word, "hello", 6);
  comm->broadcast_host(word, 6, N - 1);
  EXPECT_STREQ(word, "hello");
  comm->barrier();
}

}  // namespace
