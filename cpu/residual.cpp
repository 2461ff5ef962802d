// Residual add: out = inp1 + inp2.
// Gradient rule: the backward is the identity (the gradient of out flows unchanged into both
// inputs), so there is no backward op: the model accumulates dout into the residual stream's
// gradient, which is why layernorm's dinp accumulates (+=).
#include <cstddef>
#include <cstdint>

#include "cpu/cpu_ops.h"

namespace lmt::cpu {

template <typename Real>
void residual_forward(Real* out, const Real* inp1, const Real* inp2, size_t n) {
  const int64_t count = static_cast<int64_t>(n);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < count; ++i) out[i] = inp1[i] + inp2[i];
}

template void residual_forward<float>(float*, const float*, const float*, size_t);
template void residual_forward<double>(double*, const double*, const double*, size_t);

}  // namespace lmt::cpu
