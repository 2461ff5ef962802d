// Dense-layer GEMMs through cuBLASLt: one plan (descriptors and the heuristic's algorithm) per
// shape, cached; a 32 MiB workspace (what cuBLAS recommends for Hopper); the bias added by the
// BIAS epilogue, and the MLP's GELU by the GELU_AUX(_BIAS) / DGELU epilogues where cuBLASLt has
// an algorithm for them. Bias gradients are column sums (column_sum.cu), not a cuBLASLt
// epilogue, so they stay deterministic and accumulate (+=).
#include "cuda/matmul.cuh"

#include <initializer_list>
#include <string>

#include "core/error.h"

namespace lmt::cuda {

namespace {
constexpr size_t kWorkspaceBytes = 32u << 20;

// The largest power of two up to 256 (at least 2, the size of a bf16/fp16 element) that divides
// every address. cuBLASLt's heuristic assumes 256-byte aligned operands unless told otherwise,
// and the model's tensors are offsets into one arena: a plan made for aligned pointers can fail
// on a tensor that is not.
unsigned common_alignment(std::initializer_list<const void*> pointers) {
  unsigned alignment = 256;
  for (const void* p : pointers) {
    if (!p) continue;
    const auto address = reinterpret_cast<uintptr_t>(p);
    while (alignment > 2 && address % alignment != 0) alignment /= 2;
  }
  return alignment;
}
}  // namespace

Gemm::Gemm(cudaStream_t stream, bool allow_tf32) : stream_(stream), allow_tf32_(allow_tf32) {
  // Setup failures (no memory left on a shared GPU, a cuBLASLt that does not match the driver)
  // are the user's to fix: lmt::Error, not an abort.
  const cublasStatus_t status = cublasLtCreate(&handle_);
  if (status != CUBLAS_STATUS_SUCCESS)
    throw Error(std::string("cuBLASLt cannot start: ") + cublasLtGetStatusString(status) +
                " (does libcublasLt match the CUDA driver? `lmtrain doctor` shows both)");
  workspace_bytes_ = kWorkspaceBytes;
  const cudaError_t err = cudaMalloc(&workspace_, workspace_bytes_);
  if (err != cudaSuccess) {
    cudaGetLastError();
    cublasLtDestroy(handle_);
    throw Error(std::string("cannot allocate cuBLASLt's 32 MiB workspace on the GPU: ") + cudaGetErrorString(err) +
                " (is another process using its memory? `nvidia-smi` shows it)");
  }
}

Gemm::~Gemm() {
  for (auto& [key, plan] : plans_) {
    if (plan.a) cublasLtMatrixLayoutDestroy(plan.a);
    if (plan.b) cublasLtMatrixLayoutDestroy(plan.b);
    if (plan.d) cublasLtMatrixLayoutDestroy(plan.d);
    if (plan.desc) cublasLtMatmulDescDestroy(plan.desc);
  }
  if (workspace_) cudaFree(workspace_);
  if (handle_) cublasLtDestroy(handle_);
}

Gemm::Plan& Gemm::plan_for(const Key& key) {
  auto found = plans_.find(key);
  if (found != plans_.end()) return found->second;
  const auto [trans_a, trans_b, m, n, k, lda, ldb, ldd, has_bias, accumulate, alignment, ab_int, d_int, epilogue_int] =
      key;
  (void)accumulate;
  const auto ab_type = static_cast<cudaDataType_t>(ab_int), d_type = static_cast<cudaDataType_t>(d_int);
  const auto kind = static_cast<Epilogue>(epilogue_int);
  Plan plan;
  // TF32 applies to fp32 inputs only; 16-bit inputs always accumulate in fp32.
  const cublasComputeType_t compute =
      allow_tf32_ && ab_type == CUDA_R_32F ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan.desc, compute, CUDA_R_32F));
  const cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof(op_a)));
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof(op_b)));
  cublasLtEpilogue_t epilogue = has_bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
  if (kind == Epilogue::kGeluAux) epilogue = has_bias ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX;
  if (kind == Epilogue::kDGelu) epilogue = CUBLASLT_EPILOGUE_DGELU;
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)));
  // Stored shapes: A is m x k (k x m when transposed), B is k x n (n x k when transposed).
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.a, ab_type, trans_a ? k : m, trans_a ? m : k, lda));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.b, ab_type, trans_b ? n : k, trans_b ? k : n, ldb));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.d, d_type, m, n, ldd));
  cublasLtMatmulPreference_t preference = nullptr;
  CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&preference));
  const uint64_t workspace = workspace_bytes_;
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                    &workspace, sizeof(workspace)));
  const uint32_t align_bytes = alignment;
  for (auto attr : {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES})
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(preference, attr, &align_bytes, sizeof(align_bytes)));
  // The heuristic reads the epilogue pointers from the descriptor, and the algorithm it picks may
  // assume their alignment: a placeholder exactly as aligned as the plan's operands (the
  // workspace is 256-byte aligned, so workspace + alignment is aligned to `alignment` and no more).
  const void* placeholder = static_cast<const char*>(workspace_) + (alignment < 256 ? alignment : 0);
  if (has_bias)
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &placeholder,
                                                sizeof(placeholder)));
  if (kind != Epilogue::kNone) {
    const int64_t aux_ld = ldd;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &placeholder,
                                                sizeof(placeholder)));
    CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &aux_ld, sizeof(aux_ld)));
  }
  cublasLtMatmulHeuristicResult_t result{};
  int returned = 0;
  const cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(handle_, plan.desc, plan.a, plan.b, plan.d, plan.d,
                                                               preference, 1, &result, &returned);
  cublasLtMatmulPreferenceDestroy(preference);
  // An algorithm returned with a state other than SUCCESS cannot run this problem.
  if (status != CUBLAS_STATUS_SUCCESS || returned == 0 || result.state != CUBLAS_STATUS_SUCCESS) {
    if (kind != Epilogue::kNone) {
      plan.supported = false;  // the caller falls back to the unfused ops
      return plans_.emplace(key, plan).first->second;
    }
    std::fprintf(stderr,
                 "cuBLASLt has no algorithm for %s%s m=%d n=%d k=%d lda=%d ldb=%d ldd=%d alignment=%u (%s)\n",
                 trans_a ? "T" : "N", trans_b ? "T" : "N", m, n, k, lda, ldb, ldd, alignment,
                 cublasLtGetStatusString(status != CUBLAS_STATUS_SUCCESS ? status : result.state));
    std::abort();
  }
  plan.algo = result.algo;
  return plans_.emplace(key, plan).first->second;
}

void Gemm::run(bool trans_a, bool trans_b, int m, int n, int k, const void* A, int lda, const void* B, int ldb,
               void* D, int ldd, float beta, const void* bias, cudaDataType_t ab_type, cudaDataType_t d_type) {
  if (m == 0 || n == 0) return;
  const Plan& plan = plan_for(Key{trans_a, trans_b, m, n, k, lda, ldb, ldd, bias != nullptr, beta != 0.0f,
                                  common_alignment({A, B, D, bias}), static_cast<int>(ab_type),
                                  static_cast<int>(d_type), static_cast<int>(Epilogue::kNone)});
  if (bias)
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
  const float alpha = 1.0f;
  CUBLAS_CHECK(cublasLtMatmul(handle_, plan.desc, &alpha, A, plan.a, B, plan.b, &beta, D, plan.d, D, plan.d,
                              &plan.algo, workspace_, workspace_bytes_, stream_));
}

bool Gemm::run_gelu(Epilogue epilogue, bool trans_a, bool trans_b, int m, int n, int k, const void* A, int lda,
                    const void* B, int ldb, void* D, int ldd, const void* bias, void* aux, cudaDataType_t type) {
  if (m == 0 || n == 0) return true;
  Plan& plan = plan_for(Key{trans_a, trans_b, m, n, k, lda, ldb, ldd, bias != nullptr, false,
                            common_alignment({A, B, D, bias, aux}), static_cast<int>(type), static_cast<int>(type),
                            static_cast<int>(epilogue)});
  if (!plan.supported) return false;
  if (bias)
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux, sizeof(aux)));
  const float alpha = 1.0f, beta = 0.0f;
  const cublasStatus_t status = cublasLtMatmul(handle_, plan.desc, &alpha, A, plan.a, B, plan.b, &beta, D, plan.d, D,
                                               plan.d, &plan.algo, workspace_, workspace_bytes_, stream_);
  // cuBLASLt may still refuse a fused epilogue at launch (a heuristic that over-promises on some
  // versions): nothing was written, so the unfused ops take this shape from now on.
  if (status == CUBLAS_STATUS_NOT_SUPPORTED) {
    plan.supported = false;
    return false;
  }
  CUBLAS_CHECK(status);
  return true;
}

}  // namespace lmt::cuda
