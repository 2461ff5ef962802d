// Dense layer: out (N,OC) = inp (N,C) @ weight (OC,C)^T + bias (OC), via OpenBLAS GEMM.
// Gradient rule: dweight and dbias are parameter gradients and accumulate (+=, GEMM beta = 1);
// dinp is an activation gradient and is overwritten (=, GEMM beta = 0). A null dinp or dbias
// is skipped (the first layer needs no dinp; some layers have no bias).
#include <cblas.h>

#include <algorithm>
#include <cstdint>

#include "cpu/cpu_ops.h"

namespace lmt::cpu {

namespace {

// Row-major GEMM C (M,Ncols) = alpha * op(A) @ op(B) + beta * C, dispatched on the element type.
void gemm(CBLAS_TRANSPOSE trans_a, CBLAS_TRANSPOSE trans_b, int M, int Ncols, int K, float alpha,
          const float* A, int lda, const float* B, int ldb, float beta, float* C, int ldc) {
  cblas_sgemm(CblasRowMajor, trans_a, trans_b, M, Ncols, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
void gemm(CBLAS_TRANSPOSE trans_a, CBLAS_TRANSPOSE trans_b, int M, int Ncols, int K, double alpha,
          const double* A, int lda, const double* B, int ldb, double beta, double* C, int ldc) {
  cblas_dgemm(CblasRowMajor, trans_a, trans_b, M, Ncols, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace

template <typename Real>
void matmul_forward(Real* out, const Real* inp, const Real* weight, const Real* bias, int N, int C,
                    int OC) {
  if (N <= 0 || OC <= 0) return;
  // Seed out with the bias and let the GEMM add to it (beta = 1): one pass over out instead of
  // a second pass to add the bias afterwards.
  Real beta = Real{0};
  if (bias != nullptr) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; ++n) std::copy(bias, bias + OC, out + int64_t{n} * OC);
    beta = Real{1};
  }
  if (C <= 0) {
    if (bias == nullptr) std::fill(out, out + int64_t{N} * OC, Real{0});
    return;
  }
  // weight is stored (OC,C) row-major, so weight^T is a transposed read, not a copy.
  gemm(CblasNoTrans, CblasTrans, N, OC, C, Real{1}, inp, C, weight, C, beta, out, OC);
}

template <typename Real>
void matmul_backward(Real* dinp, Real* dweight, Real* dbias, const Real* dout, const Real* inp,
                     const Real* weight, int N, int C, int OC) {
  if (N <= 0 || C <= 0 || OC <= 0) {
    // Degenerate shapes: the only thing left to honour is the overwrite of dinp.
    if (dinp != nullptr && N > 0 && C > 0) std::fill(dinp, dinp + int64_t{N} * C, Real{0});
    return;
  }
  // dinp (N,C) = dout (N,OC) @ weight (OC,C)
  if (dinp != nullptr) {
    gemm(CblasNoTrans, CblasNoTrans, N, C, OC, Real{1}, dout, OC, weight, C, Real{0}, dinp, C);
  }
  // dweight (OC,C) += dout^T (OC,N) @ inp (N,C)
  gemm(CblasTrans, CblasNoTrans, OC, C, N, Real{1}, dout, OC, inp, C, Real{1}, dweight, C);
  // dbias (OC) += column sums of dout. Each thread owns a block of columns and walks the rows
  // in order (row-major friendly, and independent of the thread count).
  if (dbias != nullptr) {
    constexpr int kColumnBlock = 64;
    const int num_blocks = (OC + kColumnBlock - 1) / kColumnBlock;
#pragma omp parallel for schedule(static)
    for (int block = 0; block < num_blocks; ++block) {
      const int o_begin = block * kColumnBlock;
      const int o_end = std::min(OC, o_begin + kColumnBlock);
      double column_sum[kColumnBlock] = {};
      for (int n = 0; n < N; ++n) {
        const Real* dout_row = dout + int64_t{n} * OC;  // (OC)
        for (int o = o_begin; o < o_end; ++o) column_sum[o - o_begin] += dout_row[o];
      }
      for (int o = o_begin; o < o_end; ++o) dbias[o] += static_cast<Real>(column_sum[o - o_begin]);
    }
  }
}

template void matmul_forward<float>(float*, const float*, const float*, const float*, int, int,
                                    int);
template void matmul_forward<double>(double*, const double*, const double*, const double*, int, int,
                                     int);
template void matmul_backward<float>(float*, float*, float*, const float*, const float*,
                                     const float*, int, int, int);
template void matmul_backward<double>(double*, double*, double*, const double*, const double*,
                                      const double*, int, int, int);

}  // namespace lmt::cpu
