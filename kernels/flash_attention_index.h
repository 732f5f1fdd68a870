// Index arithmetic of the fused attention kernels (kernels/flash_attention.cu), kept apart so that
// a plain C++ compiler can test it on a machine without a GPU (tests/test_flash_index.cpp).
//
// Three families of functions:
//   1. Tensor-core fragments of mma.sync.m16n8k16 (bf16 in, f32 accumulate): which (row, col) of
//      the A (16×16), B (16×8) and C/D (16×8) matrices each lane's registers hold, as specified in
//      the PTX ISA ("Matrix Fragments for mma.m16n8k16 with floating point type"), and the
//      ldmatrix.x4 lane-to-row address patterns that produce those fragments from shared memory.
//   2. The shared-memory layout: tiles of 16-byte chunks (8 bf16) with rows padded by one chunk, so
//      that the 8 row addresses of one ldmatrix phase hit 8 different bank groups.
//   3. Tiling of the causal problem: tile counts for any T, which key tiles a query tile visits
//      (forward), which query tiles a key tile visits (backward), which tiles need the causal mask,
//      the order in which key tiles add their share of dQ, and the block-index-to-tile schedule.
//
// Everything here is constexpr-friendly integer arithmetic; nothing depends on CUDA headers.
#pragma once

#if defined(__CUDACC__)
#define GPT_FLASH_HD __host__ __device__ __forceinline__
#else
#define GPT_FLASH_HD inline
#endif

namespace gpt::flash {

struct RowCol {
  int row;
  int col;
};

// ---- 1. mma.m16n8k16 fragments ------------------------------------------------------------------
// A warp computes D (16×8, f32) = A (16×16, bf16, row-major) · B (16×8, bf16, "col": stored as
// B's columns, i.e. [n][k]) + C. Lane l belongs to group g = l / 4 (8 groups of 4 lanes) and has
// index t = l % 4 within its group. Each 32-bit A or B register packs two bf16, the lower column
// (A) or lower row (B) in the low half.
constexpr int kMmaM = 16;
constexpr int kMmaN = 8;
constexpr int kMmaK = 16;
constexpr int kWarpSize = 32;

// Element e (0..7, register e / 2, half e % 2) of lane's A fragment.
GPT_FLASH_HD RowCol mma_a_element(int lane, int e) {
  return {lane / 4 + 8 * ((e / 2) % 2), 2 * (lane % 4) + (e % 2) + 8 * (e / 4)};
}
// Element e (0..3, register e / 2, half e % 2) of lane's B fragment; row = k, col = n.
GPT_FLASH_HD RowCol mma_b_element(int lane, int e) {
  return {2 * (lane % 4) + (e % 2) + 8 * (e / 2), lane / 4};
}
// Accumulator element e (0..3) of lane's C/D fragment.
GPT_FLASH_HD RowCol mma_c_element(int lane, int e) {
  return {lane / 4 + 8 * (e / 2), 2 * (lane % 4) + (e % 2)};
}

// Reusing accumulators as the next product's A operand (P·V with P = softmax(S) still in
// registers): the 16×16 A block of k-step kk covers accumulator n-tiles 2·kk and 2·kk + 1, and A
// register r (0..3) packs the accumulator pair (2·h, 2·h + 1) of n-tile acc_tile_of_a_register.
GPT_FLASH_HD int acc_tile_of_a_register(int kk, int r) {
  return 2 * kk + r / 2;
}
GPT_FLASH_HD int acc_pair_of_a_register(int r) {
  return r % 2;
}  // 0: (c0, c1), 1: (c2, c3)

// ---- ldmatrix.x4
// ---------------------------------------------------------------------------------
// ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16 loads four 8×8 b16 matrices. Lane l supplies the
// shared address of row l % 8 of matrix l / 8 (a 16-byte run). Register j of lane l receives from
// matrix j the elements (l / 4, 2(l % 4)) and (l / 4, 2(l % 4) + 1); with .trans the elements
// (2(l % 4), l / 4) and (2(l % 4) + 1, l / 4). The helpers give, for a 16×16 block of a tile stored
// row by row, the row (0..15) and 8-element chunk (0..1) whose address lane l supplies.
struct RowChunk {
  int row;
  int chunk;
};
// A operand (16×16, stored [m][k]), no .trans: registers 0..3 = A registers 0..3.
GPT_FLASH_HD RowChunk ldmatrix_a_lane(int lane) {
  return {lane % 16, lane / 16};
}
// Two B operands for n-tiles n0 and n0 + 8 (16 k × 16 n, stored [n][k]), no .trans: registers
// {0, 1} = B of the first n-tile, {2, 3} = B of the second.
GPT_FLASH_HD RowChunk ldmatrix_b_lane(int lane) {
  return {(lane / 16) * 8 + lane % 8, (lane / 8) % 2};
}
// Two B operands for n-tiles n0 and n0 + 8 (stored [k][n], e.g. V as [key][channel]), .trans:
// registers {0, 1} = B of the first n-tile, {2, 3} = B of the second.
GPT_FLASH_HD RowChunk ldmatrix_b_trans_lane(int lane) {
  return {((lane / 8) % 2) * 8 + lane % 8, lane / 16};
}
// A operand (16×16) stored transposed ([k][m], e.g. dSᵀ as [key][query]), .trans: registers 0..3 =
// A registers 0..3.
GPT_FLASH_HD RowChunk ldmatrix_a_trans_lane(int lane) {
  return {(lane / 16) * 8 + lane % 8, (lane / 8) % 2};
}

// ---- 2. shared-memory tiles --------------------------------------------------------------------
// A tile of bf16 rows of `cols` elements (a multiple of 8: 16-byte chunks) is stored with its rows
// padded by one chunk: row r starts at r · (cols + 8). A row is then 16·(cols/8 + 1) bytes, an odd
// number of 16-byte units when cols/8 is even, so the eight rows r0..r0+7 of one ldmatrix phase,
// read at the same chunk, fall into eight different 16-byte groups of the 32 banks (no conflicts),
// and a cp.async phase (eight consecutive chunks of one row) too. Unlike an XOR swizzle, padding
// keeps every address an affine function of (row, chunk): a lane computes one base address per
// operand and each fragment load adds a compile-time constant, which costs no registers.
GPT_FLASH_HD constexpr int padded_stride(int cols) {
  return cols + 8;
}
// Element offset of (row, chunk) in a padded tile of `stride` elements per row.
GPT_FLASH_HD constexpr int tile_offset(int row, int chunk, int stride) {
  return row * stride + chunk * 8;
}
// The 16-byte bank group (0..7 of a 128-byte span of the 32 four-byte banks) of an element offset.
GPT_FLASH_HD constexpr int bank_group(int offset) {
  return (offset * 2 / 16) % 8;
}

// ---- 3. causal tiling ---------------------------------------------------------------------------
GPT_FLASH_HD int num_tiles(int T, int tile) {
  return (T + tile - 1) / tile;
}

// Forward: query tile m (rows [m·Br, m·Br + Br)) visits key tiles 0 .. forward_key_tiles - 1, the
// tiles that hold a key <= its last valid query; tiles entirely above the diagonal are skipped.
GPT_FLASH_HD int forward_key_tiles(int m, int Br, int Bc, int T) {
  const int last_query = (m * Br + Br < T ? m * Br + Br : T) - 1;
  return last_query / Bc + 1;
}

// Whether keys [k0, k0 + count) and queries from q0 on contain a masked pair (key > query): the
// causal mask must be applied to the scores. False means every key of the block is <= every query.
// Keys at or beyond T never escape the mask: they only occur in a block that also holds a key
// above every valid query's position.
GPT_FLASH_HD bool needs_causal_mask(int q0, int k0, int count) {
  return k0 + count - 1 > q0;
}

// Whether every key of [k0, k0 + count) is above every query of [q0, q0 + rows): the whole block is
// masked and contributes nothing.
GPT_FLASH_HD bool fully_masked(int q0, int rows, int k0) {
  return k0 > q0 + rows - 1;
}

// Backward: key tile n (keys [n·Bc, n·Bc + Bc)) visits query tiles first_query_tile .. M - 1.
GPT_FLASH_HD int backward_first_query_tile(int n, int Br, int Bc) {
  return (n * Bc) / Br;
}
// The largest key tile that contributes to query tile m (the first to add its share of dQ).
GPT_FLASH_HD int backward_last_key_tile(int m, int Br, int Bc, int T) {
  return forward_key_tiles(m, Br, Bc, T) - 1;
}
// dQ of query tile m is the sum of the shares of key tiles last .. 0, added in that (descending)
// order; key tile n is at position dq_order(m, n) = last - n of that sequence: position 0 writes,
// the others wait for the count of finished shares to reach their position, then add.
GPT_FLASH_HD int dq_order(int m, int n, int Br, int Bc, int T) {
  return backward_last_key_tile(m, Br, Bc, T) - n;
}

// Block schedules (one-dimensional grids). Forward: the most expensive query tiles (the last ones,
// which visit the most key tiles) are dispatched first, all (batch, head) pairs of a tile together.
struct ForwardBlock {
  int m_tile;
  int bh;  // b · NH + h
};
GPT_FLASH_HD ForwardBlock forward_block(long long block, int BNH, int M) {
  return {M - 1 - static_cast<int>(block / BNH), static_cast<int>(block % BNH)};
}
// Backward: the key tiles of one (batch, key/value head) pair (bh = b · NKV + kv; NKV = NH without
// grouped heads) are consecutive, in descending order, so that a key tile waits (for its turn to
// add into dQ) only on tiles with a smaller index. The index is a
// ticket a CTA takes (an atomic counter) once it runs, not blockIdx.x: the hardware may dispatch
// blocks in any order, but every smaller ticket went to a CTA already running, so the wait cannot
// deadlock.
struct BackwardBlock {
  int n_tile;
  int bh;
};
GPT_FLASH_HD BackwardBlock backward_block(long long block, int N) {
  return {N - 1 - static_cast<int>(block % N), static_cast<int>(block / N)};
}
GPT_FLASH_HD long long backward_block_index(int n_tile, int bh, int N) {
  return static_cast<long long>(bh) * N + (N - 1 - n_tile);
}

// The fp32 dQ accumulator of the backward (workspace) is kept in fragment order: for each (pair bh,
// query tile m, warp w covering 16 queries, n-tile nt of 8 channels) the 32 lanes' four
// accumulators are contiguous, so each lane moves one 16-byte float4 per n-tile, fully coalesced.
// Offset in floats; M = query tiles, Br = queries per tile, HS = head size.
GPT_FLASH_HD long long dq_accum_offset(int bh, int m, int warp, int nt, int lane, int M, int Br,
                                       int HS) {
  const long long block = (static_cast<long long>(bh) * M + m) * (Br / 16) + warp;
  return ((block * (HS / 8) + nt) * kWarpSize + lane) * 4;
}
GPT_FLASH_HD long long dq_accum_floats(int BNH, int M, int Br, int HS) {
  return static_cast<long long>(BNH) * M * Br * HS;
}

}  // namespace gpt::flash
