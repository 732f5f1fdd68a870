// The CPU emulation of CUDA's execution model (docs/testing.md): what kernel code sees.
//
// Kernel sources (kernels/*.cu, engine/cuda_backend.cu) are compiled as host C++ against the
// headers of this folder instead of the CUDA Toolkit's. tests/cuda_emu/translate.py rewrites the
// one piece of CUDA syntax C++ cannot parse, `kernel<<<grid, block, smem, stream>>>(args)`, into
// a call of cuda_emu::launch, and `extern __shared__ T name[]` into a pointer to the block's
// dynamic shared memory; everything else is the shipped source, unchanged.
//
// A launch runs every block of the grid; each block's threads are fibers (boost.context) on one
// host thread. A thread runs until it reaches a rendezvous point (a barrier, a warp shuffle, an
// ldmatrix, an mma, a spin on an acquire load) and then yields to the block's scheduler, which
// decides who runs next (the schedule). Warp collectives complete when every lane named in the
// mask has arrived at the same instruction; barriers when every thread of the block has. Lanes
// at different collectives (divergence), a barrier that part of the block never reaches, and a
// block that can make no progress (deadlock) are errors naming the kernel, block and thread.
#pragma once

#include <math.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

// ---- qualifiers ---------------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...)
#define __align__(n) alignas(n)
// Static shared memory: one object per host worker thread, and a worker runs one block at a time.
#define __shared__ static thread_local
#define __constant__ static
#ifndef __CUDACC_VER_MAJOR__
#define CUDA_EMU 1
#endif

// ---- vector types -------------------------------------------------------------------------------
namespace cuda_emu {
// Checks an access of `bytes` at `p` made by kernel code: aligned to `align` and
// inside one device allocation, the block's shared memory or the thread's own stack.
// Outside a kernel it does nothing.
void check_access(const void* p, size_t bytes, size_t align, const char* what);
}  // namespace cuda_emu

// A 16- or 8-byte vector type whose copies are checked: `*reinterpret_cast<const int4*>(p)` in a
// kernel copies through here, so every vector load and store of the kernels is checked for
// alignment and bounds.
#define CUDA_EMU_VECTOR(Name, T, Align, ...)                               \
  struct alignas(Align) Name {                                             \
    T __VA_ARGS__;                                                         \
    Name() = default;                                                      \
    Name(const Name& o) {                                                  \
      ::cuda_emu::check_access(&o, sizeof(Name), Align, #Name " load");    \
      std::memcpy(static_cast<void*>(this), &o, sizeof(Name));             \
    }                                                                      \
    Name& operator=(const Name& o) {                                       \
      ::cuda_emu::check_access(&o, sizeof(Name), Align, #Name " load");    \
      ::cuda_emu::check_access(this, sizeof(Name), Align, #Name " store"); \
      std::memcpy(static_cast<void*>(this), &o, sizeof(Name));             \
      return *this;                                                        \
    }                                                                      \
  };

CUDA_EMU_VECTOR(int4, int, 16, x, y, z, w)
CUDA_EMU_VECTOR(uint4, unsigned int, 16, x, y, z, w)
CUDA_EMU_VECTOR(float4, float, 16, x, y, z, w)
CUDA_EMU_VECTOR(float2, float, 8, x, y)
CUDA_EMU_VECTOR(int2, int, 8, x, y)
CUDA_EMU_VECTOR(uint2, unsigned int, 8, x, y)
CUDA_EMU_VECTOR(double2, double, 16, x, y)
#undef CUDA_EMU_VECTOR

struct uint3 {
  unsigned int x, y, z;
};
struct dim3 {
  unsigned int x = 1, y = 1, z = 1;
  constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1)
      : x(x_), y(y_), z(z_) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
};

inline float2 make_float2(float x, float y) {
  float2 r;
  r.x = x;
  r.y = y;
  return r;
}
inline float4 make_float4(float x, float y, float z, float w) {
  float4 r;
  r.x = x;
  r.y = y;
  r.z = z;
  r.w = w;
  return r;
}
inline int4 make_int4(int x, int y, int z, int w) {
  int4 r;
  r.x = x;
  r.y = y;
  r.z = z;
  r.w = w;
  return r;
}

// ---- streams and errors (the runtime's part of them: cuda_runtime.h) ----------------------------
enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInitializationError = 3,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevice = 101,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorNotReady = 600,
  cudaErrorLaunchFailure = 719,
  cudaErrorNoDevice = 100,
  cudaErrorNotSupported = 801,
  cudaErrorUnknown = 999,
};
typedef cudaError_t cudaError;
struct CUstream_st;
typedef CUstream_st* cudaStream_t;
struct CUevent_st;
typedef CUevent_st* cudaEvent_t;

// ---- the kernel's view of the machine -----------------------------------------------------------
namespace cuda_emu {

struct ThreadContext;
struct BlockContext;
extern thread_local ThreadContext* tl_thread;  // the thread (fiber) running now, or null
extern thread_local BlockContext* tl_block;

const uint3& thread_index();
const uint3& block_index();
const dim3& block_dim();
const dim3& grid_dim();

struct LaunchConfig {
  dim3 grid, block;
  size_t shared_bytes = 0;
  cudaStream_t stream = nullptr;
  LaunchConfig(dim3 g, dim3 b, size_t smem = 0, cudaStream_t s = nullptr)
      : grid(g), block(b), shared_bytes(smem), stream(s) {}
};

// Runs `body` (the kernel call) as every thread of every block, under each configured schedule
// (cuda_emu/schedule.h), and checks that they leave device memory with the same bits. A fault
// throws cuda_emu::KernelFault naming the kernel, block, thread and what went wrong.
// `pointers`: the kernel's pointer arguments, i.e. the allocations it can reach (the ones saved,
// restored and compared around the schedules).
struct KernelPointers {
  const void* p[24];
  int n = 0;
};
template <typename... Args>
inline KernelPointers pointers_of(const Args&... args) {
  KernelPointers k;
  auto add = [&k](const auto& a) {
    using A = std::decay_t<decltype(a)>;
    if constexpr (std::is_pointer<A>::value) {
      if (k.n < 24) k.p[k.n++] = static_cast<const void*>(a);
    }
  };
  (add(args), ...);
  return k;
}
void launch_kernel(const void* kernel, const char* name, const char* file, int line,
                   const LaunchConfig& config, const KernelPointers& pointers, void (*body)(void*),
                   void* body_context);

template <typename Body>
inline void launch(const void* kernel, const char* name, const char* file, int line,
                   const LaunchConfig& config, const KernelPointers& pointers, Body&& body) {
  using B = std::remove_reference_t<Body>;
  launch_kernel(
      kernel, name, file, line, config, pointers, [](void* b) { (*static_cast<B*>(b))(); },
      const_cast<void*>(static_cast<const void*>(&body)));
}

// Dynamic shared memory of the block running now (extern __shared__).
void* dynamic_shared();

// Rendezvous points.
void barrier(const char* file, int line);
int barrier_count(int predicate, const char* file, int line);
void warp_sync(unsigned mask, const char* file, int line);
// shfl.sync: mode 0 idx, 1 xor, 2 down, 3 up; 4-byte or 8-byte values.
uint64_t shuffle(unsigned mask, uint64_t value, int operand, int width, int mode, const char* file,
                 int line);
unsigned vote(unsigned mask, int predicate, int mode, const char* file, int line);  // 0 ballot
void spin_yield();
[[noreturn]] void fault(const std::string& what);

}  // namespace cuda_emu

#define threadIdx (::cuda_emu::thread_index())
#define blockIdx (::cuda_emu::block_index())
#define blockDim (::cuda_emu::block_dim())
#define gridDim (::cuda_emu::grid_dim())
constexpr int warpSize = 32;

inline void __syncthreads(const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  ::cuda_emu::barrier(file, line);
}
inline int __syncthreads_count(int predicate, const char* file = __builtin_FILE(),
                               int line = __builtin_LINE()) {
  return ::cuda_emu::barrier_count(predicate, file, line);
}
inline int __syncthreads_or(int predicate, const char* file = __builtin_FILE(),
                            int line = __builtin_LINE()) {
  return ::cuda_emu::barrier_count(predicate, file, line) != 0;
}
inline void __syncwarp(unsigned mask = 0xffffffffu, const char* file = __builtin_FILE(),
                       int line = __builtin_LINE()) {
  ::cuda_emu::warp_sync(mask, file, line);
}

namespace cuda_emu {
template <typename T>
inline T shuffle_as(unsigned mask, T v, int operand, int width, int mode, const char* file,
                    int line) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffle of 4 or 8 bytes");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  bits = shuffle(mask, bits, operand, width, mode, file, line);
  T r;
  std::memcpy(&r, &bits, sizeof(T));
  return r;
}
}  // namespace cuda_emu

template <typename T>
inline T __shfl_sync(unsigned mask, T v, int src_lane, int width = warpSize,
                     const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return ::cuda_emu::shuffle_as(mask, v, src_lane, width, 0, file, line);
}
template <typename T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = warpSize,
                         const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return ::cuda_emu::shuffle_as(mask, v, lane_mask, width, 1, file, line);
}
template <typename T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = warpSize,
                          const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return ::cuda_emu::shuffle_as(mask, v, static_cast<int>(delta), width, 2, file, line);
}
template <typename T>
inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = warpSize,
                        const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  return ::cuda_emu::shuffle_as(mask, v, static_cast<int>(delta), width, 3, file, line);
}
inline unsigned __ballot_sync(unsigned mask, int predicate, const char* file = __builtin_FILE(),
                              int line = __builtin_LINE()) {
  return ::cuda_emu::vote(mask, predicate, 0, file, line);
}

// ---- memory ordering and atomics ----------------------------------------------------------------
// Host threads run blocks concurrently in the parallel schedule, so these are real atomics.
inline void __threadfence() {
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
}
inline void __threadfence_block() {
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
}
template <typename T>
inline T atomicAdd(T* address, T value) {
  ::cuda_emu::check_access(address, sizeof(T), sizeof(T), "atomicAdd");
  if constexpr (std::is_integral<T>::value) {
    return __atomic_fetch_add(address, value, __ATOMIC_SEQ_CST);
  } else {
    T old;
    T desired;
    do {
      old = *address;
      desired = old + value;
    } while (!__atomic_compare_exchange(address, &old, &desired, false, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST));
    return old;
  }
}
template <typename T>
inline T atomicMax(T* address, T value) {
  T old = __atomic_load_n(address, __ATOMIC_SEQ_CST);
  while (old < value && !__atomic_compare_exchange_n(address, &old, value, false, __ATOMIC_SEQ_CST,
                                                     __ATOMIC_SEQ_CST)) {
  }
  return old;
}
template <typename T>
inline T atomicExch(T* address, T value) {
  return __atomic_exchange_n(address, value, __ATOMIC_SEQ_CST);
}
template <typename T>
inline T atomicCAS(T* address, T compare, T value) {
  __atomic_compare_exchange_n(address, &compare, value, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
  return compare;
}

// Cache-hinted loads and stores: plain, checked accesses.
template <typename T>
inline T __ldg(const T* p) {
  ::cuda_emu::check_access(p, sizeof(T), alignof(T), "__ldg");
  return *p;
}
template <typename T>
inline T __ldcs(const T* p) {
  ::cuda_emu::check_access(p, sizeof(T), alignof(T), "__ldcs");
  return *p;
}
template <typename T>
inline T __ldcg(const T* p) {
  ::cuda_emu::check_access(p, sizeof(T), alignof(T), "__ldcg");
  return *p;
}
template <typename T>
inline void __stcs(T* p, T v) {
  ::cuda_emu::check_access(p, sizeof(T), alignof(T), "__stcs");
  *p = v;
}
template <typename T>
inline void __stcg(T* p, T v) {
  ::cuda_emu::check_access(p, sizeof(T), alignof(T), "__stcg");
  *p = v;
}

// Generic -> shared-window address: the offset into the block's shared memory.
size_t __cvta_generic_to_shared(const void* p);

// ---- math ---------------------------------------------------------------------------------------
inline float __int_as_float(int v) {
  float f;
  std::memcpy(&f, &v, 4);
  return f;
}
inline int __float_as_int(float v) {
  int i;
  std::memcpy(&i, &v, 4);
  return i;
}
inline float __uint_as_float(unsigned v) {
  float f;
  std::memcpy(&f, &v, 4);
  return f;
}
inline unsigned __float_as_uint(float v) {
  unsigned i;
  std::memcpy(&i, &v, 4);
  return i;
}
inline float rsqrtf(float x) {
  return 1.0f / std::sqrt(x);
}
inline double rsqrt(double x) {
  return 1.0 / std::sqrt(x);
}
inline float __expf(float x) {
  return std::exp(x);
}
inline float __logf(float x) {
  return std::log(x);
}
inline float __fdividef(float a, float b) {
  return a / b;
}
inline float __saturatef(float x) {
  return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x);
}
inline int min(int a, int b) {
  return a < b ? a : b;
}
inline int max(int a, int b) {
  return a > b ? a : b;
}
inline unsigned min(unsigned a, unsigned b) {
  return a < b ? a : b;
}
inline unsigned max(unsigned a, unsigned b) {
  return a > b ? a : b;
}
inline long long min(long long a, long long b) {
  return a < b ? a : b;
}
inline long long max(long long a, long long b) {
  return a > b ? a : b;
}
inline long min(long a, long b) {
  return a < b ? a : b;
}
inline long max(long a, long b) {
  return a > b ? a : b;
}
inline unsigned long min(unsigned long a, unsigned long b) {
  return a < b ? a : b;
}
inline unsigned long max(unsigned long a, unsigned long b) {
  return a > b ? a : b;
}
inline float min(float a, float b) {
  return std::fmin(a, b);
}
inline float max(float a, float b) {
  return std::fmax(a, b);
}
inline int __popc(unsigned v) {
  return __builtin_popcount(v);
}
inline int __ffs(int v) {
  return __builtin_ffs(v);
}
inline int __clz(int v) {
  return v == 0 ? 32 : __builtin_clz(static_cast<unsigned>(v));
}
