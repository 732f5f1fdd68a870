// cuBLAS and cuBLASLt on the host, written from their documentation (cublas_api.h, cublasLt.h in
// tests/cuda_emu/include say which calls). Column-major throughout: element (i, j) of a matrix
// with leading dimension ld is at i + j·ld. Each product accumulates in double and rounds once to
// the output type, so results agree with any correct fp32-accumulating GEMM to fp32 tolerance.
//
// What the real libraries reject is rejected with their status rather than computed: a layout
// whose shape does not match the operation, a leading dimension below the rows, an unsupported
// type or compute type, an epilogue with no vector, pointers less aligned than the heuristic was
// told, a workspace smaller than the algorithm asked for.
#include <algorithm>
#include <cstdlib>
#include <vector>

#include "cublasLt.h"
#include "cuda_bf16.h"
#include "internal.h"

struct cublasContext {
  cudaStream_t stream = nullptr;
};
struct cublasLtContext {
  int unused = 0;
};
struct cublasLtMatmulDescOpaque_t {
  cublasComputeType_t compute;
  cudaDataType_t scale;
  int32_t transa = CUBLAS_OP_N, transb = CUBLAS_OP_N;
  uint32_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  const void* bias = nullptr;
  int32_t bias_type = -1;  // default: the type of D
};
struct cublasLtMatrixLayoutOpaque_t {
  cudaDataType type;
  uint64_t rows, cols;
  int64_t ld;
  int32_t batch = 1;
};
struct cublasLtMatmulPreferenceOpaque_t {
  uint64_t max_workspace = 0;
  uint32_t align_a = 256, align_b = 256, align_c = 256, align_d = 256;
};

namespace {

bool env_flag(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' && *v != '0';
}

double load(const void* base, cudaDataType type, size_t index) {
  if (type == CUDA_R_32F) return static_cast<const float*>(base)[index];
  if (type == CUDA_R_64F) return static_cast<const double*>(base)[index];
  uint16_t bits;
  std::memcpy(&bits, static_cast<const unsigned char*>(base) + 2 * index, 2);
  const uint32_t u = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;  // CUDA_R_16BF
}
void store(void* base, cudaDataType type, size_t index, double value) {
  if (type == CUDA_R_32F) {
    static_cast<float*>(base)[index] = static_cast<float>(value);
  } else if (type == CUDA_R_64F) {
    static_cast<double*>(base)[index] = value;
  } else {
    const __nv_bfloat16 b = __float2bfloat16_rn(static_cast<float>(value));
    std::memcpy(static_cast<unsigned char*>(base) + 2 * index, &b, 2);
  }
}
bool supported_type(cudaDataType t) {
  return t == CUDA_R_32F || t == CUDA_R_16BF;
}

// Element (i, j) of op(X) for a column-major X with leading dimension ld.
double op_at(const void* X, cudaDataType type, int ld, bool trans, int64_t i, int64_t j) {
  return trans ? load(X, type, static_cast<size_t>(j + i * ld))
               : load(X, type, static_cast<size_t>(i + j * ld));
}

// D (m×n, ldd) = alpha·op(A)·op(B) + beta·C (ldc) [+ bias[i] on row i]; C may alias D.
// op(A) is gathered row by row and op(B) column by column into contiguous doubles, so every output
// element is one contiguous dot product (four partial sums, a fixed order: deterministic).
void gemm(bool ta, bool tb, int m, int n, int k, double alpha, const void* A, cudaDataType at,
          int lda, const void* B, cudaDataType bt, int ldb, double beta, const void* C,
          cudaDataType ct, int ldc, void* D, cudaDataType dt, int ldd, const void* bias = nullptr) {
  const size_t K = static_cast<size_t>(k);
  std::vector<double> a(static_cast<size_t>(m) * K), b(static_cast<size_t>(n) * K);
  for (int i = 0; i < m; ++i) {
    for (int p = 0; p < k; ++p) a[i * K + static_cast<size_t>(p)] = op_at(A, at, lda, ta, i, p);
  }
  for (int j = 0; j < n; ++j) {
    for (int p = 0; p < k; ++p) b[j * K + static_cast<size_t>(p)] = op_at(B, bt, ldb, tb, p, j);
  }
  std::vector<double> col(static_cast<size_t>(m));
  for (int j = 0; j < n; ++j) {
    const double* bj = b.data() + j * K;
    for (int i = 0; i < m; ++i) {
      const double* ai = a.data() + i * K;
      double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
      size_t p = 0;
      for (; p + 4 <= K; p += 4) {
        s0 += ai[p] * bj[p];
        s1 += ai[p + 1] * bj[p + 1];
        s2 += ai[p + 2] * bj[p + 2];
        s3 += ai[p + 3] * bj[p + 3];
      }
      for (; p < K; ++p) s0 += ai[p] * bj[p];
      double prior = 0.0;
      // beta = 0: C is not read (it may hold NaN), as the documentation promises.
      if (beta != 0.0) {
        prior = beta * load(C, ct, static_cast<size_t>(i + static_cast<int64_t>(j) * ldc));
      }
      col[static_cast<size_t>(i)] = alpha * ((s0 + s1) + (s2 + s3)) + prior;
      if (bias != nullptr) col[static_cast<size_t>(i)] += load(bias, dt, static_cast<size_t>(i));
    }
    for (int i = 0; i < m; ++i) {
      store(D, dt, static_cast<size_t>(i + static_cast<int64_t>(j) * ldd),
            col[static_cast<size_t>(i)]);
    }
  }
}

double scalar(const void* p, cudaDataType scale_type) {
  return scale_type == CUDA_R_64F ? *static_cast<const double*>(p) : *static_cast<const float*>(p);
}

uint32_t alignment_of(const void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  uint32_t align = 256;
  while (align > 1 && a % align != 0) align /= 2;
  return align;
}

// The emulated heuristic's algorithms: id 1 and 2 are real; id 0 is the one that
// GPT_CUDA_EMU_LT_FIRST_ALGO_UNSUPPORTED puts first and that cublasLtMatmul then refuses.
constexpr uint64_t kAlgoUnsupported = 0;
constexpr uint64_t kAlgoMagic = 0x454d55414c474fULL;  // "EMUALGO"

}  // namespace

const char* cublasGetStatusName(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS:
      return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED:
      return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED:
      return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE:
      return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH:
      return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR:
      return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED:
      return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR:
      return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR:
      return "CUBLAS_STATUS_LICENSE_ERROR";
  }
  return "CUBLAS_STATUS_UNKNOWN";
}
const char* cublasGetStatusString(cublasStatus_t status) {
  return cublasGetStatusName(status);
}
cublasStatus_t cublasCreate(cublasHandle_t* handle) {
  *handle = new cublasContext();
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy(cublasHandle_t handle) {
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  handle->stream = stream;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t) {
  return handle == nullptr ? CUBLAS_STATUS_NOT_INITIALIZED : CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetWorkspace(cublasHandle_t handle, void*, size_t) {
  return handle == nullptr ? CUBLAS_STATUS_NOT_INITIALIZED : CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t handle, cublasOperation_t transa,
                                          cublasOperation_t transb, int m, int n, int k,
                                          const void* alpha, const void* A, cudaDataType Atype,
                                          int lda, long long int strideA, const void* B,
                                          cudaDataType Btype, int ldb, long long int strideB,
                                          const void* beta, void* C, cudaDataType Ctype, int ldc,
                                          long long int strideC, int batchCount,
                                          cublasComputeType_t computeType, cublasGemmAlgo_t) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (m < 0 || n < 0 || k < 0 || batchCount < 0) return CUBLAS_STATUS_INVALID_VALUE;
  const bool ta = transa != CUBLAS_OP_N, tb = transb != CUBLAS_OP_N;
  // cublasGemmEx: lda >= max(1, rows of the stored A), and so on.
  if (lda < std::max(1, ta ? k : m) || ldb < std::max(1, tb ? n : k) || ldc < std::max(1, m)) {
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  if (!supported_type(Atype) || Atype != Btype || !supported_type(Ctype)) {
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  if (computeType != CUBLAS_COMPUTE_32F && computeType != CUBLAS_COMPUTE_32F_FAST_TF32) {
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  const size_t ea = Atype == CUDA_R_32F ? 4 : 2, ec = Ctype == CUDA_R_32F ? 4 : 2;
  const double a = *static_cast<const float*>(alpha), b = *static_cast<const float*>(beta);
  for (int i = 0; i < batchCount; ++i) {
    const void* Ai = static_cast<const unsigned char*>(A) + static_cast<size_t>(strideA * i) * ea;
    const void* Bi = static_cast<const unsigned char*>(B) + static_cast<size_t>(strideB * i) * ea;
    void* Ci = static_cast<unsigned char*>(C) + static_cast<size_t>(strideC * i) * ec;
    gemm(ta, tb, m, n, k, a, Ai, Atype, lda, Bi, Btype, ldb, b, Ci, Ctype, ldc, Ci, Ctype, ldc);
  }
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa,
                            cublasOperation_t transb, int m, int n, int k, const void* alpha,
                            const void* A, cudaDataType Atype, int lda, const void* B,
                            cudaDataType Btype, int ldb, const void* beta, void* C,
                            cudaDataType Ctype, int ldc, cublasComputeType_t computeType,
                            cublasGemmAlgo_t algo) {
  return cublasGemmStridedBatchedEx(handle, transa, transb, m, n, k, alpha, A, Atype, lda, 0, B,
                                    Btype, ldb, 0, beta, C, Ctype, ldc, 0, 1, computeType, algo);
}

// ---- cuBLASLt ---------------------------------------------------------------------------------

size_t cublasLtGetVersion() {
  return 130000;
}
cublasStatus_t cublasLtCreate(cublasLtHandle_t* handle) {
  *handle = new cublasLtContext();
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle) {
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* desc, cublasComputeType_t computeType,
                                        cudaDataType_t scaleType) {
  *desc = new cublasLtMatmulDescOpaque_t{computeType, scaleType};
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc) {
  delete desc;
  return CUBLAS_STATUS_SUCCESS;
}

namespace {
template <typename T>
cublasStatus_t read_attribute(T* out, const void* buf, size_t size) {
  if (buf == nullptr || size != sizeof(T)) return CUBLAS_STATUS_INVALID_VALUE;
  std::memcpy(out, buf, sizeof(T));
  return CUBLAS_STATUS_SUCCESS;
}
}  // namespace

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc,
                                              cublasLtMatmulDescAttributes_t attr, const void* buf,
                                              size_t sizeInBytes) {
  if (desc == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA:
      return read_attribute(&desc->transa, buf, sizeInBytes);
    case CUBLASLT_MATMUL_DESC_TRANSB:
      return read_attribute(&desc->transb, buf, sizeInBytes);
    case CUBLASLT_MATMUL_DESC_EPILOGUE:
      return read_attribute(&desc->epilogue, buf, sizeInBytes);
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER:
      return read_attribute(&desc->bias, buf, sizeInBytes);
    case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE:
      return read_attribute(&desc->bias_type, buf, sizeInBytes);
    default:
      return CUBLAS_STATUS_NOT_SUPPORTED;  // not emulated: refuse rather than ignore
  }
}
cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* layout, cudaDataType type,
                                          uint64_t rows, uint64_t cols, int64_t ld) {
  // The documentation: ld must be at least the number of rows (column order).
  if (ld < static_cast<int64_t>(std::max<uint64_t>(rows, 1))) return CUBLAS_STATUS_INVALID_VALUE;
  *layout = new cublasLtMatrixLayoutOpaque_t{type, rows, cols, ld};
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout) {
  delete layout;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t layout,
                                                cublasLtMatrixLayoutAttribute_t attr,
                                                const void* buf, size_t sizeInBytes) {
  if (layout == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (attr == CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT) {
    const cublasStatus_t s = read_attribute(&layout->batch, buf, sizeInBytes);
    return s == CUBLAS_STATUS_SUCCESS && layout->batch != 1 ? CUBLAS_STATUS_NOT_SUPPORTED : s;
  }
  return CUBLAS_STATUS_NOT_SUPPORTED;
}
cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* pref) {
  *pref = new cublasLtMatmulPreferenceOpaque_t();
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
  delete pref;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attr,
                                                    const void* buf, size_t sizeInBytes) {
  if (pref == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  switch (attr) {
    case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES:
      return read_attribute(&pref->max_workspace, buf, sizeInBytes);
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES:
      return read_attribute(&pref->align_a, buf, sizeInBytes);
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES:
      return read_attribute(&pref->align_b, buf, sizeInBytes);
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES:
      return read_attribute(&pref->align_c, buf, sizeInBytes);
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES:
      return read_attribute(&pref->align_d, buf, sizeInBytes);
    default:
      return CUBLAS_STATUS_NOT_SUPPORTED;
  }
}

namespace {

// The problem a descriptor and its layouts state, checked as the library checks it.
cublasStatus_t check_problem(const cublasLtMatmulDescOpaque_t& d,
                             const cublasLtMatrixLayoutOpaque_t& A,
                             const cublasLtMatrixLayoutOpaque_t& B,
                             const cublasLtMatrixLayoutOpaque_t& C,
                             const cublasLtMatrixLayoutOpaque_t& D) {
  if (d.compute != CUBLAS_COMPUTE_32F || d.scale != CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
  if (!supported_type(A.type) || A.type != B.type || C.type != D.type || !supported_type(D.type)) {
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  const bool ta = d.transa != CUBLAS_OP_N, tb = d.transb != CUBLAS_OP_N;
  const uint64_t m = D.rows, n = D.cols;
  const uint64_t k = ta ? A.rows : A.cols;
  if ((ta ? A.cols : A.rows) != m || (tb ? B.rows : B.cols) != n || (tb ? B.cols : B.rows) != k ||
      C.rows != m || C.cols != n) {
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  switch (d.epilogue) {
    case CUBLASLT_EPILOGUE_DEFAULT:
      break;
    case CUBLASLT_EPILOGUE_BIAS:
    case CUBLASLT_EPILOGUE_BGRADA:
    case CUBLASLT_EPILOGUE_BGRADB:
      if (d.bias == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
      if (d.bias_type != -1 && d.bias_type != static_cast<int32_t>(D.type)) {
        return CUBLAS_STATUS_NOT_SUPPORTED;
      }
      break;
    default:
      return CUBLAS_STATUS_NOT_SUPPORTED;  // not emulated
  }
  return CUBLAS_STATUS_SUCCESS;
}

}  // namespace

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(
    cublasLtHandle_t handle, cublasLtMatmulDesc_t operationDesc, cublasLtMatrixLayout_t Adesc,
    cublasLtMatrixLayout_t Bdesc, cublasLtMatrixLayout_t Cdesc, cublasLtMatrixLayout_t Ddesc,
    cublasLtMatmulPreference_t preference, int requestedAlgoCount,
    cublasLtMatmulHeuristicResult_t heuristicResultsArray[], int* returnAlgoCount) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (requestedAlgoCount <= 0 || returnAlgoCount == nullptr || preference == nullptr) {
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  *returnAlgoCount = 0;
  const cublasStatus_t s = check_problem(*operationDesc, *Adesc, *Bdesc, *Cdesc, *Ddesc);
  if (s != CUBLAS_STATUS_SUCCESS) return s;
  if (operationDesc->epilogue == CUBLASLT_EPILOGUE_BGRADB &&
      env_flag("GPT_CUDA_EMU_LT_NO_BGRADB")) {
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  if (operationDesc->epilogue == CUBLASLT_EPILOGUE_BIAS && env_flag("GPT_CUDA_EMU_LT_NO_BIAS")) {
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  std::vector<uint64_t> ids;
  if (env_flag("GPT_CUDA_EMU_LT_FIRST_ALGO_UNSUPPORTED")) ids.push_back(kAlgoUnsupported);
  ids.push_back(1);
  ids.push_back(2);
  for (uint64_t id : ids) {
    if (*returnAlgoCount == requestedAlgoCount) break;
    cublasLtMatmulHeuristicResult_t& r = heuristicResultsArray[*returnAlgoCount];
    r = cublasLtMatmulHeuristicResult_t{};
    r.algo.data[0] = kAlgoMagic;
    r.algo.data[1] = id;
    // The alignments the algorithm was chosen for: cublasLtMatmul refuses less aligned pointers.
    r.algo.data[2] = preference->align_a;
    r.algo.data[3] = preference->align_b;
    r.algo.data[4] = preference->align_d;
    r.workspaceSize = std::min<uint64_t>(preference->max_workspace, 1024);
    r.state = CUBLAS_STATUS_SUCCESS;
    r.wavesCount = 1.0f;
    ++*returnAlgoCount;
  }
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t handle, cublasLtMatmulDesc_t computeDesc,
                              const void* alpha, const void* A, cublasLtMatrixLayout_t Adesc,
                              const void* B, cublasLtMatrixLayout_t Bdesc, const void* beta,
                              const void* C, cublasLtMatrixLayout_t Cdesc, void* D,
                              cublasLtMatrixLayout_t Ddesc, const cublasLtMatmulAlgo_t* algo,
                              void* workspace, size_t workspaceSizeInBytes, cudaStream_t) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  const cublasStatus_t s = check_problem(*computeDesc, *Adesc, *Bdesc, *Cdesc, *Ddesc);
  if (s != CUBLAS_STATUS_SUCCESS) return s;
  if (algo != nullptr) {
    if (algo->data[0] != kAlgoMagic) return CUBLAS_STATUS_INVALID_VALUE;
    if (algo->data[1] == kAlgoUnsupported) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (alignment_of(A) < algo->data[2] || alignment_of(B) < algo->data[3] ||
        alignment_of(D) < algo->data[4]) {
      return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    const size_t needed = std::min<size_t>(1024, workspaceSizeInBytes);
    if (needed > 0 && workspace == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  }
  const cublasLtMatmulDescOpaque_t& d = *computeDesc;
  const bool ta = d.transa != CUBLAS_OP_N, tb = d.transb != CUBLAS_OP_N;
  const int m = static_cast<int>(Ddesc->rows), n = static_cast<int>(Ddesc->cols);
  const int k = static_cast<int>(ta ? Adesc->rows : Adesc->cols);
  const double a = scalar(alpha, d.scale), b = scalar(beta, d.scale);
  // BGRADB reads op(B) before D is written (B may not alias D, but be safe about C == D).
  if (d.epilogue == CUBLASLT_EPILOGUE_BGRADB) {
    // Bias gradient from B: length = columns of D, a sum over the k dimension of op(B).
    std::vector<double> grad(static_cast<size_t>(n), 0.0);
    for (int j = 0; j < n; ++j) {
      for (int p = 0; p < k; ++p) {
        grad[static_cast<size_t>(j)] +=
            op_at(B, Bdesc->type, static_cast<int>(Bdesc->ld), tb, p, j);
      }
    }
    for (int j = 0; j < n; ++j) {
      store(const_cast<void*>(d.bias), Ddesc->type, static_cast<size_t>(j),
            grad[static_cast<size_t>(j)]);
    }
  }
  if (d.epilogue == CUBLASLT_EPILOGUE_BGRADA) {
    // Bias gradient from A: length = rows of D, a sum over the k dimension of op(A).
    std::vector<double> grad(static_cast<size_t>(m), 0.0);
    for (int i = 0; i < m; ++i) {
      for (int p = 0; p < k; ++p) {
        grad[static_cast<size_t>(i)] +=
            op_at(A, Adesc->type, static_cast<int>(Adesc->ld), ta, i, p);
      }
    }
    for (int i = 0; i < m; ++i) {
      store(const_cast<void*>(d.bias), Ddesc->type, static_cast<size_t>(i),
            grad[static_cast<size_t>(i)]);
    }
  }
  // BIAS: a vector of length rows(D), broadcast over the columns, added to alpha·AB + beta·C.
  gemm(ta, tb, m, n, k, a, A, Adesc->type, static_cast<int>(Adesc->ld), B, Bdesc->type,
       static_cast<int>(Bdesc->ld), b, C, Cdesc->type, static_cast<int>(Cdesc->ld), D, Ddesc->type,
       static_cast<int>(Ddesc->ld), d.epilogue == CUBLASLT_EPILOGUE_BIAS ? d.bias : nullptr);
  return CUBLAS_STATUS_SUCCESS;
}
