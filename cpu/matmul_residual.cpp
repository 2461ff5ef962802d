// A dense layer added onto the residual stream: out = residual + inp @ weight^T + bias, the
// attention projection and the MLP's output layer of every block. The backward is matmul's
// (the residual add passes the gradient through unchanged), so there is no backward here.
//
// For float the residual is added in the GEMM's epilogue (cpu/gemm.h), to each tile of the
// product while it is in cache, instead of writing the product and adding it in another pass.
// For double it is matmul_forward then residual_forward, the definition the float version is
// tested against.
#include <cstdint>

#include "cpu/cpu_ops.h"
#include "cpu/gemm.h"

namespace lmt::cpu {

namespace {

void add_residual_tile(const void* context, float* tile, int64_t ldc, int row0, int col0,
                       int rows, int cols) {
  const float* residual = static_cast<const float*>(context);  // (N,OC), leading dimension ldc
  for (int i = 0; i < rows; ++i) {
    float* out_row = tile + i * ldc;
    const float* residual_row = residual + (row0 + i) * ldc + col0;
    for (int j = 0; j < cols; ++j) out_row[j] += residual_row[j];
  }
}

void forward_impl(float* out, const float* residual, const float* inp, const float* weight,
                  const float* bias, int N, int C, int OC) {
  sgemm(false, true, N, OC, C, inp, C, weight, C, 0.0f, out, OC, bias,
        GemmEpilogue{add_residual_tile, residual});
}

void forward_impl(double* out, const double* residual, const double* inp, const double* weight,
                  const double* bias, int N, int C, int OC) {
  matmul_forward<double>(out, inp, weight, bias, N, C, OC);
  residual_forward<double>(out, out, residual, size_t(N) * OC);
}

}  // namespace

template <typename Real>
void matmul_residual_forward(Real* out, const Real* residual, const Real* inp, const Real* weight,
                             const Real* bias, int N, int C, int OC) {
  if (N <= 0 || OC <= 0) return;
  forward_impl(out, residual, inp, weight, bias, N, C, OC);
}

template void matmul_residual_forward<float>(float*, const float*, const float*, const float*,
                                             const float*, int, int, int);
template void matmul_residual_forward<double>(double*, const double*, const double*,
                                              const double*, const double*, int, int, int);

}  // namespace lmt::cpu
