// Token embedding: a row of the [V, D] table, times sqrt(D) rounded to bfloat16 when embeddings are
// scaled (spec "Model", step 1: sqrt(2560) = 50.596… is applied as 50.5).
#pragma once

#include <cmath>
#include <cstddef>

#include "griffin/dtype.hpp"
#include "griffin/kernels/linear.hpp"
#include "griffin/simd/backend.hpp"

namespace griffin::kernels {

inline float embedding_scale(std::size_t width, bool scale_by_sqrt_dim) {
  return scale_by_sqrt_dim ? round_to_bf16(std::sqrt(float(width))) : 1.0f;
}

namespace reference {
template <class View>
void embed(View table, int token, float scale, float* y) {
  scale *= row_scale(table, std::size_t(token));
  for (std::size_t i = 0; i < table.cols; ++i) y[i] = weight_to_f32(table.row(std::size_t(token))[i]) * scale;
}
}  // namespace reference

// The caller has checked 0 <= token < table.rows. table: MatrixView<float or bf16> or Int8MatrixView.
template <simd::VectorBackend B, class View>
void embed(View table, int token, float scale, float* y) {
  constexpr std::size_t L = B::lanes;
  scale *= row_scale(table, std::size_t(token));
  const auto* row = table.row(std::size_t(token));
  const auto s = B::set(scale);
  std::size_t i = 0;
  for (; i + L <= table.cols; i += L) B::store(y + i, B::mul(detail::load_weights<B>(row + i), s));
  for (; i < table.cols; ++i) y[i] = weight_to_f32(row[i]) * scale;
}

}  // namespace griffin::kernels
