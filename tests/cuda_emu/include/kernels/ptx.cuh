// The emulator's kernels/ptx.cuh: the same wrappers as the shipped kernels/ptx.cuh, each
// implemented from the PTX ISA's definition of its instruction (src/ptx.cpp) instead of inline
// assembly. Tests compiled against tests/cuda_emu/include find this file first.
#pragma once

#include <cstdint>

#include "cuda_emu/core.h"

namespace cuda_emu::ptx {
void cp_async(uint32_t dst, const void* src, int cp_size, int src_size);
void cp_async_commit();
void cp_async_wait(int n);
void ldmatrix_x4(uint32_t (&r)[4], uint32_t address, bool trans, const char* file, int line);
void mma_m16n8k16_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1,
                       const char* file, int line);
int load_acquire(const int* p);
void store_relaxed(int* p, int value);
}  // namespace cuda_emu::ptx

namespace gpt::cuda::ptx {

inline uint32_t smem_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
inline void cp_async_16(uint32_t dst, const void* src, bool valid) {
  ::cuda_emu::ptx::cp_async(dst, src, 16, valid ? 16 : 0);
}
inline void cp_async_commit() {
  ::cuda_emu::ptx::cp_async_commit();
}
template <int N>
inline void cp_async_wait() {
  ::cuda_emu::ptx::cp_async_wait(N);
}
inline void ldmatrix_x4(uint32_t (&r)[4], uint32_t address, const char* file = __builtin_FILE(),
                        int line = __builtin_LINE()) {
  ::cuda_emu::ptx::ldmatrix_x4(r, address, false, file, line);
}
inline void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t address,
                              const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  ::cuda_emu::ptx::ldmatrix_x4(r, address, true, file, line);
}
inline void mma_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1,
                     const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  ::cuda_emu::ptx::mma_m16n8k16_bf16(d, a, b0, b1, file, line);
}
inline int load_acquire(const int* p) {
  return ::cuda_emu::ptx::load_acquire(p);
}
inline void store_relaxed(int* p, int value) {
  ::cuda_emu::ptx::store_relaxed(p, value);
}

}  // namespace gpt::cuda::ptx
