// Causal attention on the CPU, one (batch, head) pair per OpenMP iteration in the forward, one
// (batch, key/value head) pair in the backward (it owns that head's dK and dV).
//
// Q, K and V of a head are read in place from the packed qkv tensor: row t of Q starts at
// qkv[b, t, h·HS] and consecutive rows are W = (NH + 2·NKV)·HS apart (grouped-query heads index
// their key/value head, never a copy of it). The products where K or V appear transposed (S = Q Kᵀ,
// dP = dO Vᵀ) read Kᵀ or Vᵀ from a per-thread copy made once per head. Queries are processed in
// tiles of kQueryTile rows; a tile [t0, t1) needs the keys [0, t1), so its score block S is (t1 -
// t0) × t1, lives in a per-thread scratch buffer, and holds zeros above the diagonal once turned
// into probabilities. The softmax loops vectorise: exp is exp_approx (kernels/cpu_fast_math.h) and
// sums run in 8 fixed lanes (row_sum).
//
// The products are small (one side is the head size, 32-128) and many, so they run through
// tile_gemm below rather than BLAS, whose per-call packing and zeroing of C cost as much as the
// arithmetic at these sizes. Each (b, h) pair is handled by exactly one thread in a fixed order of
// tiles, and tile_gemm's order of additions depends on the shape alone, so the results do not
// depend on the thread count.
#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <vector>

#include "kernels/cpu_fast_math.h"

namespace gpt::cpu {
namespace {

constexpr int kQueryTile = 64;

// Sum of x[0..n) in 8 fixed lanes: vectorises, and the order of the additions depends on n only.
template <typename F>
F row_sum(const F* x, int n) {
  F lane[8] = {};
  int u = 0;
  for (; u + 8 <= n; u += 8)
    for (int l = 0; l < 8; ++l) lane[l] += x[u + l];
  for (int l = 0; u < n; ++u, ++l) lane[l] += x[u];
  return combine_lanes(lane);
}

// Max of x[0..n), n >= 1, in 8 lanes: vectorises, and a max does not depend on the order anyway.
template <typename F>
F row_max(const F* x, int n) {
  F lane[8];
  for (int l = 0; l < 8; ++l) lane[l] = x[0];
  int u = 0;
  for (; u + 8 <= n; u += 8)
    for (int l = 0; l < 8; ++l) lane[l] = x[u + l] > lane[l] ? x[u + l] : lane[l];
  F m = x[0];
  for (; u < n; ++u) m = x[u] > m ? x[u] : m;
  for (int l = 0; l < 8; ++l) m = lane[l] > m ? lane[l] : m;
  return m;
}

// Dot product of x[0..n) and y[0..n) in 8 fixed lanes, like row_sum.
template <typename F>
F row_dot(const F* x, const F* y, int n) {
  F lane[8] = {};
  int u = 0;
  for (; u + 8 <= n; u += 8)
    for (int l = 0; l < 8; ++l) lane[l] += x[u + l] * y[u + l];
  for (int l = 0; u < n; ++u, ++l) lane[l] += x[u] * y[u];
  return combine_lanes(lane);
}

// A per-thread scratch buffer of at least n elements (grows, never shrinks).
template <typename F>
F* scratch(std::vector<F>& buffer, size_t n) {
  if (buffer.size() < n) buffer.resize(n);
  return buffer.data();
}

// C (M × N, row-major, ldc) = alpha · A · B, or C += alpha · A · B when accumulate, where
// A(i, k) = a[i · a_row + k · a_col] (so Aᵀ of a row-major matrix is a_row = 1, a_col = its ld) and
// B is row-major: B(k, j) = b[k · ldb + j]. The work is cut into register tiles of up to
// kTileRows rows by two vectors of columns (GCC/Clang vector types of kVectorBytes: with AVX, 16
// floats or 8 doubles; else, as with SSE or NEON, 8 floats or 4 doubles). A tile keeps its outputs
// in 12 accumulator registers: for each k it loads the vectors of B's row k
// and adds A(i, k) times them to every row, so the loop is loads and multiply-adds, with enough
// independent accumulators to hide the latency of a multiply-add. Every output sums
// k = 0, 1, ... K-1 in order, whichever tile shape or the scalar edge computes it, so the result
// depends on the shape alone.
constexpr int kTileRows = 6;
#if defined(__AVX__)
constexpr int kVectorBytes = 32;
#else
constexpr int kVectorBytes =
    16;  // wider vector types would be passed in memory, pairs of registers
#endif

template <typename F>
struct Simd {
  typedef F Vec __attribute__((vector_size(kVectorBytes)));
  static constexpr int kLanes = kVectorBytes / sizeof(F);
  static Vec load(const F* p) {
    Vec v;
    std::memcpy(&v, p, sizeof v);
    return v;
  }
  static void store(F* p, Vec v) { std::memcpy(p, &v, sizeof v); }
};

// One tile: R rows (R <= kTileRows) and NV vectors of columns, at a (row 0, k 0), b (k 0, column 0)
// and c (row 0, column 0). K >= 1.
template <typename F, int R, int NV>
void gemm_tile(int K, F alpha, const F* a, size_t a_row, size_t a_col, const F* b, size_t ldb, F* c,
               size_t ldc, bool accumulate) {
  using S = Simd<F>;
  using Vec = typename S::Vec;
  // acc starts as the k = 0 term, which spares a zeroing the compiler would do through memory.
  Vec acc[R][NV];
  for (int v = 0; v < NV; ++v) {
    const Vec b_v = S::load(b + v * S::kLanes);
    for (int i = 0; i < R; ++i) acc[i][v] = a[i * a_row] * b_v;
  }
  for (int k = 1; k < K; ++k) {
    const F* b_k = b + static_cast<size_t>(k) * ldb;
    const F* a_k = a + static_cast<size_t>(k) * a_col;
    Vec b_v[NV];
    for (int v = 0; v < NV; ++v) b_v[v] = S::load(b_k + v * S::kLanes);
    for (int i = 0; i < R; ++i) {
      const F a_ik = a_k[i * a_row];
      for (int v = 0; v < NV; ++v) acc[i][v] += a_ik * b_v[v];
    }
  }
  for (int i = 0; i < R; ++i) {
    for (int v = 0; v < NV; ++v) {
      F* out = c + static_cast<size_t>(i) * ldc + v * S::kLanes;
      S::store(out, accumulate ? S::load(out) + alpha * acc[i][v] : alpha * acc[i][v]);
    }
  }
}

// Rows [0, R) of C: column tiles of two vectors, one vector, then single columns.
template <typename F, int R>
void gemm_rows(int N, int K, F alpha, const F* a, size_t a_row, size_t a_col, const F* b,
               size_t ldb, F* c, size_t ldc, bool accumulate) {
  constexpr int kLanes = Simd<F>::kLanes;
  int j0 = 0;
  for (; j0 + 2 * kLanes <= N; j0 += 2 * kLanes)
    gemm_tile<F, R, 2>(K, alpha, a, a_row, a_col, b + j0, ldb, c + j0, ldc, accumulate);
  for (; j0 + kLanes <= N; j0 += kLanes)
    gemm_tile<F, R, 1>(K, alpha, a, a_row, a_col, b + j0, ldb, c + j0, ldc, accumulate);
  for (; j0 < N; ++j0) {
    for (int i = 0; i < R; ++i) {
      F sum = 0;
      for (int k = 0; k < K; ++k)
        sum += a[i * a_row + k * a_col] * b[static_cast<size_t>(k) * ldb + j0];
      F* out = c + static_cast<size_t>(i) * ldc + j0;
      *out = accumulate ? *out + alpha * sum : alpha * sum;
    }
  }
}

// gemm_rows for a row count known only at run time (1 <= rows <= R): the largest tile shape first.
template <typename F, int R = kTileRows>
void gemm_rows_of(int rows, int N, int K, F alpha, const F* a, size_t a_row, size_t a_col,
                  const F* b, size_t ldb, F* c, size_t ldc, bool accumulate) {
  if constexpr (R > 1) {
    if (rows < R) {
      gemm_rows_of<F, R - 1>(rows, N, K, alpha, a, a_row, a_col, b, ldb, c, ldc, accumulate);
      return;
    }
  }
  gemm_rows<F, R>(N, K, alpha, a, a_row, a_col, b, ldb, c, ldc, accumulate);
}

// Which products of a query tile [t0, t0 + rows) tile_gemm may skip because the causal mask makes
// them zero. Row i of the tile is the query t0 + i, and it sees the keys u <= t0 + i:
//   columns:    C's row i needs only its columns j <= t0 + i (S = Q Kᵀ, dP = dO Vᵀ); the columns
//               beyond are left unwritten, and the caller zeroes them;
//   reduction:  row i of A is zero beyond k = t0 + i (O = P V, dQ = dS K), so those terms are
//               skipped (they would add exact zeros);
//   transposed: C's row u sums over the queries k of the tile, and A(u, k) = P(k, u) is zero for
//               k < u - t0 (dV += Pᵀ dO, dK += dSᵀ Q), so the sum starts there.
// Whole tiles of kTileRows rows are kept or skipped, so what is computed depends on the shape only.
enum class Causal { none, columns, reduction, transposed };

template <typename F>
void tile_gemm(int M, int N, int K, F alpha, const F* a, size_t a_row, size_t a_col, const F* b,
               size_t ldb, F* c, size_t ldc, bool accumulate, Causal causal = Causal::none,
               int t0 = 0) {
  if (K <= 0) {  // no products: C = 0, or C unchanged when accumulating
    if (!accumulate)
      for (int i = 0; i < M; ++i)
        for (int j = 0; j < N; ++j) c[static_cast<size_t>(i) * ldc + j] = 0;
    return;
  }
  for (int i0 = 0; i0 < M; i0 += kTileRows) {
    const int R = std::min(kTileRows, M - i0);
    int n = N, k_begin = 0, k_end = K;
    // Up to a whole tile of two vectors: columns past the last full vector would take the
    // scalar edge, slower than computing them.
    constexpr int kTileCols = 2 * Simd<F>::kLanes;
    if (causal == Causal::columns) {
      n = std::min(N, (t0 + i0 + R + kTileCols - 1) / kTileCols * kTileCols);
    }
    if (causal == Causal::reduction) k_end = std::min(K, t0 + i0 + R);
    if (causal == Causal::transposed) k_begin = std::min(K - 1, std::max(0, i0 - t0));
    const int depth = k_end - k_begin;
    const F* a_i = a + static_cast<size_t>(i0) * a_row + static_cast<size_t>(k_begin) * a_col;
    const F* b_k = b + static_cast<size_t>(k_begin) * ldb;
    F* c_i = c + static_cast<size_t>(i0) * ldc;
    gemm_rows_of<F>(R, n, depth, alpha, a_i, a_row, a_col, b_k, ldb, c_i, ldc, accumulate);
  }
}

// dst (HS × T, row-major) = the T × HS matrix whose rows are src[t · ld_src ...]: Kᵀ or Vᵀ of a
// head. Eight rows at a time, so that each write is a run of 8 consecutive values rather than one
// value T apart from the last (a stride of a power of two that the caches handle badly).
template <typename F>
void transpose_head(F* dst, const F* src, int T, int HS, int ld_src) {
  constexpr int kRows = 8;
  int t0 = 0;
  for (; t0 + kRows <= T; t0 += kRows) {
    const F* rows = src + static_cast<size_t>(t0) * ld_src;
    for (int c = 0; c < HS; ++c) {
      F* d = dst + static_cast<size_t>(c) * T + t0;
      for (int r = 0; r < kRows; ++r) d[r] = rows[static_cast<size_t>(r) * ld_src + c];
    }
  }
  for (; t0 < T; ++t0)
    for (int c = 0; c < HS; ++c)
      dst[static_cast<size_t>(c) * T + t0] = src[static_cast<size_t>(t0) * ld_src + c];
}

// S (rows × cols, ld = cols) = scale · Q_tile · K[0:cols]ᵀ for the query tile starting at t0, Kᵀ
// given as kt (HS × T). Entries above the diagonal may be left unwritten.
template <typename F>
void scores(F* S, const F* q_tile, const F* kt, int t0, int rows, int cols, int HS, int T,
            int ld_qkv, F scale) {
  tile_gemm(rows, cols, HS, scale, q_tile, ld_qkv, 1, kt, T, S, cols, false, Causal::columns, t0);
}

}  // namespace

template <typename F>
void attention_forward(F* out, F* lse, const F* qkv, const AttentionShape& a) {
  const int HS = a.head_size;
  const int ld_qkv = a.row_width();
  const int ld_out = a.n_head * HS;
  const int group = a.n_head / a.n_kv_head;  // query heads per key/value head
  const F scale = static_cast<F>(1.0 / std::sqrt(static_cast<double>(HS)));
  const int T = a.T;
#pragma omp parallel for schedule(static)
  for (int bh = 0; bh < a.B * a.n_head; ++bh) {
    thread_local std::vector<F> score_buffer;
    thread_local std::vector<F> kt_buffer;
    F* P = scratch(score_buffer, static_cast<size_t>(kQueryTile) * T);
    F* kt = scratch(kt_buffer, static_cast<size_t>(HS) * T);
    const int b = bh / a.n_head;
    const int h = bh % a.n_head;
    const F* row0 = qkv + static_cast<size_t>(b) * T * ld_qkv;
    const F* q = row0 + static_cast<size_t>(h) * HS;
    const F* k = row0 + a.key_offset(h / group);
    const F* v = row0 + a.value_offset(h / group);
    F* out_bh = out + static_cast<size_t>(b) * T * ld_out + static_cast<size_t>(h) * HS;
    F* lse_bh = lse + static_cast<size_t>(bh) * T;
    transpose_head(kt, k, T, HS, ld_qkv);
    for (int t0 = 0; t0 < T; t0 += kQueryTile) {
      const int t1 = std::min(t0 + kQueryTile, T);
      const int rows = t1 - t0;
      scores(P, q + static_cast<size_t>(t0) * ld_qkv, kt, t0, rows, t1, HS, T, ld_qkv, scale);
      for (int r = 0; r < rows; ++r) {
        const int t = t0 + r;
        F* p = P + static_cast<size_t>(r) * t1;
        const F max_s = row_max(p, t + 1);
        for (int u = 0; u <= t; ++u) p[u] = exp_approx(p[u] - max_s);
        const F sum = row_sum(p, t + 1);
        const F inv_sum = F(1) / sum;
        for (int u = 0; u <= t; ++u) p[u] *= inv_sum;
        for (int u = t + 1; u < t1; ++u) p[u] = 0;  // causal mask
        lse_bh[t] = max_s + std::log(sum);
      }
      // out_tile (rows × HS) = P (rows × t1) · V[0:t1] (t1 × HS)
      tile_gemm(rows, HS, t1, F(1), P, t1, 1, v, ld_qkv, out_bh + static_cast<size_t>(t0) * ld_out,
                ld_out, false, Causal::reduction, t0);
    }
  }
}

template <typename F>
void attention_forward(F* out, F* lse, const F* qkv, int B, int T, int C, int NH) {
  attention_forward(out, lse, qkv, AttentionShape{B, T, NH, NH, C / NH});
}

template <typename F>
void attention_backward(F* dqkv, const F* dout, const F* qkv, const F* out, const F* lse,
                        const AttentionShape& a) {
  const int HS = a.head_size;
  const int ld_qkv = a.row_width();
  const int ld_out = a.n_head * HS;
  const int group = a.n_head / a.n_kv_head;
  const int T = a.T;
  const F scale = static_cast<F>(1.0 / std::sqrt(static_cast<double>(HS)));
  // One (batch, key/value head) pair per iteration: it owns dK and dV of that head, which gather
  // the contributions of its query heads in order (h = kv·group + 0, 1, ...), and dQ of each.
#pragma omp parallel for schedule(static)
  for (int bkv = 0; bkv < a.B * a.n_kv_head; ++bkv) {
    thread_local std::vector<F> p_buffer;
    thread_local std::vector<F> ds_buffer;
    F* P = scratch(p_buffer, static_cast<size_t>(kQueryTile) * T);
    F* dS = scratch(ds_buffer, static_cast<size_t>(kQueryTile) * T);
    thread_local std::vector<F> kt_buffer;
    thread_local std::vector<F> vt_buffer;
    F* kt = scratch(kt_buffer, static_cast<size_t>(HS) * T);
    F* vt = scratch(vt_buffer, static_cast<size_t>(HS) * T);
    const int b = bkv / a.n_kv_head;
    const int kv = bkv % a.n_kv_head;
    const size_t row0 = static_cast<size_t>(b) * T * ld_qkv;
    const F* k = qkv + row0 + a.key_offset(kv);
    const F* v = qkv + row0 + a.value_offset(kv);
    F* dk = dqkv + row0 + a.key_offset(kv);
    F* dv = dqkv + row0 + a.value_offset(kv);
    transpose_head(kt, k, T, HS, ld_qkv);
    transpose_head(vt, v, T, HS, ld_qkv);
    // dK and dV gather contributions from every query tile of every query head of the group:
    // start them at zero (this pair owns these columns of dqkv for all t).
    for (int t = 0; t < T; ++t) {
      F* dk_t = dk + static_cast<size_t>(t) * ld_qkv;
      F* dv_t = dv + static_cast<size_t>(t) * ld_qkv;
      for (int c = 0; c < HS; ++c) dk_t[c] = dv_t[c] = 0;
    }
    for (int h = kv * group; h < (kv + 1) * group; ++h) {
      const F* q = qkv + row0 + static_cast<size_t>(h) * HS;
      F* dq = dqkv + row0 + static_cast<size_t>(h) * HS;
      const size_t out_offset = static_cast<size_t>(b) * T * ld_out + static_cast<size_t>(h) * HS;
      const F* dout_bh = dout + out_offset;
      const F* out_bh = out + out_offset;
      const F* lse_bh = lse + (static_cast<size_t>(b) * a.n_head + h) * T;
      for (int t0 = 0; t0 < T; t0 += kQueryTile) {
        const int t1 = std::min(t0 + kQueryTile, T);
        const int rows = t1 - t0;
        const F* q_tile = q + static_cast<size_t>(t0) * ld_qkv;
        const F* dout_tile = dout_bh + static_cast<size_t>(t0) * ld_out;
        // P = exp(S - lse), recomputed; zero above the diagonal.
        scores(P, q_tile, kt, t0, rows, t1, HS, T, ld_qkv, scale);
        for (int r = 0; r < rows; ++r) {
          const int t = t0 + r;
          F* p = P + static_cast<size_t>(r) * t1;
          const F lse_t = lse_bh[t];
          for (int u = 0; u <= t; ++u) p[u] = exp_approx(p[u] - lse_t);
          for (int u = t + 1; u < t1; ++u) p[u] = 0;
        }
        // dV[0:t1] += Pᵀ · dout_tile
        tile_gemm(t1, HS, rows, F(1), P, 1, t1, dout_tile, ld_out, dv, ld_qkv, true,
                  Causal::transposed, t0);
        // dP = dout_tile · V[0:t1]ᵀ, then dS = P ⊙ (dP - D) · scale with D_t = dout_t · out_t.
        // The scale of S = scale · Q Kᵀ is folded into dS here.
        tile_gemm(rows, t1, HS, F(1), dout_tile, ld_out, 1, vt, T, dS, t1, false, Causal::columns,
                  t0);
        for (int r = 0; r < rows; ++r) {
          const int t = t0 + r;
          const F* do_t = dout_bh + static_cast<size_t>(t) * ld_out;
          const F* o_t = out_bh + static_cast<size_t>(t) * ld_out;
          const F D = row_dot(do_t, o_t, HS);
          const F* p = P + static_cast<size_t>(r) * t1;
          F* ds = dS + static_cast<size_t>(r) * t1;
          for (int u = 0; u <= t; ++u) ds[u] = p[u] * (ds[u] - D) * scale;
          for (int u = t + 1; u < t1; ++u) ds[u] = 0;
        }
        // dQ_tile = dS · K[0:t1]   (each query row belongs to exactly one tile: overwrite)
        tile_gemm(rows, HS, t1, F(1), dS, t1, 1, k, ld_qkv, dq + static_cast<size_t>(t0) * ld_qkv,
                  ld_qkv, false, Causal::reduction, t0);
        // dK[0:t1] += dSᵀ · Q_tile
        tile_gemm(t1, HS, rows, F(1), dS, 1, t1, q_tile, ld_qkv, dk, ld_qkv, true,
                  Causal::transposed, t0);
      }
    }
  }
}

template <typename F>
void attention_backward(F* dqkv, const F* dout, const F* qkv, const F* out, const F* lse, int B,
                        int T, int C, int NH) {
  attention_backward(dqkv, dout, qkv, out, lse, AttentionShape{B, T, NH, NH, C / NH});
}

template <typename F>
void attention_decode(F* out, const F* q_rows, int q_stride, const F* kv_cache, int Tmax, int pos,
                      const AttentionShape& a) {
  const int HS = a.head_size;
  const size_t ld = static_cast<size_t>(2) * a.n_kv_head * HS;  // [k | v]
  const int group = a.n_head / a.n_kv_head;
  const double scale = 1.0 / std::sqrt(static_cast<double>(HS));
#pragma omp parallel for schedule(static)
  for (int bh = 0; bh < a.B * a.n_head; ++bh) {
    thread_local std::vector<double> weights;
    if (weights.size() < static_cast<size_t>(pos) + 1) weights.resize(static_cast<size_t>(pos) + 1);
    const int b = bh / a.n_head, h = bh % a.n_head;
    const F* base = kv_cache + static_cast<size_t>(b) * Tmax * ld;
    const F* q = q_rows + static_cast<size_t>(b) * q_stride + static_cast<size_t>(h) * HS;
    const size_t k_offset = static_cast<size_t>(h / group) * HS;
    const size_t v_offset = static_cast<size_t>(a.n_kv_head + h / group) * HS;
    double max_s = -INFINITY;
    for (int u = 0; u <= pos; ++u) {
      const F* k = base + static_cast<size_t>(u) * ld + k_offset;
      double s = 0.0;
      for (int i = 0; i < HS; ++i) s += static_cast<double>(q[i]) * k[i];
      weights[u] = s * scale;
      max_s = std::max(max_s, weights[u]);
    }
    double sum = 0.0;
    for (int u = 0; u <= pos; ++u) sum += (weights[u] = std::exp(weights[u] - max_s));
    F* o = out + static_cast<size_t>(b) * a.n_head * HS + static_cast<size_t>(h) * HS;
    for (int i = 0; i < HS; ++i) {
      double acc = 0.0;
      for (int u = 0; u <= pos; ++u)
        acc += weights[u] * base[static_cast<size_t>(u) * ld + v_offset + i];
      o[i] = static_cast<F>(acc / sum);
    }
  }
}

template void attention_forward<float>(float*, float*, const float*, int, int, int, int);
template void attention_forward<double>(double*, double*, const double*, int, int, int, int);
template void attention_backward<float>(float*, const float*, const float*, const float*,
                                        const float*, int, int, int, int);
template void attention_backward<double>(double*, const double*, const double*, const double*,
                                         const double*, int, int, int, int);
template void attention_forward<float>(float*, float*, const float*, const AttentionShape&);
template void attention_forward<double>(double*, double*, const double*, const AttentionShape&);
template void attention_backward<float>(float*, const float*, const float*, const float*,
                                        const float*, const AttentionShape&);
template void attention_backward<double>(double*, const double*, const double*, const double*,
                                         const double*, const AttentionShape&);
template void attention_decode<float>(float*, const float*, int, const float*, int, int,
                                      const AttentionShape&);
template void attention_decode<double>(double*, const double*, int, const double*, int, int,
                                       const AttentionShape&);

}  // namespace gpt::cpu
