// Storage number formats: bfloat16 and IEEE half, converted to and from float32 exactly as PyTorch does
// (round to nearest even; NaN stays NaN), and DType, the element types a tensor file can name, beside them
// since a weight's format is one of them.
#pragma once

#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace griffin {

// bfloat16: the upper half of a float32. A distinct type so a weight's format is visible in signatures.
struct bf16 {
  std::uint16_t bits = 0;
};
static_assert(sizeof(bf16) == 2);

inline float bf16_to_f32(bf16 v) { return std::bit_cast<float>(static_cast<std::uint32_t>(v.bits) << 16); }

inline bf16 f32_to_bf16(float f) {
  std::uint32_t u = std::bit_cast<std::uint32_t>(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16{static_cast<std::uint16_t>((u >> 16) | 0x40u)};  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest, ties to even
  return bf16{static_cast<std::uint16_t>(u >> 16)};
}

// Rounds a float to the nearest bfloat16 value, kept as float (used for the embedding scale).
inline float round_to_bf16(float f) { return bf16_to_f32(f32_to_bf16(f)); }

// IEEE 754 binary16 to float32, including subnormals, infinities and NaN.
inline float f16_to_f32(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exponent = (h >> 10) & 0x1fu;
  std::uint32_t mantissa = h & 0x3ffu;
  std::uint32_t bits;
  if (exponent == 0) {
    if (mantissa == 0) {
      bits = sign;
    } else {  // subnormal: renormalise
      int e = -1;
      do {
        ++e;
        mantissa <<= 1;
      } while ((mantissa & 0x400u) == 0);
      bits = sign | static_cast<std::uint32_t>(127 - 15 - e) << 23 | (mantissa & 0x3ffu) << 13;
    }
  } else if (exponent == 0x1f) {
    bits = sign | 0x7f800000u | mantissa << 13;
  } else {
    bits = sign | (exponent + 127 - 15) << 23 | mantissa << 13;
  }
  return std::bit_cast<float>(bits);
}

// The safetensors dtypes. Only f32, bf16 and f16 (weights) and i32/i64 (tokens) are converted by this
// library; the others are recognised so a file holding them still opens.
// clang-format off
enum class DType : std::uint8_t {
  f32, bf16, f16, i32, i64,                                  // read by griffin
  f64, i8, i16, u8, u16, u32, u64, boolean, f8_e4m3, f8_e5m2  // recognised
};

constexpr std::size_t dtype_size(DType t) {
  switch (t) {
    case DType::f64: case DType::i64: case DType::u64: return 8;
    case DType::f32: case DType::i32: case DType::u32: return 4;
    case DType::bf16: case DType::f16: case DType::i16: case DType::u16: return 2;
    case DType::i8: case DType::u8: case DType::boolean: case DType::f8_e4m3: case DType::f8_e5m2: return 1;
  }
  return 0;
}

// The spelling in a safetensors header ("F32", "BF16", ...).
constexpr std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "F32";
    case DType::bf16: return "BF16";
    case DType::f16: return "F16";
    case DType::i32: return "I32";
    case DType::i64: return "I64";
    case DType::f64: return "F64";
    case DType::i8: return "I8";
    case DType::i16: return "I16";
    case DType::u8: return "U8";
    case DType::u16: return "U16";
    case DType::u32: return "U32";
    case DType::u64: return "U64";
    case DType::boolean: return "BOOL";
    case DType::f8_e4m3: return "F8_E4M3";
    case DType::f8_e5m2: return "F8_E5M2";
  }
  return "?";
}
// clang-format on

inline constexpr DType all_dtypes[] = {DType::f32, DType::bf16, DType::f16,     DType::i32,     DType::i64,
                                       DType::f64, DType::i8,   DType::i16,     DType::u8,      DType::u16,
                                       DType::u32, DType::u64,  DType::boolean, DType::f8_e4m3, DType::f8_e5m2};

// The dtype spelled `name` in a header, or nothing if there is none.
constexpr std::optional<DType> dtype_from_name(std::string_view name) {
  for (DType t : all_dtypes)
    if (dtype_name(t) == name) return t;
  return std::nullopt;
}

}  // namespace griffin
