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

// TM tokens × TN outputs n0 … n0+TN-1. With fetch_next_tile, the same columns of rows n0+TN … n0+2·TN-1
// are prefetched (outer-cache hint) as this tile streams its own: a tile reads TN rows side by side, each a
// short stream (5 KiB of bf16 at K = 2560), and the hardware prefetchers, which follow a few streams and
// ramp up on each, left every new tile starting cold. One tile ahead (40 KiB of bf16 for one token) covers
// the latency and fits L2; two or three tiles ahead, or 4 or 16 rows per tile, measured the same. From main
// memory it took one thread's bf16 GEMV from 18 to 25-30 GB/s, about the read loop's rate, and two
// threads' from 31 to 35-37 (f32: 22 to 25-28 and 35 to 37-39; docs/performance.md). With the all-levels
// hint, or a fixed distance ahead along each row, it was no faster than without a prefetch.
template <simd::VectorBackend B, std::size_t TM, std::size_t TN, class View>
inline void gemv_tile(const float* x, View w, std::size_t n0, const float* bias, float* y, bool fetch_next_tile) {
  constexpr std::size_t L = B::lanes;
  const std::size_t K = w.cols, N = w.rows;
  constexpr std::size_t weights_per_line = 64 / sizeof(*w.row(0));
  typename B::vec acc[TM][TN];
  for (std::size_t i = 0; i < TM; ++i)
    for (std::size_t j = 0; j < TN; ++j) acc[i][j] = B::zero();
  std::size_t k = 0;
  for (; k + L <= K; k += L) {
    if (fetch_next_tile && k % weights_per_line < L)  // once per cache line of each row, whatever the lanes
      for (std::size_t j = 0; j < TN; ++j) simd::prefetch_to_outer_cache(w.row(n0 + TN + j) + k);
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

// The vector registers a tile may fill: 32 with 64-byte vectors (AVX-512's zmm0-31), else 16 (AVX2, SSE;
// NEON's 32 are left unused).
template <simd::VectorBackend B>
inline constexpr std::size_t vector_registers = B::lanes * sizeof(float) >= 64 ? 32 : 16;

// Outputs per pass for TM tokens: TM·TN accumulators, TM token vectors and a weight vector within the
// registers. On AVX-512, four outputs instead of two per pass of four tokens halve the token vectors
// reloaded per weight: 6.6 → 4.2 ms for one thread's f32 T:4 GEMV and 5.1 → 4.3 ms for bf16
// (griffin_bench_kernels gemv_decode_*/T:4).
template <simd::VectorBackend B, std::size_t TM>
inline constexpr std::size_t gemv_outputs_per_pass =
    vector_registers<B> >= 32 ? (TM <= 2 ? 8 : 4) : (TM == 1 ? 8 : TM == 2 ? 4 : 2);

template <simd::VectorBackend B, std::size_t TM, class View>
inline void gemv_rows(const float* x, View w, const float* bias, float* y, std::size_t n_begin, std::size_t n_end) {
  constexpr std::size_t TN = gemv_outputs_per_pass<B, TM>;
  std::size_t n = n_begin;
  for (; n + TN <= n_end; n += TN) gemv_tile<B, TM, TN>(x, w, n, bias, y, n + 2 * TN <= n_end);
  for (; n < n_end; ++n) gemv_tile<B, TM, 1>(x, w, n, bias, y, false);
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
