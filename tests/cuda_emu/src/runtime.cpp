// The CUDA runtime calls of cuda_runtime.h on the host (one emulated sm_90 device).
//
// Device memory is host memory, filled with 0xFF bytes when allocated (NaN in fp32 and bf16, so a
// kernel that reads what nobody wrote produces NaN), 256-byte aligned as cudaMalloc's, and
// registered so that kernels' vector accesses can be checked against the allocation they fall in.
// Work submitted to a stream runs at once, in order; events record host time.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <shared_mutex>

#include "internal.h"

struct CUstream_st {
  unsigned flags = 0;
};
struct CUevent_st {
  std::chrono::steady_clock::time_point when{};
  bool recorded = false;
};

namespace cuda_emu {
namespace {

constexpr size_t kTotalMemory = size_t{80} << 30;  // what cudaMemGetInfo reports
constexpr int kDefaultSharedLimit = 48 * 1024;
constexpr int kSharedOptInLimit = 227 * 1024;

struct Allocation {
  size_t size;
  bool pinned;  // cudaMallocHost: host memory the device can read
};
std::shared_mutex g_alloc_mutex;
std::map<uintptr_t, Allocation> g_allocations;  // by start address
size_t g_allocated = 0;

std::mutex g_state_mutex;
std::map<const void*, int> g_shared_optin;  // kernel -> opt-in bytes
thread_local cudaError_t tl_last_error = cudaSuccess;
int g_device = 0;

void* allocate(size_t bytes, bool pinned) {
  const size_t size = bytes == 0 ? 1 : bytes;
  void* p = std::aligned_alloc(256, (size + 255) / 256 * 256);
  if (p == nullptr) return nullptr;
  std::memset(p, 0xFF, size);
  std::unique_lock<std::shared_mutex> lock(g_alloc_mutex);
  g_allocations[reinterpret_cast<uintptr_t>(p)] = Allocation{bytes, pinned};
  g_allocated += bytes;
  return p;
}

cudaError_t release(void* p, bool pinned) {
  if (p == nullptr) return cudaSuccess;
  std::unique_lock<std::shared_mutex> lock(g_alloc_mutex);
  auto it = g_allocations.find(reinterpret_cast<uintptr_t>(p));
  if (it == g_allocations.end() || it->second.pinned != pinned) return cudaErrorInvalidValue;
  g_allocated -= it->second.size;
  g_allocations.erase(it);
  lock.unlock();
  std::free(p);
  return cudaSuccess;
}

cudaError_t record(cudaError_t e) {
  if (e != cudaSuccess) tl_last_error = e;
  return e;
}

}  // namespace

bool find_allocation(const void* p, Region* region) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  std::shared_lock<std::shared_mutex> lock(g_alloc_mutex);
  auto it = g_allocations.upper_bound(a);
  if (it == g_allocations.begin()) return false;
  --it;
  // A zero-byte allocation owns no bytes.
  if (a >= it->first + it->second.size) return false;
  region->begin = it->first;
  region->end = it->first + it->second.size;
  return true;
}

LaunchMemory::LaunchMemory(const KernelPointers& reach) {
  std::shared_lock<std::shared_mutex> lock(g_alloc_mutex);
  std::map<uintptr_t, size_t> reached;
  for (int i = 0; i < reach.n; ++i) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(reach.p[i]);
    auto it = g_allocations.upper_bound(a);
    if (it == g_allocations.begin()) continue;
    --it;
    if (a < it->first + std::max<size_t>(it->second.size, 1)) reached[it->first] = it->second.size;
  }
  for (const auto& [begin, size] : reached) {
    const unsigned char* p = reinterpret_cast<const unsigned char*>(begin);
    Saved s;
    s.region = Region{begin, begin + size};
    s.before.assign(p, p + size);
    saved_.push_back(std::move(s));
  }
}

void LaunchMemory::record_first_result() {
  for (Saved& s : saved_) {
    const unsigned char* p = reinterpret_cast<const unsigned char*>(s.region.begin);
    s.changed = std::memcmp(p, s.before.data(), s.before.size()) != 0;
    if (s.changed) s.after.assign(p, p + s.before.size());
  }
}

void LaunchMemory::restore() {
  for (const Saved& s : saved_) {
    if (s.changed)
      std::memcpy(reinterpret_cast<void*>(s.region.begin), s.before.data(), s.before.size());
  }
}

std::string LaunchMemory::compare() const {
  for (size_t i = 0; i < saved_.size(); ++i) {
    const Saved& s = saved_[i];
    const unsigned char* p = reinterpret_cast<const unsigned char*>(s.region.begin);
    const std::vector<unsigned char>& expected = s.changed ? s.after : s.before;
    if (std::memcmp(p, expected.data(), expected.size()) == 0) continue;
    size_t k = 0;
    while (p[k] == expected[k]) ++k;
    return "device allocation " + std::to_string(i) + " (" + std::to_string(expected.size()) +
           " bytes) first differs at byte " + std::to_string(k);
  }
  return "";
}

int max_dynamic_shared(const void* kernel) {
  std::lock_guard<std::mutex> lock(g_state_mutex);
  auto it = g_shared_optin.find(kernel);
  return it == g_shared_optin.end() ? kDefaultSharedLimit : it->second;
}

void set_launch_error(cudaError_t e) {
  tl_last_error = e;
}

}  // namespace cuda_emu

using cuda_emu::record;

const char* cudaGetErrorName(cudaError_t error) {
  switch (error) {
    case cudaSuccess:
      return "cudaSuccess";
    case cudaErrorInvalidValue:
      return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation:
      return "cudaErrorMemoryAllocation";
    case cudaErrorInitializationError:
      return "cudaErrorInitializationError";
    case cudaErrorInvalidConfiguration:
      return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice:
      return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle:
      return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady:
      return "cudaErrorNotReady";
    case cudaErrorLaunchFailure:
      return "cudaErrorLaunchFailure";
    case cudaErrorNoDevice:
      return "cudaErrorNoDevice";
    case cudaErrorNotSupported:
      return "cudaErrorNotSupported";
    case cudaErrorUnknown:
      return "cudaErrorUnknown";
  }
  return "cudaErrorUnknown";
}
const char* cudaGetErrorString(cudaError_t error) {
  switch (error) {
    case cudaSuccess:
      return "no error";
    case cudaErrorInvalidValue:
      return "invalid argument";
    case cudaErrorMemoryAllocation:
      return "out of memory";
    case cudaErrorInvalidConfiguration:
      return "invalid configuration argument";
    case cudaErrorInvalidDevice:
      return "invalid device ordinal";
    case cudaErrorNotReady:
      return "device not ready";
    default:
      return cudaGetErrorName(error);
  }
}
cudaError_t cudaGetLastError() {
  const cudaError_t e = cuda_emu::tl_last_error;
  cuda_emu::tl_last_error = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() {
  return cuda_emu::tl_last_error;
}

cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) {
  if (device != 0) return record(cudaErrorInvalidDevice);
  cuda_emu::g_device = device;
  return cudaSuccess;
}
cudaError_t cudaGetDevice(int* device) {
  *device = cuda_emu::g_device;
  return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (device != 0) return record(cudaErrorInvalidDevice);
  *prop = cudaDeviceProp{};
  std::snprintf(prop->name, sizeof(prop->name), "CUDA emulator (sm_90 on the CPU)");
  prop->totalGlobalMem = cuda_emu::kTotalMemory;
  prop->sharedMemPerBlock = cuda_emu::kDefaultSharedLimit;
  prop->regsPerBlock = 65536;
  prop->warpSize = 32;
  prop->maxThreadsPerBlock = 1024;
  prop->maxThreadsDim[0] = 1024;
  prop->maxThreadsDim[1] = 1024;
  prop->maxThreadsDim[2] = 64;
  prop->maxGridSize[0] = 0x7fffffff;
  prop->maxGridSize[1] = 65535;
  prop->maxGridSize[2] = 65535;
  prop->totalConstMem = 65536;
  prop->major = 9;
  prop->minor = 0;
  prop->multiProcessorCount = 132;
  prop->l2CacheSize = 50 * 1024 * 1024;
  prop->maxThreadsPerMultiProcessor = 2048;
  prop->sharedMemPerMultiprocessor = 228 * 1024;
  prop->sharedMemPerBlockOptin = cuda_emu::kSharedOptInLimit;
  prop->memoryBusWidth = 5120;
  return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (device != 0) return record(cudaErrorInvalidDevice);
  switch (attr) {
    case cudaDevAttrMaxThreadsPerBlock:
      *value = 1024;
      break;
    case cudaDevAttrMaxSharedMemoryPerBlock:
      *value = cuda_emu::kDefaultSharedLimit;
      break;
    case cudaDevAttrClockRate:
      *value = 1980000;
      break;  // kHz (an H100 SXM's boost clock)
    case cudaDevAttrMultiProcessorCount:
      *value = 132;
      break;
    case cudaDevAttrMemoryClockRate:
      *value = 2619000;
      break;  // kHz
    case cudaDevAttrGlobalMemoryBusWidth:
      *value = 5120;
      break;
    case cudaDevAttrL2CacheSize:
      *value = 50 * 1024 * 1024;
      break;
    case cudaDevAttrComputeCapabilityMajor:
      *value = 9;
      break;
    case cudaDevAttrComputeCapabilityMinor:
      *value = 0;
      break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin:
      *value = cuda_emu::kSharedOptInLimit;
      break;
    default:
      return record(cudaErrorInvalidValue);
  }
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize() {
  return cudaSuccess;
}
cudaError_t cudaDeviceReset() {
  return cudaSuccess;
}
cudaError_t cudaRuntimeGetVersion(int* version) {
  *version = CUDART_VERSION;
  return cudaSuccess;
}
cudaError_t cudaDriverGetVersion(int* version) {
  *version = CUDART_VERSION;
  return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t* free, size_t* total) {
  std::shared_lock<std::shared_mutex> lock(cuda_emu::g_alloc_mutex);
  *total = cuda_emu::kTotalMemory;
  *free = cuda_emu::kTotalMemory - std::min(cuda_emu::g_allocated, cuda_emu::kTotalMemory);
  return cudaSuccess;
}

cudaError_t cudaMalloc(void** ptr, size_t bytes) {
  *ptr = nullptr;
  size_t free = 0, total = 0;
  cudaMemGetInfo(&free, &total);
  if (bytes > free) return record(cudaErrorMemoryAllocation);
  *ptr = cuda_emu::allocate(bytes, false);
  return *ptr != nullptr ? cudaSuccess : record(cudaErrorMemoryAllocation);
}
cudaError_t cudaFree(void* ptr) {
  return record(cuda_emu::release(ptr, false));
}
cudaError_t cudaMallocHost(void** ptr, size_t bytes) {
  *ptr = cuda_emu::allocate(bytes, true);
  return *ptr != nullptr ? cudaSuccess : record(cudaErrorMemoryAllocation);
}
cudaError_t cudaHostAlloc(void** ptr, size_t bytes, unsigned flags) {
  (void)flags;
  return cudaMallocHost(ptr, bytes);
}
cudaError_t cudaFreeHost(void* ptr) {
  return record(cuda_emu::release(ptr, true));
}

namespace {
// A device-side range of a copy must lie inside one allocation (host ranges are not checked).
cudaError_t check_device_range(const void* p, size_t bytes) {
  if (bytes == 0) return cudaSuccess;
  cuda_emu::Region r;
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  if (!cuda_emu::find_allocation(p, &r) || a + bytes > r.end) return cudaErrorInvalidValue;
  return cudaSuccess;
}
}  // namespace

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  const bool dst_device = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool src_device = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  if (dst_device && check_device_range(dst, bytes) != cudaSuccess) {
    return record(cudaErrorInvalidValue);
  }
  if (src_device && check_device_range(src, bytes) != cudaSuccess) {
    return record(cudaErrorInvalidValue);
  }
  if (bytes > 0) std::memmove(dst, src, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream) {
  (void)stream;
  return cudaMemcpy(dst, src, bytes, kind);
}
cudaError_t cudaMemset(void* ptr, int value, size_t bytes) {
  if (check_device_range(ptr, bytes) != cudaSuccess) return record(cudaErrorInvalidValue);
  if (bytes > 0) std::memset(ptr, value, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* ptr, int value, size_t bytes, cudaStream_t stream) {
  (void)stream;
  return cudaMemset(ptr, value, bytes);
}

cudaError_t cudaStreamCreate(cudaStream_t* stream) {
  return cudaStreamCreateWithFlags(stream, cudaStreamDefault);
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags) {
  *stream = new CUstream_st{flags};
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  delete stream;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t) {
  return cudaSuccess;
}
cudaError_t cudaStreamQuery(cudaStream_t) {
  return cudaSuccess;
}
cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t, unsigned) {
  return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t* event) {
  *event = new CUevent_st{};
  return cudaSuccess;
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned) {
  return cudaEventCreate(event);
}
cudaError_t cudaEventDestroy(cudaEvent_t event) {
  delete event;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t) {
  event->when = std::chrono::steady_clock::now();
  event->recorded = true;
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  return event->recorded ? cudaSuccess : record(cudaErrorInvalidResourceHandle);
}
cudaError_t cudaEventQuery(cudaEvent_t) {
  return cudaSuccess;
}
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (!start->recorded || !end->recorded) return record(cudaErrorInvalidResourceHandle);
  *ms = std::chrono::duration<float, std::milli>(end->when - start->when).count();
  return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value) {
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    if (value < 0 || value > cuda_emu::kSharedOptInLimit) return record(cudaErrorInvalidValue);
    std::lock_guard<std::mutex> lock(cuda_emu::g_state_mutex);
    cuda_emu::g_shared_optin[func] = value;
  }
  return cudaSuccess;
}
