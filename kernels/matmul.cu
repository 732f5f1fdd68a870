// The Linear layer on the GPU through cuBLASLt (math and gradient rule: kernels/matmul.h).
//
// Row-major to column-major: cuBLASLt is column-major, and a row-major matrix X (r×c, leading
// dimension ld) is the column-major matrix Xᵀ with the same ld. So the row-major product
// D = op_a(A) · op_b(B) (M×N, inner K) is computed as the column-major Dᵀ = op_b(B)ᵀ · op_a(A)ᵀ:
// swap the operands and M with N, keep the transpose flags (rowmajor_matmul below). Then:
//
//   forward   out (N,OC)    = inp (N,C) · Wᵀ              A = inp, B = W (transposed), + bias
//   dinp      dinp (N,C)    = dout (N,OC) · W (OC,C)       beta = 0 (overwrite)
//   dweight   dweight (OC,C) += doutᵀ (OC,N) · inp (N,C)   beta = 1 (accumulate), + BGRADB
//
// Epilogues: the forward bias is cuBLASLt's BIAS epilogue (added to every row of the row-major
// output). The bias gradient rides on the dweight product as the BGRADB epilogue, which reduces
// the row-major doutᵀ over its inner dimension (the N rows of dout): dbias_o = Σ_n dout[n,o]. The
// epilogue overwrites its output and our rule is +=, so it writes to scratch and a small kernel
// adds the scratch into dbias. Where cuBLASLt offers no algorithm for an epilogue, or on request
// (BiasGradPath::kernel), a deterministic column-sum kernel computes the bias gradient instead.
//
// Numerics: fp32 accumulation always (CUBLAS_COMPUTE_32F, never TF32, so the fp32 mode matches
// the CPU at fp32 tolerance); inputs and outputs in the storage type. cuBLASLt is deterministic
// for a given problem, algorithm and device.
//
// Plans: the descriptors (matmul, three layouts) are built once per problem (shape, dtype,
// transposes, epilogue, pointer alignments) and kept with the heuristic's best algorithms (up to
// kMaxAlgorithms). The heuristic is told the real alignment of every pointer (it otherwise assumes
// 256 bytes, which per-layer views of small models do not have). The heuristic's answer is an
// estimate that cublasLtMatmul may still refuse with NOT_SUPPORTED: then the next candidate is
// tried and the refused one dropped, so the plan keeps the first that ran; only when every
// candidate is refused does the caller fall back (the bias kernels of the epilogues).
#include <map>
#include <memory>
#include <tuple>
#include <vector>

#include "kernels/cuda_kernels.cuh"

namespace gpt::cuda {

// ---- cuBLASLt descriptors and the per-problem cache ---------------------------------------------
// RAII owners of the cuBLASLt descriptors (a failed destroy is reported, not thrown). Outside the
// anonymous namespace because MatmulAlgoCache (declared in cuda_kernels.cuh) holds them.
struct LtMatmulDesc {
  cublasLtMatmulDesc_t desc = nullptr;
  LtMatmulDesc() {
    GPT_CUDA_CHECK(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  }
  ~LtMatmulDesc() { GPT_CUDA_WARN(cublasLtMatmulDescDestroy(desc)); }
  LtMatmulDesc(const LtMatmulDesc&) = delete;
  LtMatmulDesc& operator=(const LtMatmulDesc&) = delete;
  template <typename T>
  void set(cublasLtMatmulDescAttributes_t attr, const T& value) {
    GPT_CUDA_CHECK(cublasLtMatmulDescSetAttribute(desc, attr, &value, sizeof(value)));
  }
};
struct LtLayout {
  cublasLtMatrixLayout_t layout = nullptr;
  LtLayout(cudaDataType_t type, int rows, int cols, int ld) {
    GPT_CUDA_CHECK(cublasLtMatrixLayoutCreate(&layout, type, static_cast<uint64_t>(rows),
                                              static_cast<uint64_t>(cols),
                                              static_cast<int64_t>(ld)));
  }
  ~LtLayout() { GPT_CUDA_WARN(cublasLtMatrixLayoutDestroy(layout)); }
  LtLayout(const LtLayout&) = delete;
  LtLayout& operator=(const LtLayout&) = delete;
};
struct LtPreference {
  cublasLtMatmulPreference_t pref = nullptr;
  LtPreference() { GPT_CUDA_CHECK(cublasLtMatmulPreferenceCreate(&pref)); }
  ~LtPreference() { GPT_CUDA_WARN(cublasLtMatmulPreferenceDestroy(pref)); }
  LtPreference(const LtPreference&) = delete;
  LtPreference& operator=(const LtPreference&) = delete;
  template <typename T>
  void set(cublasLtMatmulPreferenceAttributes_t attr, const T& value) {
    GPT_CUDA_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, attr, &value, sizeof(value)));
  }
};

// One column-major problem D (m×n) = op(A) · op(B), built on its first call and reused by every
// later call with the same key: the matmul descriptor (transposes, epilogue), the three matrix
// layouts, and the algorithms the heuristic offered, best first. Only what changes from call to
// call is set per call: the epilogue's vector pointer (an attribute of the descriptor), the data
// pointers and beta.
struct LtMatmulPlan {
  LtMatmulPlan(cudaDataType_t type, cublasOperation_t transa, cublasOperation_t transb, int m,
               int n, int k, int lda, int ldb, int ldd, cublasLtEpilogue_t epilogue)
      // Stored shapes: op(A) is m×k, so A is k×m when transposed; op(B) is k×n.
      : a(type, transa == CUBLAS_OP_N ? m : k, transa == CUBLAS_OP_N ? k : m, lda),
        b(type, transb == CUBLAS_OP_N ? k : n, transb == CUBLAS_OP_N ? n : k, ldb),
        d(type, m, n, ldd) {
    desc.set(CUBLASLT_MATMUL_DESC_TRANSA, static_cast<int32_t>(transa));
    desc.set(CUBLASLT_MATMUL_DESC_TRANSB, static_cast<int32_t>(transb));
    if (epilogue != CUBLASLT_EPILOGUE_DEFAULT) {
      desc.set(CUBLASLT_MATMUL_DESC_EPILOGUE, static_cast<uint32_t>(epilogue));
    }
  }
  LtMatmulDesc desc;
  LtLayout a, b, d;  // C is D (the product accumulates in place when beta = 1)
  // Candidates in the heuristic's order. The front is the one in use: an algorithm that
  // cublasLtMatmul refuses with NOT_SUPPORTED is dropped, so the front is always the first one
  // that ran. Empty: cuBLASLt has no algorithm for this problem.
  std::vector<cublasLtMatmulAlgo_t> algos;
};

struct MatmulAlgoCache {
  // (type, transa, transb, m, n, k, lda, ldb, ldd, epilogue, alignments A, B, D, bias)
  using Key = std::tuple<int, int, int, int, int, int, int, int, int, int, int, int, int, int>;
  std::map<Key, std::unique_ptr<LtMatmulPlan>> plans;
};

MatmulAlgoCache* create_matmul_algo_cache() {
  return new MatmulAlgoCache();
}
void destroy_matmul_algo_cache(MatmulAlgoCache* cache) {
  delete cache;
}

namespace {

constexpr int kBlock = 256;
constexpr int kWarpsPerBlock = kBlock / kWarpSize;
constexpr int kRowsPerChunk = 64;
// How many algorithms to ask the heuristic for: the fall-backs when the best one is refused.
constexpr int kMaxAlgorithms = 8;

// Largest power of two (at most 256) dividing the address; 256 for null.
uint32_t alignment_of(const void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  uint32_t align = 256;
  while (align > 1 && a % align != 0) align /= 2;
  return align;
}

// The heuristic's algorithms for a plan (whose descriptor already carries the epilogue vector),
// best first, told the workspace and the real alignment of every matrix. Empty when it has none.
std::vector<cublasLtMatmulAlgo_t> heuristic_algorithms(const MatmulContext& ctx,
                                                       const LtMatmulPlan& plan, uint32_t align_a,
                                                       uint32_t align_b, uint32_t align_d) {
  LtPreference pref;
  pref.set(CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, static_cast<uint64_t>(ctx.workspace_bytes));
  pref.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, align_a);
  pref.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, align_b);
  pref.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, align_d);
  pref.set(CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, align_d);
  cublasLtMatmulHeuristicResult_t results[kMaxAlgorithms] = {};
  int count = 0;
  const cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(
      ctx.lt, plan.desc.desc, plan.a.layout, plan.b.layout, plan.d.layout, plan.d.layout, pref.pref,
      kMaxAlgorithms, results, &count);
  std::vector<cublasLtMatmulAlgo_t> algos;
  if (status == CUBLAS_STATUS_NOT_SUPPORTED) return algos;  // no heuristic for this configuration
  GPT_CUDA_CHECK(status);
  // Each result has its own state; keep the ones the library says it can run.
  for (int i = 0; i < count; ++i) {
    if (results[i].state == CUBLAS_STATUS_SUCCESS) algos.push_back(results[i].algo);
  }
  return algos;
}

// Column-major D (m×n, ld ldd) = op(A) · op(B) + beta · D, with an optional epilogue whose vector
// is `bias`. Returns false (doing nothing) when cuBLASLt has no algorithm for the problem.
bool lt_matmul(const MatmulContext& ctx, cudaDataType_t type, cublasOperation_t transa,
               cublasOperation_t transb, int m, int n, int k, const void* A, int lda, const void* B,
               int ldb, void* D, int ldd, float beta, cublasLtEpilogue_t epilogue, void* bias) {
  const bool has_vector = epilogue != CUBLASLT_EPILOGUE_DEFAULT;
  const uint32_t align_a = alignment_of(A), align_b = alignment_of(B), align_d = alignment_of(D);
  const uint32_t align_bias = has_vector ? alignment_of(bias) : 256;
  const MatmulAlgoCache::Key key{static_cast<int>(type),
                                 static_cast<int>(transa),
                                 static_cast<int>(transb),
                                 m,
                                 n,
                                 k,
                                 lda,
                                 ldb,
                                 ldd,
                                 static_cast<int>(epilogue),
                                 static_cast<int>(align_a),
                                 static_cast<int>(align_b),
                                 static_cast<int>(align_d),
                                 static_cast<int>(align_bias)};
  auto it = ctx.cache->plans.find(key);
  if (it == ctx.cache->plans.end()) {
    // First call with this key: descriptors and heuristic, once. The plan enters the cache only
    // when complete, so a failure here leaves nothing half-built behind.
    auto plan =
        std::make_unique<LtMatmulPlan>(type, transa, transb, m, n, k, lda, ldb, ldd, epilogue);
    if (has_vector) plan->desc.set(CUBLASLT_MATMUL_DESC_BIAS_POINTER, bias);
    plan->algos = heuristic_algorithms(ctx, *plan, align_a, align_b, align_d);
    it = ctx.cache->plans.emplace(key, std::move(plan)).first;
  }
  LtMatmulPlan& plan = *it->second;
  // The epilogue vector is the one pointer the descriptor holds; it may differ from the last call.
  if (has_vector) plan.desc.set(CUBLASLT_MATMUL_DESC_BIAS_POINTER, bias);
  const float alpha = 1.0f;
  while (!plan.algos.empty()) {
    const cublasStatus_t status = cublasLtMatmul(
        ctx.lt, plan.desc.desc, &alpha, A, plan.a.layout, B, plan.b.layout, &beta, D, plan.d.layout,
        D, plan.d.layout, &plan.algos.front(), ctx.workspace, ctx.workspace_bytes, ctx.stream);
    if (status != CUBLAS_STATUS_NOT_SUPPORTED) {
      GPT_CUDA_CHECK(status);
      return true;
    }
    // The heuristic offered an algorithm the library then refuses for this problem (nothing was
    // launched): drop it for good and try the next.
    plan.algos.erase(plan.algos.begin());
  }
  return false;
}

// Row-major D (M×N, ld ldd) = op_a(A) (M×K) · op_b(B) (K×N) + beta · D. Epilogue vectors in
// row-major terms: BIAS adds bias[j] to column j of D (length N); BGRADB writes
// bias[i] = Σ_k op_a(A)[i,k] (length M).
template <typename F>
bool rowmajor_matmul(const MatmulContext& ctx, cublasOperation_t op_a, cublasOperation_t op_b,
                     int M, int N, int K, const F* A, int lda, const F* B, int ldb, F* D, int ldd,
                     float beta, cublasLtEpilogue_t epilogue, void* bias) {
  return lt_matmul(ctx, data_type<F>(), op_b, op_a, N, M, K, B, ldb, A, lda, D, ldd, beta, epilogue,
                   bias);
}

// out[n, :] = bias, the fallback when no BIAS-epilogue algorithm exists (then out += inp · Wᵀ).
template <typename F>
__global__ void broadcast_rows_kernel(F* out, const F* bias, int N, int OC) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= static_cast<int64_t>(N) * OC) return;
  out[idx] = bias[idx % OC];
}

// Column sums of dout (N, OC) in two deterministic passes (as layernorm.cu's parameter gradients):
// partial[chunk, o] over the rows of each chunk of kRowsPerChunk rows (warps in order), then
// dbias[o] += Σ_chunk partial[chunk, o] in chunk order.
template <typename F>
__global__ void column_partials_kernel(float* partial, const F* dout, int N, int OC) {
  constexpr int x = pack_size<F>();
  __shared__ float shared[kWarpsPerBlock][kWarpSize * x];
  const int lane = threadIdx.x % kWarpSize;
  const int warp = threadIdx.x / kWarpSize;
  const int col = (blockIdx.x * kWarpSize + lane) * x;
  const int row_begin = blockIdx.y * kRowsPerChunk;
  const int row_end = min(row_begin + kRowsPerChunk, N);
  float acc[x];
#pragma unroll
  for (int k = 0; k < x; ++k) acc[k] = 0.0f;
  if (col < OC) {
    for (int row = row_begin + warp; row < row_end; row += kWarpsPerBlock) {
      const Packed128<F> d = load128cs(dout + static_cast<int64_t>(row) * OC + col);
#pragma unroll
      for (int k = 0; k < x; ++k) acc[k] += to_float(d[k]);
    }
  }
#pragma unroll
  for (int k = 0; k < x; ++k) shared[warp][lane * x + k] = acc[k];
  __syncthreads();
  const int chunk_width = kWarpSize * x;
  for (int i = threadIdx.x; i < chunk_width; i += blockDim.x) {
    const int o = blockIdx.x * chunk_width + i;
    if (o >= OC) break;
    float total = shared[0][i];
    for (int w = 1; w < kWarpsPerBlock; ++w) total += shared[w][i];
    partial[static_cast<int64_t>(blockIdx.y) * OC + o] = total;
  }
}

template <typename F>
__global__ void column_finish_kernel(F* dbias, const float* partial, int num_chunks, int OC) {
  const int o = blockIdx.x * blockDim.x + threadIdx.x;
  if (o >= OC) return;
  float total = 0.0f;
  for (int chunk = 0; chunk < num_chunks; ++chunk)
    total += partial[static_cast<int64_t>(chunk) * OC + o];
  dbias[o] = from_float<F>(to_float(dbias[o]) + total);
}

template <typename F>
void bias_grad_kernel_path(F* dbias, const F* dout, int N, int OC, void* scratch,
                           cudaStream_t stream) {
  constexpr int x = pack_size<F>();
  const int num_chunks = ceil_div(N, kRowsPerChunk);
  if (num_chunks > 65535) throw std::invalid_argument("matmul_backward: too many rows for dbias");
  float* partial = static_cast<float*>(scratch);
  const dim3 grid(static_cast<unsigned>(ceil_div(OC, kWarpSize * x)),
                  static_cast<unsigned>(num_chunks));
  column_partials_kernel<F><<<grid, kBlock, 0, stream>>>(partial, dout, N, OC);
  GPT_CUDA_CHECK_LAUNCH();
  column_finish_kernel<F>
      <<<ceil_div(OC, kBlock), kBlock, 0, stream>>>(dbias, partial, num_chunks, OC);
  GPT_CUDA_CHECK_LAUNCH();
}

}  // namespace

template <typename F>
void matmul_forward(const MatmulContext& ctx, F* out, const F* inp, const F* weight, const F* bias,
                    int N, int C, int OC) {
  if (N == 0 || OC == 0) return;
  // out (N,OC) = inp (N,C) · weightᵀ, weight stored (OC,C)
  if (bias != nullptr) {
    if (rowmajor_matmul<F>(ctx, CUBLAS_OP_N, CUBLAS_OP_T, N, OC, C, inp, C, weight, C, out, OC,
                           0.0f, CUBLASLT_EPILOGUE_BIAS, const_cast<F*>(bias))) {
      return;
    }
    const int64_t total = static_cast<int64_t>(N) * OC;
    broadcast_rows_kernel<F>
        <<<static_cast<unsigned>(ceil_div<int64_t>(total, kBlock)), kBlock, 0, ctx.stream>>>(
            out, bias, N, OC);
    GPT_CUDA_CHECK_LAUNCH();
  }
  if (!rowmajor_matmul<F>(ctx, CUBLAS_OP_N, CUBLAS_OP_T, N, OC, C, inp, C, weight, C, out, OC,
                          bias != nullptr ? 1.0f : 0.0f, CUBLASLT_EPILOGUE_DEFAULT, nullptr)) {
    throw CudaError("matmul_forward: cuBLASLt has no algorithm for N=" + std::to_string(N) +
                    " C=" + std::to_string(C) + " OC=" + std::to_string(OC));
  }
}

size_t matmul_backward_scratch_bytes(int N, int OC) {
  // The kernel path's partial sums; the epilogue path needs OC elements, fewer.
  return static_cast<size_t>(ceil_div(N, kRowsPerChunk)) * OC * sizeof(float);
}

template <typename F>
BiasGradPath matmul_backward(const MatmulContext& ctx, F* dinp, F* dweight, F* dbias, const F* dout,
                             const F* inp, const F* weight, int N, int C, int OC, BiasGradPath path,
                             void* scratch) {
  if (N == 0) return path;
  if (dinp != nullptr) {
    // dinp (N,C) = dout (N,OC) · weight (OC,C)
    if (!rowmajor_matmul<F>(ctx, CUBLAS_OP_N, CUBLAS_OP_N, N, C, OC, dout, OC, weight, C, dinp, C,
                            0.0f, CUBLASLT_EPILOGUE_DEFAULT, nullptr)) {
      throw CudaError("matmul_backward (dinp): cuBLASLt has no algorithm");
    }
  }
  BiasGradPath taken = BiasGradPath::kernel;
  if (dweight != nullptr) {
    // dweight (OC,C) += doutᵀ (OC,N) · inp (N,C); with BGRADB: scratch (OC) = Σ_n dout[n, :]
    bool fused = false;
    if (dbias != nullptr && path == BiasGradPath::cublaslt_epilogue) {
      fused = rowmajor_matmul<F>(ctx, CUBLAS_OP_T, CUBLAS_OP_N, OC, C, N, dout, OC, inp, C, dweight,
                                 C, 1.0f, CUBLASLT_EPILOGUE_BGRADB, scratch);
    }
    if (fused) {
      taken = BiasGradPath::cublaslt_epilogue;
    } else if (!rowmajor_matmul<F>(ctx, CUBLAS_OP_T, CUBLAS_OP_N, OC, C, N, dout, OC, inp, C,
                                   dweight, C, 1.0f, CUBLASLT_EPILOGUE_DEFAULT, nullptr)) {
      throw CudaError("matmul_backward (dweight): cuBLASLt has no algorithm");
    }
  }
  if (dbias != nullptr) {
    if (taken == BiasGradPath::cublaslt_epilogue) {
      residual_forward<F>(dbias, dbias, static_cast<const F*>(scratch), static_cast<size_t>(OC),
                          ctx.stream);
    } else {
      bias_grad_kernel_path<F>(dbias, dout, N, OC, scratch, ctx.stream);
    }
  }
  return taken;
}

template void matmul_forward<float>(const MatmulContext&, float*, const float*, const float*,
                                    const float*, int, int, int);
template void matmul_forward<bf16>(const MatmulContext&, bf16*, const bf16*, const bf16*,
                                   const bf16*, int, int, int);
template BiasGradPath matmul_backward<float>(const MatmulContext&, float*, float*, float*,
                                             const float*, const float*, const float*, int, int,
                                             int, BiasGradPath, void*);
template BiasGradPath matmul_backward<bf16>(const MatmulContext&, bf16*, bf16*, bf16*, const bf16*,
                                            const bf16*, const bf16*, int, int, int, BiasGradPath,
                                            void*);

}  // namespace gpt::cuda
