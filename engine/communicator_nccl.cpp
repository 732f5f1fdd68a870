// The NCCL communicator (GPT_NCCL): GPU buffers, one rank per GPU.
//
// The unique id that ties the ranks together is made by rank 0 and reaches the others over MPI
// (when the job was started by mpirun or srun --mpi=pmix) or through --dist-init file:/tcp:.
//
// The communicator is non-blocking (config.blocking = 0): no NCCL call waits for the other ranks.
// A call that answers ncclInProgress has been taken but not finished (the init runs in NCCL's
// background thread; a collective may not be enqueued yet), and nothing else may be called on the
// communicator until ncclCommGetAsyncError stops answering ncclInProgress; every call is followed
// by that poll. A collective, once enqueued, is waited for by polling its stream, NCCL's
// asynchronous error and the --dist-timeout: a peer that died makes this rank abort its
// communicator and exit with a message instead of hanging.
//
// Streams: the data-path collectives (gradients, parameters) run on the stream set_device_stream
// gives, the CUDA backend's (non-blocking) stream, so they follow the backend's queued copies
// without a host synchronisation. Host collectives (control data) are staged through a small device
// buffer on the communicator's own stream, independent of the model's work.
//
// Not run on a GPU by the CI machines: scripts/gpu_check.sh runs it as one rank, and the emulated
// build (GPT_CUDA_EMU) runs it against a fake libnccl (tests/fake_nccl) that answers
// ncclInProgress.
#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <thread>
#include <vector>

#include "engine/communicator.h"
#include "engine/communicator_internal.h"
#include "engine/progress.h"

namespace gpt {

namespace {

#define GPT_NCCL_CHECK(stmt)                                                                \
  do {                                                                                      \
    const ncclResult_t rc_ = (stmt);                                                        \
    if (rc_ != ncclSuccess)                                                                 \
      throw std::runtime_error(std::string(#stmt) + " failed: " + ncclGetErrorString(rc_) + \
                               " (" __FILE__ ":" + std::to_string(__LINE__) + ")");         \
  } while (0)

#define GPT_CUDA_CHECK_COMM(stmt)                                                           \
  do {                                                                                      \
    const cudaError_t rc_ = (stmt);                                                         \
    if (rc_ != cudaSuccess)                                                                 \
      throw std::runtime_error(std::string(#stmt) + " failed: " + cudaGetErrorString(rc_) + \
                               " (" __FILE__ ":" + std::to_string(__LINE__) + ")");         \
  } while (0)

ncclDataType_t nccl_type(CommDType t) {
  switch (t) {
    case CommDType::f32:
      return ncclFloat32;
    case CommDType::f64:
      return ncclFloat64;
    case CommDType::bf16:
      return ncclBfloat16;
    case CommDType::i64:
      return ncclInt64;
  }
  return ncclUint8;
}

class NcclCommunicator : public Communicator {
 public:
  NcclCommunicator(const RankInfo& ranks, const std::string& init, double timeout_s,
                   Communicator* bootstrap)
      : rank_(ranks.rank),
        world_(ranks.world_size),
        local_rank_(ranks.local_rank),
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
    GPT_CUDA_CHECK_COMM(cudaStreamCreateWithFlags(&own_stream_, cudaStreamNonBlocking));
    data_stream_ = own_stream_;
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
    const ncclResult_t rc = ncclCommInitRankConfig(&comm_, world_, id, rank_, &config);
    if (rc != ncclSuccess && rc != ncclInProgress) {
      const std::string why = describe(rc);
      if (comm_) ncclCommAbort(comm_);
      comm_ = nullptr;
      throw std::runtime_error("rank " + std::to_string(rank_) +
                               ": ncclCommInitRankConfig: " + why);
    }
    wait_comm("ncclCommInitRankConfig");  // the init runs in NCCL's thread until this says done
    GPT_CUDA_CHECK_COMM(cudaMalloc(&scratch_, kScratchBytes));
  }
  ~NcclCommunicator() override {
    if (comm_) {
      // Finalize flushes and may answer ncclInProgress; destroy then frees without blocking. A
      // communicator that will not finish (a dead peer) is aborted instead.
      ncclResult_t rc = ncclCommFinalize(comm_);
      if (rc == ncclInProgress) rc = poll_state();
      if (rc == ncclSuccess)
        ncclCommDestroy(comm_);
      else
        ncclCommAbort(comm_);
    }
    if (scratch_) cudaFree(scratch_);
    if (own_stream_) cudaStreamDestroy(own_stream_);
  }

  std::string kind() const override { return "nccl"; }
  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  int local_rank() const override { return local_rank_; }
  bool device_buffers() const override { return true; }
  void set_device_stream(void* stream) override {
    data_stream_ = stream ? static_cast<cudaStream_t>(stream) : own_stream_;
  }

  void all_reduce_sum(double* x, size_t n) override { host_all_reduce(x, n, ncclFloat64, ncclSum); }
  void all_reduce_sum(int64_t* x, size_t n) override { host_all_reduce(x, n, ncclInt64, ncclSum); }
  void all_reduce_max(int64_t* x, size_t n) override { host_all_reduce(x, n, ncclInt64, ncclMax); }

  void all_gather_host(const void* send, void* recv, size_t bytes) override {
    if (bytes == 0) return;
    char* d = static_cast<char*>(device_scratch(bytes * static_cast<size_t>(world_ + 1)));
    to_device(d, send, bytes);
    enqueued("all_gather_host", ncclAllGather(d, d + bytes, bytes, ncclUint8, comm_, own_stream_));
    wait_stream("all_gather_host", own_stream_);
    to_host(recv, d + bytes, bytes * static_cast<size_t>(world_));
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
    to_device(dev, buf, bytes);
    enqueued("broadcast", ncclBroadcast(dev, dev, bytes, ncclUint8, root, comm_, own_stream_));
    wait_stream("broadcast", own_stream_);
    to_host(buf, dev, bytes);
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
    enqueued("reduce_scatter",
             ncclReduceScatter(send, recv, count, nccl_type(dtype), ncclSum, comm_, data_stream_));
    wait_stream("reduce_scatter", data_stream_);
    account(t0, bytes);
  }

  void all_gather(const void* send, void* recv, size_t count, CommDType dtype) override {
    if (count == 0) return;
    const double bytes = static_cast<double>(count * comm_dtype_size(dtype)) * (world_ - 1);
    const auto t0 = std::chrono::steady_clock::now();
    enqueued("all_gather", ncclAllGather(send, recv, count, nccl_type(dtype), comm_, data_stream_));
    wait_stream("all_gather", data_stream_);
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

  // Host data into the scratch buffer, ordered before the collective on the communicator's stream
  // (a pageable source is staged before cudaMemcpyAsync returns, so the caller may reuse it).
  void to_device(void* dev, const void* host, size_t bytes) {
    GPT_CUDA_CHECK_COMM(cudaMemcpyAsync(dev, host, bytes, cudaMemcpyHostToDevice, own_stream_));
  }
  // The result back to the host, after wait_stream has seen the collective finish.
  void to_host(void* host, const void* dev, size_t bytes) {
    GPT_CUDA_CHECK_COMM(cudaMemcpyAsync(host, dev, bytes, cudaMemcpyDeviceToHost, own_stream_));
    GPT_CUDA_CHECK_COMM(cudaStreamSynchronize(own_stream_));
  }

  template <typename T>
  void host_all_reduce(T* x, size_t n, ncclDataType_t type, ncclRedOp_t op) {
    if (n == 0) return;
    void* dev = device_scratch(n * sizeof(T));
    to_device(dev, x, n * sizeof(T));
    enqueued("all_reduce", ncclAllReduce(dev, dev, n, type, op, comm_, own_stream_));
    wait_stream("all_reduce", own_stream_);
    to_host(x, dev, n * sizeof(T));
  }

  void account(std::chrono::steady_clock::time_point t0, double bytes) {
    stats_.bytes += bytes;
    stats_.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

  std::string describe(ncclResult_t rc) const {
    std::string why = ncclGetErrorString(rc);
    const char* last = ncclGetLastError(comm_);
    if (last != nullptr && *last != '\0') why += std::string(" (") + last + ")";
    return why;
  }

  // What a collective call answered: ncclSuccess (enqueued), ncclInProgress (taken, not yet
  // enqueued: poll until it is, before anything else touches the communicator or its stream), or
  // an error, which ends this rank like any NCCL failure.
  void enqueued(const char* what, ncclResult_t rc) {
    if (rc == ncclInProgress)
      wait_comm(what);
    else if (rc != ncclSuccess)
      fail(what, rc);
  }

  // Polls ncclCommGetAsyncError until the communicator is no longer in progress (the init or a
  // call that answered ncclInProgress has finished), within the timeout.
  void wait_comm(const char* what) {
    const auto t0 = std::chrono::steady_clock::now();
    while (true) {
      ncclResult_t state = ncclSuccess;
      const ncclResult_t rc = ncclCommGetAsyncError(comm_, &state);
      if (rc != ncclSuccess) fail(what, rc);
      if (state == ncclSuccess) return;
      if (state != ncclInProgress) fail(what, state);
      check_timeout(what, t0);
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

  // The communicator's state once it is no longer in progress, or ncclInProgress after the timeout
  // (for the destructor, which must neither throw nor exit).
  ncclResult_t poll_state() {
    const auto t0 = std::chrono::steady_clock::now();
    while (true) {
      ncclResult_t state = ncclSuccess;
      if (ncclCommGetAsyncError(comm_, &state) != ncclSuccess) return ncclInternalError;
      if (state != ncclInProgress) return state;
      if (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > timeout_s_)
        return ncclInProgress;
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

  // Waits for an enqueued collective (and what its stream held before it) while polling NCCL's
  // asynchronous error and the timeout.
  void wait_stream(const char* what, cudaStream_t stream) {
    const auto t0 = std::chrono::steady_clock::now();
    while (true) {
      const cudaError_t q = cudaStreamQuery(stream);
      if (q == cudaSuccess) return;
      if (q != cudaErrorNotReady) fail(what, cudaGetErrorString(q));
      ncclResult_t state = ncclSuccess;
      const ncclResult_t rc = ncclCommGetAsyncError(comm_, &state);
      if (rc != ncclSuccess) fail(what, rc);
      if (state != ncclSuccess && state != ncclInProgress) fail(what, state);
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

  [[noreturn]] void fail(const char* what, ncclResult_t rc) { fail(what, describe(rc).c_str()); }
  [[noreturn]] void fail(const char* what, const char* why) {
    abort("rank " + std::to_string(rank_) + ": error: NCCL " + what + ": " + why);
  }

  int rank_, world_, local_rank_;
  double timeout_s_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t own_stream_ = nullptr;   // host collectives; data path until set_device_stream
  cudaStream_t data_stream_ = nullptr;  // the backend's stream once set_device_stream gave it
  void* scratch_ = nullptr;
  size_t scratch_bytes_ = kScratchBytes;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(const RankInfo& ranks, const std::string& init,
                                                     double timeout_s, Communicator* bootstrap) {
  return std::make_unique<NcclCommunicator>(ranks, init, timeout_s, bootstrap);
}

}  // namespace gpt
