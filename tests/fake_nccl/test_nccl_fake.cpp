// The NCCL communicator (engine/communicator_nccl.cpp) against the fake libnccl of this folder, in
// the emulated build: created through make_communicator as --dist nccl creates it, with every
// init, collective and finalize answering ncclInProgress several times. Shows that the
// communicator polls until the fake says done (the fake makes a collective's copy only then, and
// refuses any call made while it is in progress), that the results are right, that data-path
// collectives run on the CUDA backend's stream and host collectives on the communicator's own,
// and that a stuck init or a failed collective ends the rank with a message.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "engine/communicator.h"
#include "engine/cuda_backend.h"
#include "engine/data_parallel.h"
#include "tests/fake_nccl/fake_nccl.h"

namespace gpt {
namespace {

constexpr int kPolls = 4;  // ncclInProgress answers after each call that answers it

std::unique_ptr<Communicator> make_nccl(double timeout_s = 60.0) {
  CommOptions o;
  o.kind = "nccl";
  o.use_gpu = true;
  o.timeout_s = timeout_s;
  return make_communicator(o);
}

class NcclFake : public ::testing::Test {
 protected:
  void SetUp() override {
    fake_nccl::set_in_progress(kPolls);
    fake_nccl::reset();
  }
};

TEST(FakeNccl, RefusesCallsWhileInProgressAndCopiesOnlyWhenPolled) {
  // The double is strict: a communicator that skipped a poll would fail against it.
  fake_nccl::set_in_progress(2);
  ncclUniqueId id;
  ASSERT_EQ(ncclGetUniqueId(&id), ncclSuccess);
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  ncclComm_t comm = nullptr;
  ASSERT_EQ(ncclCommInitRankConfig(&comm, 1, id, 0, &config), ncclInProgress);
  ASSERT_NE(comm, nullptr);
  void* dev = nullptr;
  ASSERT_EQ(cudaMalloc(&dev, 2 * sizeof(float)), cudaSuccess);
  float* d = static_cast<float*>(dev);
  EXPECT_EQ(ncclAllReduce(d, d + 1, 1, ncclFloat32, ncclSum, comm, nullptr), ncclInvalidUsage);
  ncclResult_t state = ncclSuccess;
  ASSERT_EQ(ncclCommGetAsyncError(comm, &state), ncclSuccess);
  EXPECT_EQ(state, ncclInProgress);
  ASSERT_EQ(ncclCommGetAsyncError(comm, &state), ncclSuccess);
  EXPECT_EQ(state, ncclInProgress);
  ASSERT_EQ(ncclCommGetAsyncError(comm, &state), ncclSuccess);
  EXPECT_EQ(state, ncclSuccess);

  const float in[2] = {3.5f, -1.0f};
  ASSERT_EQ(cudaMemcpy(d, in, sizeof(in), cudaMemcpyHostToDevice), cudaSuccess);
  ASSERT_EQ(ncclAllReduce(d, d + 1, 1, ncclFloat32, ncclSum, comm, nullptr), ncclInProgress);
  float out[2] = {};
  ASSERT_EQ(cudaMemcpy(out, d, sizeof(out), cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_EQ(out[1], -1.0f) << "the fake copied before the poll said done";
  do {
    ASSERT_EQ(ncclCommGetAsyncError(comm, &state), ncclSuccess);
  } while (state == ncclInProgress);
  EXPECT_EQ(state, ncclSuccess);
  ASSERT_EQ(cudaMemcpy(out, d, sizeof(out), cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_EQ(out[1], 3.5f);
  EXPECT_EQ(ncclCommDestroy(comm), ncclSuccess);
  cudaFree(dev);
}

TEST_F(NcclFake, InitSurvivesInProgress) {
  auto comm = make_nccl();
  ASSERT_NE(comm, nullptr);
  EXPECT_EQ(comm->kind(), "nccl");
  EXPECT_EQ(comm->world_size(), 1);
  EXPECT_EQ(comm->rank(), 0);
  EXPECT_TRUE(comm->device_buffers());
  EXPECT_GE(fake_nccl::in_progress_answers(), 1 + kPolls);  // the init call, then every poll
}

TEST_F(NcclFake, HostCollectivesAreExactOnTheCommunicatorsOwnStream) {
  auto comm = make_nccl();
  fake_nccl::reset();
  double sums[3] = {1.5, -2.25, 1e300};
  comm->all_reduce_sum(sums, 3);
  EXPECT_EQ(sums[0], 1.5);
  EXPECT_EQ(sums[1], -2.25);
  EXPECT_EQ(sums[2], 1e300);
  int64_t counts[2] = {7, -(int64_t{1} << 40)};
  comm->all_reduce_sum(counts, 2);
  EXPECT_EQ(counts[0], 7);
  EXPECT_EQ(counts[1], -(int64_t{1} << 40));
  int64_t flag = 3;
  comm->all_reduce_max(&flag, 1);
  EXPECT_EQ(flag, 3);
  const char send[5] = "abcd";
  char recv[5] = {};
  comm->all_gather_host(send, recv, 4);
  EXPECT_STREQ(recv, "abcd");
  char bcast[4] = "xyz";
  comm->broadcast_host(bcast, 3, 0);
  EXPECT_STREQ(bcast, "xyz");
  const std::string big(3 << 20, 'q');  // larger than the staging buffer: it grows
  const std::vector<std::string> parts = comm->gather_bytes(big, 0);
  ASSERT_EQ(parts.size(), 1u);
  EXPECT_EQ(parts[0], big);
  comm->barrier();

  const std::vector<fake_nccl::Call> calls = fake_nccl::calls();
  ASSERT_GE(calls.size(), 7u);
  for (const fake_nccl::Call& c : calls) {
    EXPECT_TRUE(c.answered_in_progress) << c.op;
    EXPECT_NE(c.stream, nullptr) << c.op << " ran on the legacy default stream";
    EXPECT_EQ(c.stream, calls.front().stream) << c.op;
  }
}

TEST_F(NcclFake, DataPathCollectivesRunOnTheBackendsStream) {
  CudaBackend backend(DType::f32);
  auto comm = make_nccl();
  comm->set_device_stream(backend.stream());
  fake_nccl::reset();
  const size_t n = 1000;
  std::vector<float> host(n);
  for (size_t i = 0; i < n; ++i) host[i] = 0.5f * static_cast<float>(i) - 7.0f;
  void* send = backend.allocate(n * sizeof(float));
  void* recv = backend.allocate(n * sizeof(float));
  backend.copy_from_host(send, host.data(), n * sizeof(float));

  comm->reduce_scatter(send, recv, n, CommDType::f32, false);
  std::vector<float> out(n);
  backend.copy_to_host(out.data(), recv, n * sizeof(float));
  EXPECT_EQ(out, host);
  EXPECT_THROW(comm->reduce_scatter(send, recv, n, CommDType::f32, true), std::invalid_argument);

  backend.fill_zero(recv, n * sizeof(float));
  comm->all_gather(send, recv, n, CommDType::f32);
  backend.copy_to_host(out.data(), recv, n * sizeof(float));
  EXPECT_EQ(out, host);
  comm->all_gather(recv, recv, n, CommDType::f32);  // in place: send = recv + rank * count
  backend.copy_to_host(out.data(), recv, n * sizeof(float));
  EXPECT_EQ(out, host);
  EXPECT_GT(comm->stats().seconds, 0.0);

  std::vector<fake_nccl::Call> calls = fake_nccl::calls();
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_EQ(calls[0].op, "reduce_scatter");
  EXPECT_EQ(calls[0].count, n);
  EXPECT_EQ(calls[0].type, ncclFloat32);
  for (const fake_nccl::Call& c : calls) {
    EXPECT_TRUE(c.answered_in_progress) << c.op;
    EXPECT_EQ(c.stream, backend.stream()) << c.op << " is not on the backend's stream";
  }

  // Host collectives stay on the communicator's own stream; without a device stream the data
  // path goes back to it.
  fake_nccl::reset();
  comm->barrier();
  comm->set_device_stream(nullptr);
  comm->all_gather(send, recv, n, CommDType::f32);
  calls = fake_nccl::calls();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_NE(calls[0].stream, backend.stream());
  EXPECT_NE(calls[0].stream, nullptr);
  EXPECT_EQ(calls[1].stream, calls[0].stream);
  backend.release(send);
  backend.release(recv);
}

// One optimizer step of DataParallel over the NCCL communicator (world of one, device buffers:
// flat send buffer, reduce-scatter, all-gather) gives the parameters of the pass-through a single
// GPU takes, with every collective on the backend's stream and no host synchronisation needed.
TEST_F(NcclFake, DataParallelStepMatchesOneGpuOnTheBackendsStream) {
  const int64_t sizes[2] = {300, 4100};  // the second spans two norm blocks
  auto run = [&](Communicator& comm, CudaBackend& backend, bool zero, double* norm) {
    std::vector<ParamGroup> groups;
    std::vector<void*> owned;
    for (int g = 0; g < 2; ++g) {
      const int64_t n = sizes[g];
      std::vector<float> p(static_cast<size_t>(n)), d(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) {
        p[static_cast<size_t>(i)] = std::sin(0.1f * static_cast<float>(i + g));
        d[static_cast<size_t>(i)] = 0.01f * std::cos(0.37f * static_cast<float>(i * (g + 1)));
      }
      ParamGroup pg;
      pg.name = "w" + std::to_string(g);
      pg.param = Tensor(backend.allocate(p.size() * 4), DType::f32, Shape{n});
      pg.grad = Tensor(backend.allocate(d.size() * 4), DType::f32, Shape{n});
      backend.copy_from_host(pg.param.data, p.data(), p.size() * 4);
      backend.copy_from_host(pg.grad.data, d.data(), d.size() * 4);
      pg.weight_decay = g == 1;
      owned.push_back(pg.param.data);
      owned.push_back(pg.grad.data);
      groups.push_back(pg);
    }
    std::vector<std::vector<float>> out;
    {
      DataParallel dp(comm, backend, groups, AdamWConfig{}, zero);
      dp.reduce_round(true);
      *norm = dp.step(1e-2f);
      for (const ParamGroup& pg : groups) {
        out.emplace_back(static_cast<size_t>(pg.param.numel()));
        backend.copy_to_host(out.back().data(), pg.param.data, pg.param.bytes());
      }
    }
    for (void* p : owned) backend.release(p);
    return out;
  };
  CudaBackend backend(DType::f32);
  auto single = make_single_communicator();
  double ref_norm = 0.0;
  const auto ref = run(*single, backend, false, &ref_norm);
  for (bool zero : {false, true}) {
    SCOPED_TRACE(zero ? "zero" : "no zero");
    auto comm = make_nccl();
    fake_nccl::reset();
    double norm = 0.0;
    const auto got = run(*comm, backend, zero, &norm);
    EXPECT_EQ(norm, ref_norm);
    EXPECT_EQ(got, ref);
    int data_path = 0;
    for (const fake_nccl::Call& c : fake_nccl::calls()) {
      if (c.op != "reduce_scatter" && c.op != "all_gather") continue;
      ++data_path;
      EXPECT_TRUE(c.answered_in_progress) << c.op;
      EXPECT_EQ(c.stream, backend.stream()) << c.op << " is not on the backend's stream";
    }
    EXPECT_EQ(data_path, 2);  // reduce-scatter, then all-gather of the gradient or the parameters
  }
}

using NcclFakeDeathTest = NcclFake;

TEST_F(NcclFakeDeathTest, AnInitThatNeverFinishesTimesOut) {
  ::testing::FLAGS_gtest_death_test_style = "threadsafe";
  EXPECT_EXIT(
      {
        fake_nccl::set_in_progress(1000000000);
        make_nccl(0.2);
      },
      ::testing::ExitedWithCode(1),
      "rank 0: error: NCCL ncclCommInitRankConfig has waited 0 s for the other ranks "
      "\\(--dist-timeout 0 s\\)");
}

TEST_F(NcclFakeDeathTest, AFailedCollectiveEndsTheRankNamingIt) {
  ::testing::FLAGS_gtest_death_test_style = "threadsafe";
  EXPECT_EXIT(
      {
        auto comm = make_nccl();
        std::vector<float> host(16, 1.0f);  // not device memory: the fake's copy fails
        comm->reduce_scatter(host.data(), host.data() + 8, 8, CommDType::f32, false);
      },
      ::testing::ExitedWithCode(1), "rank 0: error: NCCL reduce_scatter: unhandled cuda error");
}

}  // namespace
}  // namespace gpt
