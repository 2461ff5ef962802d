// Helpers for the op tests (CPU, and the CUDA ones checked against them): seeded random
// buffers, central finite differences and the tolerances; check_close is in tests/test_util.h.
#pragma once
#include <catch2/catch.hpp>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "tests/test_util.h"

namespace lmt::testing {

// Tolerances for finite differences in double (h = 1e-6, central): truncation ~h^2, roundoff
// ~1e-16 * |L| / h, both far below these.
inline constexpr double kFiniteDifferenceStep = 1e-6;
inline constexpr double kGradAtol = 1e-6;
inline constexpr double kGradRtol = 1e-5;
// float vs double agreement of the same op (DESIGN.md section 8: fp32 about (1e-6, 1e-5);
// the brief for these op-level sweeps asks for (1e-5, 1e-4)).
inline constexpr double kFloatAtol = 1e-5;
inline constexpr double kFloatRtol = 1e-4;

// Uniform in [-scale, scale), but never within 0.05 * scale of zero, so no buffer is
// accidentally zero and every element carries signal.
inline std::vector<double> random_vector(size_t n, std::mt19937& rng, double scale = 1.0) {
  std::uniform_real_distribution<double> magnitude(0.05 * scale, scale);
  std::bernoulli_distribution negative(0.5);
  std::vector<double> values(n);
  for (double& value : values) value = negative(rng) ? -magnitude(rng) : magnitude(rng);
  return values;
}

inline std::vector<int32_t> random_tokens(size_t n, int32_t vocab_size, std::mt19937& rng) {
  std::uniform_int_distribution<int32_t> pick(0, vocab_size - 1);
  std::vector<int32_t> tokens(n);
  for (int32_t& token : tokens) token = pick(rng);
  return tokens;
}

inline std::vector<float> to_float(const std::vector<double>& values) {
  return std::vector<float>(values.begin(), values.end());
}

inline std::vector<double> to_double(const std::vector<float>& values) {
  return std::vector<double>(values.begin(), values.end());
}

// L = sum_i weights[i] * values[i]
inline double weighted_sum(const std::vector<double>& weights, const std::vector<double>& values) {
  REQUIRE(weights.size() == values.size());
  double sum = 0.0;
  for (size_t i = 0; i < values.size(); ++i) sum += weights[i] * values[i];
  return sum;
}

// dL/dx[i] by central differences, perturbing x in place (restored afterwards).
inline std::vector<double> numerical_gradient(std::vector<double>& x,
                                              const std::function<double()>& loss,
                                              double step = kFiniteDifferenceStep) {
  std::vector<double> gradient(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double original = x[i];
    x[i] = original + step;
    const double loss_plus = loss();
    x[i] = original - step;
    const double loss_minus = loss();
    x[i] = original;
    gradient[i] = (loss_plus - loss_minus) / (2.0 * step);
  }
  return gradient;
}

// What an accumulating op added to a buffer that held `prefill` before: buffer - prefill.
inline std::vector<double> added_to(const std::vector<double>& buffer,
                                    const std::vector<double>& prefill) {
  REQUIRE(buffer.size() == prefill.size());
  std::vector<double> added(buffer.size());
  for (size_t i = 0; i < buffer.size(); ++i) added[i] = buffer[i] - prefill[i];
  return added;
}

// Fill for buffers an op must overwrite: any read of it (e.g. += instead of =) shows as NaN.
inline std::vector<double> nan_vector(size_t n) {
  return std::vector<double>(n, std::numeric_limits<double>::quiet_NaN());
}

}  // namespace lmt::testing
