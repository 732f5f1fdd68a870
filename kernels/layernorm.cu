// LayerNorm on the GPU (math and gradient rule: kernels/layernorm.h).
//
// Forward: one warp per row. The warp reads its row three times in 16-byte packets (sum -> mean,
// sum of squared deviations -> rstd, then the output); the second and third reads hit L1/L2, so
// DRAM sees one read of inp and one write of out. Two-pass variance: no cancellation, unlike
// E[x²] - E[x]².
//
// Backward, in three deterministic kernels (no atomics):
//   rows:    one warp per row: the two row sums of g = dout·w (Σg and Σg·xhat), then
//            dinp += rstd · (g - mean(g) - xhat · mean(g·xhat)).
//   columns: dweight and dbias are sums over rows (norm_backward_params, shared with RMSNorm, whose
//            rows have no mean, and with QK-norm, whose rows are heads of wider rows:
//            norm_backward_weight_heads). Block (column chunk, row chunk) of 8 warps:
//            lane l owns the packet of columns [chunk + l·x, +x), warp w takes rows w, w+8, ... of
//            the row chunk; the eight warp sums are added in warp order and stored as one partial
//            per row chunk (fp32 scratch, 2 · num_row_chunks · C floats).
//   finish:  one thread per column adds the partials in row-chunk order into dweight and dbias.
// The row-chunk size is a constant, so the order of every sum depends on the shape alone. Beyond
// 65535 row chunks (the grid's y limit) the columns kernel is launched again for the next ones.
// Traffic: rows reads dout, inp, dinp and writes dinp; columns reads dout and inp again.
#include <algorithm>

#include "kernels/cuda_kernels.cuh"

namespace gpt::cuda {
namespace {

constexpr int kBlock = 256;
constexpr int kWarpsPerBlock = kBlock / kWarpSize;
constexpr int kRowsPerChunk = 64;
constexpr float kEps = 1e-5f;

template <typename F>
__global__ void layernorm_forward_kernel(F* out, float* mean, float* rstd, const F* inp,
                                         const F* weight, const F* bias, int N, int C) {
  constexpr int x = pack_size<F>();
  const int lane = threadIdx.x % kWarpSize;
  const int row = blockIdx.x * kWarpsPerBlock + threadIdx.x / kWarpSize;
  if (row >= N) return;
  const F* in_row = inp + static_cast<int64_t>(row) * C;
  F* out_row = out + static_cast<int64_t>(row) * C;

  float sum = 0.0f;
  for (int c = lane * x; c < C; c += kWarpSize * x) {
    const Packed128<F> v = load128(in_row + c);
#pragma unroll
    for (int k = 0; k < x; ++k) sum += to_float(v[k]);
  }
  const float m = warp_sum(sum) / C;

  float sum_sq = 0.0f;
  for (int c = lane * x; c < C; c += kWarpSize * x) {
    const Packed128<F> v = load128(in_row + c);
#pragma unroll
    for (int k = 0; k < x; ++k) {
      const float d = to_float(v[k]) - m;
      sum_sq += d * d;
    }
  }
  const float s = rsqrtf(warp_sum(sum_sq) / C + kEps);

  for (int c = lane * x; c < C; c += kWarpSize * x) {
    const Packed128<F> v = load128cs(in_row + c);
    const Packed128<F> w = load128(weight + c);
    const Packed128<F> b = load128(bias + c);
    Packed128<F> o;
#pragma unroll
    for (int k = 0; k < x; ++k) {
      o[k] = from_float<F>((to_float(v[k]) - m) * s * to_float(w[k]) + to_float(b[k]));
    }
    store128(out_row + c, o);
  }
  if (lane == 0) {
    mean[row] = m;
    rstd[row] = s;
  }
}

template <typename F>
__global__ void layernorm_backward_rows_kernel(F* dinp, const F* dout, const F* inp,
                                               const F* weight, const float* mean,
                                               const float* rstd, int N, int C) {
  constexpr int x = pack_size<F>();
  const int lane = threadIdx.x % kWarpSize;
  const int row = blockIdx.x * kWarpsPerBlock + threadIdx.x / kWarpSize;
  if (row >= N) return;
  const int64_t offset = static_cast<int64_t>(row) * C;
  const float m = mean[row];
  const float s = rstd[row];

  float sum_g = 0.0f;
  float sum_g_xhat = 0.0f;
  for (int c = lane * x; c < C; c += kWarpSize * x) {
    const Packed128<F> dy = load128(dout + offset + c);
    const Packed128<F> v = load128(inp + offset + c);
    const Packed128<F> w = load128(weight + c);
#pragma unroll
    for (int k = 0; k < x; ++k) {
      const float g = to_float(dy[k]) * to_float(w[k]);
      sum_g += g;
      sum_g_xhat += g * ((to_float(v[k]) - m) * s);
    }
  }
  const float mean_g = warp_sum(sum_g) / C;
  const float mean_g_xhat = warp_sum(sum_g_xhat) / C;

  for (int c = lane * x; c < C; c += kWarpSize * x) {
    const Packed128<F> dy = load128(dout + offset + c);
    const Packed128<F> v = load128(inp + offset + c);
    const Packed128<F> w = load128(weight + c);
    Packed128<F> dx = load128(dinp + offset + c);
#pragma unroll
    for (int k = 0; k < x; ++k) {
      const float g = to_float(dy[k]) * to_float(w[k]);
      const float xhat = (to_float(v[k]) - m) * s;
      dx[k] = from_float<F>(to_float(dx[k]) + s * (g - mean_g - xhat * mean_g_xhat));
    }
    store128(dinp + offset + c, dx);
  }
}

// Where row i of a plain norm lies: at i · C, its statistics at i.
struct ContiguousRows {
  __device__ int64_t offset(int i, int C) const { return static_cast<int64_t>(i) * C; }
  __device__ int64_t stat(int i) const { return i; }
};

// grid (ceil(C / (32·x)), row chunks first_chunk, first_chunk + 1, ...), block 256.
// partial_dw/partial_db: (num_row_chunks, C). Rows: ContiguousRows or NormHeads.
template <typename F, typename Rows>
__global__ void layernorm_backward_columns_kernel(float* partial_dw, float* partial_db,
                                                  const F* dout, const F* inp, const float* mean,
                                                  const float* rstd, Rows rows, int N, int C,
                                                  int first_chunk) {
  constexpr int x = pack_size<F>();
  __shared__ float shared_dw[kWarpsPerBlock][kWarpSize * x];
  __shared__ float shared_db[kWarpsPerBlock][kWarpSize * x];
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  const int c = (blockIdx.x * kWarpSize + lane) * x;
  const int chunk = first_chunk + static_cast<int>(blockIdx.y);
  const int row_begin = chunk * kRowsPerChunk;
  const int row_end = min(row_begin + kRowsPerChunk, N);
  float dw[x];
  float db[x];
#pragma unroll
  for (int k = 0; k < x; ++k) dw[k] = db[k] = 0.0f;
  if (c < C) {
    for (int row = row_begin + warp; row < row_end; row += kWarpsPerBlock) {
      const int64_t offset = rows.offset(row, C) + c;
      const Packed128<F> dy = load128cs(dout + offset);
      const Packed128<F> v = load128cs(inp + offset);
      const int64_t stat = rows.stat(row);
      const float m = mean != nullptr ? mean[stat] : 0.0f;  // null: RMSNorm (no centring)
      const float s = rstd[stat];
#pragma unroll
      for (int k = 0; k < x; ++k) {
        const float d = to_float(dy[k]);
        dw[k] += d * ((to_float(v[k]) - m) * s);
        db[k] += d;
      }
    }
  }
#pragma unroll
  for (int k = 0; k < x; ++k) {
    shared_dw[warp][lane * x + k] = dw[k];
    shared_db[warp][lane * x + k] = db[k];
  }
  __syncthreads();
  // Thread i of the block finishes column (chunk start + i), summing the warps in order.
  const int chunk_width = kWarpSize * x;
  for (int i = threadIdx.x; i < chunk_width; i += blockDim.x) {
    const int col = blockIdx.x * chunk_width + i;
    if (col >= C) break;
    float total_dw = shared_dw[0][i];
    float total_db = shared_db[0][i];
    for (int w = 1; w < kWarpsPerBlock; ++w) {
      total_dw += shared_dw[w][i];
      total_db += shared_db[w][i];
    }
    partial_dw[static_cast<int64_t>(chunk) * C + col] = total_dw;
    partial_db[static_cast<int64_t>(chunk) * C + col] = total_db;
  }
}

template <typename F>
__global__ void layernorm_backward_finish_kernel(F* dweight, F* dbias, const float* partial_dw,
                                                 const float* partial_db, int num_chunks, int C) {
  const int col = blockIdx.x * blockDim.x + threadIdx.x;
  if (col >= C) return;
  float dw = 0.0f;
  float db = 0.0f;
  for (int chunk = 0; chunk < num_chunks; ++chunk) {
    dw += partial_dw[static_cast<int64_t>(chunk) * C + col];
    db += partial_db[static_cast<int64_t>(chunk) * C + col];
  }
  if (dweight != nullptr) dweight[col] = from_float<F>(to_float(dweight[col]) + dw);
  if (dbias != nullptr) dbias[col] = from_float<F>(to_float(dbias[col]) + db);
}

}  // namespace

template <typename F>
void layernorm_forward(F* out, float* mean, float* rstd, const F* inp, const F* weight,
                       const F* bias, int N, int C, cudaStream_t stream) {
  if (N == 0) return;
  layernorm_forward_kernel<F><<<ceil_div(N, kWarpsPerBlock), kBlock, 0, stream>>>(
      out, mean, rstd, inp, weight, bias, N, C);
  GPT_CUDA_CHECK_LAUNCH();
}

size_t norm_backward_params_scratch_bytes(int N, int C) {
  return 2 * static_cast<size_t>(ceil_div(N, kRowsPerChunk)) * C * sizeof(float);
}

size_t layernorm_backward_scratch_bytes(int N, int C) {
  return norm_backward_params_scratch_bytes(N, C);
}

namespace {

template <typename F, typename Rows>
void backward_params(F* dweight, F* dbias, const F* dout, const F* inp, const float* mean,
                     const float* rstd, const Rows& rows, int N, int C, void* scratch,
                     cudaStream_t stream) {
  if (N == 0 || (dweight == nullptr && dbias == nullptr)) return;
  constexpr int x = pack_size<F>();
  constexpr int kMaxGridY = 65535;
  const int num_chunks = ceil_div(N, kRowsPerChunk);
  float* partial_dw = static_cast<float*>(scratch);
  float* partial_db = partial_dw + static_cast<size_t>(num_chunks) * C;
  for (int first = 0; first < num_chunks; first += kMaxGridY) {
    const dim3 grid(static_cast<unsigned>(ceil_div(C, kWarpSize * x)),
                    static_cast<unsigned>(std::min(num_chunks - first, kMaxGridY)));
    layernorm_backward_columns_kernel<F, Rows><<<grid, kBlock, 0, stream>>>(
        partial_dw, partial_db, dout, inp, mean, rstd, rows, N, C, first);
    GPT_CUDA_CHECK_LAUNCH();
  }
  layernorm_backward_finish_kernel<F><<<ceil_div(C, kBlock), kBlock, 0, stream>>>(
      dweight, dbias, partial_dw, partial_db, num_chunks, C);
  GPT_CUDA_CHECK_LAUNCH();
}

}  // namespace

template <typename F>
void norm_backward_params(F* dweight, F* dbias, const F* dout, const F* inp, const float* mean,
                          const float* rstd, int N, int C, void* scratch, cudaStream_t stream) {
  backward_params(dweight, dbias, dout, inp, mean, rstd, ContiguousRows{}, N, C, scratch, stream);
}

template <typename F>
void norm_backward_weight_heads(F* dweight, const F* dout, const F* inp, const float* rstd,
                                const NormHeads& heads, int N, int C, void* scratch,
                                cudaStream_t stream) {
  backward_params(dweight, static_cast<F*>(nullptr), dout, inp, static_cast<const float*>(nullptr),
                  rstd, heads, N, C, scratch, stream);
}

template <typename F>
void layernorm_backward(F* dinp, F* dweight, F* dbias, const F* dout, const F* inp, const F* weight,
                        const float* mean, const float* rstd, int N, int C, void* scratch,
                        cudaStream_t stream) {
  if (N == 0) return;
  if (dinp != nullptr) {
    layernorm_backward_rows_kernel<F><<<ceil_div(N, kWarpsPerBlock), kBlock, 0, stream>>>(
        dinp, dout, inp, weight, mean, rstd, N, C);
    GPT_CUDA_CHECK_LAUNCH();
  }
  norm_backward_params<F>(dweight, dbias, dout, inp, mean, rstd, N, C, scratch, stream);
}

template void layernorm_forward<float>(float*, float*, float*, const float*, const float*,
                                       const float*, int, int, cudaStream_t);
template void layernorm_forward<bf16>(bf16*, float*, float*, const bf16*, const bf16*, const bf16*,
                                      int, int, cudaStream_t);
template void layernorm_backward<float>(float*, float*, float*, const float*, const float*,
                                        const float*, const float*, const float*, int, int, void*,
                                        cudaStream_t);
template void layernorm_backward<bf16>(bf16*, bf16*, bf16*, const bf16*, const bf16*, const bf16*,
                                       const float*, const float*, int, int, void*, cudaStream_t);
template void norm_backward_params<float>(float*, float*, const float*, const float*, const float*,
                                          const float*, int, int, void*, cudaStream_t);
template void norm_backward_params<bf16>(bf16*, bf16*, const bf16*, const bf16*, const float*,
                                         const float*, int, int, void*, cudaStream_t);
template void norm_backward_weight_heads<float>(float*, const float*, const float*, const float*,
                                                const NormHeads&, int, int, void*, cudaStream_t);
template void norm_backward_weight_heads<bf16>(bf16*, const bf16*, const bf16*, const float*,
                                               const NormHeads&, int, int, void*, cudaStream_t);

}  // namespace gpt::cuda
