// Causal attention on the GPU, unfused (math, grouped-query heads and gradient rule:
// kernels/attention.h).
//
// This is the straightforward formulation through an explicit T×T score matrix per (batch, query
// head), kept as the correct baseline that the fused flash-style kernel is compared with. The heads
// are first split out of the packed rows into contiguous per-head tensors: Q, dO (B, NH, T, HS) and
// K, V (B, NKV, T, HS), each key/value head once (never repeated per query head). The group of
// G = NH / NKV query heads that share key/value head kv is then one matrix of G·T rows: the query
// heads kv·G .. kv·G + G - 1 are consecutive in (B, NH, T, HS), so every product is one strided
// batched gemm over the nb·NKV (batch, key/value head) pairs of a chunk, with M = G·T rows where a
// query head's product had T. Per chunk of batches (the score matrices of a chunk fit in
// chunk_limit_bytes):
//
//   forward                                       backward (P recomputed from lse)
//   Q, K, V  = split_heads(qkv)                   Q, K, V, dO = split_heads(qkv, dout)
//   S  = Q·Kᵀ / sqrt(HS)   (G·T × T) fp32         S  = Q·Kᵀ / sqrt(HS)
//   P, lse = causal_softmax(S)                    P  = exp(S - lse) below the diagonal, 0 above
//   O  = P·V               (G·T × HS)             dV = Pᵀ·dO      (T × G·T)·(G·T × HS)
//   out = merge_heads(O)                          dP = dO·Vᵀ                (fp32, into S's buffer)
//                                                 dS = P ⊙ (dP - D) / sqrt(HS), D_t = dout_t·out_t
//                                                 dQ = dS·K,  dK = dSᵀ·Q   (T × G·T)·(G·T × HS)
//                                                 dqkv = merge_heads(dQ, dK, dV)
//
// dK and dV of a key/value head sum over its query heads inside one product (the inner dimension
// G·T runs over the group's heads): no atomics, no second pass, and the order of the sum is the
// library's, the same on every run. The score rows keep the (batch, query head, query) order of
// lse, so the softmax kernels do not know about groups. dqkv is written whole by the merges.
//
// Scores and dP are kept in fp32 (the products accumulate in fp32 and write fp32), so lse and the
// softmax see unrounded scores; P and dS are stored in the compute type because they feed the next
// products. Every entry above the diagonal of P and dS is written as an exact zero, so the full
// (masked) products are correct without any triangular gemm. Costs: twice the causal FLOPs (the
// masked half is computed), and 4·T² bytes of fp32 scores per (batch, query head) through DRAM.
//
// The head split/merge kernels copy 16-byte packets (HS must be a multiple of the packet); the
// softmax kernels use one warp per score row.
//
// Decoding (one query per sequence against a KV cache, attention_decode) is a single kernel, one
// block per (batch, query head): a warp per key for the scores (kept in fp32 scratch), a block
// max and sum in fixed order, then the block's threads split the head's channels and, when HS is
// smaller than the block, the keys, and sum their partial outputs in thread order.
#include <cfloat>

#include "kernels/cuda_kernels.cuh"

namespace gpt::cuda {
namespace {

constexpr int kBlock = 256;
constexpr int kWarpsPerBlock = kBlock / kWarpSize;

size_t align256(size_t n) {
  return (n + 255) / 256 * 256;
}

// Row-major, batched: C_i (M×N, ldc) = alpha · op_a(A_i) (M×K) · op_b(B_i) (K×N) + beta · C_i, for
// i < batch, with A_i = A + i·stride_a etc. (strides in elements). cuBLAS is column-major, where a
// row-major X is Xᵀ: compute C_iᵀ = op_b(B_i)ᵀ · op_a(A_i)ᵀ by swapping the operands and M with N.
struct Operand {
  const void* ptr;
  cudaDataType_t type;
  int ld;
  long long stride;
};
void rowmajor_batched_gemm(cublasHandle_t handle, cublasOperation_t op_a, cublasOperation_t op_b,
                           int M, int N, int K, float alpha, Operand A, Operand B, float beta,
                           void* C, cudaDataType_t c_type, int ldc, long long stride_c, int batch) {
  GPT_CUDA_CHECK(cublasGemmStridedBatchedEx(
      handle, op_b, op_a, N, M, K, &alpha, B.ptr, B.type, B.ld, B.stride, A.ptr, A.type, A.ld,
      A.stride, &beta, C, c_type, ldc, stride_c, batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

// dst (B, NH, T, HS) <- the head columns of src: dst[b,h,t,c] = src[(b·T + t)·src_ld + col0 + h·HS
// + c]
template <typename F>
__global__ void split_heads_kernel(F* dst, const F* src, int B, int T, int NH, int HS, int src_ld,
                                   int col0) {
  constexpr int x = pack_size<F>();
  const int64_t e = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) * x;
  if (e >= static_cast<int64_t>(B) * NH * T * HS) return;
  const int c = static_cast<int>(e % HS);
  const int64_t r = e / HS;  // (b·NH + h)·T + t
  const int t = static_cast<int>(r % T);
  const int64_t bh = r / T;
  const int h = static_cast<int>(bh % NH);
  const int64_t b = bh / NH;
  store128(dst + e,
           load128cs(src + (b * T + t) * src_ld + col0 + static_cast<int64_t>(h) * HS + c));
}

// The inverse: dst[(b·T + t)·dst_ld + col0 + h·HS + c] = src[b,h,t,c]
template <typename F>
__global__ void merge_heads_kernel(F* dst, const F* src, int B, int T, int NH, int HS, int dst_ld,
                                   int col0) {
  constexpr int x = pack_size<F>();
  const int64_t e = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) * x;
  if (e >= static_cast<int64_t>(B) * NH * T * HS) return;
  const int c = static_cast<int>(e % HS);
  const int64_t r = e / HS;
  const int t = static_cast<int>(r % T);
  const int64_t bh = r / T;
  const int h = static_cast<int>(bh % NH);
  const int64_t b = bh / NH;
  store128(dst + (b * T + t) * dst_ld + col0 + static_cast<int64_t>(h) * HS + c,
           load128cs(src + e));
}

// One warp per score row r = (b·NH + h)·T + t of the chunk: lse_r = log Σ_{u<=t} exp(S_ru) (online
// max and sum per lane, then the lanes merged), P_ru = exp(S_ru - lse_r) for u <= t and 0 above.
template <typename F>
__global__ void causal_softmax_kernel(F* P, float* lse, const float* S, int rows, int T) {
  const int lane = threadIdx.x % kWarpSize;
  const int row = blockIdx.x * kWarpsPerBlock + threadIdx.x / kWarpSize;
  if (row >= rows) return;
  const int t = row % T;
  const float* s = S + static_cast<int64_t>(row) * T;
  F* p = P + static_cast<int64_t>(row) * T;
  // -FLT_MAX rather than -inf: merging two empty lanes must not compute exp(-inf + inf).
  float m = -FLT_MAX;
  float sum = 0.0f;
  for (int u = lane; u <= t; u += kWarpSize) {
    const float v = s[u];
    if (v > m) {
      sum = sum * expf(m - v) + 1.0f;
      m = v;
    } else {
      sum += expf(v - m);
    }
  }
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    const float m_other = __shfl_xor_sync(0xffffffffu, m, offset);
    const float sum_other = __shfl_xor_sync(0xffffffffu, sum, offset);
    const float m_new = fmaxf(m, m_other);
    sum = sum * expf(m - m_new) + sum_other * expf(m_other - m_new);
    m = m_new;
  }
  const float l = m + logf(sum);
  for (int u = lane; u < T; u += kWarpSize) p[u] = from_float<F>(u <= t ? expf(s[u] - l) : 0.0f);
  if (lane == 0) lse[row] = l;
}

// Backward: P_ru = exp(S_ru - lse_r) for u <= t, 0 above (one warp per row).
template <typename F>
__global__ void causal_probs_kernel(F* P, const float* S, const float* lse, int rows, int T) {
  const int lane = threadIdx.x % kWarpSize;
  const int row = blockIdx.x * kWarpsPerBlock + threadIdx.x / kWarpSize;
  if (row >= rows) return;
  const int t = row % T;
  const float l = lse[row];
  const float* s = S + static_cast<int64_t>(row) * T;
  F* p = P + static_cast<int64_t>(row) * T;
  for (int u = lane; u < T; u += kWarpSize) p[u] = from_float<F>(u <= t ? expf(s[u] - l) : 0.0f);
}

// Backward: dS_ru = P_ru · (dP_ru - D_r) · scale, written over P (each element is read and written
// by one thread). D_r = dout_t · out_t over head h's HS channels, read from the (B, T, NH·HS)
// tensors (rows ld_out apart). b0 is the chunk's first batch.
template <typename F>
__global__ void softmax_backward_kernel(F* P_to_dS, const float* dP, const F* dout, const F* out,
                                        int rows, int b0, int T, int ld_out, int NH, int HS,
                                        float scale) {
  const int lane = threadIdx.x % kWarpSize;
  const int row = blockIdx.x * kWarpsPerBlock + threadIdx.x / kWarpSize;
  if (row >= rows) return;
  const int t = row % T;
  const int bh = row / T;
  const int64_t b = b0 + bh / NH;
  const int h = bh % NH;
  const int64_t offset = (b * T + t) * ld_out + static_cast<int64_t>(h) * HS;
  float D = 0.0f;
  for (int c = lane; c < HS; c += kWarpSize)
    D += to_float(dout[offset + c]) * to_float(out[offset + c]);
  D = warp_sum(D);
  const float* dp = dP + static_cast<int64_t>(row) * T;
  F* ds = P_to_dS + static_cast<int64_t>(row) * T;
  for (int u = lane; u < T; u += kWarpSize) {
    ds[u] = from_float<F>(u <= t ? to_float(ds[u]) * (dp[u] - D) * scale : 0.0f);
  }
}

constexpr int kDecodeBlock = 256;

// One block per (batch b, query head h): out[b, h·HS + c] = Σ_{u<=pos} p_u · v_u[c] with
// p = softmax(q · k_u / sqrt(HS)), q the head's values at the start of row b of q_rows, k and v of
// key/value head h / (NH / NKV) in the cache's [k | v] rows. scores: pos + 1 floats of this
// block's own.
template <typename F>
__global__ void __launch_bounds__(kDecodeBlock)
    attention_decode_kernel(F* out, float* scores, const F* q_rows, int q_stride, const F* cache,
                            int Tmax, int pos, int NH, int NKV, int HS, float scale) {
  __shared__ float reduce[kWarpSize];
  __shared__ float partial[kDecodeBlock];
  const int tid = static_cast<int>(threadIdx.x);
  const int lane = tid % kWarpSize, warp = tid / kWarpSize;
  const int bh = static_cast<int>(blockIdx.x);
  const int b = bh / NH, h = bh % NH;
  const int kv = h / (NH / NKV);
  const int64_t W = static_cast<int64_t>(2 * NKV) * HS;  // a cache row: [k | v]
  const F* base = cache + static_cast<int64_t>(b) * Tmax * W;
  const F* q = q_rows + static_cast<int64_t>(b) * q_stride + static_cast<int64_t>(h) * HS;
  const F* k = base + static_cast<int64_t>(kv) * HS;
  const F* v = base + static_cast<int64_t>(NKV + kv) * HS;
  float* s = scores + static_cast<int64_t>(bh) * (pos + 1);

  // Scores, a warp per key; every lane of the warp holds the sum, so the running max agrees.
  float m = -FLT_MAX;
  for (int u = warp; u <= pos; u += kDecodeBlock / kWarpSize) {
    float dot = 0.0f;
    for (int c = lane; c < HS; c += kWarpSize) dot += to_float(q[c]) * to_float(k[u * W + c]);
    dot = warp_sum(dot) * scale;
    if (lane == 0) s[u] = dot;
    m = fmaxf(m, dot);
  }
  if (lane == 0) reduce[warp] = m;
  __syncthreads();  // the scores and the warps' maxima
  m = reduce[0];
  for (int w = 1; w < kDecodeBlock / kWarpSize; ++w) m = fmaxf(m, reduce[w]);
  float sum = 0.0f;
  for (int u = tid; u <= pos; u += kDecodeBlock) {
    const float e = expf(s[u] - m);
    s[u] = e;
    sum += e;
  }
  sum = block_sum(sum, reduce);  // its barriers also publish the exponentials

  // Output: `width` channels at a time, the block's threads in `parts` groups over the keys.
  for (int c0 = 0; c0 < HS; c0 += kDecodeBlock) {
    const int width = HS - c0 < kDecodeBlock ? HS - c0 : kDecodeBlock;
    const int parts = kDecodeBlock / width;
    const int part = tid / width, c = c0 + tid % width;
    float acc = 0.0f;
    if (part < parts) {
      for (int u = part; u <= pos; u += parts) acc += s[u] * to_float(v[u * W + c]);
    }
    __syncthreads();  // the previous round's partial sums are read
    partial[tid] = acc;
    __syncthreads();
    if (tid < width) {
      float total = 0.0f;
      for (int p = 0; p < parts; ++p) total += partial[p * width + tid];
      out[static_cast<int64_t>(bh) * HS + c0 + tid] = from_float<F>(total / sum);
    }
  }
}

// The scratch regions, in order, each 256-byte aligned: S (fp32) and P for one chunk, then the
// per-head tensors: forward Q, O (B, NH, T, HS) and K, V (B, NKV, T, HS); backward Q, dO, dQ and
// K, V, dK, dV.
struct ScratchLayout {
  size_t s_offset = 0, p_offset = 0, heads_offset = 0, query_bytes = 0, kv_bytes = 0, total = 0;
  // The i-th query-sized tensor, then the j-th key/value-sized one.
  char* query(void* base, int i) const {
    return static_cast<char*>(base) + heads_offset + i * query_bytes;
  }
  char* kv(void* base, int queries, int j) const { return query(base, queries) + j * kv_bytes; }
};
ScratchLayout scratch_layout(AttentionPass pass, const cpu::AttentionShape& a, size_t elem_bytes,
                             size_t chunk_limit_bytes) {
  const size_t bc =
      static_cast<size_t>(attention_batch_chunk(a.B, a.T, a.n_head, chunk_limit_bytes));
  const size_t scores = bc * a.n_head * static_cast<size_t>(a.T) * a.T;
  const size_t head_elems = static_cast<size_t>(a.B) * a.T * a.head_size;
  ScratchLayout l;
  l.s_offset = 0;
  l.p_offset = align256(scores * sizeof(float));
  l.heads_offset = l.p_offset + align256(scores * elem_bytes);
  l.query_bytes = align256(head_elems * a.n_head * elem_bytes);
  l.kv_bytes = align256(head_elems * a.n_kv_head * elem_bytes);
  l.total = l.heads_offset + (pass == AttentionPass::forward ? 2 * l.query_bytes + 2 * l.kv_bytes
                                                             : 3 * l.query_bytes + 4 * l.kv_bytes);
  return l;
}

template <typename F>
unsigned head_grid(int B, int T, int heads, int HS) {
  const int64_t packs = static_cast<int64_t>(B) * T * heads * HS / pack_size<F>();
  return static_cast<unsigned>(ceil_div<int64_t>(packs, kBlock));
}

// split: dst (B, heads, T, HS) <- the `heads` heads from column col0 of src's rows (ld apart);
// merge: the inverse, into dst's rows.
enum class HeadCopy { split, merge };
template <typename F>
void copy_heads(HeadCopy direction, F* dst, const F* src, int B, int T, int heads, int HS, int ld,
                int col0, cudaStream_t stream) {
  const unsigned grid = head_grid<F>(B, T, heads, HS);
  if (direction == HeadCopy::split) {
    split_heads_kernel<F><<<grid, kBlock, 0, stream>>>(dst, src, B, T, heads, HS, ld, col0);
  } else {
    merge_heads_kernel<F><<<grid, kBlock, 0, stream>>>(dst, src, B, T, heads, HS, ld, col0);
  }
  GPT_CUDA_CHECK_LAUNCH();
}

// The operands of one chunk's products: the nb·NKV (batch, key/value head) pairs from batch b0 on,
// each a group of G query heads (G·T rows of Q-like tensors) and one key/value head (T rows).
template <typename F>
struct GroupOperands {
  cudaDataType_t type;
  int HS;
  long long q_stride, kv_stride;  // elements from one (batch, key/value head) pair to the next
  int64_t q0, kv0;                // the chunk's first element in Q-like and K-like tensors
  Operand q(const F* base) const { return {base + q0, type, HS, q_stride}; }
  Operand kv(const F* base) const { return {base + kv0, type, HS, kv_stride}; }
};
template <typename F>
GroupOperands<F> group_operands(const cpu::AttentionShape& a, int b0) {
  const int64_t head = static_cast<int64_t>(a.T) * a.head_size;  // one head of one batch
  return {data_type<F>(), a.head_size,          (a.n_head / a.n_kv_head) * head,
          head,           b0 * a.n_head * head, b0 * a.n_kv_head * head};
}

}  // namespace

int attention_batch_chunk(int B, int T, int NH, size_t chunk_limit_bytes) {
  const size_t per_batch = static_cast<size_t>(NH) * T * T * sizeof(float);
  const size_t fit = per_batch > 0 ? chunk_limit_bytes / per_batch : static_cast<size_t>(B);
  if (fit < 1) return 1;
  return fit > static_cast<size_t>(B) ? B : static_cast<int>(fit);
}

size_t attention_scratch_bytes(AttentionPass pass, const cpu::AttentionShape& shape,
                               size_t elem_bytes, size_t chunk_limit_bytes) {
  return scratch_layout(pass, shape, elem_bytes, chunk_limit_bytes).total;
}

template <typename F>
void attention_forward(cublasHandle_t handle, F* out, float* lse, const F* qkv,
                       const cpu::AttentionShape& a, void* scratch, size_t chunk_limit_bytes,
                       cudaStream_t stream) {
  if (a.B == 0 || a.T == 0) return;
  const int B = a.B, T = a.T, NH = a.n_head, NKV = a.n_kv_head, HS = a.head_size;
  const int G = NH / NKV;
  const int W = a.row_width();
  const ScratchLayout layout =
      scratch_layout(AttentionPass::forward, a, sizeof(F), chunk_limit_bytes);
  float* S = reinterpret_cast<float*>(static_cast<char*>(scratch) + layout.s_offset);
  F* P = reinterpret_cast<F*>(static_cast<char*>(scratch) + layout.p_offset);
  F* Q = reinterpret_cast<F*>(layout.query(scratch, 0));
  F* O = reinterpret_cast<F*>(layout.query(scratch, 1));
  F* K = reinterpret_cast<F*>(layout.kv(scratch, 2, 0));
  F* V = reinterpret_cast<F*>(layout.kv(scratch, 2, 1));

  copy_heads(HeadCopy::split, Q, qkv, B, T, NH, HS, W, 0, stream);
  copy_heads(HeadCopy::split, K, qkv, B, T, NKV, HS, W, static_cast<int>(a.key_offset(0)), stream);
  copy_heads(HeadCopy::split, V, qkv, B, T, NKV, HS, W, static_cast<int>(a.value_offset(0)),
             stream);
  GPT_CUDA_CHECK(cublasSetStream(handle, stream));
  const float scale = 1.0f / sqrtf(static_cast<float>(HS));
  const long long score_stride = static_cast<long long>(G) * T * T;  // per (batch, kv head)
  const int bc = attention_batch_chunk(B, T, NH, chunk_limit_bytes);
  for (int b0 = 0; b0 < B; b0 += bc) {
    const int nb = B - b0 < bc ? B - b0 : bc;
    const int batch = nb * NKV;
    const int rows = nb * NH * T;
    const GroupOperands<F> g = group_operands<F>(a, b0);
    // S = scale · Q·Kᵀ
    rowmajor_batched_gemm(handle, CUBLAS_OP_N, CUBLAS_OP_T, G * T, T, HS, scale, g.q(Q), g.kv(K),
                          0.0f, S, CUDA_R_32F, T, score_stride, batch);
    causal_softmax_kernel<F><<<ceil_div(rows, kWarpsPerBlock), kBlock, 0, stream>>>(
        P, lse + static_cast<int64_t>(b0) * NH * T, S, rows, T);
    GPT_CUDA_CHECK_LAUNCH();
    // O = P·V
    rowmajor_batched_gemm(handle, CUBLAS_OP_N, CUBLAS_OP_N, G * T, HS, T, 1.0f,
                          {P, g.type, T, score_stride}, g.kv(V), 0.0f, O + g.q0, g.type, HS,
                          g.q_stride, batch);
  }
  copy_heads(HeadCopy::merge, out, O, B, T, NH, HS, NH * HS, 0, stream);
}

template <typename F>
void attention_backward(cublasHandle_t handle, F* dqkv, const F* dout, const F* qkv, const F* out,
                        const float* lse, const cpu::AttentionShape& a, void* scratch,
                        size_t chunk_limit_bytes, cudaStream_t stream) {
  if (a.B == 0 || a.T == 0) return;
  const int B = a.B, T = a.T, NH = a.n_head, NKV = a.n_kv_head, HS = a.head_size;
  const int G = NH / NKV;
  const int W = a.row_width();
  const ScratchLayout layout =
      scratch_layout(AttentionPass::backward, a, sizeof(F), chunk_limit_bytes);
  float* S = reinterpret_cast<float*>(static_cast<char*>(scratch) + layout.s_offset);  // S, dP
  F* P = reinterpret_cast<F*>(static_cast<char*>(scratch) + layout.p_offset);          // P, dS
  F* Q = reinterpret_cast<F*>(layout.query(scratch, 0));
  F* dO = reinterpret_cast<F*>(layout.query(scratch, 1));
  F* dQ = reinterpret_cast<F*>(layout.query(scratch, 2));
  F* K = reinterpret_cast<F*>(layout.kv(scratch, 3, 0));
  F* V = reinterpret_cast<F*>(layout.kv(scratch, 3, 1));
  F* dK = reinterpret_cast<F*>(layout.kv(scratch, 3, 2));
  F* dV = reinterpret_cast<F*>(layout.kv(scratch, 3, 3));
  const int k_col = static_cast<int>(a.key_offset(0)), v_col = static_cast<int>(a.value_offset(0));

  copy_heads(HeadCopy::split, Q, qkv, B, T, NH, HS, W, 0, stream);
  copy_heads(HeadCopy::split, K, qkv, B, T, NKV, HS, W, k_col, stream);
  copy_heads(HeadCopy::split, V, qkv, B, T, NKV, HS, W, v_col, stream);
  copy_heads(HeadCopy::split, dO, dout, B, T, NH, HS, NH * HS, 0, stream);
  GPT_CUDA_CHECK(cublasSetStream(handle, stream));
  const float scale = 1.0f / sqrtf(static_cast<float>(HS));
  const long long score_stride = static_cast<long long>(G) * T * T;
  const int bc = attention_batch_chunk(B, T, NH, chunk_limit_bytes);
  for (int b0 = 0; b0 < B; b0 += bc) {
    const int nb = B - b0 < bc ? B - b0 : bc;
    const int batch = nb * NKV;
    const int rows = nb * NH * T;
    const GroupOperands<F> g = group_operands<F>(a, b0);
    const Operand p_op{P, g.type, T, score_stride};
    const unsigned row_grid = static_cast<unsigned>(ceil_div(rows, kWarpsPerBlock));
    // S = scale · Q·Kᵀ, P = exp(S - lse)
    rowmajor_batched_gemm(handle, CUBLAS_OP_N, CUBLAS_OP_T, G * T, T, HS, scale, g.q(Q), g.kv(K),
                          0.0f, S, CUDA_R_32F, T, score_stride, batch);
    causal_probs_kernel<F>
        <<<row_grid, kBlock, 0, stream>>>(P, S, lse + static_cast<int64_t>(b0) * NH * T, rows, T);
    GPT_CUDA_CHECK_LAUNCH();
    // dV = Pᵀ·dO, summed over the group's query heads (inner dimension G·T)
    rowmajor_batched_gemm(handle, CUBLAS_OP_T, CUBLAS_OP_N, T, HS, G * T, 1.0f, p_op, g.q(dO), 0.0f,
                          dV + g.kv0, g.type, HS, g.kv_stride, batch);
    // dP = dO·Vᵀ (into S's buffer)
    rowmajor_batched_gemm(handle, CUBLAS_OP_N, CUBLAS_OP_T, G * T, T, HS, 1.0f, g.q(dO), g.kv(V),
                          0.0f, S, CUDA_R_32F, T, score_stride, batch);
    // dS = P ⊙ (dP - D) · scale (over P)
    softmax_backward_kernel<F>
        <<<row_grid, kBlock, 0, stream>>>(P, S, dout, out, rows, b0, T, NH * HS, NH, HS, scale);
    GPT_CUDA_CHECK_LAUNCH();
    // dQ = dS·K, dK = dSᵀ·Q (summed over the group like dV)
    rowmajor_batched_gemm(handle, CUBLAS_OP_N, CUBLAS_OP_N, G * T, HS, T, 1.0f, p_op, g.kv(K), 0.0f,
                          dQ + g.q0, g.type, HS, g.q_stride, batch);
    rowmajor_batched_gemm(handle, CUBLAS_OP_T, CUBLAS_OP_N, T, HS, G * T, 1.0f, p_op, g.q(Q), 0.0f,
                          dK + g.kv0, g.type, HS, g.kv_stride, batch);
  }
  copy_heads(HeadCopy::merge, dqkv, dQ, B, T, NH, HS, W, 0, stream);
  copy_heads(HeadCopy::merge, dqkv, dK, B, T, NKV, HS, W, k_col, stream);
  copy_heads(HeadCopy::merge, dqkv, dV, B, T, NKV, HS, W, v_col, stream);
}

size_t attention_decode_scratch_bytes(const cpu::AttentionShape& shape) {
  return static_cast<size_t>(shape.B) * shape.n_head * shape.T * sizeof(float);
}

template <typename F>
void attention_decode(F* out, const F* q, int q_stride, const F* cache, int pos,
                      const cpu::AttentionShape& a, void* scratch, cudaStream_t stream) {
  if (a.B == 0) return;
  const float scale = 1.0f / sqrtf(static_cast<float>(a.head_size));
  attention_decode_kernel<F><<<static_cast<unsigned>(a.B * a.n_head), kDecodeBlock, 0, stream>>>(
      out, static_cast<float*>(scratch), q, q_stride, cache, a.T, pos, a.n_head, a.n_kv_head,
      a.head_size, scale);
  GPT_CUDA_CHECK_LAUNCH();
}

template void attention_decode<float>(float*, const float*, int, const float*, int,
                                      const cpu::AttentionShape&, void*, cudaStream_t);
template void attention_decode<bf16>(bf16*, const bf16*, int, const bf16*, int,
                                     const cpu::AttentionShape&, void*, cudaStream_t);
template void attention_forward<float>(cublasHandle_t, float*, float*, const float*,
                                       const cpu::AttentionShape&, void*, size_t, cudaStream_t);
template void attention_forward<bf16>(cublasHandle_t, bf16*, float*, const bf16*,
                                      const cpu::AttentionShape&, void*, size_t, cudaStream_t);
template void attention_backward<float>(cublasHandle_t, float*, const float*, const float*,
                                        const float*, const float*, const cpu::AttentionShape&,
                                        void*, size_t, cudaStream_t);
template void attention_backward<bf16>(cublasHandle_t, bf16*, const bf16*, const bf16*, const bf16*,
                                       const float*, const cpu::AttentionShape&, void*, size_t,
                                       cudaStream_t);

}  // namespace gpt::cuda
