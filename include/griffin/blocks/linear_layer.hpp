// A linear layer as the blocks use it: the linear kernel with its outputs split across the pool's threads.
#pragma once

#include <algorithm>
#include <cstddef>
#include <optional>

#include "griffin/kernels/linear.hpp"
#include "griffin/simd/backend.hpp"
#include "griffin/threads.hpp"
#include "griffin/weights.hpp"

namespace griffin::blocks {

// y = x · Wᵀ + b for `rows` rows of x; bias may be null. Outputs are split between threads in whole gemm
// panels and, for a small matrix, not at all (ThreadPool::grain_for). x may be laid out other than row-major
// (kernels/activation_layout.hpp); y is row-major.
template <simd::VectorBackend Backend>
void parallel_linear(ThreadPool& pool, const float* x, std::size_t rows, const Matrix& w, const float* bias, float* y,
                     std::optional<kernels::ActivationLayout> x_layout = std::nullopt) {
  w.visit([&](auto view) {
    const auto in = x_layout.value_or(kernels::ActivationLayout::row_major(view.cols));
    const std::size_t grain = ThreadPool::grain_for(rows * view.cols, kernels::linear_output_grain<Backend>(rows));
    pool.parallel_for(view.rows, grain, [&](std::size_t begin, std::size_t end) {
      kernels::linear<Backend>(x, in, rows, view, bias, y, kernels::ActivationLayout::row_major(view.rows), begin, end);
    });
  });
}

// Two linears of the same input (the MLP's gate and up, the recurrent block's two branches) as one job:
// the threads split the concatenated outputs, which saves a fork-join and balances the pair. Both outputs
// are row-major, or both in `out_layout`.
template <simd::VectorBackend Backend>
void parallel_linear_pair(ThreadPool& pool, const float* x, std::size_t rows, const Matrix& w1, const float* bias1,
                          float* y1, const Matrix& w2, const float* bias2, float* y2,
                          std::optional<kernels::ActivationLayout> out_layout = std::nullopt) {
  const std::size_t n1 = w1.rows(), n2 = w2.rows();
  using kernels::ActivationLayout;
  const auto in = ActivationLayout::row_major(w1.cols());
  const auto out1 = out_layout.value_or(ActivationLayout::row_major(n1)),
             out2 = out_layout.value_or(ActivationLayout::row_major(n2));
  const std::size_t grain = ThreadPool::grain_for(rows * w1.cols(), kernels::linear_output_grain<Backend>(rows));
  pool.parallel_for(n1 + n2, grain, [&](std::size_t begin, std::size_t end) {
    if (begin < n1)
      w1.visit([&](auto view) { kernels::linear<Backend>(x, in, rows, view, bias1, y1, out1, begin, std::min(end, n1)); });
    if (end > n1)
      w2.visit([&](auto view) {
        kernels::linear<Backend>(x, in, rows, view, bias2, y2, out2, std::max(begin, n1) - n1, end - n1);
      });
  });
}

}  // namespace griffin::blocks
