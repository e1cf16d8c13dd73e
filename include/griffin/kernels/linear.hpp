// Linear layers y = x · Wᵀ + b with W stored [out, in] (nn.Linear's layout), for f32 and bf16 weights.
// Both x rows and W rows are contiguous along `in`, so each output is a dot product; a register tile of
// several tokens × several outputs reuses every loaded vector several times (prefill), and one token ×
// several outputs streams the weights once (decode).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "griffin/dtype.hpp"
#include "griffin/simd/backend.hpp"

namespace griffin {

// A read-only [rows, cols] row-major matrix of f32 or bf16 weights.
template <class W>
struct MatrixView {
  static_assert(std::is_same_v<W, float> || std::is_same_v<W, bf16>, "weights are f32 or bf16");
  const W* data = nullptr;
  std::size_t rows = 0;
  std::size_t cols = 0;
  const W* row(std::size_t r) const { return data + r * cols; }
};

// A read-only [rows, cols] matrix of int8 weights with one f32 scale per row: w[r, c] = scales[r] · data[r, c]
// (symmetric per-output-channel quantisation, see kernels::quantize_int8_row).
struct Int8MatrixView {
  const std::int8_t* data = nullptr;
  const float* scales = nullptr;
  std::size_t rows = 0;
  std::size_t cols = 0;
  const std::int8_t* row(std::size_t r) const { return data + r * cols; }
};

namespace kernels {

// Symmetric quantisation of one row: scale = max|w| / 127, q = round(w / scale). Returns the scale (0 for
// an all-zero row, whose q are then all 0). The largest error per weight is scale / 2.
inline float quantize_int8_row(const float* w, std::size_t n, std::int8_t* q) {
  float max_abs = 0.0f;
  for (std::size_t i = 0; i < n; ++i) max_abs = std::max(max_abs, std::abs(w[i]));
  const float scale = max_abs / 127.0f;
  const float inv = scale > 0.0f ? 1.0f / scale : 0.0f;
  for (std::size_t i = 0; i < n; ++i)
    q[i] = static_cast<std::int8_t>(std::clamp(std::nearbyint(w[i] * inv), -127.0f, 127.0f));
  return scale;
}

inline float weight_to_f32(float w) { return w; }
inline float weight_to_f32(bf16 w) { return bf16_to_f32(w); }

namespace reference {
template <class W>
void linear(const float* x, std::size_t tokens, MatrixView<W> w, const float* bias, float* y) {
  for (std::size_t t = 0; t < tokens; ++t)
    for (std::size_t n = 0; n < w.rows; ++n) {
      double acc = bias ? bias[n] : 0.0;
      for (std::size_t k = 0; k < w.cols; ++k) acc += double(x[t * w.cols + k]) * weight_to_f32(w.row(n)[k]);
      y[t * w.rows + n] = float(acc);
    }
}
}  // namespace reference

namespace detail {
template <simd::VectorBackend B>
typename B::vec load_weights(const float* p) {
  return B::load(p);
}
template <simd::VectorBackend B>
typename B::vec load_weights(const bf16* p) {
  return B::load_bf16(p);
}

// A TM × TN tile of outputs: rows x[0..TM) of x, outputs n0..n0+TN of w.
template <simd::VectorBackend B, std::size_t TM, std::size_t TN, class W>
inline void linear_tile(const float* x, std::size_t ldx, MatrixView<W> w, std::size_t n0, const float* bias,
                        float* y, std::size_t ldy) {
  constexpr std::size_t L = B::lanes;
  const std::size_t K = w.cols;
  typename B::vec acc[TM][TN];
  for (std::size_t i = 0; i < TM; ++i)
    for (std::size_t j = 0; j < TN; ++j) acc[i][j] = B::zero();
  std::size_t k = 0;
  for (; k + L <= K; k += L) {
    typename B::vec xv[TM];
    for (std::size_t i = 0; i < TM; ++i) xv[i] = B::load(x + i * ldx + k);
    for (std::size_t j = 0; j < TN; ++j) {
      auto wv = load_weights<B>(w.row(n0 + j) + k);
      for (std::size_t i = 0; i < TM; ++i) acc[i][j] = B::fma(xv[i], wv, acc[i][j]);
    }
  }
  for (std::size_t i = 0; i < TM; ++i)
    for (std::size_t j = 0; j < TN; ++j) {
      float sum = B::reduce_add(acc[i][j]);
      for (std::size_t kk = k; kk < K; ++kk) sum += x[i * ldx + kk] * weight_to_f32(w.row(n0 + j)[kk]);
      y[i * ldy + n0 + j] = sum + (bias ? bias[n0 + j] : 0.0f);
    }
}

template <simd::VectorBackend B, std::size_t TM, class W>
inline void linear_row_block(const float* x, MatrixView<W> w, const float* bias, float* y, std::size_t n_begin,
                             std::size_t n_end) {
  constexpr std::size_t TN = TM == 1 ? 4 : 4;
  std::size_t n = n_begin;
  for (; n + TN <= n_end; n += TN) linear_tile<B, TM, TN>(x, w.cols, w, n, bias, y, w.rows);
  for (; n < n_end; ++n) linear_tile<B, TM, 1>(x, w.cols, w, n, bias, y, w.rows);
}
}  // namespace detail

// y[t, n] = Σ_k x[t, k] · w[n, k] + bias[n] for outputs n in [n_begin, n_end) (so callers can split the
// outputs across threads). x is [tokens, w.cols], y is [tokens, w.rows]; bias may be null.
template <simd::VectorBackend B, class W>
void linear(const float* x, std::size_t tokens, MatrixView<W> w, const float* bias, float* y, std::size_t n_begin,
            std::size_t n_end) {
  constexpr std::size_t TM = 3;
  std::size_t t = 0;
  for (; t + TM <= tokens; t += TM)
    detail::linear_row_block<B, TM>(x + t * w.cols, w, bias, y + t * w.rows, n_begin, n_end);
  for (; t < tokens; ++t) detail::linear_row_block<B, 1>(x + t * w.cols, w, bias, y + t * w.rows, n_begin, n_end);
}

template <simd::VectorBackend B, class W>
void linear(const float* x, std::size_t tokens, MatrixView<W> w, const float* bias, float* y) {
  linear<B>(x, tokens, w, bias, y, 0, w.rows);
}

}  // namespace kernels
}  // namespace griffin
