// Matmul with bias, the Linear layer of PyTorch (weights stored (OC, C), i.e. out = x · Wᵀ + b).
//
//   forward:  out[n,o] = sum_c inp[n,c] · weight[o,c] + bias[o]            (bias may be null)
//   backward: dinp[n,c]    = sum_o dout[n,o] · weight[o,c]                 (OVERWRITES: =)
//             dweight[o,c] += sum_n dout[n,o] · inp[n,c]                   (accumulates: +=)
//             dbias[o]     += sum_n dout[n,o]                              (accumulates: +=)
//
// Any of dinp, dweight, dbias may be null to skip it (frozen weights, the first layer's input).
// Shapes: inp (N, C); weight (OC, C); bias (OC); out (N, OC).
// FLOPs: 2·N·C·OC forward, 4·N·C·OC backward. Compute bound for every GPT shape.
// float goes through CBLAS sgemm (OpenBLAS) when the build found one, else through plain loops with
// OpenMP over rows; double (gradient checks) always uses the plain loops. Either way each output
// element is reduced in one fixed order, so results do not depend on the thread count. (For sgemm
// this needs care: OpenBLAS's own threading splits C by the thread count and its edge kernels add
// in another order, so the CPU code splits C into blocks fixed by the shape and runs one
// single-threaded sgemm per block; called inside a parallel region, gemm runs on that thread.
// When N is long against the weight, dweight and dbias are instead summed over fixed chunks of
// rows, one sgemm per chunk, and the chunks added in order; likewise any product whose C is small
// next to its reduction, e.g. the classifier's dinp, splits the reduction into chunks fixed by
// the shape.)
#pragma once

namespace gpt::cpu {

template <typename F>
void matmul_forward(F* out, const F* inp, const F* weight, const F* bias, int N, int C, int OC);

template <typename F>
void matmul_backward(F* dinp, F* dweight, F* dbias, const F* dout, const F* inp, const F* weight,
                     int N, int C, int OC);

// General strided product used by the attention reference: C (M,N) = alpha · op(A) · op(B) + beta ·
// C with row-major leading dimensions. trans_a/trans_b select Aᵀ/Bᵀ.
enum class Transpose { no, yes };
template <typename F>
void gemm(Transpose trans_a, Transpose trans_b, int M, int N, int K, F alpha, const F* A, int lda,
          const F* Bm, int ldb, F beta, F* Cm, int ldc);

// Which CPU matmul the build uses, for the start-up log: "OpenBLAS 0.3.21 ... (openmp)" or
// "plain loops (no CBLAS found)".
const char* cpu_blas_description();

}  // namespace gpt::cpu
