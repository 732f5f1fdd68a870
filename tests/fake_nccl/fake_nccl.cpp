// The fake libnccl (see fake_nccl.h): the NCCL entry points engine/communicator_nccl.cpp calls,
// for a world of one rank on the emulated device, answering ncclInProgress the way a non-blocking
// communicator does.
#include "tests/fake_nccl/fake_nccl.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

// The communicator handle nccl.h declares as `struct ncclComm*`.
struct ncclComm {
  int nranks = 1;
  int rank = 0;
  bool blocking = true;
  // While a call is in progress: what finishes it when the state turns to ncclSuccess, and how
  // many more times ncclCommGetAsyncError answers ncclInProgress before that.
  std::function<ncclResult_t()> pending;
  int polls_left = 0;
  ncclResult_t async_error = ncclSuccess;
};

namespace {

std::mutex g_mutex;
std::vector<fake_nccl::Call> g_calls;
int g_in_progress_answers = 0;
int g_polls = -1;  // -1: not read from the environment yet
std::string g_last_error;

int polls_setting() {
  if (g_polls < 0) {
    g_polls = 3;
    if (const char* v = std::getenv("GPT_FAKE_NCCL_IN_PROGRESS")) {
      char* end = nullptr;
      const long n = std::strtol(v, &end, 10);
      if (*v != '\0' && *end == '\0' && n >= 0 && n <= 1000000) g_polls = static_cast<int>(n);
    }
  }
  return g_polls;
}

void log_line(const std::string& line) {
  const char* path = std::getenv("GPT_FAKE_NCCL_LOG");
  if (path == nullptr || *path == '\0') return;
  if (FILE* f = std::fopen(path, "a")) {
    std::fprintf(f, "%s\n", line.c_str());
    std::fclose(f);
  }
}

ncclResult_t refuse(ncclResult_t rc, const std::string& message) {
  g_last_error = "fake nccl: " + message;
  std::fprintf(stderr, "%s\n", g_last_error.c_str());
  log_line("error " + message);
  return rc;
}

size_t type_size(ncclDataType_t t) {
  switch (t) {
    case ncclInt8:
    case ncclUint8:
    case ncclFloat8e4m3:
    case ncclFloat8e5m2:
      return 1;
    case ncclFloat16:
    case ncclBfloat16:
      return 2;
    case ncclInt32:
    case ncclUint32:
    case ncclFloat32:
      return 4;
    case ncclInt64:
    case ncclUint64:
    case ncclFloat64:
      return 8;
    default:
      return 0;
  }
}

// Over one rank every reduction is a copy.
bool known_op(ncclRedOp_t op) {
  return op == ncclSum || op == ncclProd || op == ncclMax || op == ncclMin || op == ncclAvg;
}

std::string stream_name(cudaStream_t s) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%p", static_cast<void*>(s));
  return buf;
}

// Starts a call that finishes in the background: ncclInProgress now, `finish` when the polls are
// done. A blocking communicator (or in_progress 0) finishes it at once.
ncclResult_t start(ncclComm* comm, const std::string& what, std::function<ncclResult_t()> finish) {
  const int polls = polls_setting();
  if (comm->blocking || polls == 0) return finish();
  comm->polls_left = polls;
  comm->pending = std::move(finish);
  ++g_in_progress_answers;
  log_line(what + " answered ncclInProgress");
  return ncclInProgress;
}

ncclResult_t usable(ncclComm* comm, const char* what) {
  if (comm == nullptr)
    return refuse(ncclInvalidArgument, std::string(what) + ": null communicator");
  if (comm->pending)
    return refuse(ncclInvalidUsage,
                  std::string(what) +
                      " called while the communicator is in progress (poll "
                      "ncclCommGetAsyncError until it stops answering ncclInProgress first)");
  if (comm->async_error != ncclSuccess)
    return refuse(ncclInvalidUsage, std::string(what) + " called on a failed communicator");
  return ncclSuccess;
}

// One collective over a world of one rank: `bytes` from send to recv once the call has finished.
ncclResult_t collective(const char* op, const void* send, void* recv, size_t count,
                        ncclDataType_t type, ncclComm* comm, cudaStream_t stream) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (const ncclResult_t rc = usable(comm, op); rc != ncclSuccess) return rc;
  const size_t es = type_size(type);
  if (es == 0) return refuse(ncclInvalidArgument, std::string(op) + ": unknown data type");
  const size_t bytes = count * es;
  fake_nccl::Call call{op, stream, count, type, false};
  auto finish = [op = std::string(op), send, recv, bytes]() {
    if (bytes > 0 && send != recv &&
        cudaMemcpy(recv, send, bytes, cudaMemcpyDeviceToDevice) != cudaSuccess) {
      cudaGetLastError();
      return refuse(ncclUnhandledCudaError, op + ": send or recv is not a device buffer of " +
                                                std::to_string(bytes) + " bytes");
    }
    return ncclSuccess;
  };
  const ncclResult_t rc = start(comm, op, finish);
  call.answered_in_progress = rc == ncclInProgress;
  g_calls.push_back(call);
  log_line(std::string(op) + " stream=" + stream_name(stream) + " count=" + std::to_string(count) +
           " -> " + ncclGetErrorString(rc));
  return rc;
}

}  // namespace

// ---- the test hooks of fake_nccl.h
// ---------------------------------------------------------------

namespace fake_nccl {

std::vector<Call> calls() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return g_calls;
}

int in_progress_answers() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return g_in_progress_answers;
}

void reset() {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_calls.clear();
  g_in_progress_answers = 0;
}

void set_in_progress(int polls) {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_polls = polls < 0 ? 0 : polls;
}

}  // namespace fake_nccl

// ---- NCCL's API
// ----------------------------------------------------------------------------------

const char* ncclGetErrorString(ncclResult_t result) {
  switch (result) {
    case ncclSuccess:
      return "no error";
    case ncclUnhandledCudaError:
      return "unhandled cuda error (run with NCCL_DEBUG=INFO for details)";
    case ncclSystemError:
      return "unhandled system error (run with NCCL_DEBUG=INFO for details)";
    case ncclInternalError:
      return "internal error - please report this issue to the NCCL developers";
    case ncclInvalidArgument:
      return "invalid argument (run with NCCL_DEBUG=WARN for details)";
    case ncclInvalidUsage:
      return "invalid usage (run with NCCL_DEBUG=WARN for details)";
    case ncclRemoteError:
      return "remote process exited or there was a network error";
    case ncclInProgress:
      return "NCCL operation in progress";
    default:
      return "unknown result code";
  }
}

const char* ncclGetLastError(ncclComm_t) {
  return g_last_error.c_str();
}

ncclResult_t ncclGetVersion(int* version) {
  if (version == nullptr) return ncclInvalidArgument;
  *version = NCCL_VERSION_CODE;
  return ncclSuccess;
}

ncclResult_t ncclGetUniqueId(ncclUniqueId* id) {
  if (id == nullptr) return ncclInvalidArgument;
  std::memset(id->internal, 0, sizeof(id->internal));
  std::snprintf(id->internal, sizeof(id->internal), "fake-nccl-unique-id");
  return ncclSuccess;
}

ncclResult_t ncclCommInitRankConfig(ncclComm_t* comm, int nranks, ncclUniqueId, int rank,
                                    ncclConfig_t* config) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (comm == nullptr) return refuse(ncclInvalidArgument, "ncclCommInitRankConfig: null comm");
  if (nranks != 1 || rank != 0)
    return refuse(ncclInvalidArgument,
                  "ncclCommInitRankConfig: the fake has a world of one rank, "
                  "asked for rank " +
                      std::to_string(rank) + " of " + std::to_string(nranks));
  if (config != nullptr && config->magic != 0xcafebeef)
    return refuse(ncclInvalidArgument,
                  "ncclCommInitRankConfig: config not initialised with "
                  "NCCL_CONFIG_INITIALIZER");
  auto* c = new ncclComm;
  c->blocking = config == nullptr || config->blocking != 0;  // unset (INT_MIN) is blocking too
  *comm = c;  // NCCL hands out the handle at once, also while the init is in progress
  log_line(std::string("ncclCommInitRankConfig blocking=") + (c->blocking ? "1" : "0"));
  return start(c, "ncclCommInitRankConfig", [] { return ncclSuccess; });
}

ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank) {
  return ncclCommInitRankConfig(comm, nranks, id, rank, nullptr);
}

ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t* state) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (comm == nullptr || state == nullptr)
    return refuse(ncclInvalidArgument, "ncclCommGetAsyncError: null argument");
  if (comm->pending && comm->polls_left > 0) {
    --comm->polls_left;
    ++g_in_progress_answers;
    log_line("ncclCommGetAsyncError answered ncclInProgress");
    *state = ncclInProgress;
    return ncclSuccess;
  }
  if (comm->pending) {
    const ncclResult_t rc = comm->pending();
    comm->pending = nullptr;
    if (rc != ncclSuccess) comm->async_error = rc;
  }
  *state = comm->async_error;
  return ncclSuccess;
}

ncclResult_t ncclCommCount(const ncclComm_t comm, int* count) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (const ncclResult_t rc = usable(comm, "ncclCommCount"); rc != ncclSuccess) return rc;
  *count = comm->nranks;
  return ncclSuccess;
}

ncclResult_t ncclCommFinalize(ncclComm_t comm) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (const ncclResult_t rc = usable(comm, "ncclCommFinalize"); rc != ncclSuccess) return rc;
  log_line("ncclCommFinalize");
  return start(comm, "ncclCommFinalize", [] { return ncclSuccess; });
}

ncclResult_t ncclCommDestroy(ncclComm_t comm) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (comm == nullptr) return ncclSuccess;
  if (comm->pending)
    return refuse(ncclInvalidUsage, "ncclCommDestroy called while the communicator is in progress");
  log_line("ncclCommDestroy");
  delete comm;
  return ncclSuccess;
}

ncclResult_t ncclCommAbort(ncclComm_t comm) {
  std::lock_guard<std::mutex> lock(g_mutex);
  log_line("ncclCommAbort");
  delete comm;
  return ncclSuccess;
}

ncclResult_t ncclAllReduce(const void* sendbuff, void* recvbuff, size_t count,
                           ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm,
                           cudaStream_t stream) {
  if (!known_op(op)) return refuse(ncclInvalidArgument, "ncclAllReduce: unknown reduction");
  return collective("all_reduce", sendbuff, recvbuff, count, datatype, comm, stream);
}

ncclResult_t ncclBroadcast(const void* sendbuff, void* recvbuff, size_t count,
                           ncclDataType_t datatype, int root, ncclComm_t comm,
                           cudaStream_t stream) {
  if (root != 0) return refuse(ncclInvalidArgument, "ncclBroadcast: root out of range");
  return collective("broadcast", sendbuff, recvbuff, count, datatype, comm, stream);
}

ncclResult_t ncclReduceScatter(const void* sendbuff, void* recvbuff, size_t recvcount,
                               ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm,
                               cudaStream_t stream) {
  if (!known_op(op)) return refuse(ncclInvalidArgument, "ncclReduceScatter: unknown reduction");
  return collective("reduce_scatter", sendbuff, recvbuff, recvcount, datatype, comm, stream);
}

ncclResult_t ncclAllGather(const void* sendbuff, void* recvbuff, size_t sendcount,
                           ncclDataType_t datatype, ncclComm_t comm, cudaStream_t stream) {
  return collective("all_gather", sendbuff, recvbuff, sendcount, datatype, comm, stream);
}
