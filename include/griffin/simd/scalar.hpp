// The scalar backend: one lane, the C++ standard library's math. Every kernel instantiated with it is a
// plain loop, which makes it the portable fallback (the test oracle is the separate reference code).
#pragma once

#include <algorithm>
#include <cmath>

#include "griffin/simd/backend.hpp"

namespace griffin::simd {

struct Scalar {
  static constexpr const char* name = "scalar";
  using vec = float;
  static constexpr std::size_t lanes = 1;

  static vec zero() { return 0.0f; }
  static vec set(float s) { return s; }
  static vec load(const float* p) { return *p; }
  static vec load_bf16(const bf16* p) { return bf16_to_f32(*p); }
  static vec load_i8(const std::int8_t* p) { return static_cast<float>(*p); }
  static void store(float* p, vec v) { *p = v; }
  static vec add(vec a, vec b) { return a + b; }
  static vec sub(vec a, vec b) { return a - b; }
  static vec mul(vec a, vec b) { return a * b; }
  static vec div(vec a, vec b) { return a / b; }
  static vec max(vec a, vec b) { return std::max(a, b); }
  static vec min(vec a, vec b) { return std::min(a, b); }
  static vec fma(vec a, vec b, vec c) { return std::fma(a, b, c); }
  static vec sqrt(vec a) { return std::sqrt(a); }
  static vec round(vec a) { return std::nearbyint(a); }
  static vec pow2(vec n) { return std::isnan(n) ? n : std::ldexp(1.0f, static_cast<int>(n)); }
  static vec exp(vec a) { return std::exp(a); }
  static vec expm1(vec a) { return std::expm1(a); }
  static vec tanh(vec a) { return std::tanh(a); }
  static float reduce_add(vec a) { return a; }
  static float reduce_max(vec a) { return a; }
};
static_assert(VectorBackend<Scalar>);

}  // namespace griffin::simd
