// Fused causal attention kernels (algorithm, tiling and budgets: kernels/flash_attention.h; index
// arithmetic: kernels/flash_attention_index.h, unit-tested on the CPU by
// tests/test_flash_index.cpp).
//
// Layout of this file: the tile loader (PTX wrappers: kernels/ptx.cuh), the
// forward kernel, the two backward kernels (D = rowsum(dO ⊙ O), then dK/dV/dQ), the launchers.
//
// Register fragments, as named below: a "tile" of an accumulator is one m16n8 block, float[4] per
// lane (kernels/flash_attention_index.h: mma_c_element); an A operand is uint32_t[4] (16×16 bf16),
// a B operand two uint32_t (16×8). Every loop over fragments is fully unrolled so the arrays stay
// in registers.
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "kernels/cuda_common.cuh"
#include "kernels/flash_attention.h"
#include "kernels/flash_attention_index.h"
#include "kernels/ptx.cuh"

namespace gpt::cuda {
namespace {

using flash::RowChunk;
using flash::RowCol;
using flash::tile_offset;

constexpr float kLog2e = 1.4426950408889634f;
constexpr double kLog2eDouble = 1.4426950408889634;
constexpr int kThreads = 128;  // 4 warps per CTA in every kernel of this file
constexpr int kWarps = kThreads / kWarpSize;

// ---- PTX (kernels/ptx.cuh) ----------------------------------------------------------------------
using ptx::cp_async_16;
using ptx::cp_async_commit;
using ptx::cp_async_wait;
using ptx::ldmatrix_x4;
using ptx::ldmatrix_x4_trans;
using ptx::load_acquire;
using ptx::mma_bf16;
using ptx::smem_address;

// Two floats -> bf16x2 (round to nearest even), `lo` in the low half (the lower column or row).
__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

// A operand for k-step kk built from accumulator tiles (flash_attention_index.h:
// acc_tile_of_a_register): the P·V trick, P never leaves registers.
template <int kTiles>
__device__ __forceinline__ void accumulators_to_a(uint32_t (&a)[4], const float (&acc)[kTiles][4],
                                                  int kk) {
  a[0] = pack_bf16x2(acc[2 * kk][0], acc[2 * kk][1]);
  a[1] = pack_bf16x2(acc[2 * kk][2], acc[2 * kk][3]);
  a[2] = pack_bf16x2(acc[2 * kk + 1][0], acc[2 * kk + 1][1]);
  a[3] = pack_bf16x2(acc[2 * kk + 1][2], acc[2 * kk + 1][3]);
}

// Ordered turns for the deterministic dQ reduction (one counter per query tile, in the workspace).
// The CUTLASS-style semaphore pattern: a CTA publishes "share added" by a CTA barrier (all its
// threads' accumulator stores precede it) and then one thread's gpu-scope fence (cumulative: it
// orders the whole CTA's earlier stores) and counter store. A waiting CTA has one thread read the
// counter with acquire loads until it shows its turn, then a CTA barrier passes the ordering on.
// The accumulator itself is read and written with .cg accesses (L2, never a stale L1 line).
// Call after a __syncthreads that follows the stores being published; thread 0 only.
__device__ __forceinline__ void publish_turn(int* counter, int value) {
  __threadfence();
  ptx::store_relaxed(counter, value);
}

// ---- tile loader --------------------------------------------------------------------------------
// Copies rows [0, kRows) of a (rows × kHeadDim) bf16 tile whose row r starts at src + r·ld into a
// padded shared tile (flash_attention_index.h); rows >= valid_rows (past T) are zero-filled.
// Consecutive threads take consecutive 16-byte chunks of a row: each row is one contiguous
// 128/256-byte read.
template <int kRows, int kHeadDim>
__device__ __forceinline__ void load_tile_async(bf16* tile, const bf16* src, int64_t ld,
                                                int valid_rows) {
  constexpr int kChunks = kHeadDim / 8;
  constexpr int kStride = flash::padded_stride(kHeadDim);
  constexpr int kRowsPerPass = kThreads / kChunks;  // a thread keeps its chunk, steps over rows
  static_assert(kThreads % kChunks == 0 && kRows % kRowsPerPass == 0, "tile must divide evenly");
  const int chunk = static_cast<int>(threadIdx.x) % kChunks;
  const int row0 = static_cast<int>(threadIdx.x) / kChunks;
  const bf16* from = src + row0 * ld + chunk * 8;
  const int64_t step = kRowsPerPass * ld;
  const uint32_t to = smem_address(tile + tile_offset(row0, chunk, kStride));
#pragma unroll
  for (int pass = 0; pass < kRows / kRowsPerPass; ++pass) {
    const bool valid = row0 + pass * kRowsPerPass < valid_rows;
    // An invalid row reads nothing (zero fill) but still needs a mapped address: the tile's first.
    cp_async_16(to + pass * kRowsPerPass * kStride * static_cast<int>(sizeof(bf16)),
                valid ? from : src, valid);
    from += step;
  }
}

// ---- forward ------------------------------------------------------------------------------------

template <int kHeadDim>
struct ForwardTiles {
  static constexpr int kBlockM = 128;  // queries per CTA
  static constexpr int kBlockN = 64;   // keys per tile
  static constexpr int kWarpRows = kBlockM / kWarps;
  static constexpr int kMTiles = kWarpRows / 16;  // m16 tiles per warp
  static constexpr int kNTiles = kBlockN / 8;     // n8 score tiles
  static constexpr int kDTiles = kHeadDim / 8;    // n8 output tiles
  static constexpr int kStride = flash::padded_stride(kHeadDim);
  static constexpr bool kQInRegisters = kHeadDim <= 64;
  // Registers: __launch_bounds__(128) lets ptxas use up to 255 per thread (2 CTAs = 8 warps per
  // SM); it takes 240-255 with no spills (CUDA 13.0). Asking for 3 CTAs (168) spills heavily.
  static constexpr size_t kSmemBytes =
      static_cast<size_t>(kBlockM + 2 * kBlockN) * kStride * sizeof(bf16);
};

template <int kHeadDim>
__global__ void __launch_bounds__(kThreads)
    flash_forward_kernel(bf16* __restrict__ out, float* __restrict__ lse,
                         const bf16* __restrict__ qkv, int T, int NH, int NKV, int group, int BNH,
                         int num_m_tiles, float scale, float scale_log2) {
  using Tiles = ForwardTiles<kHeadDim>;
  constexpr int kBlockM = Tiles::kBlockM, kBlockN = Tiles::kBlockN, kMTiles = Tiles::kMTiles;
  constexpr int kNTiles = Tiles::kNTiles, kDTiles = Tiles::kDTiles, kStride = Tiles::kStride;
  constexpr bool kQInRegisters = Tiles::kQInRegisters;
  constexpr int kRowBytes = kStride * static_cast<int>(sizeof(bf16));

  extern __shared__ __align__(128) unsigned char smem_raw[];
  bf16* sQ = reinterpret_cast<bf16*>(smem_raw);
  bf16* sK = sQ + kBlockM * kStride;
  bf16* sV = sK + kBlockN * kStride;

  const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
  const int warp = static_cast<int>(threadIdx.x) / kWarpSize;
  const flash::ForwardBlock block = flash::forward_block(blockIdx.x, BNH, num_m_tiles);
  const int b = block.bh / NH;
  const int h = block.bh % NH;
  const int m0 = block.m_tile * kBlockM;
  const int warp_row0 = warp * Tiles::kWarpRows;  // first row of this warp inside the tile
  // Rows of qkv are [q (NH heads) | k (NKV heads) | v (NKV heads)]; query head h reads key/value
  // head h / group.
  const int64_t ld = static_cast<int64_t>(NH + 2 * NKV) * kHeadDim;
  const int kv = h / group;
  const bf16* row0 = qkv + static_cast<int64_t>(b) * T * ld;
  const bf16* q = row0 + static_cast<int64_t>(h) * kHeadDim;
  const bf16* k = row0 + static_cast<int64_t>(NH + kv) * kHeadDim;
  const bf16* v = row0 + static_cast<int64_t>(NH + NKV + kv) * kHeadDim;
  const int key_tiles = flash::forward_key_tiles(block.m_tile, kBlockM, kBlockN, T);

  // Per-lane ldmatrix base addresses (bytes); each fragment load adds a compile-time offset.
  const RowChunk a_lane = flash::ldmatrix_a_lane(lane);
  const RowChunk b_lane = flash::ldmatrix_b_lane(lane);
  const RowChunk bt_lane = flash::ldmatrix_b_trans_lane(lane);
  const uint32_t q_a =
      smem_address(sQ + tile_offset(warp_row0 + a_lane.row, a_lane.chunk, kStride));
  const uint32_t k_b = smem_address(sK + tile_offset(b_lane.row, b_lane.chunk, kStride));
  const uint32_t v_bt = smem_address(sV + tile_offset(bt_lane.row, bt_lane.chunk, kStride));

  load_tile_async<kBlockM, kHeadDim>(sQ, q + m0 * ld, ld, T - m0);
  load_tile_async<kBlockN, kHeadDim>(sK, k, ld, T);
  cp_async_commit();

  float acc_o[kMTiles][kDTiles][4];
  float row_max[kMTiles][2];
  float row_sum[kMTiles][2];
#pragma unroll
  for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
    for (int dt = 0; dt < kDTiles; ++dt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) acc_o[mt][dt][e] = 0.0f;
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      row_max[mt][r] = -INFINITY;
      row_sum[mt][r] = 0.0f;
    }
  }
  uint32_t q_frag[kQInRegisters ? kMTiles : 1][kQInRegisters ? kHeadDim / 16 : 1][4];

  for (int j = 0; j < key_tiles; ++j) {
    const int n0 = j * kBlockN;
    cp_async_wait<0>();  // K_j (and, at j = 0, Q) has landed
    __syncthreads();     // ... for every thread; and every warp is done with V_{j-1}
    if constexpr (kQInRegisters) {
      if (j == 0) {
#pragma unroll
        for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
          for (int kk = 0; kk < kHeadDim / 16; ++kk) {
            ldmatrix_x4(q_frag[mt][kk], q_a + (mt * 16 * kStride + kk * 16) * 2);
          }
        }
      }
    }
    load_tile_async<kBlockN, kHeadDim>(sV, v + n0 * ld, ld, T - n0);
    cp_async_commit();

    // A warp whose rows all precede the tile's first key, or all lie past T, has nothing to do.
    const bool warp_active =
        !flash::fully_masked(m0 + warp_row0, Tiles::kWarpRows, n0) && m0 + warp_row0 < T;
    float acc_s[kMTiles][kNTiles][4];
    if (warp_active) {
      // S = Q·K_jᵀ (unscaled)
#pragma unroll
      for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
        for (int nt = 0; nt < kNTiles; ++nt) {
#pragma unroll
          for (int e = 0; e < 4; ++e) acc_s[mt][nt][e] = 0.0f;
        }
      }
#pragma unroll
      for (int kk = 0; kk < kHeadDim / 16; ++kk) {
        uint32_t a[kMTiles][4];
#pragma unroll
        for (int mt = 0; mt < kMTiles; ++mt) {
          if constexpr (kQInRegisters) {
#pragma unroll
            for (int r = 0; r < 4; ++r) a[mt][r] = q_frag[mt][kk][r];
          } else {
            ldmatrix_x4(a[mt], q_a + (mt * 16 * kStride + kk * 16) * 2);
          }
        }
#pragma unroll
        for (int np = 0; np < kBlockN / 16; ++np) {
          uint32_t bk[4];
          ldmatrix_x4(bk, k_b + np * 16 * kRowBytes + kk * 32);
#pragma unroll
          for (int mt = 0; mt < kMTiles; ++mt) {
            mma_bf16(acc_s[mt][2 * np], a[mt], bk[0], bk[1]);
            mma_bf16(acc_s[mt][2 * np + 1], a[mt], bk[2], bk[3]);
          }
        }
      }

      if (flash::needs_causal_mask(m0 + warp_row0, n0, kBlockN)) {
#pragma unroll
        for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
          for (int nt = 0; nt < kNTiles; ++nt) {
#pragma unroll
            for (int e = 0; e < 4; ++e) {
              const RowCol rc = flash::mma_c_element(lane, e);
              const int query = m0 + warp_row0 + mt * 16 + rc.row;
              const int key = n0 + nt * 8 + rc.col;
              if (key > query) acc_s[mt][nt][e] = -INFINITY;
            }
          }
        }
      }

      // Online softmax. Each row's scores of this tile are spread over the 4 lanes of a group
      // (mma_c_element): reduce the maximum over the group with two butterfly shuffles. Row sums
      // stay per lane (the same rescaling applies to every partial) and are reduced at the end.
#pragma unroll
      for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          float tile_max = -INFINITY;
#pragma unroll
          for (int nt = 0; nt < kNTiles; ++nt) {
            tile_max = fmaxf(tile_max, fmaxf(acc_s[mt][nt][2 * r], acc_s[mt][nt][2 * r + 1]));
          }
          tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
          tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 2));
          const float new_max = fmaxf(row_max[mt][r], tile_max);
          // A row with every key so far masked keeps max -inf: subtract 0 instead (exp2(-inf) = 0
          // then, never exp2(-inf + inf) = NaN).
          const float max_scaled = new_max == -INFINITY ? 0.0f : new_max * scale_log2;
          const float rescale = exp2f(row_max[mt][r] * scale_log2 - max_scaled);
          row_max[mt][r] = new_max;
          float tile_sum = 0.0f;
#pragma unroll
          for (int nt = 0; nt < kNTiles; ++nt) {
#pragma unroll
            for (int e = 2 * r; e < 2 * r + 2; ++e) {
              const float p = exp2f(fmaf(acc_s[mt][nt][e], scale_log2, -max_scaled));
              acc_s[mt][nt][e] = p;
              tile_sum += p;
            }
          }
          row_sum[mt][r] = row_sum[mt][r] * rescale + tile_sum;
#pragma unroll
          for (int dt = 0; dt < kDTiles; ++dt) {
            acc_o[mt][dt][2 * r] *= rescale;
            acc_o[mt][dt][2 * r + 1] *= rescale;
          }
        }
      }
    }

    cp_async_wait<0>();  // V_j has landed
    __syncthreads();     // ... for every thread; and every warp is done with K_j
    if (j + 1 < key_tiles) {
      load_tile_async<kBlockN, kHeadDim>(sK, k + (n0 + kBlockN) * ld, ld, T - n0 - kBlockN);
      cp_async_commit();
    }

    if (warp_active) {
      // O += P·V_j, P (bf16) straight from the score accumulators.
#pragma unroll
      for (int kk = 0; kk < kBlockN / 16; ++kk) {
        uint32_t a[kMTiles][4];
#pragma unroll
        for (int mt = 0; mt < kMTiles; ++mt) accumulators_to_a(a[mt], acc_s[mt], kk);
#pragma unroll
        for (int dp = 0; dp < kHeadDim / 16; ++dp) {
          uint32_t bv[4];
          ldmatrix_x4_trans(bv, v_bt + kk * 16 * kRowBytes + dp * 32);
#pragma unroll
          for (int mt = 0; mt < kMTiles; ++mt) {
            mma_bf16(acc_o[mt][2 * dp], a[mt], bv[0], bv[1]);
            mma_bf16(acc_o[mt][2 * dp + 1], a[mt], bv[2], bv[3]);
          }
        }
      }
    }
  }

  // Epilogue: out = o / l (bf16), lse = m·scale + log l. Each lane stores bf16 pairs; the 4 lanes
  // of a group cover 16 contiguous bytes of a row.
#pragma unroll
  for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float sum = row_sum[mt][r];
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      sum += __shfl_xor_sync(0xffffffffu, sum, 2);
      const int query = m0 + warp_row0 + mt * 16 + lane / 4 + 8 * r;
      if (query >= T) continue;
      const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
      bf16* o = out + (static_cast<int64_t>(b) * T + query) * NH * kHeadDim +
                static_cast<int64_t>(h) * kHeadDim + 2 * (lane % 4);
#pragma unroll
      for (int dt = 0; dt < kDTiles; ++dt) {
        *reinterpret_cast<uint32_t*>(o + dt * 8) =
            pack_bf16x2(acc_o[mt][dt][2 * r] * inv, acc_o[mt][dt][2 * r + 1] * inv);
      }
      if (lane % 4 == 0) {
        lse[static_cast<int64_t>(block.bh) * T + query] = row_max[mt][r] * scale + logf(sum);
      }
    }
  }
}

// ---- backward: D = rowsum(dO ⊙ O)
// ---------------------------------------------------------------- One warp per (b, t) row of the
// (B, T, C) tensors: lanes take 16-byte chunks, the HS/8 lanes of a head reduce by butterfly
// shuffles (fixed order), the first of them writes D[b, h, t].
template <int kHeadDim>
__global__ void __launch_bounds__(kThreads)
    flash_backward_dot_kernel(float* __restrict__ D, const bf16* __restrict__ dout,
                              const bf16* __restrict__ out, int B, int T, int C, int NH) {
  constexpr int kLanesPerHead = kHeadDim / 8;
  const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
  const int64_t row =
      static_cast<int64_t>(blockIdx.x) * kWarps + static_cast<int>(threadIdx.x) / kWarpSize;
  if (row >= static_cast<int64_t>(B) * T) return;
  const int64_t b = row / T;
  const int t = static_cast<int>(row % T);
  const bf16* o = out + row * C;
  const bf16* dO = dout + row * C;
  const int chunks = C / 8;
  for (int c0 = 0; c0 < chunks; c0 += kWarpSize) {
    const int c = c0 + lane;
    float s = 0.0f;
    if (c < chunks) {
      const Packed128<bf16> x = load128(o + c * 8);
      const Packed128<bf16> y = load128(dO + c * 8);
#pragma unroll
      for (int e = 0; e < 8; ++e) s += __bfloat162float(x[e]) * __bfloat162float(y[e]);
    }
#pragma unroll
    for (int offset = kLanesPerHead / 2; offset > 0; offset /= 2) {
      s += __shfl_xor_sync(0xffffffffu, s, offset);
    }
    if (c < chunks && lane % kLanesPerHead == 0) {
      const int h = c / kLanesPerHead;
      D[(b * NH + h) * T + t] = s;
    }
  }
}

// ---- backward: dK, dV (per key tile) and dQ (ordered across key tiles)
// ---------------------------

template <int kHeadDim>
struct BackwardTiles {
  static constexpr int kBlockN = 64;           // keys per CTA, 16 per warp
  static constexpr int kBlockM = 64;           // queries per step; dQ: 16 per warp
  static constexpr int kQTiles = kBlockM / 8;  // n8 tiles of Sᵀ (queries)
  static constexpr int kDTiles = kHeadDim / 8;
  static constexpr int kStride = flash::padded_stride(kHeadDim);
  static constexpr int kSStride = flash::padded_stride(kBlockM);  // the dSᵀ tile
  static constexpr size_t kTileRowBytes = static_cast<size_t>(kStride) * sizeof(bf16);
  static constexpr size_t kSmemBytes = 2 * kBlockN * kTileRowBytes          // K, V
                                       + 2 * 2 * kBlockM * kTileRowBytes    // Q, dO (×2)
                                       + kBlockN * kSStride * sizeof(bf16)  // dSᵀ
                                       + 2 * 2 * kBlockM * sizeof(float);   // lse, D (×2)
  static_assert(kBlockN == 16 * kWarps && kBlockM == 16 * kWarps, "one m16 tile per warp");
  // Registers: up to 255 per thread, 2 CTAs per SM, no spills (CUDA 13.0). At 3 CTAs per SM (168
  // registers; shared memory would allow it for HS 64 on an H100) ptxas spills 8-12 bytes for
  // HS 64: a candidate to try on a GPU after trimming a few registers.
};

template <int kHeadDim>
__global__ void __launch_bounds__(kThreads)
    flash_backward_kernel(bf16* __restrict__ dqkv, float* __restrict__ dq_accum,
                          int* __restrict__ dq_counters, int* __restrict__ tile_ticket,
                          const bf16* __restrict__ dout, const bf16* __restrict__ qkv,
                          const float* __restrict__ lse, const float* __restrict__ D, int T, int NH,
                          int NKV, int group, int num_m_tiles, int num_n_tiles, float scale,
                          float scale_log2) {
  using Tiles = BackwardTiles<kHeadDim>;
  constexpr int kBlockM = Tiles::kBlockM, kBlockN = Tiles::kBlockN, kQTiles = Tiles::kQTiles;
  constexpr int kDTiles = Tiles::kDTiles, kStride = Tiles::kStride, kSStride = Tiles::kSStride;
  constexpr int kRowBytes = kStride * static_cast<int>(sizeof(bf16));
  constexpr int kBufferBytes = kBlockM * kRowBytes;  // one Q or dO buffer

  extern __shared__ __align__(128) unsigned char smem_raw[];
  bf16* sK = reinterpret_cast<bf16*>(smem_raw);
  bf16* sV = sK + kBlockN * kStride;
  bf16* sQ = sV + kBlockN * kStride;        // [2][kBlockM][kStride]
  bf16* sdO = sQ + 2 * kBlockM * kStride;   // [2][kBlockM][kStride]
  bf16* sdS = sdO + 2 * kBlockM * kStride;  // [kBlockN][kSStride]: dSᵀ, keys as rows
  float* s_lse = reinterpret_cast<float*>(sdS + kBlockN * kSStride);  // [2][kBlockM], ·log2e
  float* s_D = s_lse + 2 * kBlockM;                                   // [2][kBlockM]

  const int tid = static_cast<int>(threadIdx.x);
  const int lane = tid % kWarpSize;
  const int warp = tid / kWarpSize;
  // The tile comes from a ticket taken now that this CTA runs, not from blockIdx.x: a tile waits
  // only on tiles of smaller tickets, which running CTAs hold (flash_attention_index.h).
  __shared__ int s_ticket;
  if (tid == 0) s_ticket = atomicAdd(tile_ticket, 1);
  __syncthreads();
  // The tile's pair is (batch, key/value head): block.bh = b·NKV + kv. Its query heads are
  // h0 .. h0 + group - 1 with h0 = kv·group: head h0 + g is at column g·kHeadDim from q_offset in
  // qkv (and dqkv) and from dO, and is (batch, query head) pair bh0 + g of lse, D, the dQ
  // accumulator and the turn counters. Only these few values stay live through the loop; per-head
  // pointers are derived from them where used (the kernel runs at the register limit).
  const flash::BackwardBlock block = flash::backward_block(s_ticket, num_n_tiles);
  const int b = block.bh / NKV;
  const int kv = block.bh % NKV;
  const int bh0 = b * NH + kv * group;
  const int n_tile = block.n_tile;
  const int n0 = n_tile * kBlockN;
  const int warp_key0 = n0 + warp * 16;                              // this warp's 16 keys
  const int64_t ld = static_cast<int64_t>(NH + 2 * NKV) * kHeadDim;  // qkv rows
  const int64_t ld_out = static_cast<int64_t>(NH) * kHeadDim;        // dout rows
  const int64_t q_offset = static_cast<int64_t>(b) * T * ld + kv * group * kHeadDim;
  // K and V (dK and dV) from q_offset: past the query heads from h0 on, then kv key heads.
  const int k_column = (NH - kv * group + kv) * kHeadDim;
  const int v_column = k_column + NKV * kHeadDim;
  const bf16* dO = dout + static_cast<int64_t>(b) * T * ld_out + kv * group * kHeadDim;
  const int m_first = flash::backward_first_query_tile(n_tile, kBlockM, kBlockN);

  // Per-lane ldmatrix base addresses (bytes); fragment loads add compile-time offsets.
  const RowChunk a_lane = flash::ldmatrix_a_lane(lane);
  const RowChunk b_lane = flash::ldmatrix_b_lane(lane);
  const RowChunk bt_lane = flash::ldmatrix_b_trans_lane(lane);
  const RowChunk at_lane = flash::ldmatrix_a_trans_lane(lane);
  const int a_off = tile_offset(warp * 16 + a_lane.row, a_lane.chunk, kStride);
  const uint32_t k_a = smem_address(sK + a_off);  // K_w, V_w as A (this warp's keys)
  const uint32_t v_a = smem_address(sV + a_off);
  const uint32_t q_b = smem_address(sQ + tile_offset(b_lane.row, b_lane.chunk, kStride));
  const uint32_t do_b = q_b + 2 * kBufferBytes;
  const uint32_t q_bt = smem_address(sQ + tile_offset(bt_lane.row, bt_lane.chunk, kStride));
  const uint32_t do_bt = q_bt + 2 * kBufferBytes;
  const uint32_t k_bt = smem_address(sK + tile_offset(bt_lane.row, bt_lane.chunk, kStride));
  const uint32_t ds_at =
      smem_address(sdS + tile_offset(at_lane.row, warp * 2 + at_lane.chunk, kSStride));

  load_tile_async<kBlockN, kHeadDim>(sK, qkv + q_offset + k_column + n0 * ld, ld, T - n0);
  load_tile_async<kBlockN, kHeadDim>(sV, qkv + q_offset + v_column + n0 * ld, ld, T - n0);
  load_tile_async<kBlockM, kHeadDim>(sQ, qkv + q_offset + m_first * kBlockM * ld, ld,
                                     T - m_first * kBlockM);
  load_tile_async<kBlockM, kHeadDim>(sdO, dO + m_first * kBlockM * ld_out, ld_out,
                                     T - m_first * kBlockM);
  cp_async_commit();
  if (tid < kBlockM) {
    const int query = m_first * kBlockM + tid;
    // Queries past T: lse = +inf makes P = exp2(s - inf) = 0, so they contribute nothing.
    const int64_t row = static_cast<int64_t>(bh0) * T + query;
    s_lse[tid] = query < T ? lse[row] * kLog2e : INFINITY;
    s_D[tid] = query < T ? D[row] : 0.0f;
  }

  float acc_dk[kDTiles][4];
  float acc_dv[kDTiles][4];
#pragma unroll
  for (int dt = 0; dt < kDTiles; ++dt) {
#pragma unroll
    for (int e = 0; e < 4; ++e) acc_dk[dt][e] = acc_dv[dt][e] = 0.0f;
  }

  // One step per (query head g of the group, query tile m_tile): the query tiles m_first .. M - 1
  // of head h0, then those of h0 + 1, ...; dK and dV gather every step in registers, in that
  // order. The turn counters are laid out [pair][query tile].
  int g = 0, m_tile = m_first, buf = 0;
  for (;;) {
    const uint32_t buf_bytes = buf * kBufferBytes;
    const int m0 = m_tile * kBlockM;
    const float* lse_tile = s_lse + buf * kBlockM;
    const float* D_tile = s_D + buf * kBlockM;
    const bool head_ends = m_tile + 1 == num_m_tiles;  // the next step is the next head's first
    const bool has_next = !head_ends || g + 1 < group;
    const int next_g = head_ends ? g + 1 : g;
    const int next_m = head_ends ? m_first : m_tile + 1;
    int* counter = dq_counters + static_cast<int64_t>(bh0 + g) * num_m_tiles + m_tile;

    // Prefetch the next step into the other buffers (free: their last readers passed the barrier
    // after the dSᵀ store of the previous step). lse and D go through registers, stored at the end.
    float lse_next = 0.0f, D_next = 0.0f;
    if (has_next) {
      const int next0 = next_m * kBlockM;
      load_tile_async<kBlockM, kHeadDim>(sQ + (buf ^ 1) * kBlockM * kStride,
                                         qkv + q_offset + next_g * kHeadDim + next0 * ld, ld,
                                         T - next0);
      load_tile_async<kBlockM, kHeadDim>(sdO + (buf ^ 1) * kBlockM * kStride,
                                         dO + next_g * kHeadDim + next0 * ld_out, ld_out,
                                         T - next0);
      cp_async_commit();
      if (tid < kBlockM) {
        const int query = next0 + tid;
        const int64_t row = static_cast<int64_t>(bh0 + next_g) * T + query;
        lse_next = query < T ? lse[row] * kLog2e : INFINITY;
        D_next = query < T ? D[row] : 0.0f;
      }
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();

    // Sᵀ = K_w·Q_iᵀ and dPᵀ = V_w·dO_iᵀ for this warp's 16 keys × kBlockM queries.
    float acc_s[kQTiles][4];
    float acc_dp[kQTiles][4];
#pragma unroll
    for (int nt = 0; nt < kQTiles; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) acc_s[nt][e] = acc_dp[nt][e] = 0.0f;
    }
#pragma unroll
    for (int kk = 0; kk < kHeadDim / 16; ++kk) {
      uint32_t ak[4], av[4];
      ldmatrix_x4(ak, k_a + kk * 32);
      ldmatrix_x4(av, v_a + kk * 32);
#pragma unroll
      for (int np = 0; np < kBlockM / 16; ++np) {
        const uint32_t offset = buf_bytes + np * 16 * kRowBytes + kk * 32;
        uint32_t bq[4], bdo[4];
        ldmatrix_x4(bq, q_b + offset);
        ldmatrix_x4(bdo, do_b + offset);
        mma_bf16(acc_s[2 * np], ak, bq[0], bq[1]);
        mma_bf16(acc_s[2 * np + 1], ak, bq[2], bq[3]);
        mma_bf16(acc_dp[2 * np], av, bdo[0], bdo[1]);
        mma_bf16(acc_dp[2 * np + 1], av, bdo[2], bdo[3]);
      }
    }

    // The previous step's dQ share is in the accumulator (the barrier at the top of this step came
    // after its stores): publish its turn now (see the end of the step). The previous step was
    // tile m_tile - 1 of this head, or at a head's first step the previous head's last tile.
    const bool head_starts = m_tile == m_first;
    if (n_tile != 0 && (g > 0 || !head_starts) && tid == 0) {
      const int m_prev = head_starts ? num_m_tiles - 1 : m_tile - 1;
      publish_turn(counter - (head_starts ? 1 + m_first : 1),
                   flash::dq_order(m_prev, n_tile, kBlockM, kBlockN, T) + 1);
    }

    // Pᵀ = exp2(Sᵀ·scale·log2e - lse·log2e), zero where key > query; dSᵀ = Pᵀ ⊙ (dPᵀ - D).
    const bool mask = flash::needs_causal_mask(m0, warp_key0, 16);
#pragma unroll
    for (int nt = 0; nt < kQTiles; ++nt) {
      const int col = nt * 8 + 2 * (lane % 4);  // query within the tile (and col + 1)
      const float2 lse2 = *reinterpret_cast<const float2*>(lse_tile + col);
      const float2 d2 = *reinterpret_cast<const float2*>(D_tile + col);
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const RowCol rc = flash::mma_c_element(lane, e);
        const float l = (e % 2) ? lse2.y : lse2.x;
        const float d = (e % 2) ? d2.y : d2.x;
        float p = exp2f(fmaf(acc_s[nt][e], scale_log2, -l));
        if (mask && warp_key0 + rc.row > m0 + nt * 8 + rc.col) p = 0.0f;
        acc_s[nt][e] = p;
        acc_dp[nt][e] = p * (acc_dp[nt][e] - d);
      }
    }

    // dV += Pᵀ·dO_i and dK += dSᵀ·Q_i (scale applied at the end); A from registers, B = dO_i, Q_i
    // stored [query][channel] = [k][n]: ldmatrix .trans.
#pragma unroll
    for (int kk = 0; kk < kBlockM / 16; ++kk) {
      uint32_t ap[4], ads[4];
      accumulators_to_a(ap, acc_s, kk);
      accumulators_to_a(ads, acc_dp, kk);
      // dSᵀ (these bf16 values, as the dK product uses them) to shared memory for dQ: A register r
      // holds key row lane/4 + 8(r % 2), query columns 8(2kk + r/2) + 2(lane % 4) and + 1.
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const int key = warp * 16 + lane / 4 + 8 * (r % 2);
        *reinterpret_cast<uint32_t*>(sdS + tile_offset(key, 2 * kk + r / 2, kSStride) +
                                     2 * (lane % 4)) = ads[r];
      }
#pragma unroll
      for (int dp = 0; dp < kHeadDim / 16; ++dp) {
        const uint32_t offset = buf_bytes + kk * 16 * kRowBytes + dp * 32;
        uint32_t bdo[4], bq[4];
        ldmatrix_x4_trans(bdo, do_bt + offset);
        ldmatrix_x4_trans(bq, q_bt + offset);
        mma_bf16(acc_dv[2 * dp], ap, bdo[0], bdo[1]);
        mma_bf16(acc_dv[2 * dp + 1], ap, bdo[2], bdo[3]);
        mma_bf16(acc_dk[2 * dp], ads, bq[0], bq[1]);
        mma_bf16(acc_dk[2 * dp + 1], ads, bq[2], bq[3]);
      }
    }

    // The order of this tile's dQ share (kernels/flash_attention_index.h: dq_order): the first
    // share writes the accumulator, the others add to it, the last (key tile 0) writes dQ. The
    // first look at the counter is issued now so that its latency overlaps the dQ product.
    const int order = flash::dq_order(m_tile, n_tile, kBlockM, kBlockN, T);
    const bool first = order == 0;
    const bool last = n_tile == 0;
    int seen = 0;
    if (!first && tid == 0) seen = load_acquire(counter);

    __syncthreads();

    // dQ share of this key tile: warp w takes queries [16w, 16w + 16) of the step, all channels:
    // dQ_w = dS[w rows]·K_j, A = dS read transposed from dSᵀ, B = K_j stored [key][channel].
    float acc_dq[kDTiles][4];
#pragma unroll
    for (int dt = 0; dt < kDTiles; ++dt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) acc_dq[dt][e] = 0.0f;
    }
#pragma unroll
    for (int kk = 0; kk < kBlockN / 16; ++kk) {
      uint32_t ads[4];
      ldmatrix_x4_trans(ads, ds_at + kk * 16 * kSStride * 2);
#pragma unroll
      for (int dp = 0; dp < kHeadDim / 16; ++dp) {
        uint32_t bk[4];
        ldmatrix_x4_trans(bk, k_bt + kk * 16 * kRowBytes + dp * 32);
        mma_bf16(acc_dq[2 * dp], ads, bk[0], bk[1]);
        mma_bf16(acc_dq[2 * dp + 1], ads, bk[2], bk[3]);
      }
    }

    if (!first) {
      if (tid == 0) {
        while (seen != order) seen = load_acquire(counter);
      }
      __syncthreads();
    }
    // This lane's float4 of n-tile dt is accum[dt · kWarpSize].
    float4* accum = reinterpret_cast<float4*>(
        dq_accum +
        flash::dq_accum_offset(bh0 + g, m_tile, warp, 0, lane, num_m_tiles, kBlockM, kHeadDim));
#pragma unroll
    for (int dt = 0; dt < kDTiles; ++dt) {
      float4 sum = make_float4(acc_dq[dt][0], acc_dq[dt][1], acc_dq[dt][2], acc_dq[dt][3]);
      if (!first) {
        const float4 prev = __ldcg(accum + dt * kWarpSize);
        sum.x += prev.x;
        sum.y += prev.y;
        sum.z += prev.z;
        sum.w += prev.w;
      }
      if (!last) {
        __stcg(accum + dt * kWarpSize, sum);
      } else {
        const int query = m0 + warp * 16 + lane / 4;
        bf16* dq = dqkv + q_offset + g * kHeadDim + static_cast<int64_t>(query) * ld + dt * 8 +
                   2 * (lane % 4);
        if (query < T) {
          *reinterpret_cast<uint32_t*>(dq) = pack_bf16x2(sum.x * scale, sum.y * scale);
        }
        if (query + 8 < T) {
          *reinterpret_cast<uint32_t*>(dq + 8 * ld) = pack_bf16x2(sum.z * scale, sum.w * scale);
        }
      }
    }
    // This share's turn is published early in the next step (or after the loop): the publishing
    // fence then finds these stores drained, and the next key tile needs the turn only a step
    // later.

    if (has_next && tid < kBlockM) {
      s_lse[(buf ^ 1) * kBlockM + tid] = lse_next;
      s_D[(buf ^ 1) * kBlockM + tid] = D_next;
    }
    if (!has_next) break;
    g = next_g;
    m_tile = next_m;
    buf ^= 1;
  }

  if (n_tile != 0) {  // the last step's turn: the last head's last query tile
    __syncthreads();
    if (tid == 0) {
      publish_turn(dq_counters + static_cast<int64_t>(bh0 + group) * num_m_tiles - 1,
                   flash::dq_order(num_m_tiles - 1, n_tile, kBlockM, kBlockN, T) + 1);
    }
  }

  // dK = scale·Σ dSᵀ·Q, dV = Σ Pᵀ·dO, rows = this warp's keys (those < T).
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int key = warp_key0 + lane / 4 + 8 * r;
    if (key >= T) continue;
    bf16* dk = dqkv + q_offset + k_column + key * ld + 2 * (lane % 4);
    bf16* dv = dqkv + q_offset + v_column + key * ld + 2 * (lane % 4);
#pragma unroll
    for (int dt = 0; dt < kDTiles; ++dt) {
      *reinterpret_cast<uint32_t*>(dk + dt * 8) =
          pack_bf16x2(acc_dk[dt][2 * r] * scale, acc_dk[dt][2 * r + 1] * scale);
      *reinterpret_cast<uint32_t*>(dv + dt * 8) =
          pack_bf16x2(acc_dv[dt][2 * r], acc_dv[dt][2 * r + 1]);
    }
  }
}

// ---- launchers ----------------------------------------------------------------------------------

size_t align256(size_t n) {
  return (n + 255) / 256 * 256;
}

struct BackwardWorkspace {
  size_t d_offset = 0, accum_offset = 0, counter_offset = 0, total = 0;
};
BackwardWorkspace backward_workspace(const cpu::AttentionShape& a) {
  const size_t BNH = static_cast<size_t>(a.B) * a.n_head;
  const int M = flash::num_tiles(a.T, BackwardTiles<64>::kBlockM);
  BackwardWorkspace w;
  w.d_offset = 0;
  w.accum_offset = align256(BNH * a.T * sizeof(float));
  w.counter_offset =
      w.accum_offset +
      align256(static_cast<size_t>(flash::dq_accum_floats(
                   static_cast<int>(BNH), M, BackwardTiles<64>::kBlockM, a.head_size)) *
               sizeof(float));
  // The dQ turn counters and, after them, the tile ticket: zeroed together before each backward.
  w.total = w.counter_offset + align256((BNH * M + 1) * sizeof(int));
  return w;
}

void check_arguments(const char* what, const cpu::AttentionShape& a) {
  if (a.B < 0 || a.T < 0 || a.n_head <= 0 || a.n_kv_head <= 0 || a.n_head % a.n_kv_head != 0) {
    throw std::invalid_argument(std::string(what) + ": bad shape B=" + std::to_string(a.B) +
                                " T=" + std::to_string(a.T) + " NH=" + std::to_string(a.n_head) +
                                " NKV=" + std::to_string(a.n_kv_head));
  }
  if (!flash_attention_supported(a.head_size)) {
    throw std::invalid_argument(std::string(what) + ": head size " + std::to_string(a.head_size) +
                                " is not supported by the fused kernels (64 or 128)");
  }
}
void check_aligned(const void* p, const char* what, const char* name) {
  if (!is_aligned16(p)) {
    throw std::invalid_argument(std::string(what) + ": " + name + " is not 16-byte aligned");
  }
}
unsigned grid_size(long long blocks, const char* what) {
  if (blocks > 0x7fffffffLL) {
    throw std::invalid_argument(std::string(what) + ": too many blocks (" + std::to_string(blocks) +
                                ")");
  }
  return static_cast<unsigned>(blocks);
}

// The multi-head shape of the (B, T, C, NH) entry points; C not a multiple of NH gives a head
// size of 0, which check_arguments rejects.
cpu::AttentionShape multi_head(int B, int T, int C, int NH) {
  const int HS = NH > 0 && C > 0 && C % NH == 0 ? C / NH : 0;
  return cpu::AttentionShape{B, T, NH, NH, HS};
}

template <int kHeadDim>
void launch_forward(bf16* out, float* lse, const bf16* qkv, const cpu::AttentionShape& a,
                    cudaStream_t stream) {
  using Tiles = ForwardTiles<kHeadDim>;
  const int M = flash::num_tiles(a.T, Tiles::kBlockM);
  const int BNH = a.B * a.n_head;
  const unsigned grid = grid_size(static_cast<long long>(M) * BNH, "flash_attention_forward");
  const double scale = 1.0 / std::sqrt(static_cast<double>(kHeadDim));
  GPT_CUDA_CHECK(cudaFuncSetAttribute(flash_forward_kernel<kHeadDim>,
                                      cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      static_cast<int>(Tiles::kSmemBytes)));
  flash_forward_kernel<kHeadDim><<<grid, kThreads, Tiles::kSmemBytes, stream>>>(
      out, lse, qkv, a.T, a.n_head, a.n_kv_head, a.n_head / a.n_kv_head, BNH, M,
      static_cast<float>(scale), static_cast<float>(scale * kLog2eDouble));
  GPT_CUDA_CHECK_LAUNCH();
}

template <int kHeadDim>
void launch_backward(bf16* dqkv, const bf16* dout, const bf16* qkv, const bf16* out,
                     const float* lse, const cpu::AttentionShape& a, void* workspace,
                     cudaStream_t stream) {
  using Tiles = BackwardTiles<kHeadDim>;
  const BackwardWorkspace w = backward_workspace(a);
  char* base = static_cast<char*>(workspace);
  float* D = reinterpret_cast<float*>(base + w.d_offset);
  float* accum = reinterpret_cast<float*>(base + w.accum_offset);
  int* counters = reinterpret_cast<int*>(base + w.counter_offset);
  const int M = flash::num_tiles(a.T, Tiles::kBlockM);
  const int N = flash::num_tiles(a.T, Tiles::kBlockN);
  const size_t BNH = static_cast<size_t>(a.B) * a.n_head;
  const double scale = 1.0 / std::sqrt(static_cast<double>(kHeadDim));

  GPT_CUDA_CHECK(cudaMemsetAsync(counters, 0, (BNH * M + 1) * sizeof(int), stream));
  int* ticket = counters + BNH * M;
  const unsigned dot_grid = grid_size((static_cast<long long>(a.B) * a.T + kWarps - 1) / kWarps,
                                      "flash_attention_backward");
  flash_backward_dot_kernel<kHeadDim>
      <<<dot_grid, kThreads, 0, stream>>>(D, dout, out, a.B, a.T, a.n_head * kHeadDim, a.n_head);
  GPT_CUDA_CHECK_LAUNCH();

  // One CTA per key tile of each (batch, key/value head) pair.
  const unsigned grid =
      grid_size(static_cast<long long>(N) * a.B * a.n_kv_head, "flash_attention_backward");
  GPT_CUDA_CHECK(cudaFuncSetAttribute(flash_backward_kernel<kHeadDim>,
                                      cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      static_cast<int>(Tiles::kSmemBytes)));
  flash_backward_kernel<kHeadDim><<<grid, kThreads, Tiles::kSmemBytes, stream>>>(
      dqkv, accum, counters, ticket, dout, qkv, lse, D, a.T, a.n_head, a.n_kv_head,
      a.n_head / a.n_kv_head, M, N, static_cast<float>(scale),
      static_cast<float>(scale * kLog2eDouble));
  GPT_CUDA_CHECK_LAUNCH();
}

}  // namespace

bool flash_attention_supported(int head_size) {
  return head_size == 64 || head_size == 128;
}

void flash_attention_forward(bf16* out, float* lse, const bf16* qkv,
                             const cpu::AttentionShape& shape, cudaStream_t stream) {
  const char* what = "flash_attention_forward";
  check_arguments(what, shape);
  if (shape.B == 0 || shape.T == 0) return;
  check_aligned(out, what, "out");
  check_aligned(qkv, what, "qkv");
  if (shape.head_size == 64) {
    launch_forward<64>(out, lse, qkv, shape, stream);
  } else {
    launch_forward<128>(out, lse, qkv, shape, stream);
  }
}

size_t flash_attention_backward_workspace_bytes(const cpu::AttentionShape& shape) {
  check_arguments("flash_attention_backward_workspace_bytes", shape);
  return backward_workspace(shape).total;
}

void flash_attention_backward(bf16* dqkv, const bf16* dout, const bf16* qkv, const bf16* out,
                              const float* lse, const cpu::AttentionShape& shape, void* workspace,
                              size_t workspace_bytes, cudaStream_t stream) {
  const char* what = "flash_attention_backward";
  check_arguments(what, shape);
  if (shape.B == 0 || shape.T == 0) return;
  check_aligned(dqkv, what, "dqkv");
  check_aligned(dout, what, "dout");
  check_aligned(qkv, what, "qkv");
  check_aligned(out, what, "out");
  if (reinterpret_cast<uintptr_t>(workspace) % 256 != 0) {
    throw std::invalid_argument(std::string(what) + ": workspace is not 256-byte aligned");
  }
  const size_t needed = backward_workspace(shape).total;
  if (workspace_bytes < needed) {
    throw std::invalid_argument(std::string(what) + ": workspace of " +
                                std::to_string(workspace_bytes) + " bytes, " +
                                std::to_string(needed) + " needed");
  }
  if (shape.head_size == 64) {
    launch_backward<64>(dqkv, dout, qkv, out, lse, shape, workspace, stream);
  } else {
    launch_backward<128>(dqkv, dout, qkv, out, lse, shape, workspace, stream);
  }
}

void flash_attention_forward(bf16* out, float* lse, const bf16* qkv, int B, int T, int C, int NH,
                             cudaStream_t stream) {
  flash_attention_forward(out, lse, qkv, multi_head(B, T, C, NH), stream);
}

size_t flash_attention_backward_workspace_bytes(int B, int T, int C, int NH) {
  return flash_attention_backward_workspace_bytes(multi_head(B, T, C, NH));
}

void flash_attention_backward(bf16* dqkv, const bf16* dout, const bf16* qkv, const bf16* out,
                              const float* lse, int B, int T, int C, int NH, void* workspace,
                              size_t workspace_bytes, cudaStream_t stream) {
  flash_attention_backward(dqkv, dout, qkv, out, lse, multi_head(B, T, C, NH), workspace,
                           workspace_bytes, stream);
}

}  // namespace gpt::cuda
