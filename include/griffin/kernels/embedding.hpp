// Token embedding: a row of the [V, D] table, times sqrt(D) rounded to bfloat16 when embeddings are scaled
// (spec "Model", step 1: sqrt(2560) = 50.596… is applied as 50.5). The table is the logits matrix too, kept
// in panels (kernels/matrix_view.hpp), so a row is read sixteen elements apart: D reads per token, nothing
// beside the matmuls.
#pragma once

#include <cmath>
#include <cstddef>

#include "griffin/dtype.hpp"
#include "griffin/kernels/matrix_view.hpp"

namespace griffin::kernels {

inline float embedding_scale(std::size_t width, bool scale_by_sqrt_dim) {
  return scale_by_sqrt_dim ? round_to_bf16(std::sqrt(float(width))) : 1.0f;
}

// y = table[token] · scale (for int8 the stored integers times scale · the row's scale). The caller has checked
// 0 <= token < table.rows. Every backend computes the same products, so the row is written one lane at a time.
template <class W, std::size_t R, std::size_t C>
void embed(PanelMatrix<W, R, C> table, int token, float scale, float* y) {
  const std::size_t r = std::size_t(token);
  if constexpr (PanelMatrix<W, R, C>::scaled) scale *= table.scales[r];
  const W* row = table.panel(r / panel_width) + r % panel_width;
  const std::size_t cols = table.cols;
  for (std::size_t c = 0; c < cols; ++c) y[c] = weight_to_f32(row[c * panel_width]) * scale;
}

}  // namespace griffin::kernels
