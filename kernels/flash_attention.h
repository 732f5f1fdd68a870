// Fused causal attention (flash-style) for bf16 on tensor cores, forward and backward, with NH
// query heads sharing NKV key/value heads (grouped-query and multi-query attention; NKV = NH is
// multi-head attention).
//
// Same math, shapes and gradient rule as the CPU reference (kernels/attention.h, whose
// AttentionShape the launchers take): qkv (B, T, (NH + 2·NKV)·HS) packed [q | k | v] per position,
// query head h reading key/value head h / (NH / NKV), out (B, T, NH·HS), lse (B, NH, T) fp32
// natural-log logsumexp, dqkv (like qkv) OVERWRITTEN (=), dK and dV of a key/value head summed over
// its query heads. bf16 storage, fp32 accumulation and statistics. Head sizes 64 and 128
// (flash_attention_supported), independent of NH·HS; the caller uses the unfused path for any
// other. Any T >= 1 (not only multiples of a tile), any B·NH.
//
// ---- The algorithm (FlashAttention-2, Dao 2023)
// --------------------------------------------------- The T×T score matrix is never stored. The
// forward walks, for one tile of Br queries, over the key tiles of Bc keys left of and on the
// diagonal (tiles entirely above it are skipped), keeping for each query row a running maximum m, a
// running sum l of exp(s - m), and an unnormalised output accumulator o; when a new tile raises the
// maximum to m', o and l are rescaled by exp(m - m'):
//
//   S = Q·K_jᵀ·scale (masked: -inf where key > query)   m' = max(m, rowmax S)
//   P = exp(S - m')    l = l·exp(m - m') + rowsum P     o = o·exp(m - m') + P·V_j
//   finally  out = o / l,  lse = m + log l  (saved: the backward rebuilds P = exp(S - lse) exactly)
//
// exp is evaluated as exp2 of a pre-scaled score (one FFMA per element). The backward, one CTA per
// tile of Bc keys, walks over the query tiles on and below the diagonal and recomputes P:
//
//   Sᵀ = K_j·Q_iᵀ·scale   Pᵀ = exp(Sᵀ - lse_i)   dPᵀ = V_j·dO_iᵀ   dSᵀ = Pᵀ ⊙ (dPᵀ - D_i)
//   dV_j += Pᵀ·dO_i        dK_j += dSᵀ·Q_i·scale     dQ_i += dS·K_j·scale
//
// with D = rowsum(dO ⊙ O), computed beforehand by a small kernel. Computing the transposed scores
// (keys as rows) lets each warp keep Pᵀ and dSᵀ for its own 16 keys in registers and feed them
// straight into the dV and dK products; only dSᵀ goes through shared memory, for dQ, whose sum runs
// over keys, i.e. over CTAs. dQ is made deterministic without float atomics: each query tile has an
// fp32 accumulator in the workspace and a counter; the key tiles add their shares in a fixed
// (descending) order — the first writes, each next waits until the counter says the previous one is
// done, the last (key tile 0) converts to bf16 and writes dqkv. Tiles of one (batch, key/value
// head) are dispatched in that order, so every wait is on a CTA already running or finished; in a
// causal problem the tile with the next turn is also the one that started a step earlier, so waits
// are short.
//
// Grouped heads: the CTA of a key tile of key/value head kv walks the query tiles of each of its
// G = NH / NKV query heads in turn (head kv·G first), one pipeline of G·(query tiles) steps, so
// dK_j and dV_j gather the whole group in registers, in a fixed order, and are written once; K_j
// and V_j are loaded once per group. The dQ turns are per (query head, query tile); the key tile
// with the next turn on head g's tile reached it g + 1 steps earlier, so the waits stay short.
//
// ---- Tiling and tensor cores ------------------------------------------------------------------
// Products use mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 (sm_80+: A100, H100); operands
// come from shared memory through ldmatrix (.trans for the operands stored the other way round:
// V, dO and Q as B of the P·V-like products, dSᵀ as A of dQ). The accumulator layout of one mma
// equals the A-operand layout of the next, so P never leaves registers in the forward. Fragment
// and address arithmetic, the tile padding and the tile bounds are in
// kernels/flash_attention_index.h.
//
//   forward  (one CTA = one query tile of one (batch, query head); 4 warps × 32 query rows; the
//            CTAs of a group's heads read the same K_j, V_j, through L2)
//     Br = 128 queries, Bc = 64 keys; Q resident, K_j and V_j single-buffered but loaded
//     asynchronously (cp.async) so that V_j arrives while Q·K_jᵀ runs and K_{j+1} while P·V_j runs.
//     HS 64 keeps Q's fragments in registers; HS 128 reads them from shared memory each tile.
//     shared memory = (Br + 2·Bc)·(HS + 8)·2 B = 36 KiB (HS 64), 68 KiB (HS 128).
//   backward (one CTA = one key tile of one (batch, key/value head); 4 warps × 16 keys)
//     Bc = 64 keys, Br = 64 queries per step; K_j, V_j resident, Q_i, dO_i, lse_i, D_i
//     double-buffered so that step i+1's loads overlap step i.
//     shared memory = (2·Bc + 4·Br)·(HS + 8)·2 + Bc·(Br + 8)·2 + 4·Br·4 B = 64 KiB (HS 64),
//     112 KiB (HS 128).
//   Shared-memory rows are padded by 16 bytes (conflict-free ldmatrix without an XOR swizzle, so
//   every fragment address is a per-lane base plus a constant). All kernels use 128 threads and
//   up to 255 registers (no spills; ptxas -v in the build log): 2 CTAs = 8 warps per SM.
//
// ---- Arithmetic intensity -----------------------------------------------------------------------
// Forward: per key tile a CTA reads 2·Bc·HS·2 B of K and V from L2/DRAM and does 2·2·Br·Bc·HS
// FLOPs: Br = 128 FLOP/B (the T×T matrices of the unfused path move 2-6 bytes per score instead).
// From shared memory each warp reads K_j and V_j once per tile for 32 rows (2 m-tiles share every B
// fragment): 32 FLOP/B with Q in registers, 25.6 with Q re-read. An SM's tensor cores need about
// 16 FLOP per byte of its 128 B/clock of shared-memory bandwidth on an A100 (2048 FLOP/clock) and
// about 21 on an H100 running mma.sync, so the forward is tensor-bound. Backward: 5 products per
// (query tile, key tile) pair; per step a warp reads Q_i and dO_i twice each (as Bᵀ for Sᵀ and dPᵀ,
// as B for dK and dV), all of K_j for dQ, its own K and V rows and its dS rows: 10240·HS FLOPs for
// about 704·HS + 4096 bytes, 13-14 FLOP/B, below the balance point: the backward is bound by
// shared-memory bandwidth, as flash backward kernels generally are (hence their lower fraction
// of peak than the forward's).
// Global memory stays O(T): nothing of size T×T exists; the backward workspace is D (B·NH·T fp32),
// the dQ accumulator (B·NH·ceil(T/64)·64·HS fp32) and one counter per query tile of each query
// head.
//
// ---- API ----------------------------------------------------------------------------------------
// Host-callable launchers on raw device pointers and a stream; they check what they can (head size,
// 16-byte alignment of the bf16 tensors, workspace size, grid limits) and throw
// std::invalid_argument otherwise. Launch failures throw gpt::cuda::CudaError (cuda_common.cuh).
// Both passes are deterministic: the same inputs give the same bits.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstddef>

#include "kernels/attention.h"

namespace gpt::cuda {

// Whether the fused kernels handle this head size (64 or 128).
bool flash_attention_supported(int head_size);

// out (B, T, NH·HS) =, lse (B, NH, T) = ; qkv (B, T, (NH + 2·NKV)·HS), HS in {64, 128}.
void flash_attention_forward(__nv_bfloat16* out, float* lse, const __nv_bfloat16* qkv,
                             const cpu::AttentionShape& shape, cudaStream_t stream);

// Bytes of device workspace flash_attention_backward needs (256-byte aligned regions: D, the dQ
// accumulator, the counters). Contents need not be initialised; the backward resets the counters.
size_t flash_attention_backward_workspace_bytes(const cpu::AttentionShape& shape);

// dqkv (like qkv) = gradient of the loss w.r.t. qkv, from dout (B, T, NH·HS) and the forward's
// qkv, out and lse. workspace: flash_attention_backward_workspace_bytes(shape) bytes, 256-byte
// aligned.
void flash_attention_backward(__nv_bfloat16* dqkv, const __nv_bfloat16* dout,
                              const __nv_bfloat16* qkv, const __nv_bfloat16* out, const float* lse,
                              const cpu::AttentionShape& shape, void* workspace,
                              size_t workspace_bytes, cudaStream_t stream);

// Multi-head attention (NKV = NH, HS = C / NH; qkv (B, T, 3C), out (B, T, C)): the entry points
// above with that shape.
void flash_attention_forward(__nv_bfloat16* out, float* lse, const __nv_bfloat16* qkv, int B, int T,
                             int C, int NH, cudaStream_t stream);
size_t flash_attention_backward_workspace_bytes(int B, int T, int C, int NH);
void flash_attention_backward(__nv_bfloat16* dqkv, const __nv_bfloat16* dout,
                              const __nv_bfloat16* qkv, const __nv_bfloat16* out, const float* lse,
                              int B, int T, int C, int NH, void* workspace, size_t workspace_bytes,
                              cudaStream_t stream);

}  // namespace gpt::cuda
