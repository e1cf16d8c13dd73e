// Element-wise functions: GeLU (tanh approximation, as `gelu_pytorch_tanh`), the gated GeLU of the MLP
// and the logits soft cap. (The RG-LRU's sigmoids are in simd/math.hpp.)
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>

#include "griffin/simd/backend.hpp"

namespace griffin::kernels {

namespace reference {
inline float gelu_tanh(float x) {
  const double k = std::sqrt(2.0 / 3.14159265358979323846);
  const double xd = x;
  return float(0.5 * xd * (1.0 + std::tanh(k * (xd + 0.044715 * xd * xd * xd))));
}
inline void gated_gelu(const float* gate, const float* up, std::size_t n, float* y) {
  for (std::size_t i = 0; i < n; ++i) y[i] = gelu_tanh(gate[i]) * up[i];
}
inline void gelu_in_place(float* x, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) x[i] = gelu_tanh(x[i]);
}
inline void soft_cap(float* x, std::size_t n, float cap) {
  for (std::size_t i = 0; i < n; ++i) x[i] = float(cap * std::tanh(double(x[i]) / cap));
}
}  // namespace reference

namespace detail {
inline constexpr float gelu_k = 0.7978845608028654f;  // sqrt(2 / pi)
inline constexpr float gelu_c = 0.044715f;

template <simd::VectorBackend B>
typename B::vec gelu_tanh(typename B::vec x) {
  auto x3 = B::mul(B::mul(x, x), x);
  auto inner = B::mul(B::set(gelu_k), B::fma(B::set(gelu_c), x3, x));
  auto half_x = B::mul(B::set(0.5f), x);
  return B::fma(half_x, B::tanh(inner), half_x);
}
// The last n < L elements through the same vector code as the rest (in a padded copy), so an element's value
// never depends on where it falls in the array: a row of a batch (e.g. logits [B, V] with V not a multiple of
// L) gets the bits it gets alone.
template <simd::VectorBackend B, class F>
void vector_tail(float* y, std::size_t n, F&& f) {
  alignas(64) float buf[B::lanes] = {};
  f(buf, n);
  std::copy_n(buf, n, y);
}
}  // namespace detail

// Operations per element of the GeLU (a tanh and a few multiplies): how callers size a thread's share.
inline constexpr std::size_t gelu_work_per_element = 24;

template <simd::VectorBackend B>
void gelu_in_place(float* x, std::size_t n) {
  constexpr std::size_t L = B::lanes;
  std::size_t i = 0;
  for (; i + L <= n; i += L) B::store(x + i, detail::gelu_tanh<B>(B::load(x + i)));
  if (i < n)
    detail::vector_tail<B>(x + i, n - i, [&](float* buf, std::size_t m) {
      std::copy_n(x + i, m, buf);
      B::store(buf, detail::gelu_tanh<B>(B::load(buf)));
    });
}

// y = gelu(gate) ⊙ up; y may alias gate or up.
template <simd::VectorBackend B>
void gated_gelu(const float* gate, const float* up, std::size_t n, float* y) {
  constexpr std::size_t L = B::lanes;
  std::size_t i = 0;
  for (; i + L <= n; i += L) B::store(y + i, B::mul(detail::gelu_tanh<B>(B::load(gate + i)), B::load(up + i)));
  if (i < n)
    detail::vector_tail<B>(y + i, n - i, [&](float* buf, std::size_t m) {
      alignas(64) float u[L] = {};
      std::copy_n(gate + i, m, buf);
      std::copy_n(up + i, m, u);
      B::store(buf, B::mul(detail::gelu_tanh<B>(B::load(buf)), B::load(u)));
    });
}

// x = cap · tanh(x / cap); cap = 0 means no cap.
template <simd::VectorBackend B>
void soft_cap(float* x, std::size_t n, float cap) {
  if (cap <= 0.0f) return;
  constexpr std::size_t L = B::lanes;
  const auto c = B::set(cap);
  const auto inv_c = B::set(1.0f / cap);
  std::size_t i = 0;
  for (; i + L <= n; i += L) B::store(x + i, B::mul(c, B::tanh(B::mul(B::load(x + i), inv_c))));
  if (i < n)
    detail::vector_tail<B>(x + i, n - i, [&](float* buf, std::size_t m) {
      std::copy_n(x + i, m, buf);
      B::store(buf, B::mul(c, B::tanh(B::mul(B::load(buf), inv_c))));
    });
}

}  // namespace griffin::kernels

namespace griffin::kernels {

// x += y
template <simd::VectorBackend B>
void add_in_place(float* x, const float* y, std::size_t n) {
  constexpr std::size_t L = B::lanes;
  std::size_t i = 0;
  for (; i + L <= n; i += L) B::store(x + i, B::add(B::load(x + i), B::load(y + i)));
  for (; i < n; ++i) x[i] += y[i];
}

// x ⊙= y
template <simd::VectorBackend B>
void multiply_in_place(float* x, const float* y, std::size_t n) {
  constexpr std::size_t L = B::lanes;
  std::size_t i = 0;
  for (; i + L <= n; i += L) B::store(x + i, B::mul(B::load(x + i), B::load(y + i)));
  for (; i < n; ++i) x[i] *= y[i];
}

}  // namespace griffin::kernels
