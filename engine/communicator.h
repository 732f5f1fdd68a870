// Communicators: how the ranks of a data-parallel job talk to each other. One interface, three
// implementations:
//
//   single  a world of one rank; every collective is a copy. No dependency.
//   mpi     OpenMPI (GPT_MPI): CPU buffers. Every sum is computed in rank order 0..N-1 (an
//           all-to-all of shards, then a left fold on the owner), never in MPI's unspecified
//           reduction order, so N ranks give bitwise the sums one process gives.
//   nccl    NCCL (GPT_NCCL): GPU buffers, one rank per GPU (GPU = local rank). Its unique
//           id travels over MPI when the job was started by mpirun, else through --dist-init
//           file:PATH or tcp:HOST:PORT (srun without PMIx). Sums follow NCCL's ring order.
//
// Ranks are discovered from the launcher's environment (discover_ranks): OpenMPI
// (OMPI_COMM_WORLD_RANK/SIZE/LOCAL_RANK), Slurm (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID) or the
// torchrun convention (RANK, WORLD_SIZE, LOCAL_RANK); none of them means a world of one.
//
// Two families of collectives: host collectives for small control data (step counts, losses, stop
// flags, checkpoint shards), always on host memory and always exact, and data-path collectives for
// gradients and parameters (device memory for nccl, host memory otherwise).
//
// Faults: a collective that waits longer than the timeout (a peer died, or hangs) ends this rank
// with a message naming the collective; abort() ends every rank of the job (MPI_Abort,
// ncclCommAbort). docs/distributed.md describes the launch and the guarantees.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace gpt {

enum class CommDType { f32, f64, bf16, i64 };
size_t comm_dtype_size(CommDType t);

// Where this process sits in the job, as the launcher says.
struct RankInfo {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;             // index among the ranks on this node (the GPU to use)
  std::string launcher = "none";  // "openmpi", "slurm", "env" (RANK/WORLD_SIZE), "none"
};
// Reads the launcher's variables (OpenMPI first, then Slurm, then RANK/WORLD_SIZE). Throws
// std::invalid_argument naming the variable when a value is malformed or out of range.
RankInfo discover_ranks();

// Bytes sent and seconds spent in data-path collectives (the bench and the log report them).
struct CommStats {
  double bytes = 0.0;
  double seconds = 0.0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual std::string kind() const = 0;  // "single", "mpi", "nccl"
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual int local_rank() const = 0;
  // Whether the data-path buffers are device memory (nccl) or host memory.
  virtual bool device_buffers() const { return false; }
  // nccl: the CUDA stream (a cudaStream_t) the data-path collectives are enqueued on, the
  // backend's, so that they follow its queued work without a host synchronisation; null: the
  // communicator's own stream again (the caller then synchronises first). Host collectives always
  // run on the communicator's own stream. The others ignore it.
  virtual void set_device_stream(void* /*stream*/) {}

  // ---- host collectives: small control data, exact, the same result on every rank ---------------
  // x (n) = the sum over ranks, added in rank order 0..N-1.
  virtual void all_reduce_sum(double* x, size_t n) = 0;
  virtual void all_reduce_sum(int64_t* x, size_t n) = 0;
  virtual void all_reduce_max(int64_t* x, size_t n) = 0;
  // recv (bytes · N) = every rank's send (bytes), in rank order.
  virtual void all_gather_host(const void* send, void* recv, size_t bytes) = 0;
  // At root: every rank's bytes in rank order; elsewhere: empty.
  virtual std::vector<std::string> gather_bytes(const std::string& mine, int root) = 0;
  virtual void broadcast_host(void* buf, size_t bytes, int root) = 0;
  virtual void barrier() = 0;

  // ---- data-path collectives --------------------------------------------------------------------
  // recv (count) = [recv +] send_0[shard] + send_1[shard] + ... + send_{N-1}[shard], where shard is
  // this rank's range [rank·count, (rank+1)·count) of each rank's send (count · N). single, mpi:
  // added left to right in exactly this order (accumulate: starting from recv); nccl: ring order,
  // and accumulate is not supported. recv must not overlap send.
  virtual void reduce_scatter(const void* send, void* recv, size_t count, CommDType dtype,
                              bool accumulate) = 0;
  // recv (count · N) = the ranks' send (count) in rank order; send may be recv + rank · count.
  virtual void all_gather(const void* send, void* recv, size_t count, CommDType dtype) = 0;

  // Ends every rank of the job with a non-zero status after printing message on this rank's
  // stderr. Never returns.
  [[noreturn]] virtual void abort(const std::string& message) = 0;

  const CommStats& stats() const { return stats_; }

 protected:
  CommStats stats_;
};

// Settings of make_communicator (the --dist, --dist-init and --dist-timeout flags).
struct CommOptions {
  std::string kind = "auto";  // auto, single, mpi, nccl
  std::string init;           // nccl without mpirun: file:PATH or tcp:HOST:PORT
  double timeout_s = 600.0;   // longest wait in one collective before the job is ended
  bool use_gpu = false;       // the backend is CUDA (auto picks nccl when there are several ranks)
};

// auto: single for a world of one; otherwise nccl when use_gpu and the build has NCCL, else mpi.
// Throws std::invalid_argument for an unknown kind, or a kind this build lacks (naming the CMake
// option), std::runtime_error when start-up fails (naming the launcher and the rank).
std::unique_ptr<Communicator> make_communicator(const CommOptions& options);

bool mpi_built();   // GPT_MPI
bool nccl_built();  // GPT_NCCL

// ---- the NCCL unique id without MPI ------------------------------------------------------------
// Rank 0 publishes `bytes` bytes, every other rank receives them: "file:PATH" (rank 0 writes PATH
// atomically, the others wait for it; a stale file of an earlier job is removed by rank 0 first and
// refused by the others when older than the job) or "tcp:HOST:PORT" (rank 0 listens, the others
// connect). Waits at most timeout_s. Throws std::runtime_error naming the spec on failure.
void exchange_bootstrap_bytes(const std::string& spec, int rank, int world_size, void* data,
                              size_t bytes, double timeout_s);

// Test and internal helpers: a single-rank communicator, and the MPI one (throws without GPT_MPI).
std::unique_ptr<Communicator> make_single_communicator();
std::unique_ptr<Communicator> make_mpi_communicator(double timeout_s);
std::unique_ptr<Communicator> make_nccl_communicator(const RankInfo& ranks, const std::string& init,
                                                     double timeout_s, Communicator* bootstrap);

// The communicator the app's error path aborts through (set by the run set-up; null: none).
void set_abort_communicator(Communicator* comm);
Communicator* abort_communicator();

}  // namespace gpt
