// exp and tanh for float written so that loops calling them vectorize (no branches, no libm
// calls; lmt_cpu is compiled with -fno-trapping-math so the clamps become vector min/max).
// Used by the ops whose time went into scalar libm calls: GELU (its portable path; the AVX-512
// path in cpu/gelu.cpp uses the same polynomial), attention's softmax and the classifier.
//
// Accuracy over the float range (checked against double libm in tests/cpu/test_vec_math.cpp):
// exp_fast relative error < 2e-7 on [-87, 88]; tanh_fast absolute error < 3e-7 everywhere.
// Inputs below -87 give exp(-87) ~ 1.6e-38 instead of a denormal or 0, which no sum of
// exponentials here can tell apart.
#pragma once
#include <bit>
#include <cmath>
#include <cstdint>

namespace lmt::cpu {

// Marks a float loop function to be compiled twice, for AVX-512 and for the build's baseline,
// the better one picked when the program loads (GCC's target_clones; a no-op elsewhere).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define LMT_AVX512_CLONES __attribute__((target_clones("avx512f", "default")))
#else
#define LMT_AVX512_CLONES
#endif

// e^x: x = n ln2 + r with |r| <= ln2 / 2, e^r by a degree-7 polynomial (Cephes' expf
// coefficients), 2^n built in the exponent bits.
inline float exp_fast(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693359375f;     // ln 2 split so that n * kLn2Hi is exact
  constexpr float kLn2Lo = -2.12194440e-4f;
  constexpr float kRoundMagic = 12582912.0f;  // 1.5 * 2^23: adding and subtracting rounds
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  const float n = (x * kLog2e + kRoundMagic) - kRoundMagic;
  float r = x - n * kLn2Hi;
  r = r - n * kLn2Lo;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t biased_exponent = static_cast<int32_t>(n) + 127;
  return p * std::bit_cast<float>(biased_exponent << 23);
}

// tanh(x) = 1 - 2 / (e^{2x} + 1); saturates to +-1 through the clamps of exp_fast.
inline float tanh_fast(float x) { return 1.0f - 2.0f / (exp_fast(2.0f * x) + 1.0f); }

// The double versions are libm's: double is what the finite-difference tests run, where
// accuracy matters and speed does not.
inline double exp_fast(double x) { return std::exp(x); }
inline double tanh_fast(double x) { return std::tanh(x); }

}  // namespace lmt::cpu
