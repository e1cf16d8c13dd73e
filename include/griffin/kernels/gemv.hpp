// The decode matmul: y[t, n] = Σ_k x[t, k] · w[n, k] + b[n] for a handful of tokens (one per sequence of
// a decode batch), with W [N, K] in f32, bf16 or int8. Decode is bound by the bandwidth of streaming W
// once, so the kernel reads each weight exactly once, straight from the row-major rows (no packing),
// several output rows at a time (several independent load streams and FMA chains), and applies every
// loaded weight vector to all the tokens at once. Each output is a dot product with `lanes` partial
// sums, reduced at the end; int8 rows are summed unscaled and multiplied by their scale once.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "griffin/kernels/matrix_view.hpp"
#include "griffin/simd/backend.hpp"

namespace griffin::kernels {

namespace reference {
// The scalar twin, in double: the value every matmul approximates.
template <class View>
void gemv(const float* x, std::size_t tokens, View w, const float* bias, float* y) {
  for (std::size_t t = 0; t < tokens; ++t)
    for (std::size_t n = 0; n < w.rows; ++n) {
      double acc = 0.0;
      for (std::size_t k = 0; k < w.cols; ++k) acc += double(x[t * w.cols + k]) * weight_to_f32(w.row(n)[k]);
      y[t * w.rows + n] = float(acc * row_scale(w, n) + (bias ? bias[n] : 0.0));
    }
}
}  // namespace reference

namespace detail {

// TM tokens × TN outputs n0 … n0+TN-1.
template <simd::VectorBackend B, std::size_t TM, std::size_t TN, class View>
inline void gemv_tile(const float* x, View w, std::size_t n0, const float* bias, float* y) {
  constexpr std::size_t L = B::lanes;
  const std::size_t K = w.cols, N = w.rows;
  typename B::vec acc[TM][TN];
  for (std::size_t i = 0; i < TM; ++i)
    for (std::size_t j = 0; j < TN; ++j) acc[i][j] = B::zero();
  std::size_t k = 0;
  for (; k + L <= K; k += L) {
    typename B::vec xv[TM];
    for (std::size_t i = 0; i < TM; ++i) xv[i] = B::load(x + i * K + k);
    for (std::size_t j = 0; j < TN; ++j) {
      const auto wv = load_weights<B>(w.row(n0 + j) + k);
      for (std::size_t i = 0; i < TM; ++i) acc[i][j] = B::fma(xv[i], wv, acc[i][j]);
    }
  }
  for (std::size_t j = 0; j < TN; ++j) {
    const std::size_t n = n0 + j;
    const auto* row = w.row(n);
    const float scale = row_scale(w, n);
    // Explicit fmas: left to itself the compiler contracts a * b + c in some inlined copies and not in
    // others, and outputs would then depend on which tile (and so which thread split) computed them.
    for (std::size_t i = 0; i < TM; ++i) {
      float sum = B::reduce_add(acc[i][j]);
      for (std::size_t kk = k; kk < K; ++kk) sum = std::fma(x[i * K + kk], weight_to_f32(row[kk]), sum);
      y[i * N + n] = std::fma(sum, scale, bias ? bias[n] : 0.0f);
    }
  }
}

// Outputs per pass for TM tokens: as many as the 16 vector registers allow beside the token vectors.
template <std::size_t TM>
inline constexpr std::size_t gemv_outputs_per_pass = TM == 1 ? 8 : TM == 2 ? 4 : 2;

template <simd::VectorBackend B, std::size_t TM, class View>
inline void gemv_rows(const float* x, View w, const float* bias, float* y, std::size_t n_begin, std::size_t n_end) {
  constexpr std::size_t TN = gemv_outputs_per_pass<TM>;
  std::size_t n = n_begin;
  for (; n + TN <= n_end; n += TN) gemv_tile<B, TM, TN>(x, w, n, bias, y);
  for (; n < n_end; ++n) gemv_tile<B, TM, 1>(x, w, n, bias, y);
}

}  // namespace detail

// Outputs n in [n_begin, n_end) for all tokens (callers split outputs across threads; each output is
// computed the same way whatever the split). x: [tokens, w.cols]; y: [tokens, w.rows]; bias may be null.
// Tokens go four at a time, so W is streamed ⌈tokens / 4⌉ times: use gemm for more than a few.
template <simd::VectorBackend B, class View>
void gemv(const float* x, std::size_t tokens, View w, const float* bias, float* y, std::size_t n_begin,
          std::size_t n_end) {
  const std::size_t K = w.cols, N = w.rows;
  std::size_t t = 0;
  for (; t + 4 <= tokens; t += 4) detail::gemv_rows<B, 4>(x + t * K, w, bias, y + t * N, n_begin, n_end);
  switch (tokens - t) {
    case 3: detail::gemv_rows<B, 3>(x + t * K, w, bias, y + t * N, n_begin, n_end); break;
    case 2: detail::gemv_rows<B, 2>(x + t * K, w, bias, y + t * N, n_begin, n_end); break;
    case 1: detail::gemv_rows<B, 1>(x + t * K, w, bias, y + t * N, n_begin, n_end); break;
    default: break;
  }
}

template <simd::VectorBackend B, class View>
void gemv(const float* x, std::size_t tokens, View w, const float* bias, float* y) {
  gemv<B>(x, tokens, w, bias, y, 0, w.rows);
}

}  // namespace griffin::kernels
