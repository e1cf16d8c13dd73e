// Linear layers y = x · Wᵀ + b with W stored [out, in] (nn.Linear's layout), for f32, bf16 and int8
// weights: a few tokens (decode) go through gemv, which streams W once; more (prefill) through the
// packed, cache-blocked gemm. Both take an output range so callers can split outputs across threads.
#pragma once

#include <cstddef>

#include "griffin/dtype.hpp"
#include "griffin/kernels/activation_layout.hpp"
#include "griffin/kernels/gemm.hpp"
#include "griffin/kernels/gemv.hpp"
#include "griffin/kernels/matrix_view.hpp"
#include "griffin/simd/backend.hpp"

namespace griffin::kernels {

namespace reference {
template <class View>
void linear(const float* x, std::size_t tokens, View w, const float* bias, float* y) {
  gemv(x, tokens, w, bias, y);
}
}  // namespace reference

// From this many tokens on, packing W pays for itself (gemm); below it gemv reads W straight.
inline constexpr std::size_t gemm_min_tokens = 8;

// y[t, n] = Σ_k x[t, k] · w[n, k] + bias[n] for outputs n in [n_begin, n_end). x is [tokens, w.cols],
// y is [tokens, w.rows]; bias may be null.
template <simd::VectorBackend B, class View>
void linear(const float* x, std::size_t tokens, View w, const float* bias, float* y, std::size_t n_begin,
            std::size_t n_end) {
  if (tokens >= gemm_min_tokens)
    gemm<B>(x, tokens, w, bias, y, n_begin, n_end);
  else
    gemv<B>(x, tokens, w, bias, y, n_begin, n_end);
}

// The same with x and y in the given layouts (the recurrent block keeps its branches head-major). gemv
// reads and writes row-major rows only, so other layouts take gemm whatever the token count.
template <simd::VectorBackend B, class View>
void linear(const float* x, ActivationLayout x_layout, std::size_t tokens, View w, const float* bias, float* y,
            ActivationLayout y_layout, std::size_t n_begin, std::size_t n_end) {
  if (x_layout == ActivationLayout::row_major(w.cols) && y_layout == ActivationLayout::row_major(w.rows))
    linear<B>(x, tokens, w, bias, y, n_begin, n_end);
  else
    gemm_in_layouts<B>(x, x_layout, tokens, w, bias, y, y_layout, n_begin, n_end, false);
}

template <simd::VectorBackend B, class View>
void linear(const float* x, std::size_t tokens, View w, const float* bias, float* y) {
  linear<B>(x, tokens, w, bias, y, 0, w.rows);
}

// How outputs should be split between threads: whole gemm panels, so no panel is padded twice.
template <simd::VectorBackend B>
constexpr std::size_t linear_output_grain(std::size_t tokens) {
  return tokens >= gemm_min_tokens ? GemmBlocking<B>::nr : 8;
}

}  // namespace griffin::kernels
