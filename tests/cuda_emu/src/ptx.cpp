// The PTX instructions of kernels/ptx.cuh, written from the PTX ISA's definitions (section 9.7:
// cp.async, ldmatrix, mma.m16n8k16 fragment layouts, ld.acquire / st.relaxed), never from the
// project's own index arithmetic (kernels/flash_attention_index.h), which these check. Also the
// memory checks every vector access goes through.
#include <cstdio>

#include "internal.h"

namespace cuda_emu {

void complete_ldmatrix(BlockContext& b, int warp, const WarpState& w);
void complete_mma(BlockContext& b, int warp, const WarpState& w);
void arrive_warp_op(ThreadContext& t, WarpOp op, unsigned mask, const char* file, int line);

namespace {

bool inside(uintptr_t p, size_t bytes, uintptr_t begin, uintptr_t end) {
  return p >= begin && p < end && bytes <= end - p;
}

std::string hex(uintptr_t p) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "0x%llx", static_cast<unsigned long long>(p));
  return buf;
}

// The shared-window address range [offset, offset + bytes) of the running block, as a pointer.
unsigned char* shared_at(const ThreadContext& t, uint32_t offset, size_t bytes, const char* what) {
  const BlockContext& b = *t.block;
  if (offset % 16 != 0) {
    fault(std::string(what) + ": shared address " + std::to_string(offset) +
          " is not 16-byte aligned");
  }
  if (static_cast<size_t>(offset) + bytes > b.smem_bytes) {
    fault(std::string(what) + ": shared address " + std::to_string(offset) + " + " +
          std::to_string(bytes) + " bytes lies outside the block's " +
          std::to_string(b.smem_bytes) + " bytes of dynamic shared memory");
  }
  return b.smem + offset;
}

uint16_t bf16_bits_at(const unsigned char* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
float bf16_to_float(uint16_t bits) {
  const uint32_t u = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Static __shared__ arrays are thread_local objects of the host worker (core.h): they live in the
// worker's static TLS block, just below the thread pointer on x86-64.
bool tl_static_shared_ok(uintptr_t a) {
  const uintptr_t tp = reinterpret_cast<uintptr_t>(__builtin_thread_pointer());
  return a < tp && tp - a <= (uintptr_t{1} << 20);
}

}  // namespace

void check_access(const void* p, size_t bytes, size_t align, const char* what) {
  ThreadContext* t = tl_thread;
  if (t == nullptr) return;  // host code
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  if (align > 1 && a % align != 0) {
    fault(std::string(what) + " at " + hex(a) + ": not " + std::to_string(align) + "-byte aligned");
  }
  if (inside(a, bytes, reinterpret_cast<uintptr_t>(t->stack_lo),
             reinterpret_cast<uintptr_t>(t->stack_hi))) {
    return;  // the thread's own registers / local memory
  }
  const BlockContext& b = *t->block;
  const uintptr_t s = reinterpret_cast<uintptr_t>(b.smem);
  if (b.smem_bytes > 0 && a >= s && a < s + b.smem_bytes) {
    if (!inside(a, bytes, s, s + b.smem_bytes)) {
      fault(std::string(what) + " at " + hex(a) + " (" + std::to_string(bytes) +
            " bytes) runs past the end of the block's dynamic shared memory");
    }
    return;
  }
  Region r;
  if (find_allocation(p, &r)) {
    if (!inside(a, bytes, r.begin, r.end)) {
      fault(std::string(what) + " at " + hex(a) + " (" + std::to_string(bytes) +
            " bytes) runs past the end of its device allocation (" + hex(r.begin) + ", " +
            std::to_string(r.end - r.begin) + " bytes)");
    }
    return;
  }
  if (tl_static_shared_ok(a)) return;
  fault(std::string(what) + " at " + hex(a) +
        ": not in any device allocation, the block's shared memory or the thread's stack");
}

size_t __cvta_generic_to_shared_impl(const void* p) {
  const ThreadContext& t = current();
  const BlockContext& b = *t.block;
  const uintptr_t a = reinterpret_cast<uintptr_t>(p), s = reinterpret_cast<uintptr_t>(b.smem);
  if (b.smem_bytes == 0 || a < s || a > s + b.smem_bytes) {
    fault("__cvta_generic_to_shared: " + hex(a) + " is not in the block's shared memory");
  }
  return a - s;
}

namespace ptx {

// cp.async.cg.shared.global [dst], [src], cp-size, src-size: copies src-size bytes and zero-fills
// the rest of cp-size; .cg allows cp-size 16 only. Both addresses aligned to cp-size.
void cp_async(uint32_t dst, const void* src, int cp_size, int src_size) {
  ThreadContext& t = current();
  if (cp_size != 16) fault("cp.async.cg: cp-size must be 16");
  if (src_size < 0 || src_size > cp_size) fault("cp.async: src-size outside [0, cp-size]");
  unsigned char* d = shared_at(t, dst, 16, "cp.async destination");
  if (reinterpret_cast<uintptr_t>(src) % 16 != 0) {
    fault("cp.async source " + hex(reinterpret_cast<uintptr_t>(src)) + " is not 16-byte aligned");
  }
  if (src_size > 0) {
    Region r;
    const uintptr_t a = reinterpret_cast<uintptr_t>(src);
    if (!find_allocation(src, &r) || !inside(a, static_cast<size_t>(src_size), r.begin, r.end)) {
      fault("cp.async source " + hex(a) + " (" + std::to_string(src_size) +
            " bytes) is not inside one device allocation");
    }
  }
  const PendingCopy c{d, static_cast<const unsigned char*>(src), src_size};
  if (t.block->launch->schedule->copies == CopyLanding::at_issue) {
    std::memcpy(c.dst, c.src, static_cast<size_t>(c.src_size));
    std::memset(c.dst + c.src_size, 0, static_cast<size_t>(16 - c.src_size));
  } else {
    t.uncommitted.push_back(c);
  }
}

void cp_async_commit() {
  ThreadContext& t = current();
  // An empty group is still a group (wait_group counts it).
  t.groups.push_back(std::move(t.uncommitted));
  t.uncommitted.clear();
}

// cp.async.wait_group N: waits until at most N of the most recent groups are pending and every
// earlier group is complete. Copies not yet committed are not waited for.
void cp_async_wait(int n) {
  ThreadContext& t = current();
  const size_t keep = static_cast<size_t>(n);
  if (t.groups.size() <= keep) return;
  const size_t land = t.groups.size() - keep;
  for (size_t g = 0; g < land; ++g) {
    for (const PendingCopy& c : t.groups[g]) {
      std::memcpy(c.dst, c.src, static_cast<size_t>(c.src_size));
      std::memset(c.dst + c.src_size, 0, static_cast<size_t>(16 - c.src_size));
    }
  }
  t.groups.erase(t.groups.begin(), t.groups.begin() + static_cast<std::ptrdiff_t>(land));
}

void ldmatrix_x4(uint32_t (&r)[4], uint32_t address, bool trans, const char* file, int line) {
  ThreadContext& t = current();
  t.in[0] = address;
  t.in[1] = trans ? 1 : 0;
  arrive_warp_op(t, WarpOp::ldmatrix, 0xffffffffu, file, line);
  for (int i = 0; i < 4; ++i) r[i] = static_cast<uint32_t>(t.out[i]);
}

void mma_m16n8k16_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1,
                       const char* file, int line) {
  ThreadContext& t = current();
  for (int i = 0; i < 4; ++i) t.in[i] = a[i];
  t.in[4] = b0;
  t.in[5] = b1;
  for (int i = 0; i < 4; ++i) {
    uint32_t bits;
    std::memcpy(&bits, &d[i], 4);
    t.in[6 + i] = bits;
  }
  arrive_warp_op(t, WarpOp::mma, 0xffffffffu, file, line);
  for (int i = 0; i < 4; ++i) {
    const uint32_t bits = static_cast<uint32_t>(t.out[i]);
    std::memcpy(&d[i], &bits, 4);
  }
}

// ld.acquire.gpu: a spin point (the loop around it waits for another block), then an acquire load.
int load_acquire(const int* p) {
  check_access(p, 4, 4, "ld.acquire.gpu");
  spin_yield();
  return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}
void store_relaxed(int* p, int value) {
  check_access(p, 4, 4, "st.relaxed.gpu");
  __atomic_store_n(p, value, __ATOMIC_RELAXED);
}

}  // namespace ptx

// ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16: four 8×8 matrices of b16; lanes 8j..8j+7 hold
// the addresses of rows 0..7 of matrix j (16 contiguous bytes, 16-byte aligned). Lane l receives,
// in register j, row l/4, columns 2(l%4) and 2(l%4)+1 of matrix j (lower column in the low half);
// with .trans the matrix is transposed first: M[2(l%4)][l/4] and M[2(l%4)+1][l/4].
void complete_ldmatrix(BlockContext& b, int warp, const WarpState& w) {
  (void)w;
  ThreadContext* lanes = &b.threads[static_cast<size_t>(warp) * 32];
  ThreadContext* const caller = tl_thread;
  const bool trans = lanes[0].in[1] != 0;
  for (int l = 1; l < 32; ++l) {
    if ((lanes[l].in[1] != 0) != trans) fault("ldmatrix: lanes disagree on .trans");
  }
  uint16_t m[4][8][8];
  for (int j = 0; j < 4; ++j) {
    for (int row = 0; row < 8; ++row) {
      ThreadContext& src = lanes[8 * j + row];
      tl_thread = &src;  // a fault names the lane whose address is wrong
      const unsigned char* p =
          shared_at(src, static_cast<uint32_t>(src.in[0]), 16, "ldmatrix row address");
      for (int col = 0; col < 8; ++col) m[j][row][col] = bf16_bits_at(p + 2 * col);
    }
  }
  tl_thread = caller;
  for (int l = 0; l < 32; ++l) {
    for (int j = 0; j < 4; ++j) {
      uint16_t lo, hi;
      if (!trans) {
        lo = m[j][l / 4][2 * (l % 4)];
        hi = m[j][l / 4][2 * (l % 4) + 1];
      } else {
        lo = m[j][2 * (l % 4)][l / 4];
        hi = m[j][2 * (l % 4) + 1][l / 4];
      }
      lanes[l].out[j] = static_cast<uint32_t>(lo) | (static_cast<uint32_t>(hi) << 16);
    }
  }
}

// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 d, a, b, c (D = A·B + C; A 16×16, B 16×8).
// With groupID g = l/4 and t = l%4 for lane l:
//   A: a0 = A[g][2t..2t+1], a1 = A[g+8][2t..2t+1], a2 = A[g][2t+8..2t+9], a3 = A[g+8][2t+8..2t+9]
//   B: b0 = B[2t..2t+1][g], b1 = B[2t+8..2t+9][g]
//   C, D: c0 = C[g][2t], c1 = C[g][2t+1], c2 = C[g+8][2t], c3 = C[g+8][2t+1]
// (the lower index in the low half of each b32). Products of bf16 are exact in fp32; the sum is
// taken in double and rounded once (the tensor core's own order and rounding are not emulated).
void complete_mma(BlockContext& b, int warp, const WarpState& w) {
  (void)w;
  ThreadContext* lanes = &b.threads[static_cast<size_t>(warp) * 32];
  float A[16][16], B[16][8], C[16][8];
  auto lo = [](uint64_t v) { return bf16_to_float(static_cast<uint16_t>(v & 0xFFFF)); };
  auto hi = [](uint64_t v) { return bf16_to_float(static_cast<uint16_t>((v >> 16) & 0xFFFF)); };
  for (int l = 0; l < 32; ++l) {
    const uint64_t* in = lanes[l].in;
    const int g = l / 4, t = l % 4;
    A[g][2 * t] = lo(in[0]);
    A[g][2 * t + 1] = hi(in[0]);
    A[g + 8][2 * t] = lo(in[1]);
    A[g + 8][2 * t + 1] = hi(in[1]);
    A[g][2 * t + 8] = lo(in[2]);
    A[g][2 * t + 9] = hi(in[2]);
    A[g + 8][2 * t + 8] = lo(in[3]);
    A[g + 8][2 * t + 9] = hi(in[3]);
    B[2 * t][g] = lo(in[4]);
    B[2 * t + 1][g] = hi(in[4]);
    B[2 * t + 8][g] = lo(in[5]);
    B[2 * t + 9][g] = hi(in[5]);
    float c[4];
    for (int i = 0; i < 4; ++i) {
      const uint32_t bits = static_cast<uint32_t>(in[6 + i]);
      std::memcpy(&c[i], &bits, 4);
    }
    C[g][2 * t] = c[0];
    C[g][2 * t + 1] = c[1];
    C[g + 8][2 * t] = c[2];
    C[g + 8][2 * t + 1] = c[3];
  }
  for (int l = 0; l < 32; ++l) {
    const int g = l / 4, t = l % 4;
    const int rows[4] = {g, g, g + 8, g + 8};
    const int cols[4] = {2 * t, 2 * t + 1, 2 * t, 2 * t + 1};
    for (int i = 0; i < 4; ++i) {
      double sum = C[rows[i]][cols[i]];
      for (int k = 0; k < 16; ++k) {
        sum += static_cast<double>(A[rows[i]][k]) * static_cast<double>(B[k][cols[i]]);
      }
      const float f = static_cast<float>(sum);
      uint32_t bits;
      std::memcpy(&bits, &f, 4);
      lanes[l].out[i] = bits;
    }
  }
}

}  // namespace cuda_emu

size_t __cvta_generic_to_shared(const void* p) {
  return cuda_emu::__cvta_generic_to_shared_impl(p);
}
