// GEMMs through cuBLASLt, in cuBLAS's column-major terms. The backend maps the row-major dense
// layer products onto it (cuda_backend.cu).
#pragma once
#include <map>
#include <tuple>

#include "cuda/common.cuh"

namespace lmt::cuda {

// What cuBLASLt applies to the product before storing D.
enum class Epilogue {
  kNone,      // D = AB + beta D (+ bias when given)
  kGeluAux,   // aux = AB + bias; D = gelu(aux)   (tanh GELU; the MLP's first layer)
  kDGelu,     // D = AB * gelu'(aux)              (its backward through the GELU)
};

class Gemm {
 public:
  // allow_tf32: fp32 products on tensor cores with TF32 inputs (10-bit mantissa); off gives
  // full fp32 products, which the CPU comparison tests need.
  Gemm(cudaStream_t stream, bool allow_tf32);
  ~Gemm();
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;

  // D (m, n) = op(A) op(B) + beta * D + bias (m, broadcast over columns; may be null), all
  // column-major; op(A) is m x k, op(B) k x n; beta is 0 or 1. A and B are ab_type, D and the
  // bias d_type (fp32 with 16-bit inputs for the weight gradients); products accumulate in fp32.
  void run(bool trans_a, bool trans_b, int m, int n, int k, const void* A, int lda, const void* B, int ldb, void* D,
           int ldd, float beta, const void* bias, cudaDataType_t ab_type, cudaDataType_t d_type);

  // The same with a GELU epilogue (beta 0, D and aux of d_type, aux m x n with leading dimension
  // ldd). Returns false, having done nothing, when cuBLASLt has no algorithm for it (it then
  // stays false for that shape): the caller runs the unfused ops instead.
  bool run_gelu(Epilogue epilogue, bool trans_a, bool trans_b, int m, int n, int k, const void* A, int lda,
                const void* B, int ldb, void* D, int ldd, const void* bias, void* aux, cudaDataType_t type);

 private:
  struct Plan {
    bool supported = true;
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
    cublasLtMatmulAlgo_t algo{};
  };
  // (trans_a, trans_b, m, n, k, lda, ldb, ldd, has_bias, beta != 0, alignment of the pointers,
  //  ab_type, d_type, epilogue)
  using Key = std::tuple<bool, bool, int, int, int, int, int, int, bool, bool, unsigned, int, int, int>;
  Plan& plan_for(const Key& key);

  cudaStream_t stream_;
  bool allow_tf32_;
  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  std::map<Key, Plan> plans_;  // heuristics are queried once per shape
};

}  // namespace lmt::cuda
