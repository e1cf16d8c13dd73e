// The decode matmul: y[t, n] = Σ_k x[t, k] · w[n, k] + b[n] for a handful of tokens (one per sequence of a
// decode batch) over a weight matrix in panels (kernels/matrix_view.hpp). Decode streams W once, so the
// kernel reads each weight exactly once: for every input k it loads the next run of sixteen outputs'
// weights from several panels side by side and applies each to all the tokens, broadcasting x[t, k]. An
// output's sum is one chain over k, as in gemm, so gemv and gemm give the same bits and no lane is ever
// reduced. int8 sums the stored integers and scales once: y = fma(acc, scale, bias).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <utility>

#include "griffin/extent.hpp"
#include "griffin/kernels/matrix_view.hpp"
#include "griffin/simd/backend.hpp"

namespace griffin::kernels {

namespace detail {

// The vector registers a pass may fill: 32 with 64-byte vectors (AVX-512's zmm0-31), else 16 (AVX2, SSE;
// NEON's 32 are left unused).
template <simd::VectorBackend B>
inline constexpr std::size_t vector_registers = B::lanes * sizeof(float) >= 64 ? 32 : 16;

template <simd::VectorBackend B>
inline constexpr std::size_t vectors_per_panel = panel_width / B::lanes;

// Panels per pass for TM tokens: TM·P·V accumulators beside TM broadcasts and a few weight vectors in
// flight, and no more than 12 panels (streams) at once.
template <simd::VectorBackend B, std::size_t TM>
inline constexpr std::size_t gemv_max_panels =
    std::clamp<std::size_t>((vector_registers<B> - TM - 3) / (TM * vectors_per_panel<B>), 1, 12);

// Tokens [0, TM) × panels [p0, p0 + P): outputs p0·16 … (p0 + P)·16 - 1, the last ones past n_end (rows
// of the final panel that the matrix does not have) computed and dropped.
template <simd::VectorBackend B, std::size_t TM, std::size_t P, class W, std::size_t R, std::size_t C>
inline void gemv_pass(const float* x, std::size_t ldx, PanelMatrix<W, R, C> w, std::size_t p0, const float* bias,
                      float* y, std::size_t ldy, std::size_t n_end) {
  constexpr std::size_t L = B::lanes, V = vectors_per_panel<B>;
  constexpr bool scaled = PanelMatrix<W, R, C>::scaled;
  const std::size_t K = w.cols, n0 = p0 * panel_width, valid = std::min(P * panel_width, n_end - n0);
  const bool whole = valid == P * panel_width;
  alignas(64) float tail_bias[P * panel_width];
  if (bias && !whole) {  // the bias has only `rows` entries: pad the final panel's with zeros
    std::fill(tail_bias, tail_bias + P * panel_width, 0.0f);
    std::copy_n(bias + n0, valid, tail_bias);
  }
  const float* b = !bias ? nullptr : whole ? bias + n0 : tail_bias;
  // The accumulators are written out as folds over constant indices, which keeps them in registers: over a
  // loop-indexed vector array GCC 12 keeps the array in memory and stores every accumulator on every k.
  typename B::vec acc[TM * P * V];
  const auto each = [&]<std::size_t... I>(std::index_sequence<I...>, auto&& f) { (f(std::integral_constant<std::size_t, I>{}), ...); };
  constexpr auto panels_vectors = std::make_index_sequence<P * V>{};
  constexpr auto tokens = std::make_index_sequence<TM>{};
  each(panels_vectors, [&](auto pv) {
    const auto start = scaled || !b ? B::zero() : B::load(b + pv * L);
    each(tokens, [&](auto t) { acc[t * P * V + pv] = start; });
  });
  const W* panel = w.panel(p0);
  const std::size_t panel_stride = K * panel_width;
  for (std::size_t k = 0; k < K; ++k) {
    typename B::vec xb[TM];
    each(tokens, [&](auto t) { xb[t] = B::set(x[t * ldx + k]); });
    each(panels_vectors, [&](auto pv) {
      constexpr std::size_t p = decltype(pv)::value / V, v = decltype(pv)::value % V;
      const auto wv = load_weights<B>(panel + p * panel_stride + k * panel_width + v * L);
      each(tokens, [&](auto t) { acc[t * P * V + pv] = B::fma(xb[t], wv, acc[t * P * V + pv]); });
    });
  }
  alignas(64) float out[P * panel_width] = {};  // zeroed: GCC 12 cannot see that only written lanes are copied
  for (std::size_t t = 0; t < TM; ++t) {
    float* yt = y + t * ldy + n0;
    float* dst = whole ? yt : out;
    for (std::size_t p = 0; p < P; ++p)
      for (std::size_t v = 0; v < V; ++v) {
        auto r = acc[(t * P + p) * V + v];  // pv = p · V + v, as above
        if constexpr (scaled) {
          const std::size_t at = n0 + p * panel_width + v * L;
          r = B::fma(r, B::load(w.scales + at), b ? B::load(b + p * panel_width + v * L) : B::zero());
        }
        B::store(dst + p * panel_width + v * L, r);
      }
    if (!whole) std::copy_n(out, valid, yt);
  }
}

// Panels [p_begin, p_end) in passes of P, then of P / 3 (when P is 8 or more), then one at a time: three
// widths, so each weight type and token count compiles three passes. With a compile-time row count the
// caller passes a P that divides it, so a static matrix runs one kind of pass throughout.
template <simd::VectorBackend B, std::size_t TM, std::size_t P, class W, std::size_t R, std::size_t C>
inline void gemv_panels(const float* x, std::size_t ldx, PanelMatrix<W, R, C> w, std::size_t p_begin,
                        std::size_t p_end, std::size_t n_end, const float* bias, float* y, std::size_t ldy) {
  std::size_t p = p_begin;
  for (; p + P <= p_end; p += P) gemv_pass<B, TM, P>(x, ldx, w, p, bias, y, ldy, n_end);
  if constexpr (P > 1) gemv_panels<B, TM, P >= 8 ? P / 3 : 1>(x, ldx, w, p, p_end, n_end, bias, y, ldy);
}

// The pass width for TM tokens: the largest that fits the registers and, for a compile-time row count,
// divides its panels (so there is no remainder pass).
template <simd::VectorBackend B, std::size_t TM, std::size_t Rows>
constexpr std::size_t gemv_pass_panels() {
  constexpr std::size_t most = gemv_max_panels<B, TM>;
  if constexpr (Rows == dynamic) {
    return most;
  } else {
    for (std::size_t p = most; p > 1; --p)
      if (panel_count(Rows) % p == 0) return p;
    return 1;
  }
}

}  // namespace detail

// Outputs n in [n_begin, n_end) for all tokens; n_begin is a multiple of panel_width (callers split whole
// panels across threads). x: [tokens] rows ldx apart (≥ w.cols); y: [tokens] rows ldy apart; bias may be null.
// Tokens go four at a time, then two, then one, so W is streamed about ⌈tokens / 4⌉ times: use gemm for more
// than a few.
template <simd::VectorBackend B, class W, std::size_t R, std::size_t C>
void gemv(const float* x, std::size_t ldx, std::size_t tokens, PanelMatrix<W, R, C> w, const float* bias, float* y,
          std::size_t ldy, std::size_t n_begin, std::size_t n_end) {
  static_assert(panel_width % B::lanes == 0, "a panel is whole vectors");
  if (n_begin >= n_end) return;
  const std::size_t p_begin = n_begin / panel_width, p_end = panel_count(n_end);
  auto run = [&]<std::size_t TM>(std::size_t t) {
    constexpr std::size_t P = detail::gemv_pass_panels<B, TM, R>();
    detail::gemv_panels<B, TM, P>(x + t * ldx, ldx, w, p_begin, p_end, n_end, bias, y + t * ldy, ldy);
  };
  std::size_t t = 0;
  for (; t + 4 <= tokens; t += 4) run.template operator()<4>(t);
  // Three left are two and one: W is read once more, for one token, and a pass width fewer is compiled.
  if (tokens - t >= 2) run.template operator()<2>(t), t += 2;
  if (tokens - t == 1) run.template operator()<1>(t);
}

}  // namespace griffin::kernels
