// Shared by the tests of numerics at the edges (huge or tiny inputs, saturated gates): the inputs, and the
// spec's formulas evaluated in long double to compare against.
#pragma once

#include <cfloat>
#include <cmath>
#include <vector>

namespace griffin::test {

using ld = long double;

// Values from the subnormal range to FLT_MAX, both signs, and zero.
inline std::vector<float> extreme_values() {
  std::vector<float> v{0.0f};
  for (float m : {1e-44f, 1e-38f, 1e-30f, 1e-10f, 1e-6f, 1e-3f, 0.5f, 1.0f, 3.0f, 10.0f, 20.0f, 20.5f, 30.0f, 50.0f,
                  88.0f, 89.0f, 100.0f, 200.0f, 1e4f, 1e10f, 1e20f, 1e30f, FLT_MAX}) {
    v.push_back(m);
    v.push_back(-m);
  }
  return v;
}

// |ours - ref| within `rel` of |ref|, or below `abs` (for results in float's subnormal range).
inline bool close(float ours, ld ref, ld rel, ld abs = 1e-37L) {
  if (std::isnan(ours) || std::isnan(double(ref))) return false;
  if (std::isinf(ours) || std::isinf(double(ref))) return ours == float(ref);
  return std::abs(ld(ours) - ref) <= rel * std::abs(ref) + abs;
}

inline ld softplus_ld(ld z) { return z > 40 ? z + std::log1p(std::exp(-z)) : std::log1p(std::exp(z)); }
inline ld sigmoid_ld(ld z) { return 1.0L / (1.0L + std::exp(-z)); }
inline ld gelu_ld(ld x) {
  const ld k = std::sqrt(2.0L / 3.14159265358979323846264338327950288L);
  return 0.5L * x * (1.0L + std::tanh(k * (x + 0.044715L * x * x * x)));
}

}  // namespace griffin::test
