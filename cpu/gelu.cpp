// GELU, tanh approximation: gelu(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
// Gradient rule: dinp is an activation gradient and is overwritten (=). The derivative is the
// exact derivative of the tanh approximation, not of the erf GELU. tanh is cpu/vec_math.h's
// branch-free version for float, so both loops vectorize.
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "cpu/cpu_ops.h"
#include "cpu/vec_math.h"

namespace lmt::cpu {

namespace {
constexpr double kSqrtTwoOverPi = 0.7978845608028654;  // sqrt(2 / pi)
constexpr double kCubicCoefficient = 0.044715;
}  // namespace

template <typename Real>
void gelu_forward(Real* out, const Real* inp, size_t n) {
  const Real sqrt_two_over_pi = static_cast<Real>(kSqrtTwoOverPi);
  const Real cubic = static_cast<Real>(kCubicCoefficient);
  const int64_t count = static_cast<int64_t>(n);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < count; ++i) {
    const Real x = inp[i];
    const Real inner = sqrt_two_over_pi * (x + cubic * x * x * x);
    out[i] = Real{0.5} * x * (Real{1} + tanh_fast(inner));
  }
}

template <typename Real>
void gelu_backward(Real* dinp, const Real* inp, const Real* dout, size_t n) {
  // d/dx = 0.5 (1 + tanh(u)) + 0.5 x (1 - tanh(u)^2) du/dx,
  // u = sqrt(2/pi) (x + 0.044715 x^3), du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2)
  const Real sqrt_two_over_pi = static_cast<Real>(kSqrtTwoOverPi);
  const Real cubic = static_cast<Real>(kCubicCoefficient);
  const int64_t count = static_cast<int64_t>(n);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < count; ++i) {
    const Real x = inp[i];
    const Real inner = sqrt_two_over_pi * (x + cubic * x * x * x);
    const Real tanh_inner = tanh_fast(inner);
    const Real dinner_dx = sqrt_two_over_pi * (Real{1} + Real{3} * cubic * x * x);
    const Real local_grad = Real{0.5} * (Real{1} + tanh_inner) +
                            Real{0.5} * x * (Real{1} - tanh_inner * tanh_inner) * dinner_dx;
    dinp[i] = local_grad * dout[i];
  }
}

template void gelu_forward<float>(float*, const float*, size_t);
template void gelu_forward<double>(double*, const double*, size_t);
template void gelu_backward<float>(float*, const float*, const float*, size_t);
template void gelu_backward<double>(double*, const double*, const double*, size_t);

}  // namespace lmt::cpu
