// RMSNorm with the (1 + w) scale: y = x / sqrt(mean(x²) + eps) · (1 + w). The stored weight is an offset
// from one (spec "RMSNorm").
#pragma once

#include <cmath>
#include <cstddef>

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

// One row of n values; y may alias x.
template <simd::VectorBackend B>
void rms_norm(const float* x, const float* weight, float eps, std::size_t n, float* y) {
  constexpr std::size_t L = B::lanes;
  auto acc = B::zero();
  std::size_t i = 0;
  for (; i + L <= n; i += L) {
    auto v = B::load(x + i);
    acc = B::fma(v, v, acc);
  }
  float sum_sq = B::reduce_add(acc);
  for (; i < n; ++i) sum_sq += x[i] * x[i];
  float inv_rms = 1.0f / std::sqrt(sum_sq / float(n) + eps);
  if (!std::isfinite(sum_sq)) {  // |x| beyond ~1e19: the float squares overflowed, so redo them in double
    double wide = 0.0;
    for (std::size_t j = 0; j < n; ++j) wide += double(x[j]) * double(x[j]);
    inv_rms = float(1.0 / std::sqrt(wide / double(n) + double(eps)));
  }
  const auto scale = B::set(inv_rms);
  const auto one = B::set(1.0f);
  i = 0;
  for (; i + L <= n; i += L)
    B::store(y + i, B::mul(B::mul(B::load(x + i), scale), B::add(one, B::load(weight + i))));
  for (; i < n; ++i) y[i] = x[i] * inv_rms * (1.0f + weight[i]);
}

// `rows` consecutive rows.
template <simd::VectorBackend B>
void rms_norm_rows(const float* x, const float* weight, float eps, std::size_t rows, std::size_t n, float* y) {
  for (std::size_t r = 0; r < rows; ++r) rms_norm<B>(x + r * n, weight, eps, n, y + r * n);
}

}  // namespace griffin::kernels
