// GELU, tanh approximation: gelu(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
// Gradient rule: dinp is an activation gradient and is overwritten (=). The derivative is the
// exact derivative of the tanh approximation, not of the erf GELU. tanh is cpu/vec_math.h's
// branch-free version for float, so both loops vectorize.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "cpu/cpu_ops.h"
#include "cpu/vec_math.h"

namespace lmt::cpu {

namespace {
constexpr double kSqrtTwoOverPi = 0.7978845608028654;  // sqrt(2 / pi)
constexpr double kCubicCoefficient = 0.044715;

template <typename Real>
inline Real gelu_value(Real x) {
  const Real sqrt_two_over_pi = static_cast<Real>(kSqrtTwoOverPi);
  const Real cubic = static_cast<Real>(kCubicCoefficient);
  const Real inner = sqrt_two_over_pi * (x + cubic * x * x * x);
  return Real{0.5} * x * (Real{1} + tanh_fast(inner));
}

// d/dx = 0.5 (1 + tanh(u)) + 0.5 x (1 - tanh(u)^2) du/dx,
// u = sqrt(2/pi) (x + 0.044715 x^3), du/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2)
template <typename Real>
inline Real gelu_derivative(Real x) {
  const Real sqrt_two_over_pi = static_cast<Real>(kSqrtTwoOverPi);
  const Real cubic = static_cast<Real>(kCubicCoefficient);
  const Real inner = sqrt_two_over_pi * (x + cubic * x * x * x);
  const Real tanh_inner = tanh_fast(inner);
  const Real dinner_dx = sqrt_two_over_pi * (Real{1} + Real{3} * cubic * x * x);
  return Real{0.5} * (Real{1} + tanh_inner) +
         Real{0.5} * x * (Real{1} - tanh_inner * tanh_inner) * dinner_dx;
}

template <typename Real>
void forward_range(Real* out, const Real* inp, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) out[i] = gelu_value(inp[i]);
}
template <typename Real>
void backward_range(Real* dinp, const Real* inp, const Real* dout, int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; ++i) dinp[i] = gelu_derivative(inp[i]) * dout[i];
}

// float: compiled twice, for AVX-512 and for the build's baseline, and picked at load time
// (the loops are the same; AVX-512 does twice the lanes per instruction).
LMT_AVX512_CLONES void forward_range_f32(float* out, const float* inp, int64_t begin, int64_t end) {
  forward_range(out, inp, begin, end);
}
LMT_AVX512_CLONES void backward_range_f32(float* dinp, const float* inp, const float* dout,
                                   int64_t begin, int64_t end) {
  backward_range(dinp, inp, dout, begin, end);
}
void run_forward(float* out, const float* inp, int64_t begin, int64_t end) {
  forward_range_f32(out, inp, begin, end);
}
void run_forward(double* out, const double* inp, int64_t begin, int64_t end) {
  forward_range(out, inp, begin, end);
}
void run_backward(float* dinp, const float* inp, const float* dout, int64_t begin, int64_t end) {
  backward_range_f32(dinp, inp, dout, begin, end);
}
void run_backward(double* dinp, const double* inp, const double* dout, int64_t begin,
                  int64_t end) {
  backward_range(dinp, inp, dout, begin, end);
}

constexpr int64_t kChunk = 4096;  // elements per parallel work item
}  // namespace

template <typename Real>
void gelu_forward(Real* out, const Real* inp, size_t n) {
  const int64_t count = static_cast<int64_t>(n);
  const int64_t num_chunks = (count + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static)
  for (int64_t chunk = 0; chunk < num_chunks; ++chunk) {
    run_forward(out, inp, chunk * kChunk, std::min(count, (chunk + 1) * kChunk));
  }
}

template <typename Real>
void gelu_backward(Real* dinp, const Real* inp, const Real* dout, size_t n) {
  const int64_t count = static_cast<int64_t>(n);
  const int64_t num_chunks = (count + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static)
  for (int64_t chunk = 0; chunk < num_chunks; ++chunk) {
    run_backward(dinp, inp, dout, chunk * kChunk, std::min(count, (chunk + 1) * kChunk));
  }
}

template void gelu_forward<float>(float*, const float*, size_t);
template void gelu_forward<double>(double*, const double*, size_t);
template void gelu_backward<float>(float*, const float*, const float*, size_t);
template void gelu_backward<double>(double*, const double*, const double*, size_t);

}  // namespace lmt::cpu
