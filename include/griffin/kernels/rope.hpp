// Rotary position embedding on the first R = head_dim · partial_rotary_factor dims of each head, in the
// rotate-half layout (spec "RoPE"); the other dims pass through. The angles are computed in float32 the
// way the reference does (pos · 1/θ^(2j/R)), so long positions round the same way.
#pragma once

#include <cmath>
#include <cstddef>
#include <vector>

#include "griffin/simd/backend.hpp"

namespace griffin::kernels {

// cos and sin of every rotated pair at one position: cos_sin[j] = cos θ_j, cos_sin[R/2 + j] = sin θ_j.
inline void rope_angles(int position, std::size_t rotated_dims, float theta, float* cos_sin) {
  const std::size_t half = rotated_dims / 2;
  for (std::size_t j = 0; j < half; ++j) {
    const float exponent = float(2 * j) / float(rotated_dims);
    const float inv_frequency = 1.0f / std::pow(theta, exponent);
    const float angle = float(position) * inv_frequency;
    cos_sin[j] = float(std::cos(double(angle)));
    cos_sin[half + j] = float(std::sin(double(angle)));
  }
}

namespace reference {
// x: [heads, head_dim], rotated in place at one position.
inline void rope(float* x, std::size_t heads, std::size_t head_dim, std::size_t rotated_dims, int position,
                 float theta) {
  const std::size_t half = rotated_dims / 2;
  for (std::size_t h = 0; h < heads; ++h)
    for (std::size_t j = 0; j < half; ++j) {
      const double angle = double(float(position) * (1.0f / std::pow(theta, float(2 * j) / float(rotated_dims))));
      float* head = x + h * head_dim;
      const double x1 = head[j], x2 = head[j + half];
      head[j] = float(x1 * std::cos(angle) - x2 * std::sin(angle));
      head[j + half] = float(x2 * std::cos(angle) + x1 * std::sin(angle));
    }
}
}  // namespace reference

// x: [heads, head_dim] at one position, cos_sin from rope_angles for that position.
template <simd::VectorBackend B>
void rope(float* x, std::size_t heads, std::size_t head_dim, std::size_t rotated_dims, const float* cos_sin) {
  constexpr std::size_t L = B::lanes;
  const std::size_t half = rotated_dims / 2;
  for (std::size_t h = 0; h < heads; ++h) {
    float* first = x + h * head_dim;
    float* second = first + half;
    std::size_t j = 0;
    for (; j + L <= half; j += L) {
      const auto c = B::load(cos_sin + j), s = B::load(cos_sin + half + j);
      const auto x1 = B::load(first + j), x2 = B::load(second + j);
      B::store(first + j, B::sub(B::mul(x1, c), B::mul(x2, s)));
      B::store(second + j, B::fma(x1, s, B::mul(x2, c)));
    }
    for (; j < half; ++j) {
      const float c = cos_sin[j], s = cos_sin[half + j];
      const float x1 = first[j], x2 = second[j];
      first[j] = x1 * c - x2 * s;
      second[j] = x2 * c + x1 * s;
    }
  }
}

}  // namespace griffin::kernels
