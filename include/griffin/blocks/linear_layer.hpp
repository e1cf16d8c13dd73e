// A linear layer as the blocks use it: the linear kernel with its outputs split across the pool's threads.
#pragma once

#include <algorithm>
#include <cstddef>

#include "griffin/kernels/linear.hpp"
#include "griffin/simd/backend.hpp"
#include "griffin/threads.hpp"
#include "griffin/weights.hpp"

namespace griffin::blocks {

// y = x · Wᵀ + b for `rows` rows of x; bias may be null.
template <simd::VectorBackend Backend>
void parallel_linear(ThreadPool& pool, const float* x, std::size_t rows, const Matrix& w, const float* bias, float* y) {
  w.visit([&](auto view) {
    pool.parallel_for(view.rows, kernels::linear_output_grain<Backend>(rows), [&](std::size_t begin, std::size_t end) {
      kernels::linear<Backend>(x, rows, view, bias, y, begin, end);
    });
  });
}

// Two linears of the same input (the MLP's gate and up, the recurrent block's two branches) as one job:
// the threads split the concatenated outputs, which saves a fork-join and balances the pair.
template <simd::VectorBackend Backend>
void parallel_linear_pair(ThreadPool& pool, const float* x, std::size_t rows, const Matrix& w1, const float* bias1,
                          float* y1, const Matrix& w2, const float* bias2, float* y2) {
  const std::size_t n1 = w1.rows(), n2 = w2.rows();
  pool.parallel_for(n1 + n2, kernels::linear_output_grain<Backend>(rows), [&](std::size_t begin, std::size_t end) {
    if (begin < n1)
      w1.visit([&](auto view) { kernels::linear<Backend>(x, rows, view, bias1, y1, begin, std::min(end, n1)); });
    if (end > n1)
      w2.visit([&](auto view) {
        kernels::linear<Backend>(x, rows, view, bias2, y2, std::max(begin, n1) - n1, end - n1);
      });
  });
}

}  // namespace griffin::blocks
