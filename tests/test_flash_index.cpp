// CPU tests of the fused attention kernels' index arithmetic (kernels/flash_attention_index.h): the
// tensor-core fragment layouts against the PTX ISA's formulas, ldmatrix address patterns and bank
// conflicts (with an emulated ldmatrix and mma), and the causal tiling, dQ ordering and block
// schedules. These run on any machine; the kernels themselves are tested on a GPU by
// tests/test_flash_attention.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <set>
#include <utility>
#include <vector>

#include "kernels/flash_attention_index.h"

namespace {

using namespace gpt::flash;

// ---- the PTX ISA's layouts, written as the documentation states them
// ------------------------------ PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating point
// type" (.bf16 A and B, .f32 C/D):
//   groupID = %laneid >> 2, threadID_in_group = %laneid % 4
//   A: row = groupID for a_i where i < 2 || 4 <= i < 6, groupID + 8 otherwise;
//      col = threadID_in_group * 2 + (i & 0x1) for i < 4, threadID_in_group * 2 + (i & 0x1) + 8 for
//      i >= 4
//   B: row = threadID_in_group * 2 + (i & 0x1) for b_i where i < 2, ... + 8 for i >= 2; col =
//   groupID C: row = groupID for c_i where i < 2, groupID + 8 for i >= 2; col = threadID_in_group *
//   2 + (i & 0x1)
RowCol ptx_a(int lane, int i) {
  const int group = lane >> 2, tig = lane % 4;
  const int row = (i < 2 || (4 <= i && i < 6)) ? group : group + 8;
  const int col = i < 4 ? tig * 2 + (i & 1) : tig * 2 + (i & 1) + 8;
  return {row, col};
}
RowCol ptx_b(int lane, int i) {
  const int group = lane >> 2, tig = lane % 4;
  return {i < 2 ? tig * 2 + (i & 1) : tig * 2 + (i & 1) + 8, group};
}
RowCol ptx_c(int lane, int i) {
  const int group = lane >> 2, tig = lane % 4;
  return {i < 2 ? group : group + 8, tig * 2 + (i & 1)};
}

TEST(FlashIndex, MmaFragmentsMatchPtxIsa) {
  for (int lane = 0; lane < 32; ++lane) {
    for (int i = 0; i < 8; ++i) {
      EXPECT_EQ(mma_a_element(lane, i).row, ptx_a(lane, i).row) << lane << " " << i;
      EXPECT_EQ(mma_a_element(lane, i).col, ptx_a(lane, i).col) << lane << " " << i;
    }
    for (int i = 0; i < 4; ++i) {
      EXPECT_EQ(mma_b_element(lane, i).row, ptx_b(lane, i).row) << lane << " " << i;
      EXPECT_EQ(mma_b_element(lane, i).col, ptx_b(lane, i).col) << lane << " " << i;
      EXPECT_EQ(mma_c_element(lane, i).row, ptx_c(lane, i).row) << lane << " " << i;
      EXPECT_EQ(mma_c_element(lane, i).col, ptx_c(lane, i).col) << lane << " " << i;
    }
  }
}

TEST(FlashIndex, FragmentsCoverEachElementOnce) {
  std::set<std::pair<int, int>> a, b, c;
  for (int lane = 0; lane < 32; ++lane) {
    for (int i = 0; i < 8; ++i) a.insert({mma_a_element(lane, i).row, mma_a_element(lane, i).col});
    for (int i = 0; i < 4; ++i) {
      b.insert({mma_b_element(lane, i).row, mma_b_element(lane, i).col});
      c.insert({mma_c_element(lane, i).row, mma_c_element(lane, i).col});
    }
  }
  EXPECT_EQ(a.size(), 256u);  // 16 × 16
  EXPECT_EQ(b.size(), 128u);  // 16 × 8
  EXPECT_EQ(c.size(), 128u);  // 16 × 8
  for (const auto& rc : a) EXPECT_TRUE(rc.first < 16 && rc.second < 16);
  for (const auto& rc : b) EXPECT_TRUE(rc.first < 16 && rc.second < 8);
  for (const auto& rc : c) EXPECT_TRUE(rc.first < 16 && rc.second < 8);
}

// The accumulators of n-tiles 2kk and 2kk+1 hold, lane by lane, exactly the elements the A
// operand of k-step kk needs (the reason P can stay in registers between the two products).
TEST(FlashIndex, AccumulatorsReusedAsAOperand) {
  for (int kk = 0; kk < 4; ++kk) {
    for (int lane = 0; lane < 32; ++lane) {
      for (int r = 0; r < 4; ++r) {
        for (int half = 0; half < 2; ++half) {
          const RowCol a = mma_a_element(lane, 2 * r + half);
          const int tile = acc_tile_of_a_register(kk, r);
          const RowCol c = mma_c_element(lane, 2 * acc_pair_of_a_register(r) + half);
          EXPECT_EQ(a.row, c.row);
          EXPECT_EQ(kk * 16 + a.col, tile * 8 + c.col);
        }
      }
    }
  }
}

// ---- emulated ldmatrix and mma
// ---------------------------------------------------------------------- Shared memory as an array
// of values (one per bf16 element); a register is a pair of values.
using Reg = std::pair<float, float>;
struct Regs {
  Reg r[32][4];
};

// ldmatrix.x4: lane l gives the element offset of row l % 8 of matrix l / 8. Without .trans, lane
// l's register j gets (row l/4, cols 2(l%4), 2(l%4)+1) of matrix j; with .trans (rows 2(l%4),
// 2(l%4)+1, col l/4).
Regs ldmatrix_x4(const std::vector<float>& smem, const int (&offset)[32], bool trans) {
  Regs out;
  for (int j = 0; j < 4; ++j) {
    auto element = [&](int row, int col) { return smem.at(offset[8 * j + row] + col); };
    for (int l = 0; l < 32; ++l) {
      if (!trans) {
        out.r[l][j] = {element(l / 4, 2 * (l % 4)), element(l / 4, 2 * (l % 4) + 1)};
      } else {
        out.r[l][j] = {element(2 * (l % 4), l / 4), element(2 * (l % 4) + 1, l / 4)};
      }
    }
  }
  return out;
}

// The A matrix (16×16) a warp's registers a[lane][0..3] represent, per the PTX layout.
std::vector<float> gather_a(const Reg (&a)[32][4]) {
  std::vector<float> m(256);
  for (int lane = 0; lane < 32; ++lane) {
    for (int i = 0; i < 8; ++i) {
      const Reg& reg = a[lane][i / 2];
      const RowCol rc = ptx_a(lane, i);
      m[rc.row * 16 + rc.col] = (i % 2) ? reg.second : reg.first;
    }
  }
  return m;
}
// The B matrix (16×8, [k][n]) of registers b[lane][0..1].
std::vector<float> gather_b(const Reg (&b)[32][2]) {
  std::vector<float> m(128);
  for (int lane = 0; lane < 32; ++lane) {
    for (int i = 0; i < 4; ++i) {
      const Reg& reg = b[lane][i / 2];
      const RowCol rc = ptx_b(lane, i);
      m[rc.row * 8 + rc.col] = (i % 2) ? reg.second : reg.first;
    }
  }
  return m;
}
// d[lane][0..3] += A·B as mma.m16n8k16 does, in double.
void mma(double (&d)[32][4], const Reg (&a)[32][4], const Reg (&b)[32][2]) {
  const std::vector<float> A = gather_a(a), B = gather_b(b);
  for (int lane = 0; lane < 32; ++lane) {
    for (int i = 0; i < 4; ++i) {
      const RowCol rc = ptx_c(lane, i);
      for (int k = 0; k < 16; ++k)
        d[lane][i] += static_cast<double>(A[rc.row * 16 + k]) * B[k * 8 + rc.col];
    }
  }
}
void split_b(const Regs& x, Reg (&b0)[32][2], Reg (&b1)[32][2]) {
  for (int l = 0; l < 32; ++l) {
    b0[l][0] = x.r[l][0];
    b0[l][1] = x.r[l][1];
    b1[l][0] = x.r[l][2];
    b1[l][1] = x.r[l][3];
  }
}

// A padded shared tile of `rows` × `cols` random values, and the logical matrix.
struct Tile {
  int rows, cols, stride;
  std::vector<float> smem;
  float at(int r, int c) const { return smem[tile_offset(r, c / 8, stride) + c % 8]; }
};
Tile random_tile(int rows, int cols, std::mt19937& rng) {
  Tile t{rows, cols, padded_stride(cols), {}};
  t.smem.assign(static_cast<size_t>(rows) * t.stride, -1e30f);  // padding: poisoned
  std::uniform_int_distribution<int> d(-64, 64);  // small integers: exact sums in float
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) t.smem[tile_offset(r, c / 8, t.stride) + c % 8] = d(rng) / 8.0f;
  return t;
}

TEST(FlashIndex, LdmatrixPatternsProduceMmaFragments) {
  std::mt19937 rng(1);
  for (int cols : {64, 128}) {
    const Tile t = random_tile(64, cols, rng);
    for (int row0 = 0; row0 + 16 <= 64; row0 += 16) {
      for (int c0 = 0; c0 + 16 <= cols; c0 += 16) {
        int off[32];
        // A, stored [m][k]: A(m, k) = tile(row0 + m, c0 + k)
        for (int l = 0; l < 32; ++l) {
          const RowChunk rc = ldmatrix_a_lane(l);
          off[l] = tile_offset(row0 + rc.row, c0 / 8 + rc.chunk, t.stride);
        }
        Regs a = ldmatrix_x4(t.smem, off, false);
        std::vector<float> A = gather_a(a.r);
        for (int m = 0; m < 16; ++m)
          for (int k = 0; k < 16; ++k) ASSERT_EQ(A[m * 16 + k], t.at(row0 + m, c0 + k));

        // A stored transposed [k][m]: A(m, k) = tile(row0 + k, c0 + m)
        for (int l = 0; l < 32; ++l) {
          const RowChunk rc = ldmatrix_a_trans_lane(l);
          off[l] = tile_offset(row0 + rc.row, c0 / 8 + rc.chunk, t.stride);
        }
        a = ldmatrix_x4(t.smem, off, true);
        A = gather_a(a.r);
        for (int m = 0; m < 16; ++m)
          for (int k = 0; k < 16; ++k) ASSERT_EQ(A[m * 16 + k], t.at(row0 + k, c0 + m));

        // Two B, stored [n][k]: B_h(k, n) = tile(row0 + 8h + n, c0 + k)
        for (int l = 0; l < 32; ++l) {
          const RowChunk rc = ldmatrix_b_lane(l);
          off[l] = tile_offset(row0 + rc.row, c0 / 8 + rc.chunk, t.stride);
        }
        Reg b0[32][2], b1[32][2];
        split_b(ldmatrix_x4(t.smem, off, false), b0, b1);
        std::vector<float> B0 = gather_b(b0), B1 = gather_b(b1);
        for (int k = 0; k < 16; ++k) {
          for (int n = 0; n < 8; ++n) {
            ASSERT_EQ(B0[k * 8 + n], t.at(row0 + n, c0 + k));
            ASSERT_EQ(B1[k * 8 + n], t.at(row0 + 8 + n, c0 + k));
          }
        }

        // Two B, stored [k][n] (.trans): B_h(k, n) = tile(row0 + k, c0 + 8h + n)
        for (int l = 0; l < 32; ++l) {
          const RowChunk rc = ldmatrix_b_trans_lane(l);
          off[l] = tile_offset(row0 + rc.row, c0 / 8 + rc.chunk, t.stride);
        }
        split_b(ldmatrix_x4(t.smem, off, true), b0, b1);
        B0 = gather_b(b0);
        B1 = gather_b(b1);
        for (int k = 0; k < 16; ++k) {
          for (int n = 0; n < 8; ++n) {
            ASSERT_EQ(B0[k * 8 + n], t.at(row0 + k, c0 + n));
            ASSERT_EQ(B1[k * 8 + n], t.at(row0 + k, c0 + 8 + n));
          }
        }
      }
    }
  }
}

// Every ldmatrix phase (the 8 lanes of one matrix) and every 8-thread phase of the tile loader's
// 16-byte cp.async stores touch 8 distinct 16-byte bank groups: no shared-memory bank conflicts.
TEST(FlashIndex, PaddedTilesHaveNoBankConflicts) {
  using LaneFn = RowChunk (*)(int);
  const LaneFn patterns[] = {ldmatrix_a_lane, ldmatrix_b_lane, ldmatrix_b_trans_lane,
                             ldmatrix_a_trans_lane};
  for (int cols : {64, 128}) {
    const int stride = padded_stride(cols);
    for (LaneFn fn : patterns) {
      for (int row0 = 0; row0 < 128; row0 += 16) {
        for (int c0 = 0; c0 < cols / 8; c0 += 2) {
          for (int phase = 0; phase < 4; ++phase) {
            std::set<int> groups;
            for (int l = 8 * phase; l < 8 * phase + 8; ++l) {
              const RowChunk rc = fn(l);
              groups.insert(bank_group(tile_offset(row0 + rc.row, c0 + rc.chunk, stride)));
            }
            EXPECT_EQ(groups.size(), 8u) << "cols " << cols << " row0 " << row0 << " c0 " << c0;
          }
        }
      }
    }
    // Tile loader: thread t stores chunk t % (cols/8) of row t / (cols/8).
    const int chunks = cols / 8;
    for (int first = 0; first < 128; first += 8) {
      std::set<int> groups;
      for (int t = first; t < first + 8; ++t)
        groups.insert(bank_group(tile_offset(t / chunks, t % chunks, stride)));
      EXPECT_EQ(groups.size(), 8u);
    }
  }
  // The backward's dSᵀ stores: lane (g, t) writes 4 bytes at row 16w + g + 8r, column 8nt + 2t of a
  // 64-column tile; the 32 lanes must hit 32 distinct banks.
  const int stride = padded_stride(64);
  for (int w = 0; w < 4; ++w) {
    for (int nt = 0; nt < 8; ++nt) {
      for (int r = 0; r < 2; ++r) {
        std::set<int> banks;
        for (int lane = 0; lane < 32; ++lane) {
          const int offset = tile_offset(16 * w + lane / 4 + 8 * r, nt, stride) + 2 * (lane % 4);
          banks.insert((offset * 2 / 4) % 32);
        }
        EXPECT_EQ(banks.size(), 32u);
      }
    }
  }
}

// A warp's two products of the forward, composed exactly as the kernel composes them (per-lane
// base offsets plus per-fragment constants), on the emulated instructions: S = Q·Kᵀ for 32 rows
// (two m-tiles) × 64 keys, then O = S·V with S reused from the accumulators as A.
TEST(FlashIndex, EmulatedWarpProductsMatchPlainLoops) {
  std::mt19937 rng(7);
  for (int HS : {64, 128}) {
    const int rows = 32, keys = 64;
    const Tile Q = random_tile(rows, HS, rng), K = random_tile(keys, HS, rng),
               V = random_tile(keys, HS, rng);
    const int stride = padded_stride(HS);
    double S[2][8][32][4] = {};
    for (int kk = 0; kk < HS / 16; ++kk) {
      for (int mt = 0; mt < 2; ++mt) {
        int off[32];
        for (int l = 0; l < 32; ++l) {
          const RowChunk rc = ldmatrix_a_lane(l);
          off[l] = tile_offset(rc.row, rc.chunk, stride) + mt * 16 * stride + kk * 16;
        }
        const Regs a = ldmatrix_x4(Q.smem, off, false);
        for (int np = 0; np < keys / 16; ++np) {
          for (int l = 0; l < 32; ++l) {
            const RowChunk rc = ldmatrix_b_lane(l);
            off[l] = tile_offset(rc.row, rc.chunk, stride) + np * 16 * stride + kk * 16;
          }
          Reg b0[32][2], b1[32][2];
          split_b(ldmatrix_x4(K.smem, off, false), b0, b1);
          mma(S[mt][2 * np], a.r, b0);
          mma(S[mt][2 * np + 1], a.r, b1);
        }
      }
    }
    for (int mt = 0; mt < 2; ++mt) {
      for (int nt = 0; nt < 8; ++nt) {
        for (int lane = 0; lane < 32; ++lane) {
          for (int e = 0; e < 4; ++e) {
            const RowCol rc = mma_c_element(lane, e);
            double ref = 0;
            for (int c = 0; c < HS; ++c)
              ref += static_cast<double>(Q.at(mt * 16 + rc.row, c)) * K.at(nt * 8 + rc.col, c);
            ASSERT_EQ(S[mt][nt][lane][e], ref);
          }
        }
      }
    }
    // O = S·V; the accumulator values are small integers / 64: exact in float.
    std::vector<double> O(static_cast<size_t>(2) * (HS / 8) * 32 * 4, 0.0);
    for (int kk = 0; kk < keys / 16; ++kk) {
      for (int mt = 0; mt < 2; ++mt) {
        Reg a[32][4];
        for (int l = 0; l < 32; ++l) {
          for (int r = 0; r < 4; ++r) {
            const auto& acc = S[mt][acc_tile_of_a_register(kk, r)][l];
            const int pair = acc_pair_of_a_register(r);
            a[l][r] = {static_cast<float>(acc[2 * pair]), static_cast<float>(acc[2 * pair + 1])};
          }
        }
        for (int dp = 0; dp < HS / 16; ++dp) {
          int off[32];
          for (int l = 0; l < 32; ++l) {
            const RowChunk rc = ldmatrix_b_trans_lane(l);
            off[l] = tile_offset(rc.row, rc.chunk, stride) + kk * 16 * stride + dp * 16;
          }
          Reg b0[32][2], b1[32][2];
          split_b(ldmatrix_x4(V.smem, off, true), b0, b1);
          double d0[32][4] = {}, d1[32][4] = {};
          mma(d0, a, b0);
          mma(d1, a, b1);
          for (int l = 0; l < 32; ++l) {
            for (int e = 0; e < 4; ++e) {
              O[((mt * (HS / 8) + 2 * dp) * 32 + l) * 4 + e] += d0[l][e];
              O[((mt * (HS / 8) + 2 * dp + 1) * 32 + l) * 4 + e] += d1[l][e];
            }
          }
        }
      }
    }
    for (int mt = 0; mt < 2; ++mt) {
      for (int dt = 0; dt < HS / 8; ++dt) {
        for (int lane = 0; lane < 32; ++lane) {
          for (int e = 0; e < 4; ++e) {
            const RowCol rc = mma_c_element(lane, e);
            const int row = mt * 16 + rc.row;
            double ref = 0;
            for (int u = 0; u < keys; ++u) {
              double s = 0;
              for (int c = 0; c < HS; ++c) s += static_cast<double>(Q.at(row, c)) * K.at(u, c);
              ref += static_cast<float>(s) * static_cast<double>(V.at(u, dt * 8 + rc.col));
            }
            ASSERT_EQ(O[((mt * (HS / 8) + dt) * 32 + lane) * 4 + e], ref) << HS;
          }
        }
      }
    }
  }
}

// The backward's dQ product: dS (16 queries of warp w × 64 keys) read transposed from the dSᵀ tile
// ([key][query], 64 × 64), times K ([key][channel]) read with .trans.
TEST(FlashIndex, EmulatedTransposedOperandProduct) {
  std::mt19937 rng(11);
  const int HS = 128, keys = 64, queries = 64;
  const Tile dST = random_tile(keys, queries, rng), K = random_tile(keys, HS, rng);
  const int s_stride = padded_stride(queries), k_stride = padded_stride(HS);
  for (int w = 0; w < 4; ++w) {
    double dq[16][32][4] = {};
    for (int kk = 0; kk < keys / 16; ++kk) {
      int off[32];
      for (int l = 0; l < 32; ++l) {
        const RowChunk rc = ldmatrix_a_trans_lane(l);
        off[l] = tile_offset(rc.row, w * 2 + rc.chunk, s_stride) + kk * 16 * s_stride;
      }
      const Regs a = ldmatrix_x4(dST.smem, off, true);
      for (int dp = 0; dp < HS / 16; ++dp) {
        for (int l = 0; l < 32; ++l) {
          const RowChunk rc = ldmatrix_b_trans_lane(l);
          off[l] = tile_offset(rc.row, rc.chunk, k_stride) + kk * 16 * k_stride + dp * 16;
        }
        Reg b0[32][2], b1[32][2];
        split_b(ldmatrix_x4(K.smem, off, true), b0, b1);
        mma(dq[2 * dp], a.r, b0);
        mma(dq[2 * dp + 1], a.r, b1);
      }
    }
    for (int dt = 0; dt < HS / 8; ++dt) {
      for (int lane = 0; lane < 32; ++lane) {
        for (int e = 0; e < 4; ++e) {
          const RowCol rc = mma_c_element(lane, e);
          double ref = 0;
          for (int u = 0; u < keys; ++u)
            ref += static_cast<double>(dST.at(u, 16 * w + rc.row)) * K.at(u, dt * 8 + rc.col);
          ASSERT_EQ(dq[dt][lane][e], ref);
        }
      }
    }
  }
}

// ---- causal tiling ------------------------------------------------------------------------------

std::vector<int> interesting_lengths() {
  std::vector<int> Ts;
  for (int T = 1; T <= 300; ++T) Ts.push_back(T);
  for (int T : {511, 512, 513, 1000, 1023, 1024, 1025, 2047, 4096, 4097}) Ts.push_back(T);
  return Ts;
}

TEST(FlashIndex, TileCounts) {
  EXPECT_EQ(num_tiles(1, 64), 1);
  EXPECT_EQ(num_tiles(64, 64), 1);
  EXPECT_EQ(num_tiles(65, 64), 2);
  EXPECT_EQ(num_tiles(1023, 128), 8);
  EXPECT_EQ(num_tiles(1024, 128), 8);
  EXPECT_EQ(num_tiles(1025, 128), 9);
}

// Forward: query tile m visits exactly the key tiles that hold a key <= one of its valid queries;
// a tile (or a warp's row block) without the mask flag has no masked pair and no key past T.
TEST(FlashIndex, ForwardVisitsExactlyTheCausalTiles) {
  const int tilings[][2] = {{128, 64}, {64, 64}, {128, 32}, {64, 128}};
  for (const auto& tiling : tilings) {
    const int Br = tiling[0], Bc = tiling[1];
    for (int T : interesting_lengths()) {
      for (int m = 0; m < num_tiles(T, Br); ++m) {
        const int last_query = std::min(m * Br + Br, T) - 1;
        const int n_tiles = forward_key_tiles(m, Br, Bc, T);
        ASSERT_LE(n_tiles, num_tiles(T, Bc));
        for (int j = 0; j < num_tiles(T, Bc); ++j) {
          const bool useful = j * Bc <= last_query;  // some key <= some valid query
          ASSERT_EQ(j < n_tiles, useful) << "T " << T << " m " << m << " j " << j;
          if (j >= n_tiles) continue;
          for (int w0 = m * Br; w0 < m * Br + Br; w0 += 32) {  // warp row blocks of 32
            bool any_masked = false, any_past_T = false, all_masked = true;
            for (int q = w0; q < w0 + 32; ++q) {
              for (int k = j * Bc; k < j * Bc + Bc; ++k) {
                if (k > q) any_masked = true;
                if (q < T && k >= T) any_past_T = true;
                if (k <= q) all_masked = false;
              }
            }
            ASSERT_EQ(needs_causal_mask(w0, j * Bc, Bc), any_masked);
            if (any_past_T) {
              ASSERT_TRUE(needs_causal_mask(w0, j * Bc, Bc));
            }
            ASSERT_EQ(fully_masked(w0, 32, j * Bc), all_masked);
          }
        }
      }
    }
  }
}

// Backward: the (query tile, key tile) pairs visited are exactly those the forward visits, and the
// dQ shares of a query tile are ordered 0..last, the first being the largest key tile.
TEST(FlashIndex, BackwardVisitsTheSamePairsAndOrdersDq) {
  const int tilings[][2] = {{64, 64}, {128, 64}, {64, 128}, {32, 64}};
  for (const auto& tiling : tilings) {
    const int Br = tiling[0], Bc = tiling[1];
    for (int T : interesting_lengths()) {
      const int M = num_tiles(T, Br), N = num_tiles(T, Bc);
      std::vector<std::vector<int>> shares(M);
      for (int n = 0; n < N; ++n) {
        const int first = backward_first_query_tile(n, Br, Bc);
        ASSERT_LT(first, M);
        for (int m = first; m < M; ++m) shares[m].push_back(n);
        // A query tile before `first` holds no query >= the tile's first key.
        if (first > 0) {
          ASSERT_LT((first - 1) * Br + Br - 1, n * Bc);
        }
      }
      for (int m = 0; m < M; ++m) {
        const int n_fwd = forward_key_tiles(m, Br, Bc, T);
        ASSERT_EQ(static_cast<int>(shares[m].size()), n_fwd) << "T " << T << " m " << m;
        std::set<int> orders;
        for (int n : shares[m]) {
          ASSERT_LT(n, n_fwd);
          orders.insert(dq_order(m, n, Br, Bc, T));
        }
        ASSERT_EQ(static_cast<int>(orders.size()), n_fwd);
        ASSERT_EQ(*orders.begin(), 0);
        ASSERT_EQ(*orders.rbegin(), n_fwd - 1);
        ASSERT_EQ(dq_order(m, backward_last_key_tile(m, Br, Bc, T), Br, Bc, T), 0);
        ASSERT_EQ(dq_order(m, 0, Br, Bc, T), n_fwd - 1);  // key tile 0 is last: it writes dQ
      }
    }
  }
}

// The schedules are bijections; the forward starts with the most expensive query tiles; in the
// backward, the key tile whose dQ share comes just before another's has a smaller block index.
TEST(FlashIndex, BlockSchedules) {
  for (int BNH : {1, 3, 12, 192}) {
    for (int T : {1, 17, 64, 65, 1000, 1024}) {
      const int M = num_tiles(T, 128);
      std::set<std::pair<int, int>> seen;
      int previous_m = M;
      for (long long i = 0; i < static_cast<long long>(M) * BNH; ++i) {
        const ForwardBlock f = forward_block(i, BNH, M);
        ASSERT_TRUE(f.m_tile >= 0 && f.m_tile < M && f.bh >= 0 && f.bh < BNH);
        ASSERT_LE(f.m_tile, previous_m);
        previous_m = f.m_tile;
        seen.insert({f.m_tile, f.bh});
      }
      ASSERT_EQ(seen.size(), static_cast<size_t>(M) * BNH);

      const int Mb = num_tiles(T, 64), N = num_tiles(T, 64);
      seen.clear();
      for (long long i = 0; i < static_cast<long long>(N) * BNH; ++i) {
        const BackwardBlock bb = backward_block(i, N);
        ASSERT_TRUE(bb.n_tile >= 0 && bb.n_tile < N && bb.bh >= 0 && bb.bh < BNH);
        ASSERT_EQ(backward_block_index(bb.n_tile, bb.bh, N), i);
        seen.insert({bb.n_tile, bb.bh});
        for (int m = backward_first_query_tile(bb.n_tile, 64, 64); m < Mb; ++m) {
          if (dq_order(m, bb.n_tile, 64, 64, T) > 0) {
            ASSERT_LT(backward_block_index(bb.n_tile + 1, bb.bh, N), i);
            ASSERT_EQ(dq_order(m, bb.n_tile + 1, 64, 64, T), dq_order(m, bb.n_tile, 64, 64, T) - 1);
          }
        }
      }
      ASSERT_EQ(seen.size(), static_cast<size_t>(N) * BNH);
    }
  }
}

// The dQ accumulator's fragment order is a bijection onto [0, dq_accum_floats) with each lane's
// four floats contiguous and 16-byte aligned, and a warp's lanes adjacent (coalesced float4s).
TEST(FlashIndex, DqAccumulatorLayout) {
  for (int HS : {64, 128}) {
    const int BNH = 3, M = 5, Br = 64;
    std::vector<int> hits(static_cast<size_t>(dq_accum_floats(BNH, M, Br, HS)), 0);
    for (int bh = 0; bh < BNH; ++bh) {
      for (int m = 0; m < M; ++m) {
        for (int w = 0; w < Br / 16; ++w) {
          for (int nt = 0; nt < HS / 8; ++nt) {
            const long long base = dq_accum_offset(bh, m, w, nt, 0, M, Br, HS);
            ASSERT_EQ(dq_accum_offset(bh, m, w, 0, 0, M, Br, HS) + nt * 32 * 4, base);
            for (int lane = 0; lane < 32; ++lane) {
              const long long o = dq_accum_offset(bh, m, w, nt, lane, M, Br, HS);
              ASSERT_EQ(o % 4, 0);
              ASSERT_EQ(o, base + 4 * lane);
              for (int e = 0; e < 4; ++e) ++hits.at(static_cast<size_t>(o + e));
            }
          }
        }
      }
    }
    for (int h : hits) ASSERT_EQ(h, 1);
  }
}

}  // namespace
