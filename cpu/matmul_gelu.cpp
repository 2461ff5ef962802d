// A dense layer fused with GELU: the MLP's c_fc + GELU forward, and c_proj's input gradient +
// GELU backward.
//   forward:  pre = inp @ weight^T + bias, out = gelu(pre)              (pre and out written)
//   backward: dpre = (dout @ weight) * gelu'(pre)                        (overwritten)
//             dweight += dout^T @ inp, dbias += column sums of dout      (accumulated)
// Gradient rule as for matmul: dpre is an activation gradient (=), dweight and dbias are
// parameter gradients (+=).
//
// For float the GELU runs in the GEMM's epilogue (cpu/gemm.h), on each tile of the product
// right after it is computed and still in cache, instead of another pass over N x OC values
// through memory. For double (the finite-difference tests) it is the two ops in sequence, which
// is also the definition the float version is tested against.
#include <cstdint>

#include "cpu/cpu_ops.h"
#include "cpu/gemm.h"

namespace lmt::cpu {

namespace {

struct GeluForwardContext {
  float* out;  // (N,OC), the same leading dimension as the product
};

void gelu_forward_tile(const void* context, float* tile, int64_t ldc, int row0, int col0,
                       int rows, int cols) {
  float* out = static_cast<const GeluForwardContext*>(context)->out;
  for (int i = 0; i < rows; ++i) {
    gelu_forward_span(out + (row0 + i) * ldc + col0, tile + i * ldc, cols);
  }
}

struct GeluBackwardContext {
  const float* pre;  // (N,C), the same leading dimension as the product
};

void gelu_backward_tile(const void* context, float* tile, int64_t ldc, int row0, int col0,
                        int rows, int cols) {
  const float* pre = static_cast<const GeluBackwardContext*>(context)->pre;
  for (int i = 0; i < rows; ++i) {
    float* row = tile + i * ldc;
    gelu_backward_span(row, pre + (row0 + i) * ldc + col0, row, cols);
  }
}

void forward_impl(float* pre, float* out, const float* inp, const float* weight, const float* bias,
                  int N, int C, int OC) {
  const GeluForwardContext context{out};
  sgemm(false, true, N, OC, C, inp, C, weight, C, 0.0f, pre, OC, bias,
        GemmEpilogue{gelu_forward_tile, &context});
}

void forward_impl(double* pre, double* out, const double* inp, const double* weight,
                  const double* bias, int N, int C, int OC) {
  matmul_forward<double>(pre, inp, weight, bias, N, C, OC);
  gelu_forward<double>(out, pre, size_t(N) * OC);
}

void backward_impl(float* dpre, float* dweight, float* dbias, const float* dout, const float* inp,
                   const float* weight, const float* pre, int N, int C, int OC) {
  // dpre (N,C) = dout (N,OC) @ weight (OC,C), then times gelu'(pre) tile by tile.
  const GeluBackwardContext context{pre};
  sgemm(false, false, N, C, OC, dout, OC, weight, C, 0.0f, dpre, C, nullptr,
        GemmEpilogue{gelu_backward_tile, &context});
  matmul_backward<float>(nullptr, dweight, dbias, dout, inp, weight, N, C, OC);
}

void backward_impl(double* dpre, double* dweight, double* dbias, const double* dout,
                   const double* inp, const double* weight, const double* pre, int N, int C,
                   int OC) {
  matmul_backward<double>(dpre, dweight, dbias, dout, inp, weight, N, C, OC);
  gelu_backward<double>(dpre, pre, dpre, size_t(N) * C);
}

}  // namespace

template <typename Real>
void matmul_gelu_forward(Real* pre, Real* out, const Real* inp, const Real* weight, const Real* bias,
                         int N, int C, int OC) {
  if (N <= 0 || OC <= 0) return;
  forward_impl(pre, out, inp, weight, bias, N, C, OC);
}

template <typename Real>
void matmul_backward_gelu(Real* dpre, Real* dweight, Real* dbias, const Real* dout, const Real* inp,
                          const Real* weight, const Real* pre, int N, int C, int OC) {
  if (N <= 0 || C <= 0) return;
  backward_impl(dpre, dweight, dbias, dout, inp, weight, pre, N, C, OC);
}

template void matmul_gelu_forward<float>(float*, float*, const float*, const float*, const float*,
                                         int, int, int);
template void matmul_gelu_forward<double>(double*, double*, const double*, const double*,
                                          const double*, int, int, int);
template void matmul_backward_gelu<float>(float*, float*, float*, const float*, const float*,
                                          const float*, const float*, int, int, int);
template void matmul_backward_gelu<double>(double*, double*, double*, const double*,
                                           const double*, const double*, const double*, int, int,
                                           int);

}  // namespace lmt::cpu
