// Causal attention on the CPU, one (batch, head) pair per OpenMP iteration in the forward, one
// (batch, key/value head) pair in the backward (it owns that head's dK and dV).
//
// Q, K and V of a head are read in place from the packed qkv tensor: row t of Q starts at
// qkv[b, t, h·HS] and consecutive rows are W = (NH + 2·NKV)·HS apart, so every product is a gemm
// with leading dimension W (no copies; grouped-query heads index their key/value head, never a
// copy of it). Queries are processed in tiles of kQueryTile rows; a tile [t0, t1)
// needs the keys [0, t1), so its score block S is (t1 - t0) × t1, lives in a per-thread scratch
// buffer, and holds zeros above the diagonal once turned into probabilities. The softmax loops
// vectorise: exp is exp_approx (kernels/cpu_fast_math.h) and sums run in 8 fixed lanes (lane_sum).
//
// Inside the parallel region OpenBLAS (OpenMP build) and the plain-loop gemm run single-threaded,
// and each (b, h) pair is handled by exactly one thread in a fixed order of tiles, so the results
// do not depend on the thread count.
#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "kernels/cpu_fast_math.h"
#include "kernels/matmul.h"

namespace gpt::cpu {
namespace {

constexpr int kQueryTile = 64;

// Sum of x[0..n) in 8 fixed lanes: vectorises, and the order of the additions depends on n only.
template <typename F>
F lane_sum(const F* x, int n) {
  F lane[8] = {};
  int u = 0;
  for (; u + 8 <= n; u += 8)
    for (int l = 0; l < 8; ++l) lane[l] += x[u + l];
  for (int l = 0; u < n; ++u, ++l) lane[l] += x[u];
  return ((lane[0] + lane[4]) + (lane[1] + lane[5])) + ((lane[2] + lane[6]) + (lane[3] + lane[7]));
}

// A per-thread scratch buffer of at least n elements (grows, never shrinks).
template <typename F>
F* scratch(std::vector<F>& buffer, size_t n) {
  if (buffer.size() < n) buffer.resize(n);
  return buffer.data();
}

// S (rows × cols, ld = cols) = scale · Q_tile · K[0:cols]ᵀ.
template <typename F>
void scores(F* S, const F* q_tile, const F* k, int rows, int cols, int HS, int ld_qkv, F scale) {
  gemm(Transpose::no, Transpose::yes, rows, cols, HS, scale, q_tile, ld_qkv, k, ld_qkv, F(0), S,
       cols);
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
    F* P = scratch(score_buffer, static_cast<size_t>(kQueryTile) * T);
    const int b = bh / a.n_head;
    const int h = bh % a.n_head;
    const F* row0 = qkv + static_cast<size_t>(b) * T * ld_qkv;
    const F* q = row0 + static_cast<size_t>(h) * HS;
    const F* k = row0 + a.key_offset(h / group);
    const F* v = row0 + a.value_offset(h / group);
    F* out_bh = out + static_cast<size_t>(b) * T * ld_out + static_cast<size_t>(h) * HS;
    F* lse_bh = lse + static_cast<size_t>(bh) * T;
    for (int t0 = 0; t0 < T; t0 += kQueryTile) {
      const int t1 = std::min(t0 + kQueryTile, T);
      const int rows = t1 - t0;
      scores(P, q + static_cast<size_t>(t0) * ld_qkv, k, rows, t1, HS, ld_qkv, scale);
      for (int r = 0; r < rows; ++r) {
        const int t = t0 + r;
        F* p = P + static_cast<size_t>(r) * t1;
        F max_s = p[0];
        for (int u = 1; u <= t; ++u) max_s = p[u] > max_s ? p[u] : max_s;
        for (int u = 0; u <= t; ++u) p[u] = exp_approx(p[u] - max_s);
        const F sum = lane_sum(p, t + 1);
        const F inv_sum = F(1) / sum;
        for (int u = 0; u <= t; ++u) p[u] *= inv_sum;
        for (int u = t + 1; u < t1; ++u) p[u] = 0;  // causal mask
        lse_bh[t] = max_s + std::log(sum);
      }
      // out_tile (rows × HS) = P (rows × t1) · V[0:t1] (t1 × HS)
      gemm(Transpose::no, Transpose::no, rows, HS, t1, F(1), P, t1, v, ld_qkv, F(0),
           out_bh + static_cast<size_t>(t0) * ld_out, ld_out);
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
    const int b = bkv / a.n_kv_head;
    const int kv = bkv % a.n_kv_head;
    const size_t row0 = static_cast<size_t>(b) * T * ld_qkv;
    const F* k = qkv + row0 + a.key_offset(kv);
    const F* v = qkv + row0 + a.value_offset(kv);
    F* dk = dqkv + row0 + a.key_offset(kv);
    F* dv = dqkv + row0 + a.value_offset(kv);
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
        scores(P, q_tile, k, rows, t1, HS, ld_qkv, scale);
        for (int r = 0; r < rows; ++r) {
          const int t = t0 + r;
          F* p = P + static_cast<size_t>(r) * t1;
          const F lse_t = lse_bh[t];
          for (int u = 0; u <= t; ++u) p[u] = exp_approx(p[u] - lse_t);
          for (int u = t + 1; u < t1; ++u) p[u] = 0;
        }
        // dV[0:t1] += Pᵀ · dout_tile
        gemm(Transpose::yes, Transpose::no, t1, HS, rows, F(1), P, t1, dout_tile, ld_out, F(1), dv,
             ld_qkv);
        // dP = dout_tile · V[0:t1]ᵀ, then dS = P ⊙ (dP - D) · scale with D_t = dout_t · out_t.
        // The scale of S = scale · Q Kᵀ is folded into dS here.
        gemm(Transpose::no, Transpose::yes, rows, t1, HS, F(1), dout_tile, ld_out, v, ld_qkv, F(0),
             dS, t1);
        for (int r = 0; r < rows; ++r) {
          const int t = t0 + r;
          const F* do_t = dout_bh + static_cast<size_t>(t) * ld_out;
          const F* o_t = out_bh + static_cast<size_t>(t) * ld_out;
          F D = 0;
          for (int c = 0; c < HS; ++c) D += do_t[c] * o_t[c];
          const F* p = P + static_cast<size_t>(r) * t1;
          F* ds = dS + static_cast<size_t>(r) * t1;
          for (int u = 0; u <= t; ++u) ds[u] = p[u] * (ds[u] - D) * scale;
          for (int u = t + 1; u < t1; ++u) ds[u] = 0;
        }
        // dQ_tile = dS · K[0:t1]   (each query row belongs to exactly one tile: overwrite)
        gemm(Transpose::no, Transpose::no, rows, HS, t1, F(1), dS, t1, k, ld_qkv, F(0),
             dq + static_cast<size_t>(t0) * ld_qkv, ld_qkv);
        // dK[0:t1] += dSᵀ · Q_tile
        gemm(Transpose::yes, Transpose::no, t1, HS, rows, F(1), dS, t1, q_tile, ld_qkv, F(1), dk,
             ld_qkv);
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
