// The one status check for CUDA runtime and cuBLAS/cuBLASLt calls, usable from host C++ (tests,
// benchmarks) and from CUDA sources alike:
//
//   GPT_CUDA_CHECK(cudaMalloc(&p, n));
//
// A failure throws gpt::cuda::CudaError whose message carries the library's error string, the
// statement text, the file and the line. Where throwing is not allowed (destructors, release
// paths), GPT_CUDA_WARN(stmt) prints the same message to stderr instead. A new library (NCCL) adds
// an overload of status_failed and status_string.
#pragma once

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <stdexcept>
#include <string>

namespace gpt::cuda {

class CudaError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

inline bool status_failed(cudaError_t s) {
  return s != cudaSuccess;
}
inline const char* status_string(cudaError_t s) {
  return cudaGetErrorString(s);
}
inline bool status_failed(cublasStatus_t s) {
  return s != CUBLAS_STATUS_SUCCESS;
}
inline const char* status_string(cublasStatus_t s) {
  return cublasGetStatusString(s);
}

template <typename Status>
inline void check_status(Status s, const char* stmt, const char* file, int line) {
  if (status_failed(s)) {
    throw CudaError(std::string(status_string(s)) + " in `" + stmt + "` at " + file + ":" +
                    std::to_string(line));
  }
}

template <typename Status>
inline void warn_status(Status s, const char* stmt, const char* file, int line) noexcept {
  if (status_failed(s)) {
    std::fprintf(stderr, "CUDA warning: %s in `%s` at %s:%d\n", status_string(s), stmt, file, line);
  }
}

}  // namespace gpt::cuda

#define GPT_CUDA_WARN(stmt) ::gpt::cuda::warn_status((stmt), #stmt, __FILE__, __LINE__)
#define GPT_CUDA_CHECK(stmt) ::gpt::cuda::check_status((stmt), #stmt, __FILE__, __LINE__)
// After a kernel launch: reports a bad launch configuration at the launch site (asynchronous
// faults surface at the next synchronising call, which is checked too).
#define GPT_CUDA_CHECK_LAUNCH() GPT_CUDA_CHECK(cudaGetLastError())
