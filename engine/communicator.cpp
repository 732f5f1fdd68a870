// Rank discovery, the single-rank communicator, the watchdog, the factory and the bootstrap of the
// NCCL unique id over a file or TCP. The MPI and NCCL communicators live in communicator_mpi.cpp
// and communicator_nccl.cpp (built with GPT_MPI / GPT_NCCL).
#include "engine/communicator.h"
#include "engine/progress.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <vector>

#include "engine/communicator_internal.h"
#include "engine/errors.h"
#include "engine/files.h"

namespace gpt {

size_t comm_dtype_size(CommDType t) {
  switch (t) {
    case CommDType::f32:
      return 4;
    case CommDType::f64:
      return 8;
    case CommDType::bf16:
      return 2;
    case CommDType::i64:
      return 8;
  }
  return 1;
}

// ---- rank discovery -----------------------------------------------------------------------------

namespace {

bool env_int(const char* name, int* out) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return false;
  char* end = nullptr;
  errno = 0;
  const long x = std::strtol(v, &end, 10);
  if (*end != '\0' || errno == ERANGE || x < 0 || x > (1 << 24))
    throw std::invalid_argument(std::string("environment variable ") + name + "='" + v +
                                "': expected a non-negative integer");
  *out = static_cast<int>(x);
  return true;
}

}  // namespace

RankInfo discover_ranks() {
  RankInfo info;
  struct Source {
    const char* launcher;
    const char* rank;
    const char* size;
    const char* local;
  };
  const Source sources[] = {
      {"openmpi", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"},
      {"slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"},
      {"env", "RANK", "WORLD_SIZE", "LOCAL_RANK"},
  };
  for (const Source& s : sources) {
    int rank = 0, size = 0;
    const bool has_rank = env_int(s.rank, &rank);
    const bool has_size = env_int(s.size, &size);
    if (!has_rank && !has_size) continue;
    // Slurm sets SLURM_PROCID in a batch script's shell too (SLURM_NTASKS may be missing there):
    // only a complete pair counts.
    if (!has_rank || !has_size) {
      if (std::string(s.launcher) == "slurm") continue;
      throw std::invalid_argument(std::string("environment: ") + (has_rank ? s.rank : s.size) +
                                  " is set but " + (has_rank ? s.size : s.rank) + " is not");
    }
    if (size < 1 || rank >= size)
      throw std::invalid_argument(std::string("environment: ") + s.rank + "=" +
                                  std::to_string(rank) + " is not below " + s.size + "=" +
                                  std::to_string(size));
    info.rank = rank;
    info.world_size = size;
    info.local_rank = rank;
    int local = 0;
    if (env_int(s.local, &local)) info.local_rank = local;
    info.launcher = s.launcher;
    return info;
  }
  return info;
}

// ---- watchdog -----------------------------------------------------------------------------------

CollectiveWatchdog::CollectiveWatchdog(int rank, double timeout_s)
    : rank_(rank), timeout_s_(timeout_s) {
  if (timeout_s_ > 0) thread_ = std::thread([this] { loop(); });
}

CollectiveWatchdog::~CollectiveWatchdog() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void CollectiveWatchdog::begin(const char* what) {
  what_.store(what);
  started_ns_.store(std::chrono::steady_clock::now().time_since_epoch().count());
}

void CollectiveWatchdog::end() {
  started_ns_.store(0);
}

void CollectiveWatchdog::loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stop_) {
    wake_.wait_for(lock, std::chrono::milliseconds(200));
    const int64_t started = started_ns_.load();
    if (started == 0) continue;
    const double waited =
        static_cast<double>(std::chrono::steady_clock::now().time_since_epoch().count() - started) *
        1e-9;
    if (waited > timeout_s_) {
      char message[512];
      std::snprintf(message, sizeof(message),
                    "rank %d: error: collective '%s' has waited %.0f s for the other ranks "
                    "(--dist-timeout %.0f s): a peer rank stopped or hangs; ending this rank\n",
                    rank_, what_.load(), waited, timeout_s_);
      write_stderr_final(message);
      std::_Exit(1);
    }
  }
}

void fold_in_rank_order(const void* parts, size_t stride, int world, void* recv, size_t count,
                        CommDType dtype, bool accumulate) {
  auto fold = [&](auto* out, const auto* in) {
    // Rank order is the outer loop for each element: out[i] = ((out[i] + p0[i]) + p1[i]) + ...
    const std::ptrdiff_t n = static_cast<std::ptrdiff_t>(count);
#pragma omp parallel for schedule(static)
    for (std::ptrdiff_t i = 0; i < n; ++i) {
      auto acc = accumulate ? out[i] + in[i] : in[i];
      for (int r = 1; r < world; ++r) acc += in[static_cast<size_t>(r) * stride + i];
      out[i] = acc;
    }
  };
  if (dtype == CommDType::f32)
    fold(static_cast<float*>(recv), static_cast<const float*>(parts));
  else if (dtype == CommDType::f64)
    fold(static_cast<double*>(recv), static_cast<const double*>(parts));
  else
    throw std::invalid_argument("reduce_scatter on host buffers supports f32 and f64 only");
}

// ---- single -------------------------------------------------------------------------------------

namespace {

class SingleCommunicator : public Communicator {
 public:
  std::string kind() const override { return "single"; }
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  int local_rank() const override { return 0; }
  void all_reduce_sum(double*, size_t) override {}
  void all_reduce_sum(int64_t*, size_t) override {}
  void all_reduce_max(int64_t*, size_t) override {}
  void all_gather_host(const void* send, void* recv, size_t bytes) override {
    if (send != recv && bytes > 0) std::memmove(recv, send, bytes);
  }
  std::vector<std::string> gather_bytes(const std::string& mine, int) override { return {mine}; }
  void broadcast_host(void*, size_t, int) override {}
  void barrier() override {}
  void reduce_scatter(const void* send, void* recv, size_t count, CommDType dtype,
                      bool accumulate) override {
    fold_in_rank_order(send, count, 1, recv, count, dtype, accumulate);
  }
  void all_gather(const void* send, void* recv, size_t count, CommDType dtype) override {
    if (send != recv && count > 0) std::memmove(recv, send, count * comm_dtype_size(dtype));
  }
  [[noreturn]] void abort(const std::string& message) override {
    write_stderr_final(message + "\n");  // ends a progress line first
    std::fflush(stderr);
    std::_Exit(1);
  }
};

Communicator* g_abort_comm = nullptr;

}  // namespace

std::unique_ptr<Communicator> make_single_communicator() {
  return std::make_unique<SingleCommunicator>();
}

void set_abort_communicator(Communicator* comm) {
  g_abort_comm = comm;
}
Communicator* abort_communicator() {
  return g_abort_comm;
}

// ---- factory ------------------------------------------------------------------------------------

bool mpi_built() {
#ifdef GPT_HAVE_MPI
  return true;
#else
  return false;
#endif
}

bool nccl_built() {
#ifdef GPT_HAVE_NCCL
  return true;
#else
  return false;
#endif
}

#ifndef GPT_HAVE_MPI
std::unique_ptr<Communicator> make_mpi_communicator(double) {
  throw std::invalid_argument(
      "--dist mpi: this build has no MPI (configure with -DGPT_MPI=ON; needs libopenmpi-dev)");
}
#endif

#ifndef GPT_HAVE_NCCL
std::unique_ptr<Communicator> make_nccl_communicator(const RankInfo&, const std::string&, double,
                                                     Communicator*) {
  throw std::invalid_argument(
      "--dist nccl: this build has no NCCL (configure with -DGPT_CUDA=ON -DGPT_NCCL=ON)");
}
#endif

std::unique_ptr<Communicator> make_communicator(const CommOptions& o) {
  const RankInfo ranks = discover_ranks();
  std::string kind = o.kind;
  if (kind != "auto" && kind != "single" && kind != "mpi" && kind != "nccl")
    throw std::invalid_argument("--dist '" + kind + "': expected auto, single, mpi or nccl");
  if (!o.init.empty() && o.init.rfind("file:", 0) != 0 && o.init.rfind("tcp:", 0) != 0)
    throw std::invalid_argument("--dist-init '" + o.init +
                                "': expected file:PATH or tcp:HOST:PORT");
  if (kind == "auto") {
    if (ranks.world_size == 1)
      kind = "single";
    else if (o.use_gpu && nccl_built())
      kind = "nccl";
    else if (mpi_built())
      kind = "mpi";
    else
      throw std::invalid_argument(
          "the launcher (" + ranks.launcher + ") started " + std::to_string(ranks.world_size) +
          " ranks, but this build has neither MPI nor NCCL (configure with -DGPT_MPI=ON)");
  }
  if (kind == "single") {
    if (ranks.world_size > 1)
      throw std::invalid_argument("--dist single, but the launcher (" + ranks.launcher +
                                  ") started " + std::to_string(ranks.world_size) +
                                  " ranks: use --dist auto, mpi or nccl");
    return make_single_communicator();
  }
  if (kind == "mpi") {
    if (!o.init.empty())
      throw std::invalid_argument("--dist-init is for nccl without mpirun; mpi needs none");
    if (o.use_gpu)
      throw std::invalid_argument(
          "--dist mpi moves host buffers; with --device cuda use --dist nccl");
    return make_mpi_communicator(o.timeout_s);
  }
  // nccl
  if (!o.use_gpu) throw std::invalid_argument("--dist nccl needs --device cuda");
  std::unique_ptr<Communicator> bootstrap;
  if (o.init.empty() && ranks.world_size > 1) {
    if (!mpi_built())
      throw std::invalid_argument(
          "--dist nccl with " + std::to_string(ranks.world_size) +
          " ranks needs the unique id exchanged: build with MPI and start with mpirun or srun "
          "--mpi=pmix, or pass --dist-init file:PATH or tcp:HOST:PORT");
    bootstrap = make_mpi_communicator(o.timeout_s);
  }
  auto comm = make_nccl_communicator(ranks, o.init, o.timeout_s, bootstrap.get());
  bootstrap.release();  // MPI stays initialised for the life of the process (finalised at exit)
  return comm;
}

// ---- bootstrap over a file or TCP ---------------------------------------------------------------

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

[[noreturn]] void bootstrap_fail(const std::string& spec, const std::string& what) {
  fail("--dist-init " + spec, what);
}

void file_exchange(const std::string& spec, const std::string& path, int rank, void* data,
                   size_t bytes, double timeout_s) {
  const double deadline = now_s() + timeout_s;
  if (rank == 0) {
    try {
      write_file_atomic(path, std::string_view(static_cast<const char*>(data), bytes));
    } catch (const std::runtime_error& e) {
      bootstrap_fail(spec, e.what());
    }
    return;
  }
  // The others wait for a file of exactly `bytes` bytes written after this job started: rank 0
  // renames a complete file into place, so a partial one is never seen.
  const std::time_t started = std::time(nullptr) - 120;
  while (true) {
    struct stat st;
    if (::stat(path.c_str(), &st) == 0 && static_cast<size_t>(st.st_size) == bytes &&
        st.st_mtime >= started) {
      std::ifstream in(path, std::ios::binary);
      in.read(static_cast<char*>(data), static_cast<std::streamsize>(bytes));
      if (in) return;
    }
    if (now_s() > deadline)
      bootstrap_fail(spec, "rank " + std::to_string(rank) + " waited " +
                               std::to_string(static_cast<int>(timeout_s)) +
                               " s for rank 0 to write " + path);
    ::usleep(50000);
  }
}

void split_host_port(const std::string& spec, const std::string& rest, std::string* host,
                     std::string* port) {
  const size_t colon = rest.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == rest.size())
    bootstrap_fail(spec, "expected tcp:HOST:PORT");
  *host = rest.substr(0, colon);
  *port = rest.substr(colon + 1);
  for (char c : *port)
    if (c < '0' || c > '9') bootstrap_fail(spec, "port '" + *port + "' is not a number");
}

bool send_all(int fd, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t k = ::send(fd, p, n, MSG_NOSIGNAL);
    if (k <= 0) {
      if (k < 0 && errno == EINTR) continue;
      return false;
    }
    p += k;
    n -= static_cast<size_t>(k);
  }
  return true;
}

bool recv_all(int fd, void* data, size_t n) {
  char* p = static_cast<char*>(data);
  while (n > 0) {
    const ssize_t k = ::recv(fd, p, n, 0);
    if (k <= 0) {
      if (k < 0 && errno == EINTR) continue;
      return false;
    }
    p += k;
    n -= static_cast<size_t>(k);
  }
  return true;
}

void tcp_exchange(const std::string& spec, const std::string& rest, int rank, int world, void* data,
                  size_t bytes, double timeout_s) {
  std::string host, port;
  split_host_port(spec, rest, &host, &port);
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  if (rank == 0) hints.ai_flags = AI_PASSIVE;
  addrinfo* res = nullptr;
  if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0 || res == nullptr)
    bootstrap_fail(spec, "cannot resolve host '" + host + "'");
  const double deadline = now_s() + timeout_s;
  const timeval tv{1, 0};
  if (rank == 0) {
    const int fd = ::socket(res->ai_family, res->ai_socktype, 0);
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd, res->ai_addr, res->ai_addrlen) != 0 || ::listen(fd, world) != 0) {
      const std::string err = std::strerror(errno);
      ::close(fd);
      ::freeaddrinfo(res);
      bootstrap_fail(spec, "rank 0 cannot listen on " + rest + ": " + err);
    }
    ::freeaddrinfo(res);
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int served = 0;
    while (served < world - 1) {
      const int c = ::accept(fd, nullptr, nullptr);
      if (c < 0) {
        if (now_s() > deadline) {
          ::close(fd);
          bootstrap_fail(spec, "rank 0 heard from " + std::to_string(served) + " of " +
                                   std::to_string(world - 1) + " ranks within " +
                                   std::to_string(static_cast<int>(timeout_s)) + " s");
        }
        continue;
      }
      const bool ok = send_all(c, data, bytes);
      ::close(c);
      if (ok) ++served;
    }
    ::close(fd);
    return;
  }
  while (true) {
    const int fd = ::socket(res->ai_family, res->ai_socktype, 0);
    if (::connect(fd, res->ai_addr, res->ai_addrlen) == 0) {
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
      const bool ok = recv_all(fd, data, bytes);
      ::close(fd);
      if (ok) {
        ::freeaddrinfo(res);
        return;
      }
    } else {
      ::close(fd);
    }
    if (now_s() > deadline) {
      ::freeaddrinfo(res);
      bootstrap_fail(spec, "rank " + std::to_string(rank) + " could not reach rank 0 at " + rest +
                               " within " + std::to_string(static_cast<int>(timeout_s)) + " s");
    }
    ::usleep(100000);
  }
}

}  // namespace

void exchange_bootstrap_bytes(const std::string& spec, int rank, int world_size, void* data,
                              size_t bytes, double timeout_s) {
  if (spec.rfind("file:", 0) == 0) {
    const std::string path = spec.substr(5);
    if (path.empty()) bootstrap_fail(spec, "expected file:PATH");
    file_exchange(spec, path, rank, data, bytes, timeout_s);
  } else if (spec.rfind("tcp:", 0) == 0) {
    tcp_exchange(spec, spec.substr(4), rank, world_size, data, bytes, timeout_s);
  } else {
    bootstrap_fail(spec, "expected file:PATH or tcp:HOST:PORT");
  }
}

}  // namespace gpt
