// The NCCL communicator (GPT_NCCL): GPU buffers, one rank per GPU.
//
// The unique id that ties the ranks together is made by rank 0 and reaches the others over MPI
// (when the job was started by mpirun or srun --mpi=pmix) or through --dist-init file:/tcp:. Every
// collective runs on the CUDA backend's stream (the legacy default stream) and is waited for with
// a poll loop that checks ncclCommGetAsyncError and the --dist-timeout: a peer that died makes
// this rank abort its communicator and exit with a message instead of hanging. Host collectives
// (control data) are staged through a small device buffer.
//
// Not run on a GPU by the CI machines: scripts/gpu_check.sh runs it as one rank.
#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <thread>
#include <vector>

#include "engine/communicator.h"
#include "engine/progress.h"
#include "engine/communicator_internal.h"

namespace gpt {

namespace {

#define GPT_NCCL_CHECK(stmt)                                                              \
  do {                                                                                    \
    const ncclResult_t rc_ = (stmt);                                                      \
    if (rc_ != ncclSuccess)                                                               \
      throw std::runtime_error(std::string(#stmt) + " failed: " + ncclGetErrorString(rc_) + \
                               " (" __FILE__ ":" + std::to_string(__LINE__) + ")");       \
  } while (0)

#define GPT_CUDA_CHECK_COMM(stmt)                                                          \
  do {                                                                                     \
    const cudaError_t rc_ = (stmt);                                                        \
    if (rc_ != cudaSuccess)                                                                \
      throw std::runtime_error(std::string(#stmt) + " failed: " + cudaGetErrorString(rc_) + \
                               " (" __FILE__ ":" + std::to_string(__LINE__) + ")");        \
  } while (0)

ncclDataType_t nccl_type(CommDType t) {
  switch (t) {
    case CommDType::f32: return ncclFloat32;
    case CommDType::f64: return ncclFloat64;
    case CommDType::bf16: return ncclBfloat16;
    case CommDType::i64: return ncclInt64;
  }
  return ncclUint8;
}

class NcclCommunicator : public Communicator {
 public:
  NcclCommunicator(const RankInfo& ranks, const std::string& init, double timeout_s,
                   Communicator* bootstrap)
      : rank_(ranks.rank), world_(ranks.world_size), local_rank_(ranks.local_rank),
        timeout_s_(timeout_s) {
    if (bootstrap) {
      rank_ = bootstrap->rank();
      world_ = bootstrap->world_size();
      local_rank_ = bootstrap->local_rank();
    }
    int devices = 0;
    GPT_CUDA_CHECK_COMM(cudaGetDeviceCount(&devices));
    if (local_rank_ >= devices)
      throw std::runtime_error("rank " + std::to_string(rank_) + ": local rank " +
                               std::to_string(local_rank_) + " but this node has " +
                               std::to_string(devices) +
                               " GPU(s): start one rank per GPU (NCCL refuses two ranks on one)");
    GPT_CUDA_CHECK_COMM(cudaSetDevice(local_rank_));
    ncclUniqueId id;
    if (rank_ == 0) GPT_NCCL_CHECK(ncclGetUniqueId(&id));
    if (world_ > 1) {
      if (bootstrap)
        bootstrap->broadcast_host(&id, sizeof(id), 0);
      else
        exchange_bootstrap_bytes(init, rank_, world_, &id, sizeof(id), timeout_s);
    }
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;  // non-blocking: init and errors are polled, so a dead peer times out
    GPT_NCCL_CHECK(ncclCommInitRankConfig(&comm_, world_, id, rank_, &config));
    wait_comm("ncclCommInitRank");
    GPT_CUDA_CHECK_COMM(cudaMalloc(&scratch_, kScratchBytes));
  }
  ~NcclCommunicator() override {
    if (scratch_) cudaFree(scratch_);
    if (comm_) ncclCommDestroy(comm_);
  }

  std::string kind() const override { return "nccl"; }
  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  int local_rank() const override { return local_rank_; }
  bool device_buffers() const override { return true; }

  void all_reduce_sum(double* x, size_t n) override { host_all_reduce(x, n, ncclFloat64, ncclSum); }
  void all_reduce_sum(int64_t* x, size_t n) override { host_all_reduce(x, n, ncclInt64, ncclSum); }
  void all_reduce_max(int64_t* x, size_t n) override { host_all_reduce(x, n, ncclInt64, ncclMax); }

  void all_gather_host(const void* send, void* recv, size_t bytes) override {
    if (bytes == 0) return;
    void* dev = device_scratch(bytes * static_cast<size_t>(world_ + 1));
    char* d = static_cast<char*>(dev);
    GPT_CUDA_CHECK_COMM(cudaMemcpy(d, send, bytes, cudaMemcpyHostToDevice));
    GPT_NCCL_CHECK(ncclAllGather(d, d + bytes, bytes, ncclUint8, comm_, nullptr));
    wait_stream("all_gather_host");
    GPT_CUDA_CHECK_COMM(cudaMemcpy(recv, d + bytes, bytes * static_cast<size_t>(world_),
                                   cudaMemcpyDeviceToHost));
  }

  std::vector<std::string> gather_bytes(const std::string& mine, int root) override {
    // Sizes first, then every rank's bytes broadcast in turn (checkpoint shards: rare and large).
    int64_t n = static_cast<int64_t>(mine.size());
    std::vector<int64_t> sizes(static_cast<size_t>(world_));
    all_gather_host(&n, sizes.data(), sizeof(n));
    std::vector<std::string> out(rank_ == root ? static_cast<size_t>(world_) : 0);
    for (int r = 0; r < world_; ++r) {
      std::string buf = r == rank_ ? mine : std::string(static_cast<size_t>(sizes[r]), '\0');
      broadcast_host(buf.data(), buf.size(), r);
      if (rank_ == root) out[static_cast<size_t>(r)] = std::move(buf);
    }
    return out;
  }

  void broadcast_host(void* buf, size_t bytes, int root) override {
    if (bytes == 0) return;
    void* dev = device_scratch(bytes);
    GPT_CUDA_CHECK_COMM(cudaMemcpy(dev, buf, bytes, cudaMemcpyHostToDevice));
    GPT_NCCL_CHECK(ncclBroadcast(dev, dev, bytes, ncclUint8, root, comm_, nullptr));
    wait_stream("broadcast");
    GPT_CUDA_CHECK_COMM(cudaMemcpy(buf, dev, bytes, cudaMemcpyDeviceToHost));
  }

  void barrier() override {
    int64_t one = 1;
    host_all_reduce(&one, 1, ncclInt64, ncclSum);
  }

  void reduce_scatter(const void* send, void* recv, size_t count, CommDType dtype,
                      bool accumulate) override {
    if (accumulate)
      throw std::invalid_argument(
          "nccl reduce_scatter: accumulate is not supported (accumulate locally, reduce once)");
    if (count == 0) return;
    const double bytes = static_cast<double>(count * comm_dtype_size(dtype)) * (world_ - 1);
    const auto t0 = std::chrono::steady_clock::now();
    GPT_NCCL_CHECK(ncclReduceScatter(send, recv, count, nccl_type(dtype), ncclSum, comm_, nullptr));
    wait_stream("reduce_scatter");
    account(t0, bytes);
  }

  void all_gather(const void* send, void* recv, size_t count, CommDType dtype) override {
    if (count == 0) return;
    const double bytes = static_cast<double>(count * comm_dtype_size(dtype)) * (world_ - 1);
    const auto t0 = std::chrono::steady_clock::now();
    GPT_NCCL_CHECK(ncclAllGather(send, recv, count, nccl_type(dtype), comm_, nullptr));
    wait_stream("all_gather");
    account(t0, bytes);
  }

  [[noreturn]] void abort(const std::string& message) override {
    write_stderr_final(message + "\n");  // ends a progress line first
    std::fflush(stderr);
    if (comm_) ncclCommAbort(comm_);
    comm_ = nullptr;
    std::_Exit(1);
  }

 private:
  static constexpr size_t kScratchBytes = 1 << 20;

  void* device_scratch(size_t bytes) {
    if (bytes > scratch_bytes_) {
      if (scratch_) cudaFree(scratch_);
      scratch_ = nullptr;
      GPT_CUDA_CHECK_COMM(cudaMalloc(&scratch_, bytes));
      scratch_bytes_ = bytes;
    }
    return scratch_;
  }

  template <typename T>
  void host_all_reduce(T* x, size_t n, ncclDataType_t type, ncclRedOp_t op) {
    if (n == 0) return;
    void* dev = device_scratch(n * sizeof(T));
    GPT_CUDA_CHECK_COMM(cudaMemcpy(dev, x, n * sizeof(T), cudaMemcpyHostToDevice));
    GPT_NCCL_CHECK(ncclAllReduce(dev, dev, n, type, op, comm_, nullptr));
    wait_stream("all_reduce");
    GPT_CUDA_CHECK_COMM(cudaMemcpy(x, dev, n * sizeof(T), cudaMemcpyDeviceToHost));
  }

  void account(std::chrono::steady_clock::time_point t0, double bytes) {
    stats_.bytes += bytes;
    stats_.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

  // Waits for the communicator to finish a non-blocking call (init), checking for errors.
  void wait_comm(const char* what) {
    const auto t0 = std::chrono::steady_clock::now();
    while (true) {
      ncclResult_t state = ncclSuccess;
      GPT_NCCL_CHECK(ncclCommGetAsyncError(comm_, &state));
      if (state == ncclSuccess) return;
      if (state != ncclInProgress) fail(what, ncclGetErrorString(state));
      check_timeout(what, t0);
      std::this_thread::yield();
    }
  }

  // Waits for the stream while polling NCCL's asynchronous error and the timeout.
  void wait_stream(const char* what) {
    const auto t0 = std::chrono::steady_clock::now();
    while (true) {
      const cudaError_t q = cudaStreamQuery(nullptr);
      if (q == cudaSuccess) return;
      if (q != cudaErrorNotReady) fail(what, cudaGetErrorString(q));
      ncclResult_t state = ncclSuccess;
      GPT_NCCL_CHECK(ncclCommGetAsyncError(comm_, &state));
      if (state != ncclSuccess && state != ncclInProgress) fail(what, ncclGetErrorString(state));
      check_timeout(what, t0);
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  }

  void check_timeout(const char* what, std::chrono::steady_clock::time_point t0) {
    const double waited =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (timeout_s_ > 0 && waited > timeout_s_) {
      char msg[256];
      std::snprintf(msg, sizeof(msg),
                    "rank %d: error: NCCL %s has waited %.0f s for the other ranks "
                    "(--dist-timeout %.0f s): a peer rank stopped or hangs; ending this rank",
                    rank_, what, waited, timeout_s_);
      abort(msg);
    }
  }

  [[noreturn]] void fail(const char* what, const char* why) {
    abort("rank " + std::to_string(rank_) + ": error: NCCL " + what + ": " + why);
  }

  int rank_, world_, local_rank_;
  double timeout_s_;
  ncclComm_t comm_ = nullptr;
  void* scratch_ = nullptr;
  size_t scratch_bytes_ = kScratchBytes;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(const RankInfo& ranks,
                                                     const std::string& init, double timeout_s,
                                                     Communicator* bootstrap) {
  return std::make_unique<NcclCommunicator>(ranks, init, timeout_s, bootstrap);
}

}  // namespace gpt
