// GELU, tanh approximation: gelu(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
// Gradient rule: dinp is an activation gradient and is overwritten (=). The derivative is the
// exact derivative of the tanh approximation, not of the erf GELU. tanh is cpu/vec_math.h's
// branch-free version for float, so both loops vectorize.
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "cpu/cpu_ops.h"
#include "cpu/gemm.h"
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

#if defined(__x86_64__)
// GCC 12's avx512fintrin.h seeds masked conversions with an "undefined" vector and then warns
// that it may be used uninitialized (a known false positive) once they are inlined here.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// AVX-512 versions of the same formulas: exp_fast's range reduction and polynomial, 2^n in
// the exponent bits, and the reciprocal in tanh(u) = 1 - 2 / (e^{2u} + 1) by rcp14 plus one Newton step
// (relative error ~1e-8) instead of a division, which is what bounded the loops before.
__attribute__((target("avx512f"))) inline __m512 tanh_avx512(__m512 u) {
  __m512 x = _mm512_mul_ps(u, _mm512_set1_ps(2.0f));
  x = _mm512_maskz_max_ps(0xFFFF, x, _mm512_set1_ps(-87.0f));
  x = _mm512_maskz_min_ps(0xFFFF, x, _mm512_set1_ps(88.0f));
  const __m512 n = _mm512_maskz_roundscale_ps(0xFFFF, _mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  const __m512i exponent = _mm512_slli_epi32(
      _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
  const __m512 e = _mm512_mul_ps(p, _mm512_castsi512_ps(exponent));  // e^{2u}
  const __m512 d = _mm512_add_ps(e, _mm512_set1_ps(1.0f));
  __m512 inv = _mm512_rcp14_ps(d);
  inv = _mm512_fmadd_ps(inv, _mm512_fnmadd_ps(d, inv, _mm512_set1_ps(1.0f)), inv);
  return _mm512_fnmadd_ps(_mm512_set1_ps(2.0f), inv, _mm512_set1_ps(1.0f));
}

__attribute__((target("avx512f"))) inline __m512 inner_avx512(__m512 x) {
  // sqrt(2/pi) (x + 0.044715 x^3)
  const __m512 x2 = _mm512_mul_ps(x, x);
  const __m512 poly = _mm512_fmadd_ps(_mm512_set1_ps(static_cast<float>(kCubicCoefficient)), x2,
                                      _mm512_set1_ps(1.0f));
  return _mm512_mul_ps(_mm512_set1_ps(static_cast<float>(kSqrtTwoOverPi)), _mm512_mul_ps(x, poly));
}

__attribute__((target("avx512f"))) void forward_range_avx512(float* out, const float* inp,
                                                             int64_t begin, int64_t end) {
  for (int64_t i = begin; i < end; i += 16) {
    const __mmask16 mask = end - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (end - i)) - 1);
    const __m512 x = _mm512_maskz_loadu_ps(mask, inp + i);
    const __m512 t = tanh_avx512(inner_avx512(x));
    const __m512 y = _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), x),
                                   _mm512_add_ps(_mm512_set1_ps(1.0f), t));
    _mm512_mask_storeu_ps(out + i, mask, y);
  }
}

__attribute__((target("avx512f"))) void backward_range_avx512(float* dinp, const float* inp,
                                                              const float* dout, int64_t begin,
                                                              int64_t end) {
  const __m512 half = _mm512_set1_ps(0.5f);
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t i = begin; i < end; i += 16) {
    const __mmask16 mask = end - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (end - i)) - 1);
    const __m512 x = _mm512_maskz_loadu_ps(mask, inp + i);
    const __m512 g = _mm512_maskz_loadu_ps(mask, dout + i);
    const __m512 t = tanh_avx512(inner_avx512(x));
    // dinner/dx = sqrt(2/pi) (1 + 3 * 0.044715 x^2)
    const __m512 dinner = _mm512_mul_ps(
        _mm512_set1_ps(static_cast<float>(kSqrtTwoOverPi)),
        _mm512_fmadd_ps(_mm512_set1_ps(static_cast<float>(3.0 * kCubicCoefficient)),
                        _mm512_mul_ps(x, x), one));
    const __m512 sech2 = _mm512_fnmadd_ps(t, t, one);  // 1 - tanh^2
    const __m512 local = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_mul_ps(half, x), sech2), dinner,
                                         _mm512_mul_ps(half, _mm512_add_ps(one, t)));
    _mm512_mask_storeu_ps(dinp + i, mask, _mm512_mul_ps(local, g));
  }
}
#pragma GCC diagnostic pop
#endif

// float: the AVX-512 loops when the CPU kernels run at AVX-512 (cpu/gemm.h, LMTRAIN_CPU_ISA),
// otherwise the portable loops compiled for the build's target.
bool use_avx512() {
#if defined(__x86_64__)
  static const bool avx512 = gemm_isa() == GemmIsa::kAvx512;
  return avx512;
#else
  return false;
#endif
}
void run_forward(float* out, const float* inp, int64_t begin, int64_t end) {
#if defined(__x86_64__)
  if (use_avx512()) return forward_range_avx512(out, inp, begin, end);
#endif
  forward_range(out, inp, begin, end);
}
void run_forward(double* out, const double* inp, int64_t begin, int64_t end) {
  forward_range(out, inp, begin, end);
}
void run_backward(float* dinp, const float* inp, const float* dout, int64_t begin, int64_t end) {
#if defined(__x86_64__)
  if (use_avx512()) return backward_range_avx512(dinp, inp, dout, begin, end);
#endif
  backward_range(dinp, inp, dout, begin, end);
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
