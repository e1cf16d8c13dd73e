// RMSNorm with the (1 + w) scale: y = x / sqrt(mean(x²) + eps) · (1 + w). The stored weight is an offset
// from one (spec "RMSNorm").
#pragma once

#include <cmath>
#include <cstddef>

#include "griffin/extent.hpp"
#include "griffin/simd/backend.hpp"

namespace griffin::kernels {

namespace reference {
inline void rms_norm(const float* x, const float* weight, float eps, std::size_t n, float* y) {
  double sum_sq = 0.0;
  for (std::size_t i = 0; i < n; ++i) sum_sq += double(x[i]) * x[i];
  const float inv_rms = float(1.0 / std::sqrt(sum_sq / double(n) + eps));
  for (std::size_t i = 0; i < n; ++i) y[i] = x[i] * inv_rms * (1.0f + weight[i]);
}
}  // namespace reference

// One row of n values (a compile-time extent unrolls it); y may alias x.
template <simd::VectorBackend B, std::size_t N>
void rms_norm(const float* x, const float* weight, float eps, Size<N> n, float* y) {
  constexpr std::size_t L = B::lanes;
  const std::size_t vector_end = n / L * L;  // loops run to it, not to i + L <= n: no tail GCC thinks overflows
  auto acc = B::zero();
  for (std::size_t i = 0; i < vector_end; i += L) {
    auto v = B::load(x + i);
    acc = B::fma(v, v, acc);
  }
  float sum_sq = B::reduce_add(acc);
  for (std::size_t i = vector_end; i < n; ++i) sum_sq = std::fma(x[i], x[i], sum_sq);
  float inv_rms = 1.0f / std::sqrt(sum_sq / float(n) + eps);
  if (!std::isfinite(sum_sq)) {  // |x| beyond ~1e19: the float squares overflowed, so redo them in double
    double wide = 0.0;
    for (std::size_t j = 0; j < n; ++j) wide += double(x[j]) * double(x[j]);
    inv_rms = float(1.0 / std::sqrt(wide / double(n) + double(eps)));
  }
  const auto scale = B::set(inv_rms);
  const auto one = B::set(1.0f);
  for (std::size_t i = 0; i < vector_end; i += L)
    B::store(y + i, B::mul(B::mul(B::load(x + i), scale), B::add(one, B::load(weight + i))));
  for (std::size_t i = vector_end; i < n; ++i) y[i] = x[i] * inv_rms * (1.0f + weight[i]);
}

template <simd::VectorBackend B>
void rms_norm(const float* x, const float* weight, float eps, std::size_t n, float* y) {
  rms_norm<B>(x, weight, eps, Size<dynamic>(n), y);
}

// `rows` consecutive rows.
template <simd::VectorBackend B, std::size_t N>
void rms_norm_rows(const float* x, const float* weight, float eps, std::size_t rows, Size<N> n, float* y) {
  for (std::size_t r = 0; r < rows; ++r) rms_norm<B>(x + r * n, weight, eps, n, y + r * n);
}

}  // namespace griffin::kernels
