// The defaults of the composite ops (LMT_COMPOSITE_OP in core/ops.def): the plain ops in turn.
#include "core/ops.h"

namespace lmt {

void Backend::matmul_gelu_forward(void* pre, void* out, const void* inp, const void* weight, const void* bias, int N,
                                  int C, int OC) {
  matmul_forward(pre, inp, weight, bias, N, C, OC);
  gelu_forward(out, pre, static_cast<size_t>(N) * OC);
}

void Backend::matmul_gelu_recompute(void* out, void* /*scratch*/, const void* pre, const void* /*inp*/,
                                    const void* /*weight*/, const void* /*bias*/, int N, int /*C*/, int OC) {
  gelu_forward(out, pre, static_cast<size_t>(N) * OC);
}

void Backend::matmul_backward_gelu(void* dpre, float* dweight, float* dbias, const void* dout, const void* inp,
                                   const void* weight, const void* pre, int N, int C, int OC) {
  matmul_backward(dpre, dweight, dbias, dout, inp, weight, N, C, OC);
  gelu_backward(dpre, pre, dpre, static_cast<size_t>(N) * C);
}

void Backend::matmul_residual_forward(void* out, const void* residual, const void* inp, const void* weight,
                                      const void* bias, int N, int C, int OC) {
  matmul_forward(out, inp, weight, bias, N, C, OC);
  residual_forward(out, out, residual, static_cast<size_t>(N) * OC);
}

}  // namespace lmt
