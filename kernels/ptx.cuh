// Every inline PTX instruction of the kernels, one wrapper each, in one header. Kernels call these
// wrappers and never write `asm` themselves, so that the CPU emulation of CUDA (tests/cuda_emu,
// docs/testing.md) can put its own implementation of each instruction, written from the PTX ISA,
// in place of this file and run the unmodified kernel sources.
//
//   smem_address        generic -> shared-window address (what ldmatrix and cp.async take)
//   cp_async_16         cp.async.cg.shared.global, 16 bytes, zero-fill when !valid
//   cp_async_commit     cp.async.commit_group
//   cp_async_wait<N>    cp.async.wait_group N
//   ldmatrix_x4[_trans] ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16
//   mma_bf16            mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
//   load_acquire        ld.acquire.gpu.global.b32
//   store_relaxed       st.relaxed.gpu.global.b32
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace gpt::cuda::ptx {

__device__ __forceinline__ uint32_t smem_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16-byte asynchronous global -> shared copy, bypassing L1; zero-fills when !valid (reads nothing).
__device__ __forceinline__ void cp_async_16(uint32_t dst, const void* src, bool valid) {
  const int src_bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src),
               "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::);
}
// Waits until at most N of this thread's committed groups are still in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// Four 8×8 b16 matrices; lanes 8j..8j+7 give the row addresses of matrix j (16 bytes each).
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t address) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t address) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(address));
}

// d (16×8 f32) += a (16×16 bf16) · b (16×8 bf16)
__device__ __forceinline__ void mma_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                         uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ int load_acquire(const int* p) {
  int v;
  asm volatile("ld.acquire.gpu.global.b32 %0, [%1];\n" : "=r"(v) : "l"(p));
  return v;
}
__device__ __forceinline__ void store_relaxed(int* p, int value) {
  asm volatile("st.relaxed.gpu.global.b32 [%0], %1;\n" ::"l"(p), "r"(value) : "memory");
}

}  // namespace gpt::cuda::ptx
