// The MPI communicator (GPT_MPI): host buffers, sums in rank order.
//
// MPI's own reductions (MPI_Allreduce, MPI_Reduce_scatter) add in an order the library chooses, so
// the same data can give different bits at different world sizes. Here every floating-point sum is
// an exchange of the operands (MPI_Alltoall, MPI_Allgather) followed by a left fold in rank order
// on the rank that owns the result: the bits depend only on the operands, never on the world size
// or on timing. Integer sums and maxima use MPI_Allreduce (exact in any order). The C API only
// (OpenMPI and MPICH would otherwise pull in their deprecated C++ bindings).
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "engine/communicator.h"
#include "engine/communicator_internal.h"
#include "engine/progress.h"

namespace gpt {

namespace {

void check_mpi(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  throw std::runtime_error(std::string(what) + " failed: " + std::string(text, len));
}

MPI_Datatype mpi_type(CommDType t) {
  switch (t) {
    case CommDType::f32:
      return MPI_FLOAT;
    case CommDType::f64:
      return MPI_DOUBLE;
    case CommDType::bf16:
      return MPI_UINT16_T;
    case CommDType::i64:
      return MPI_INT64_T;
  }
  return MPI_BYTE;
}

// Sends larger than INT_MAX elements go in pieces (MPI counts are int).
constexpr size_t kMaxCount = size_t{1} << 30;

class MpiCommunicator : public Communicator {
 public:
  explicit MpiCommunicator(double timeout_s) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
      int provided = 0;
      check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init");
    }
    // Errors come back as return codes (check_mpi throws), so a failure is reported by the app.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &world_);
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local);
    MPI_Comm_rank(local, &local_rank_);
    MPI_Comm_free(&local);
    const RankInfo env = discover_ranks();
    if (env.world_size > 1 && (env.world_size != world_ || env.rank != rank_))
      throw std::runtime_error("MPI says rank " + std::to_string(rank_) + " of " +
                               std::to_string(world_) + ", the launcher (" + env.launcher +
                               ") says rank " + std::to_string(env.rank) + " of " +
                               std::to_string(env.world_size) +
                               ": with srun, pass --mpi=pmix (see docs/distributed.md)");
    watchdog_ = std::make_unique<CollectiveWatchdog>(rank_, timeout_s);
  }
  ~MpiCommunicator() override {
    watchdog_.reset();
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }

  std::string kind() const override { return "mpi"; }
  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  int local_rank() const override { return local_rank_; }

  void all_reduce_sum(double* x, size_t n) override {
    if (n == 0) return;
    std::vector<double> all(n * static_cast<size_t>(world_));
    all_gather_host(x, all.data(), n * sizeof(double));
    fold_in_rank_order(all.data(), n, world_, x, n, CommDType::f64, false);
  }
  void all_reduce_sum(int64_t* x, size_t n) override { integer_all_reduce(x, n, MPI_SUM); }
  void all_reduce_max(int64_t* x, size_t n) override { integer_all_reduce(x, n, MPI_MAX); }

  void all_gather_host(const void* send, void* recv, size_t bytes) override {
    WatchedCollective w(*watchdog_, nullptr, "all_gather_host", 0);
    all_gather_impl(send, recv, bytes, MPI_BYTE, 1);
  }

  std::vector<std::string> gather_bytes(const std::string& mine, int root) override {
    WatchedCollective w(*watchdog_, nullptr, "gather_bytes", 0);
    const long long n = static_cast<long long>(mine.size());
    std::vector<long long> sizes(static_cast<size_t>(world_));
    check_mpi(
        MPI_Gather(&n, 1, MPI_LONG_LONG, sizes.data(), 1, MPI_LONG_LONG, root, MPI_COMM_WORLD),
        "MPI_Gather");
    std::vector<std::string> out;
    // Point to point in pieces: shards can exceed MPI's int counts.
    if (rank_ == root) {
      out.resize(static_cast<size_t>(world_));
      for (int r = 0; r < world_; ++r) {
        std::string& s = out[static_cast<size_t>(r)];
        if (r == root) {
          s = mine;
          continue;
        }
        s.resize(static_cast<size_t>(sizes[static_cast<size_t>(r)]));
        for (size_t off = 0; off < s.size(); off += kMaxCount) {
          const int k = static_cast<int>(std::min(kMaxCount, s.size() - off));
          check_mpi(MPI_Recv(&s[off], k, MPI_BYTE, r, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE),
                    "MPI_Recv");
        }
      }
    } else {
      for (size_t off = 0; off < mine.size(); off += kMaxCount) {
        const int k = static_cast<int>(std::min(kMaxCount, mine.size() - off));
        check_mpi(MPI_Send(mine.data() + off, k, MPI_BYTE, root, 7, MPI_COMM_WORLD), "MPI_Send");
      }
    }
    return out;
  }

  void broadcast_host(void* buf, size_t bytes, int root) override {
    WatchedCollective w(*watchdog_, nullptr, "broadcast", 0);
    char* p = static_cast<char*>(buf);
    for (size_t off = 0; off < bytes; off += kMaxCount) {
      const int k = static_cast<int>(std::min(kMaxCount, bytes - off));
      check_mpi(MPI_Bcast(p + off, k, MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast");
    }
  }

  void barrier() override {
    WatchedCollective w(*watchdog_, nullptr, "barrier", 0);
    check_mpi(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
  }

  void reduce_scatter(const void* send, void* recv, size_t count, CommDType dtype,
                      bool accumulate) override {
    if (count == 0) return;
    const size_t es = comm_dtype_size(dtype);
    WatchedCollective w(*watchdog_, &stats_, "reduce_scatter",
                        static_cast<double>(count * es) * (world_ - 1));
    // Rank r receives every rank's shard r, then adds them in rank order.
    scratch_.resize(count * es * static_cast<size_t>(world_));
    for (size_t off = 0; off < count; off += kMaxCount) {
      const size_t k = std::min(kMaxCount, count - off);
      // Pieces of each rank's shard: a strided type would do it in one call; counts this large
      // are rare, so a loop over pieces keeps the code plain.
      if (k == count) {
        check_mpi(MPI_Alltoall(send, static_cast<int>(count), mpi_type(dtype), scratch_.data(),
                               static_cast<int>(count), mpi_type(dtype), MPI_COMM_WORLD),
                  "MPI_Alltoall");
      } else {
        std::vector<char> piece_send(k * es * static_cast<size_t>(world_)),
            piece_recv(piece_send.size());
        for (int r = 0; r < world_; ++r)
          std::memcpy(piece_send.data() + static_cast<size_t>(r) * k * es,
                      static_cast<const char*>(send) + (static_cast<size_t>(r) * count + off) * es,
                      k * es);
        check_mpi(
            MPI_Alltoall(piece_send.data(), static_cast<int>(k), mpi_type(dtype), piece_recv.data(),
                         static_cast<int>(k), mpi_type(dtype), MPI_COMM_WORLD),
            "MPI_Alltoall");
        for (int r = 0; r < world_; ++r)
          std::memcpy(scratch_.data() + (static_cast<size_t>(r) * count + off) * es,
                      piece_recv.data() + static_cast<size_t>(r) * k * es, k * es);
      }
    }
    fold_in_rank_order(scratch_.data(), count, world_, recv, count, dtype, accumulate);
  }

  void all_gather(const void* send, void* recv, size_t count, CommDType dtype) override {
    if (count == 0) return;
    const size_t es = comm_dtype_size(dtype);
    WatchedCollective w(*watchdog_, &stats_, "all_gather",
                        static_cast<double>(count * es) * (world_ - 1));
    all_gather_impl(send, recv, count, mpi_type(dtype), es);
  }

  [[noreturn]] void abort(const std::string& message) override {
    write_stderr_final(message + "\n");  // ends a progress line first
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    std::_Exit(1);
  }

 private:
  void integer_all_reduce(int64_t* x, size_t n, MPI_Op op) {
    if (n == 0) return;
    WatchedCollective w(*watchdog_, nullptr, "all_reduce", 0);
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, x, static_cast<int>(n), MPI_INT64_T, op, MPI_COMM_WORLD),
              "MPI_Allreduce");
  }

  void all_gather_impl(const void* send, void* recv, size_t count, MPI_Datatype type, size_t es) {
    const char* s = static_cast<const char*>(send);
    char* r = static_cast<char*>(recv);
    const bool in_place = s == r + static_cast<size_t>(rank_) * count * es;
    if (count <= kMaxCount) {
      check_mpi(MPI_Allgather(in_place ? MPI_IN_PLACE : send, static_cast<int>(count), type, recv,
                              static_cast<int>(count), type, MPI_COMM_WORLD),
                "MPI_Allgather");
      return;
    }
    // Large: every rank broadcasts its part in pieces.
    if (!in_place) std::memcpy(r + static_cast<size_t>(rank_) * count * es, s, count * es);
    for (int root = 0; root < world_; ++root) {
      char* part = r + static_cast<size_t>(root) * count * es;
      for (size_t off = 0; off < count; off += kMaxCount) {
        const int k = static_cast<int>(std::min(kMaxCount, count - off));
        check_mpi(MPI_Bcast(part + off * es, k, type, root, MPI_COMM_WORLD), "MPI_Bcast");
      }
    }
  }

  int rank_ = 0, world_ = 1, local_rank_ = 0;
  std::vector<char> scratch_;
  std::unique_ptr<CollectiveWatchdog> watchdog_;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(double timeout_s) {
  return std::make_unique<MpiCommunicator>(timeout_s);
}

}  // namespace gpt
