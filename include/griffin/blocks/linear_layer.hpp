// A linear layer as the blocks use it: the linear kernel with its outputs split across the pool's threads.
// Rows and Cols are the extents the block knows (compile-time ones select the GEMV's tiling).
#pragma once

#include <algorithm>
#include <cstddef>
#include <optional>

#include "griffin/extent.hpp"
#include "griffin/kernels/linear.hpp"
#include "griffin/matrix.hpp"
#include "griffin/simd/backend.hpp"
#include "griffin/threads.hpp"

namespace griffin::blocks {

// The matrix's size as a block knows it: w's [rows, cols] with the block's extents.
template <std::size_t R = dynamic, std::size_t C = dynamic>
struct LinearShape {
  Size<R> rows{};
  Size<C> cols{};
};
// A small matrix (both sizes compile-time constants) reaches the GEMV with its shape; any other at run time, so
// a large preset instantiates the same GEMVs as a model read from config.json.
template <std::size_t R, std::size_t C>
constexpr auto linear_shape(Size<R>, Size<C>) {
  if constexpr (R != dynamic && C != dynamic) return LinearShape<R, C>{};
  else return LinearShape<>{};
}

// y = x · Wᵀ + b for `rows` rows of x; bias may be null. Outputs are split between threads in whole panels
// and, for a small matrix, not at all (ThreadPool::grain_for). x and y may be laid out other than row-major
// (kernels/activation_layout.hpp).
template <simd::VectorBackend Backend, std::size_t R = dynamic, std::size_t C = dynamic>
void parallel_linear(ThreadPool& pool, const float* x, std::size_t rows, const Matrix& w, const float* bias, float* y,
                     std::optional<kernels::ActivationLayout> x_layout = std::nullopt,
                     std::optional<kernels::ActivationLayout> y_layout = std::nullopt, LinearShape<R, C> = {}) {
  w.visit<R, C>([&](auto view) {
    const auto in = x_layout.value_or(kernels::ActivationLayout::row_major(view.cols));
    const auto out = y_layout.value_or(kernels::ActivationLayout::row_major(view.rows));
    const std::size_t grain = pool.grain_for(view.rows, rows * view.cols, kernels::linear_output_grain<Backend>(rows));
    pool.parallel_for(view.rows, grain, [&](std::size_t begin, std::size_t end) {
      kernels::linear<Backend>(x, in, rows, view, bias, y, out, begin, end);
    });
  });
}

// Two linears of the same input (the MLP's gate and up, the recurrent block's two branches) as one job: the
// threads split the concatenated outputs, which saves a fork-join and balances the pair. Both outputs are
// row-major, or both in `out_layout`; the two matrices have the same shape.
template <simd::VectorBackend Backend, std::size_t R = dynamic, std::size_t C = dynamic>
void parallel_linear_pair(ThreadPool& pool, const float* x, std::size_t rows, const Matrix& w1, const float* bias1,
                          float* y1, const Matrix& w2, const float* bias2, float* y2,
                          std::optional<kernels::ActivationLayout> out_layout = std::nullopt, LinearShape<R, C> = {}) {
  using kernels::ActivationLayout;
  const std::size_t n1 = w1.rows(), n2 = w2.rows();
  const auto in = ActivationLayout::row_major(w1.cols());
  const auto out1 = out_layout.value_or(ActivationLayout::row_major(n1)),
             out2 = out_layout.value_or(ActivationLayout::row_major(n2));
  const std::size_t grain = pool.grain_for(n1 + n2, rows * w1.cols(), kernels::linear_output_grain<Backend>(rows));
  // The second matrix's outputs start at a whole grain of the concatenation (right after the first when one
  // part takes both).
  const std::size_t second = grain >= n1 + n2 ? n1 : (n1 + grain - 1) / grain * grain;
  pool.parallel_for(second + n2, grain, [&](std::size_t begin, std::size_t end) {
    if (begin < n1)
      w1.visit<R, C>([&](auto view) { kernels::linear<Backend>(x, in, rows, view, bias1, y1, out1, begin, std::min(end, n1)); });
    if (end > second)
      w2.visit<R, C>([&](auto view) {
        kernels::linear<Backend>(x, in, rows, view, bias2, y2, out2, std::max(begin, second) - second, end - second);
      });
  });
}

}  // namespace griffin::blocks
