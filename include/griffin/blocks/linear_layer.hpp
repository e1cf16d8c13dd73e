// A linear layer as the blocks use it: the linear kernel with its outputs split across the pool's threads.
#pragma once

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

}  // namespace griffin::blocks
