// Host conversions between fp32 and bf16/fp16: exact round trips and round-to-nearest-even at
// every midpoint, checked exhaustively over the 16-bit formats.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>

#include "core/dtype.h"

namespace {

bool is_nan_f16(uint16_t h) { return (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu) != 0; }
bool is_nan_bf16(uint16_t h) { return (h & 0x7f80u) == 0x7f80u && (h & 0x7fu) != 0; }

template <typename ToF32, typename FromF32, typename IsNan>
void check_format(ToF32 to_f32, FromF32 from_f32, IsNan is_nan, uint16_t max_finite_magnitude) {
  int failures = 0;
  for (uint32_t bits = 0; bits < 0x10000u; ++bits) {
    const auto h = static_cast<uint16_t>(bits);
    const float value = to_f32(h);
    if (is_nan(h)) {
      if (!std::isnan(value) || !is_nan(from_f32(value))) ++failures;
      continue;
    }
    if (from_f32(value) != h) ++failures;  // exact round trip
    // Midpoint to the next value up (in magnitude): ties go to the even encoding, a hair above
    // goes up, a hair below goes down.
    const uint16_t magnitude = h & 0x7fffu;
    if (magnitude >= max_finite_magnitude) continue;
    const uint16_t next = static_cast<uint16_t>(h + 1);
    const double mid = (static_cast<double>(value) + static_cast<double>(to_f32(next))) / 2;
    const float midpoint = static_cast<float>(mid);
    if (static_cast<double>(midpoint) != mid) continue;  // not representable in fp32 (does not happen)
    const uint16_t even = (h & 1u) == 0 ? h : next;
    if (from_f32(midpoint) != even) ++failures;
    if (from_f32(std::nextafter(midpoint, std::copysign(INFINITY, midpoint))) != next) ++failures;
    if (from_f32(std::nextafter(midpoint, 0.0f)) != h) ++failures;
  }
  CHECK(failures == 0);
}

}  // namespace

TEST_CASE("bf16: exact round trips and round to nearest even", "[dtype]") {
  check_format(lmt::bf16_to_f32, lmt::f32_to_bf16, is_nan_bf16, 0x7f7fu);
  CHECK(lmt::f32_to_bf16(std::numeric_limits<float>::max()) == 0x7f80u);  // rounds up to inf
  CHECK(lmt::bf16_to_f32(lmt::f32_to_bf16(1.0f)) == 1.0f);
}

TEST_CASE("fp16: exact round trips, subnormals, overflow and round to nearest even", "[dtype]") {
  check_format(lmt::f16_to_f32, lmt::f32_to_f16, is_nan_f16, 0x7bffu);
  CHECK(lmt::f32_to_f16(65504.0f) == 0x7bffu);
  CHECK(lmt::f32_to_f16(65519.99f) == 0x7bffu);
  CHECK(lmt::f32_to_f16(65520.0f) == 0x7c00u);  // the midpoint to "65536" rounds to inf
  CHECK(lmt::f32_to_f16(-1e6f) == 0xfc00u);
  CHECK(lmt::f32_to_f16(std::ldexp(1.0f, -25)) == 0x0000u);  // half of the smallest subnormal: to even (0)
  CHECK(lmt::f32_to_f16(std::ldexp(1.5f, -25)) == 0x0001u);
  CHECK(lmt::f16_to_f32(0x0001u) == std::ldexp(1.0f, -24));
}

TEST_CASE("array conversions follow the scalar ones for each dtype", "[dtype]") {
  const float values[5] = {0.1f, -3.75f, 1e-6f, 70000.0f, -0.0f};
  uint16_t half[5];
  float back[5];
  lmt::convert_from_f32(half, lmt::DType::kF16, values, 5);
  lmt::convert_to_f32(back, half, lmt::DType::kF16, 5);
  for (int i = 0; i < 5; ++i) CHECK(back[i] == lmt::f16_to_f32(lmt::f32_to_f16(values[i])));
  lmt::convert_from_f32(half, lmt::DType::kBF16, values, 5);
  lmt::convert_to_f32(back, half, lmt::DType::kBF16, 5);
  for (int i = 0; i < 5; ++i) CHECK(back[i] == lmt::bf16_to_f32(lmt::f32_to_bf16(values[i])));
  float copy[5];
  lmt::convert_from_f32(copy, lmt::DType::kF32, values, 5);
  CHECK(std::memcmp(copy, values, sizeof values) == 0);
  CHECK(lmt::dtype_size(lmt::DType::kBF16) == 2);
  CHECK(lmt::enum_from_name<lmt::DType>("fp16") == lmt::DType::kF16);
  CHECK(std::string(lmt::dtype_name(lmt::DType::kBF16)) == "bf16");
  CHECK_FALSE(lmt::enum_from_name<lmt::DType>("fp8"));
}
