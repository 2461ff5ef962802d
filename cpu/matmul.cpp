// Dense layer: out (N,OC) = inp (N,C) @ weight (OC,C)^T + bias (OC), via a GEMM (our own for
// float, OpenBLAS for double).
// Gradient rule: dweight and dbias are parameter gradients and accumulate (+=, GEMM beta = 1);
// dinp is an activation gradient and is overwritten (=, GEMM beta = 0). A null dinp or dbias
// is skipped (the first layer needs no dinp; some layers have no bias).
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>

#include "cpu/cpu_ops.h"
#include "cpu/gemm.h"

namespace lmt::cpu {

namespace {

// float: lmtrain's own GEMM (cpu/gemm.cpp), which splits the output tiles over the OpenMP
// threads itself and gives the same bits for any thread count.
void parallel_gemm(bool trans_a, bool trans_b, int M, int Ncols, int K, const float* A, int lda, const float* B,
                   int ldb, float beta, float* C, int ldc) {
  sgemm(trans_a, trans_b, M, Ncols, K, A, lda, B, ldb, beta, C, ldc);
}

// double (the finite-difference tests): OpenBLAS, its rows split across the OpenMP threads,
// each slice a single-threaded GEMM over the full K (OpenBLAS itself is kept at one thread, see
// make_cpu_backend), so the slicing does not change the rounding.
void parallel_gemm(bool trans_a, bool trans_b, int M, int Ncols, int K, const double* A, int lda,
                   const double* B, int ldb, double beta, double* C, int ldc) {
  constexpr int kMinRowsPerThread = 16;
  const int max_threads = omp_get_max_threads();
  const int num_slices = std::max(1, std::min(max_threads, M / kMinRowsPerThread));
  const int rows_per_slice = (M + num_slices - 1) / num_slices;
#pragma omp parallel for schedule(static) num_threads(num_slices)
  for (int slice = 0; slice < num_slices; ++slice) {
    const int m_begin = slice * rows_per_slice;
    const int m_end = std::min(M, m_begin + rows_per_slice);
    if (m_begin >= m_end) continue;
    // Row m of op(A) is row m of A (no transpose) or column m of A (transposed).
    const double* A_slice = trans_a ? A + m_begin : A + int64_t{m_begin} * lda;
    cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                m_end - m_begin, Ncols, K, 1.0, A_slice, lda, B, ldb, beta, C + int64_t{m_begin} * ldc, ldc);
  }
}

void matmul_forward_impl(float* out, const float* inp, const float* weight, const float* bias,
                         int N, int C, int OC) {
  // The GEMM starts each tile of out from the bias. weight is stored (OC,C) row-major, so
  // weight^T is a transposed read, not a copy.
  sgemm(false, true, N, OC, C, inp, C, weight, C, 0.0f, out, OC, bias);
}

void matmul_forward_impl(double* out, const double* inp, const double* weight,
                         const double* bias, int N, int C, int OC) {
  // Seed out with the bias and let the GEMM add to it (beta = 1).
  double beta = 0.0;
  if (bias != nullptr) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; ++n) std::copy(bias, bias + OC, out + int64_t{n} * OC);
    beta = 1.0;
  }
  if (C <= 0) {
    if (bias == nullptr) std::fill(out, out + int64_t{N} * OC, 0.0);
    return;
  }
  parallel_gemm(false, true, N, OC, C, inp, C, weight, C, beta, out, OC);
}

}  // namespace

template <typename Real>
void matmul_forward(Real* out, const Real* inp, const Real* weight, const Real* bias, int N, int C,
                    int OC) {
  if (N <= 0 || OC <= 0) return;
  matmul_forward_impl(out, inp, weight, bias, N, C, OC);
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
    parallel_gemm(false, false, N, C, OC, dout, OC, weight, C, Real{0}, dinp, C);
  }
  // dweight (OC,C) += dout^T (OC,N) @ inp (N,C)
  parallel_gemm(true, false, OC, C, N, dout, OC, inp, C, Real{1}, dweight, C);
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
