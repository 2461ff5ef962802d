// Dense-layer GEMMs through cuBLASLt: one plan (descriptors and the heuristic's algorithm) per
// shape, cached; a 32 MiB workspace (what cuBLAS recommends for Hopper); the bias added by the
// BIAS epilogue, and the MLP's GELU by the GELU_AUX(_BIAS) / DGELU epilogues where cuBLASLt has
// an algorithm for them. Bias gradients are column sums (column_sum.cu), not a cuBLASLt
// epilogue, so they stay deterministic and accumulate (+=).
#include "cuda/matmul.cuh"

#include <initializer_list>
#include <string>

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
  CUBLAS_CHECK(cublasLtCreate(&handle_));
  workspace_bytes_ = kWorkspaceBytes;
  CUDA_CHECK(cudaMalloc(&workspace_, workspace_bytes_));
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

const Gemm::Plan& Gemm::plan_for(const Key& key) {
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
  // The heuristic needs to know which epilogue pointers will be set; any aligned value will do.
  const void* placeholder = workspace_;
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
  if (status != CUBLAS_STATUS_SUCCESS || returned == 0) {
    if (kind != Epilogue::kNone) {
      plan.supported = false;  // the caller falls back to the unfused ops
      return plans_.emplace(key, plan).first->second;
    }
    std::fprintf(stderr, "cuBLASLt has no algorithm for %s%s m=%d n=%d k=%d lda=%d ldb=%d ldd=%d (%s)\n",
                 trans_a ? "T" : "N", trans_b ? "T" : "N", m, n, k, lda, ldb, ldd, cublasLtGetStatusString(status));
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
  const Plan& plan = plan_for(Key{trans_a, trans_b, m, n, k, lda, ldb, ldd, bias != nullptr, false,
                                  common_alignment({A, B, D, bias, aux}), static_cast<int>(type),
                                  static_cast<int>(type), static_cast<int>(epilogue)});
  if (!plan.supported) return false;
  if (bias)
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux, sizeof(aux)));
  const float alpha = 1.0f, beta = 0.0f;
  CUBLAS_CHECK(cublasLtMatmul(handle_, plan.desc, &alpha, A, plan.a, B, plan.b, &beta, D, plan.d, D, plan.d,
                              &plan.algo, workspace_, workspace_bytes_, stream_));
  return true;
}

}  // namespace lmt::cuda
