// Linear layers y = x · Wᵀ + b with W in panels (kernels/matrix_view.hpp), for f32, bf16 and int8 weights:
// a few tokens (decode) go through gemv, which streams W once; more (prefill) through the packed,
// cache-blocked gemm. Both compute every output as the same chain, so which one runs never changes a bit.
// Both take an output range so callers can split outputs across threads.
#pragma once

#include <cstddef>

#include "griffin/extent.hpp"
#include "griffin/kernels/activation_layout.hpp"
#include "griffin/kernels/gemm.hpp"
#include "griffin/kernels/gemv.hpp"
#include "griffin/kernels/matrix_view.hpp"
#include "griffin/simd/backend.hpp"

namespace griffin::kernels {

// From this many tokens on, packing W pays for itself (gemm); below it gemv reads W straight.
inline constexpr std::size_t gemm_min_tokens = 8;

// y[t, n] = Σ_k x[t, k] · w[n, k] + bias[n] for outputs n in [n_begin, n_end), x and y in the given layouts
// (the recurrent block keeps its branches head-major). gemv reads and writes rows, so other layouts take
// gemm whatever the token count. n_begin is a multiple of linear_output_grain; bias may be null.
template <simd::VectorBackend B, class W, std::size_t R, std::size_t C>
void linear(const float* x, ActivationLayout x_layout, std::size_t tokens, PanelMatrix<W, R, C> w, const float* bias,
            float* y, ActivationLayout y_layout, std::size_t n_begin, std::size_t n_end) {
  if (tokens < gemm_min_tokens && x_layout.is_row_major() && y_layout.is_row_major())
    gemv<B>(x, x_layout.ld, tokens, w, bias, y, y_layout.ld, n_begin, n_end);
  else  // the gemm is compiled once per weight type, whatever sizes a block knows
    gemm_in_layouts<B>(x, x_layout, tokens, w.template with_extents<dynamic, dynamic>(), bias, y, y_layout, n_begin,
                       n_end, false);
}

// Row-major x [tokens, w.cols] and y [tokens, w.rows].
template <simd::VectorBackend B, class W, std::size_t R, std::size_t C>
void linear(const float* x, std::size_t tokens, PanelMatrix<W, R, C> w, const float* bias, float* y,
            std::size_t n_begin, std::size_t n_end) {
  linear<B>(x, ActivationLayout::row_major(w.cols), tokens, w, bias, y, ActivationLayout::row_major(w.rows), n_begin,
            n_end);
}

template <simd::VectorBackend B, class W, std::size_t R, std::size_t C>
void linear(const float* x, std::size_t tokens, PanelMatrix<W, R, C> w, const float* bias, float* y) {
  linear<B>(x, tokens, w, bias, y, 0, w.rows);
}

// How outputs are split between threads: whole gemm panels (which are whole weight panels or parts of one),
// or for gemv whole weight panels, so no panel is padded twice. Either kernel takes a range starting at any
// multiple of min(nr, panel_width), so a head-major linear of a few rows (gemm) may be split like a gemv.
template <simd::VectorBackend B>
constexpr std::size_t linear_output_grain(std::size_t tokens) {
  constexpr std::size_t nr = GemmBlocking<B>::nr;
  return tokens >= gemm_min_tokens ? nr : panel_width;
}

}  // namespace griffin::kernels
