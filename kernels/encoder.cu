// Token + position embedding on the GPU (math: kernels/encoder.h).
//
// Forward: one thread per 16-byte packet of out; reads a packet of wte and of wpe, writes one.
// Purely memory bound: 3·B·T·C elements moved.
//
// Backward, deterministically and without atomics. Several positions can carry the same token, so
// the rows of dwte receive several additions; a float atomicAdd would make their order (and the
// bits of the result) depend on scheduling. Instead:
//   1. sort the positions by token (CUB's radix sort is stable: equal tokens keep position order);
//   2. one block per run of equal tokens (blocks that do not start a run exit at once) adds the
//      run's rows of dout in a fixed order: warp w takes rows w, w+8, ... of the run, then the
//      eight warp sums are added in warp order and the total is added to dwte[token] once;
//   3. dwpe[t] += sum_b dout[b,t] with one thread per packet of a row, b in order.
// Sorting costs a few microseconds for B·T = 16K tokens; every element of dout is read once per
// table. A frequent token gives one long run: its eight warps per channel chunk share the rows.
#include <cub/device/device_radix_sort.cuh>

#include "kernels/cuda_kernels.cuh"

namespace gpt::cuda {
namespace {

constexpr int kBlock = 256;
constexpr int kRunWarps = 8;  // warps sharing one run of equal tokens

template <typename F>
__global__ void encoder_forward_kernel(F* out, const int32_t* tokens, const F* wte, const F* wpe,
                                       int BT, int T, int C) {
  constexpr int x = pack_size<F>();
  const int packs_per_row = C / x;
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= static_cast<int64_t>(BT) * packs_per_row) return;
  const int bt = static_cast<int>(idx / packs_per_row);
  const int c = static_cast<int>(idx % packs_per_row) * x;
  const int t = bt % T;
  const Packed128<F> e = load128(wte + static_cast<int64_t>(tokens[bt]) * C + c);
  Packed128<F> o = e;
  if (wpe != nullptr) {
    const Packed128<F> p = load128(wpe + static_cast<int64_t>(t) * C + c);
#pragma unroll
    for (int k = 0; k < x; ++k) o[k] = from_float<F>(to_float(e[k]) + to_float(p[k]));
  }
  store128cs(out + static_cast<int64_t>(bt) * C + c, o);
}

__global__ void iota_kernel(int32_t* values, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) values[i] = i;
}

// grid (BT, ceil(C / (32·x))), block kRunWarps warps. Block i handles the run of equal sorted
// tokens that starts at i (if one does) for channels [blockIdx.y·32·x, +32·x).
template <typename F>
__global__ void encoder_backward_wte_kernel(F* dwte, const F* dout, const uint32_t* sorted_tokens,
                                            const int32_t* sorted_positions, int BT, int C) {
  constexpr int x = pack_size<F>();
  __shared__ float partial[kRunWarps][kWarpSize * x];
  const int start = blockIdx.x;
  const uint32_t token = sorted_tokens[start];
  if (start > 0 && sorted_tokens[start - 1] == token) return;  // not the first of its run
  // The run is [start, end): sorted, so the matching entries after `start` form a prefix of every
  // window; count them window by window (every thread computes the same `end`).
  int end = start + 1;
  while (true) {
    const int j = end + static_cast<int>(threadIdx.x);
    const int same = __syncthreads_count(j < BT && sorted_tokens[j] == token);
    end += same;
    if (same < static_cast<int>(blockDim.x)) break;
  }
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  const int c = (blockIdx.y * kWarpSize + lane) * x;
  float acc[x];
#pragma unroll
  for (int k = 0; k < x; ++k) acc[k] = 0.0f;
  if (c < C) {
    for (int r = start + warp; r < end; r += kRunWarps) {
      const Packed128<F> d = load128cs(dout + static_cast<int64_t>(sorted_positions[r]) * C + c);
#pragma unroll
      for (int k = 0; k < x; ++k) acc[k] += to_float(d[k]);
    }
  }
#pragma unroll
  for (int k = 0; k < x; ++k) partial[warp][lane * x + k] = acc[k];
  __syncthreads();
  if (warp != 0 || c >= C) return;
  float total[x];
#pragma unroll
  for (int k = 0; k < x; ++k) {
    total[k] = partial[0][lane * x + k];
    for (int w = 1; w < kRunWarps; ++w) total[k] += partial[w][lane * x + k];
  }
  F* row = dwte + static_cast<int64_t>(token) * C + c;
  Packed128<F> g = load128(row);
#pragma unroll
  for (int k = 0; k < x; ++k) g[k] = from_float<F>(to_float(g[k]) + total[k]);
  store128(row, g);
}

// One thread per packet of a (t, channels) row of dwpe: dwpe[t] += sum over b, b in order.
template <typename F>
__global__ void encoder_backward_wpe_kernel(F* dwpe, const F* dout, int B, int T, int C) {
  constexpr int x = pack_size<F>();
  const int packs_per_row = C / x;
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= static_cast<int64_t>(T) * packs_per_row) return;
  const int t = static_cast<int>(idx / packs_per_row);
  const int c = static_cast<int>(idx % packs_per_row) * x;
  float acc[x];
#pragma unroll
  for (int k = 0; k < x; ++k) acc[k] = 0.0f;
  for (int b = 0; b < B; ++b) {
    const Packed128<F> d = load128cs(dout + (static_cast<int64_t>(b) * T + t) * C + c);
#pragma unroll
    for (int k = 0; k < x; ++k) acc[k] += to_float(d[k]);
  }
  F* row = dwpe + static_cast<int64_t>(t) * C + c;
  Packed128<F> g = load128(row);
#pragma unroll
  for (int k = 0; k < x; ++k) g[k] = from_float<F>(to_float(g[k]) + acc[k]);
  store128(row, g);
}

int key_bits(int rows) {
  int bits = 1;
  while (bits < 31 && (1 << bits) < rows) ++bits;
  return bits;
}

size_t align256(size_t n) {
  return (n + 255) / 256 * 256;
}

size_t sort_temp_bytes(int BT, int rows) {
  size_t bytes = 0;
  GPT_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(
      nullptr, bytes, static_cast<const uint32_t*>(nullptr), static_cast<uint32_t*>(nullptr),
      static_cast<const int32_t*>(nullptr), static_cast<int32_t*>(nullptr), BT, 0, key_bits(rows)));
  return bytes;
}

}  // namespace

template <typename F>
void encoder_forward(F* out, const int32_t* tokens, const F* wte, const F* wpe, int B, int T, int C,
                     cudaStream_t stream) {
  const int64_t threads = static_cast<int64_t>(B) * T * (C / pack_size<F>());
  if (threads == 0) return;
  const unsigned grid = static_cast<unsigned>(ceil_div<int64_t>(threads, kBlock));
  encoder_forward_kernel<F><<<grid, kBlock, 0, stream>>>(out, tokens, wte, wpe, B * T, T, C);
  GPT_CUDA_CHECK_LAUNCH();
}

size_t encoder_backward_scratch_bytes(int BT, int rows) {
  // sorted keys, values in (positions), values out, CUB's temporary storage
  return 3 * align256(static_cast<size_t>(BT) * sizeof(int32_t)) +
         align256(sort_temp_bytes(BT, rows));
}

template <typename F>
void encoder_backward(F* dwte, F* dwpe, const F* dout, const int32_t* tokens, int B, int T, int C,
                      int rows, void* scratch, size_t scratch_bytes, cudaStream_t stream) {
  constexpr int x = pack_size<F>();
  const int BT = B * T;
  if (BT == 0) return;
  if (dwte != nullptr) {
    if (scratch_bytes < encoder_backward_scratch_bytes(BT, rows))
      throw std::invalid_argument("encoder_backward: scratch too small");
    char* base = static_cast<char*>(scratch);
    const size_t index_bytes = align256(static_cast<size_t>(BT) * sizeof(int32_t));
    uint32_t* sorted_tokens = reinterpret_cast<uint32_t*>(base);
    int32_t* positions = reinterpret_cast<int32_t*>(base + index_bytes);
    int32_t* sorted_positions = reinterpret_cast<int32_t*>(base + 2 * index_bytes);
    void* temp = base + 3 * index_bytes;
    size_t temp_bytes = sort_temp_bytes(BT, rows);
    iota_kernel<<<ceil_div(BT, kBlock), kBlock, 0, stream>>>(positions, BT);
    GPT_CUDA_CHECK_LAUNCH();
    // Token ids are non-negative, so their int32 bits sort correctly as unsigned keys.
    GPT_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(
        temp, temp_bytes, reinterpret_cast<const uint32_t*>(tokens), sorted_tokens, positions,
        sorted_positions, BT, 0, key_bits(rows), stream));
    const dim3 grid(static_cast<unsigned>(BT), static_cast<unsigned>(ceil_div(C, kWarpSize * x)));
    encoder_backward_wte_kernel<F><<<grid, kRunWarps * kWarpSize, 0, stream>>>(
        dwte, dout, sorted_tokens, sorted_positions, BT, C);
    GPT_CUDA_CHECK_LAUNCH();
  }
  if (dwpe != nullptr) {
    const int threads = T * (C / x);
    encoder_backward_wpe_kernel<F>
        <<<ceil_div(threads, kBlock), kBlock, 0, stream>>>(dwpe, dout, B, T, C);
    GPT_CUDA_CHECK_LAUNCH();
  }
}

template void encoder_forward<float>(float*, const int32_t*, const float*, const float*, int, int,
                                     int, cudaStream_t);
template void encoder_forward<bf16>(bf16*, const int32_t*, const bf16*, const bf16*, int, int, int,
                                    cudaStream_t);
template void encoder_backward<float>(float*, float*, const float*, const int32_t*, int, int, int,
                                      int, void*, size_t, cudaStream_t);
template void encoder_backward<bf16>(bf16*, bf16*, const bf16*, const int32_t*, int, int, int, int,
                                     void*, size_t, cudaStream_t);

}  // namespace gpt::cuda
