#include "core/dtype.h"

#include <cmath>
#include <stdexcept>

namespace lmt {

uint16_t f32_to_f16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);  // NaN
  if (magnitude >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to >= 65520: inf
  if (magnitude < 0x38800000u) {
    // Subnormal half (or zero): value = m * 2^-24 with m an integer; round m to nearest even.
    const float scaled = std::fabs(value) * 16777216.0f;  // 2^24, exact
    const float rounded = std::nearbyint(scaled);         // default mode: ties to even
    return static_cast<uint16_t>(sign | static_cast<uint16_t>(rounded));
  }
  // Normal: rebias the exponent (127 -> 15) and round the 23-bit mantissa to 10 bits.
  uint32_t half = magnitude - (112u << 23);
  half += 0xfffu + ((half >> 13) & 1u);
  return static_cast<uint16_t>(sign | (half >> 13));
}

float f16_to_f32(uint16_t value) {
  const uint32_t sign = static_cast<uint32_t>(value & 0x8000u) << 16;
  const uint32_t exponent = (value >> 10) & 0x1fu, mantissa = value & 0x3ffu;
  float out;
  if (exponent == 0) {
    out = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -out : out;
  }
  uint32_t bits;
  if (exponent == 31) bits = sign | 0x7f800000u | (mantissa << 13);
  else bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);
  std::memcpy(&out, &bits, 4);
  return out;
}

void convert_from_f32(void* dst, DType type, const float* src, size_t n) {
  if (type == DType::kF32) {
    if (n) std::memcpy(dst, src, n * 4);
    return;
  }
  auto* out = static_cast<uint16_t*>(dst);
  for (size_t i = 0; i < n; ++i) out[i] = type == DType::kBF16 ? f32_to_bf16(src[i]) : f32_to_f16(src[i]);
}

void convert_to_f32(float* dst, const void* src, DType type, size_t n) {
  if (type == DType::kF32) {
    if (n) std::memcpy(dst, src, n * 4);
    return;
  }
  const auto* in = static_cast<const uint16_t*>(src);
  for (size_t i = 0; i < n; ++i) dst[i] = type == DType::kBF16 ? bf16_to_f32(in[i]) : f16_to_f32(in[i]);
}

}  // namespace lmt
