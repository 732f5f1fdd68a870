// CPU matmuls: the Linear layer (forward, backward) and the general strided gemm under them.
//
// float goes through CBLAS sgemm when the build found OpenBLAS (GPT_HAVE_CBLAS); double, and float
// without CBLAS, go through plain loops. The plain loops parallelise over output rows and reduce
// every output element over k in a fixed order. The sgemm path splits C into blocks that depend on
// the shape only (see sgemm_blocked); a long weight gradient splits the rows instead
// (weight_gradient_by_chunks). Either way the bits of the result do not depend on the thread
// count (the determinism test in tests/test_kernels.cpp checks it). A product whose C is small next
// to K splits K instead (sgemm_split_reduction), again by the shape alone.
#include "kernels/matmul.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>
#include <type_traits>
#include <vector>

#ifdef GPT_HAVE_CBLAS
#include <cblas.h>
extern "C" char* openblas_get_config(void);
#endif

namespace gpt::cpu {
namespace {

// Below this many multiply-adds a product runs on the calling thread (no OpenMP team).
constexpr long kParallelMinWork = 1L << 15;

// Dot product with 8 independent partial sums: the compiler can keep them in one vector register
// without reassociating anything, and the order of the additions is fixed by n alone.
template <typename F>
F dot(const F* a, const F* b, int n) {
  constexpr int kLanes = 8;
  F lane[kLanes] = {};
  int k = 0;
  for (; k + kLanes <= n; k += kLanes) {
    for (int l = 0; l < kLanes; ++l) lane[l] += a[k + l] * b[k + l];
  }
  for (int l = 0; k < n; ++k, ++l) lane[l] += a[k] * b[k];
  F sum = 0;
  for (int l = 0; l < kLanes; ++l) sum += lane[l];
  return sum;
}

// C (M,N) = alpha · op(A) (M,K) · op(B) (K,N) + beta · C, row-major, in plain loops. As in BLAS,
// beta == 0 ignores whatever C held (NaN included).
template <typename F>
void gemm_loops(Transpose trans_a, Transpose trans_b, int M, int N, int K, F alpha, const F* A,
                int lda, const F* Bm, int ldb, F beta, F* Cm, int ldc) {
  const bool a_t = trans_a == Transpose::yes;
  const bool b_t = trans_b == Transpose::yes;
  const long work = static_cast<long>(M) * N * K;
#pragma omp parallel for schedule(static) if (work > kParallelMinWork)
  for (int i = 0; i < M; ++i) {
    F* c_row = Cm + static_cast<size_t>(i) * ldc;
    if (beta == F(0)) {
      for (int j = 0; j < N; ++j) c_row[j] = 0;
    } else if (beta != F(1)) {
      for (int j = 0; j < N; ++j) c_row[j] *= beta;
    }
    if (b_t) {
      // op(B)[k,j] = B[j,k]: each output is a dot product of two contiguous rows (A's row needs
      // gathering first when A is transposed).
      if (!a_t) {
        const F* a_row = A + static_cast<size_t>(i) * lda;
        for (int j = 0; j < N; ++j) {
          c_row[j] += alpha * dot(a_row, Bm + static_cast<size_t>(j) * ldb, K);
        }
      } else {
        for (int j = 0; j < N; ++j) {
          const F* b_row = Bm + static_cast<size_t>(j) * ldb;
          F sum = 0;
          for (int k = 0; k < K; ++k) sum += A[static_cast<size_t>(k) * lda + i] * b_row[k];
          c_row[j] += alpha * sum;
        }
      }
    } else {
      // op(B)[k,:] is a contiguous row: C's row += op(A)[i,k] · B's row k, k in order (vectorises
      // over j).
      for (int k = 0; k < K; ++k) {
        const F a_ik = alpha * (a_t ? A[static_cast<size_t>(k) * lda + i]
                                    : A[static_cast<size_t>(i) * lda + k]);
        const F* b_row = Bm + static_cast<size_t>(k) * ldb;
        for (int j = 0; j < N; ++j) c_row[j] += a_ik * b_row[j];
      }
    }
  }
}

#ifdef GPT_HAVE_CBLAS
void sgemm(Transpose trans_a, Transpose trans_b, int M, int N, int K, float alpha, const float* A,
           int lda, const float* Bm, int ldb, float beta, float* Cm, int ldc) {
  cblas_sgemm(CblasRowMajor, trans_a == Transpose::yes ? CblasTrans : CblasNoTrans,
              trans_b == Transpose::yes ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, Bm,
              ldb, beta, Cm, ldc);
}

// OpenBLAS's own threading splits C by the thread count, and its edge micro-kernels reduce in a
// different order from the main one, so the bits of C would depend on the number of threads. We
// split C ourselves instead, into blocks whose size depends on M and N only, and call sgemm once
// per block from inside the parallel region (where the OpenMP build of OpenBLAS runs on the calling
// thread alone).
void sgemm_blocked(Transpose trans_a, Transpose trans_b, int M, int N, int K, float alpha,
                   const float* A, int lda, const float* Bm, int ldb, float beta, float* Cm,
                   int ldc) {
  // Blocks of up to 512 x 512, halved until there are kMinTasks of them: rows first, since a
  // block as wide as B's panel lets OpenBLAS pack that panel in fewer, longer pieces (on the 2-core
  // VM, 256 x 512 blocks ran 3-5% faster than 256 x 256 at the tiny-cpu and llmc-small shapes).
  constexpr int kMinTasks = 16;
  int block_rows = 512;
  int block_cols = 512;
  auto tasks = [&] {
    return ((M + block_rows - 1) / block_rows) *
           static_cast<long>((N + block_cols - 1) / block_cols);
  };
  while (block_rows > 64 && tasks() < kMinTasks) block_rows /= 2;
  while (block_cols > 64 && tasks() < kMinTasks) block_cols /= 2;
  const int row_blocks = (M + block_rows - 1) / block_rows;
  const int col_blocks = (N + block_cols - 1) / block_cols;
#pragma omp parallel for schedule(dynamic)
  for (int blk = 0; blk < row_blocks * col_blocks; ++blk) {
    const int i0 = (blk / col_blocks) * block_rows;
    const int j0 = (blk % col_blocks) * block_cols;
    const int rows = std::min(block_rows, M - i0);
    const int cols = std::min(block_cols, N - j0);
    // Rows i0.. of op(A) and columns j0.. of op(B).
    const float* a = trans_a == Transpose::no ? A + static_cast<size_t>(i0) * lda : A + i0;
    const float* b = trans_b == Transpose::no ? Bm + j0 : Bm + static_cast<size_t>(j0) * ldb;
    sgemm(trans_a, trans_b, rows, cols, K, alpha, a, lda, b, ldb, beta,
          Cm + static_cast<size_t>(i0) * ldc + j0, ldc);
  }
}

// Rows of op(B) (and columns of op(A)) per chunk of a split reduction, at least.
constexpr int kMinChunkK = 256;

// Whether to split the reduction dimension K rather than C: when C is small next to K (the input
// gradient of the classifier, 256 x 768 outputs summed over 50,304 logits). Blocking C into enough
// tasks would give each thread small blocks whose long panels OpenBLAS packs again for every block
// (about 100 GF/s instead of 160 on the 2-core VM).
bool split_reduction(int M, int N, int K) {
  const long blocks_of_512 = ((M + 511) / 512) * static_cast<long>((N + 511) / 512);
  return blocks_of_512 < 8 && K >= 2 * std::max(M, N) && K >= 4 * kMinChunkK;
}

// C = alpha · op(A) · op(B) + beta · C with K cut into chunks (their number and length depend on
// M, N and K only): each chunk's product goes to its own slice of a scratch buffer (one sgemm per
// chunk and block of C, one thread each), then the chunks are added in order, element by element.
void sgemm_split_reduction(Transpose trans_a, Transpose trans_b, int M, int N, int K, float alpha,
                           const float* A, int lda, const float* Bm, int ldb, float beta, float* Cm,
                           int ldc) {
  constexpr int kBlock = 512;
  constexpr int kTargetTasks = 32;
  const int row_blocks = (M + kBlock - 1) / kBlock;
  const int col_blocks = (N + kBlock - 1) / kBlock;
  const int blocks = row_blocks * col_blocks;
  const int chunks = std::max(1, std::min((kTargetTasks + blocks - 1) / blocks, K / kMinChunkK));
  const int chunk_k = ((K + chunks - 1) / chunks + 7) / 8 * 8;
  const int num_chunks = (K + chunk_k - 1) / chunk_k;
  const size_t c_size = static_cast<size_t>(M) * N;
  thread_local std::vector<float> partial_buffer;  // num_chunks x M x N; the calling thread's
  if (partial_buffer.size() < num_chunks * c_size) partial_buffer.resize(num_chunks * c_size);
  float* partial = partial_buffer.data();
#pragma omp parallel for schedule(dynamic)
  for (int task = 0; task < num_chunks * blocks; ++task) {
    const int chunk = task / blocks;
    const int blk = task % blocks;
    const int k0 = chunk * chunk_k;
    const int depth = std::min(chunk_k, K - k0);
    const int i0 = (blk / col_blocks) * kBlock;
    const int j0 = (blk % col_blocks) * kBlock;
    const int rows = std::min(kBlock, M - i0);
    const int cols = std::min(kBlock, N - j0);
    // op(A)[i0.., k0..] and op(B)[k0.., j0..]
    const float* a = trans_a == Transpose::no ? A + static_cast<size_t>(i0) * lda + k0
                                              : A + static_cast<size_t>(k0) * lda + i0;
    const float* b = trans_b == Transpose::no ? Bm + static_cast<size_t>(k0) * ldb + j0
                                              : Bm + static_cast<size_t>(j0) * ldb + k0;
    sgemm(trans_a, trans_b, rows, cols, depth, alpha, a, lda, b, ldb, 0.0f,
          partial + chunk * c_size + static_cast<size_t>(i0) * N + j0, N);
  }
#pragma omp parallel for schedule(static)
  for (int i = 0; i < M; ++i) {
    float* c_row = Cm + static_cast<size_t>(i) * ldc;
    const float* p_row = partial + static_cast<size_t>(i) * N;
    for (int j = 0; j < N; ++j) {
      float sum = p_row[j];
      for (int chunk = 1; chunk < num_chunks; ++chunk) sum += p_row[chunk * c_size + j];
      c_row[j] = beta == 0.0f ? sum : beta * c_row[j] + sum;
    }
  }
}
#endif

}  // namespace

template <typename F>
void gemm(Transpose trans_a, Transpose trans_b, int M, int N, int K, F alpha, const F* A, int lda,
          const F* Bm, int ldb, F beta, F* Cm, int ldc) {
  if (M <= 0 || N <= 0) return;
#ifdef GPT_HAVE_CBLAS
  if constexpr (std::is_same_v<F, float>) {
    if (K <= 0) {  // BLAS would leave C alone; we want C = beta · C like the loops
      gemm_loops(trans_a, trans_b, M, N, 0, alpha, A, lda, Bm, ldb, beta, Cm, ldc);
    } else if (omp_get_level() > 0) {
      // Already inside a parallel region (attention's loop over heads): one call on this thread.
      sgemm(trans_a, trans_b, M, N, K, alpha, A, lda, Bm, ldb, beta, Cm, ldc);
    } else if (split_reduction(M, N, K)) {
      sgemm_split_reduction(trans_a, trans_b, M, N, K, alpha, A, lda, Bm, ldb, beta, Cm, ldc);
    } else {
      sgemm_blocked(trans_a, trans_b, M, N, K, alpha, A, lda, Bm, ldb, beta, Cm, ldc);
    }
    return;
  }
#endif
  gemm_loops(trans_a, trans_b, M, N, K, alpha, A, lda, Bm, ldb, beta, Cm, ldc);
}

template <typename F>
void matmul_forward(F* out, const F* inp, const F* weight, const F* bias, int N, int C, int OC) {
  F beta = 0;
  if (bias != nullptr) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; ++n) {
      F* out_row = out + static_cast<size_t>(n) * OC;
      for (int o = 0; o < OC; ++o) out_row[o] = bias[o];
    }
    beta = 1;
  }
  // out (N,OC) = inp (N,C) · weightᵀ (C,OC) + beta · out
  gemm(Transpose::no, Transpose::yes, N, OC, C, F(1), inp, C, weight, C, beta, out, OC);
}

#ifdef GPT_HAVE_CBLAS
namespace {

// Rows of dout and inp per chunk of the split weight gradient below.
constexpr int kGradChunkRows = 512;

// Whether to form dweight (and dbias) from chunks of rows: when the reduction dimension N is long
// against the output (OC, C), e.g. 4096 tokens into a 512 x 128 weight. Blocking the output instead
// (sgemm_blocked) would give each thread 64 x 64 blocks with N = 4096, whose panels OpenBLAS packs
// again for every block.
bool split_weight_gradient(int N, int C, int OC) {
  return N >= 2 * kGradChunkRows && N > OC && N > C;
}

// dweight (OC,C) += doutᵀ · inp and dbias (OC) += column sums of dout, the rows split into chunks
// of kGradChunkRows: each chunk's products go to its own slice of a scratch buffer (one sgemm per
// chunk, one thread per chunk), then the chunks are added in order. The split depends on N only,
// so the bits do not depend on the thread count. The bias sums are taken from the chunk the sgemm
// just read.
void weight_gradient_by_chunks(float* dweight, float* dbias, const float* dout, const float* inp,
                               int N, int C, int OC) {
  const int chunks = (N + kGradChunkRows - 1) / kGradChunkRows;
  const size_t w_size = static_cast<size_t>(OC) * C;
  thread_local std::vector<float> partial_buffer;  // chunks x (OC·C + OC); the calling thread's
  const size_t stride = w_size + OC;
  if (partial_buffer.size() < chunks * stride) partial_buffer.resize(chunks * stride);
  float* partial = partial_buffer.data();
#pragma omp parallel for schedule(dynamic)
  for (int chunk = 0; chunk < chunks; ++chunk) {
    const int n0 = chunk * kGradChunkRows;
    const int rows = std::min(kGradChunkRows, N - n0);
    const float* dout_chunk = dout + static_cast<size_t>(n0) * OC;
    float* dw = partial + chunk * stride;
    if (dweight != nullptr) {
      sgemm(Transpose::yes, Transpose::no, OC, C, rows, 1.0f, dout_chunk, OC,
            inp + static_cast<size_t>(n0) * C, C, 0.0f, dw, C);
    }
    if (dbias != nullptr) {
      float* db = dw + w_size;
      for (int o = 0; o < OC; ++o) db[o] = 0.0f;
      for (int n = 0; n < rows; ++n) {
        const float* dout_row = dout_chunk + static_cast<size_t>(n) * OC;
        for (int o = 0; o < OC; ++o) db[o] += dout_row[o];
      }
    }
  }
  // Add the chunks in order, element by element (vectorises over elements).
  auto reduce = [&](float* dst, size_t offset, size_t n) {
    constexpr size_t kBlock = 1024;
#pragma omp parallel for schedule(static)
    for (size_t i0 = 0; i0 < n; i0 += kBlock) {
      const size_t i1 = std::min(n, i0 + kBlock);
      for (size_t i = i0; i < i1; ++i) {
        float sum = partial[offset + i];
        for (int chunk = 1; chunk < chunks; ++chunk) sum += partial[chunk * stride + offset + i];
        dst[i] += sum;
      }
    }
  };
  if (dweight != nullptr) reduce(dweight, 0, w_size);
  if (dbias != nullptr) reduce(dbias, w_size, static_cast<size_t>(OC));
}

}  // namespace
#endif

template <typename F>
void matmul_backward(F* dinp, F* dweight, F* dbias, const F* dout, const F* inp, const F* weight,
                     int N, int C, int OC) {
  if (dinp != nullptr) {
    // dinp (N,C) = dout (N,OC) · weight (OC,C)
    gemm(Transpose::no, Transpose::no, N, C, OC, F(1), dout, OC, weight, C, F(0), dinp, C);
  }
#ifdef GPT_HAVE_CBLAS
  if constexpr (std::is_same_v<F, float>) {
    if ((dweight != nullptr || dbias != nullptr) && omp_get_level() == 0 &&
        split_weight_gradient(N, C, OC)) {
      weight_gradient_by_chunks(dweight, dbias, dout, inp, N, C, OC);
      return;
    }
  }
#endif
  if (dweight != nullptr) {
    // dweight (OC,C) += doutᵀ (OC,N) · inp (N,C)
    gemm(Transpose::yes, Transpose::no, OC, C, N, F(1), dout, OC, inp, C, F(1), dweight, C);
  }
  if (dbias != nullptr) {
    // Column sums over rows in order; each block of columns has one owner.
    constexpr int kBlock = 16;
    const int num_blocks = (OC + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < num_blocks; ++blk) {
      const int o0 = blk * kBlock;
      const int width = OC - o0 < kBlock ? OC - o0 : kBlock;
      F sum[kBlock] = {};
      for (int n = 0; n < N; ++n) {
        const F* dout_row = dout + static_cast<size_t>(n) * OC + o0;
        for (int o = 0; o < width; ++o) sum[o] += dout_row[o];
      }
      for (int o = 0; o < width; ++o) dbias[o0 + o] += sum[o];
    }
  }
}

const char* cpu_blas_description() {
#ifdef GPT_HAVE_CBLAS
  static const std::string description = [] {
    std::string config = openblas_get_config();
    return config.rfind("OpenBLAS", 0) == 0 ? config : "OpenBLAS " + config;
  }();
  return description.c_str();
#else
  return "plain loops (no CBLAS found)";
#endif
}

template void gemm<float>(Transpose, Transpose, int, int, int, float, const float*, int,
                          const float*, int, float, float*, int);
template void gemm<double>(Transpose, Transpose, int, int, int, double, const double*, int,
                           const double*, int, double, double*, int);
template void matmul_forward<float>(float*, const float*, const float*, const float*, int, int,
                                    int);
template void matmul_forward<double>(double*, const double*, const double*, const double*, int, int,
                                     int);
template void matmul_backward<float>(float*, float*, float*, const float*, const float*,
                                     const float*, int, int, int);
template void matmul_backward<double>(double*, double*, double*, const double*, const double*,
                                      const double*, int, int, int);

}  // namespace gpt::cpu
