// Element types of activations and of the compute copy of the parameters (precision.dtype),
// and exact host conversions to and from fp32 (round to nearest, ties to even), the same
// rounding as CUDA's __float2bfloat16 and __float2half.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "core/named_enum.h"

namespace lmt {

enum class DType : uint8_t { kF32, kBF16, kF16 };
inline constexpr EnumName<DType> kDTypeNames[] = {
    {DType::kF32, "fp32"}, {DType::kBF16, "bf16"}, {DType::kF16, "fp16"}};
constexpr const auto& enum_names(DType) { return kDTypeNames; }

inline size_t dtype_size(DType type) { return type == DType::kF32 ? 4 : 2; }
inline const char* dtype_name(DType type) { return name_of(type); }

inline uint16_t f32_to_bf16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);  // quiet NaN
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}
inline float bf16_to_f32(uint16_t value) {
  const uint32_t bits = static_cast<uint32_t>(value) << 16;
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}
uint16_t f32_to_f16(float value);
float f16_to_f32(uint16_t value);

// Converts n values between fp32 host arrays and raw arrays of `type`.
void convert_from_f32(void* dst, DType type, const float* src, size_t n);
void convert_to_f32(float* dst, const void* src, DType type, size_t n);

}  // namespace lmt
