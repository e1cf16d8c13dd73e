// Read-only views of the large weight matrices as the matmul kernels take them: f32 or bf16 rows
// (MatrixView<W>), or int8 rows with one scale per row (Int8MatrixView), all [rows, cols] row-major with
// W stored [out, in] as nn.Linear keeps it. Plus the quantisation that makes the int8 ones.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "griffin/dtype.hpp"
#include "griffin/simd/backend.hpp"

namespace griffin {

// A read-only [rows, cols] row-major matrix of f32 or bf16 weights.
template <class W>
struct MatrixView {
  static_assert(std::is_same_v<W, float> || std::is_same_v<W, bf16>, "weights are f32 or bf16");
  const W* data = nullptr;
  std::size_t rows = 0;
  std::size_t cols = 0;
  const W* row(std::size_t r) const { return data + r * cols; }
};

// A read-only [rows, cols] matrix of int8 weights with one f32 scale per row: w[r, c] = scales[r] · data[r, c]
// (symmetric per-output-channel quantisation, see kernels::quantize_int8_row).
struct Int8MatrixView {
  const std::int8_t* data = nullptr;
  const float* scales = nullptr;
  std::size_t rows = 0;
  std::size_t cols = 0;
  const std::int8_t* row(std::size_t r) const { return data + r * cols; }
};

// A read-only [rows, cols] f32 matrix stored transposed: element (r, c) is data[c · ld + r]. The matmul
// kernels take it where weights are kept [in, out] (the RG-LRU gate blocks) or where the right operand
// is naturally [K, N] (the values in attention's P · V).
struct TransposedMatrixView {
  const float* data = nullptr;
  std::size_t rows = 0;
  std::size_t cols = 0;
  std::size_t ld = 0;  // distance between consecutive c, ≥ rows
  float at(std::size_t r, std::size_t c) const { return data[c * ld + r]; }
};

namespace kernels {

// Symmetric quantisation of one row: scale = max|w| / 127, q = round(w / scale). Returns the scale (0 for
// an all-zero row, whose q are then all 0). The largest error per weight is scale / 2.
inline float quantize_int8_row(const float* w, std::size_t n, std::int8_t* q) {
  float max_abs = 0.0f;
  for (std::size_t i = 0; i < n; ++i) max_abs = std::max(max_abs, std::abs(w[i]));
  const float scale = max_abs / 127.0f;
  const float inv = scale > 0.0f ? 1.0f / scale : 0.0f;
  for (std::size_t i = 0; i < n; ++i)
    q[i] = static_cast<std::int8_t>(std::clamp(std::nearbyint(w[i] * inv), -127.0f, 127.0f));
  return scale;
}

// A stored weight as f32, before any int8 row scale.
inline float weight_to_f32(float w) { return w; }
inline float weight_to_f32(bf16 w) { return bf16_to_f32(w); }
inline float weight_to_f32(std::int8_t w) { return static_cast<float>(w); }

// The scale every product with row r is multiplied by: 1 except for int8.
template <class W>
constexpr float row_scale(MatrixView<W>, std::size_t) {
  return 1.0f;
}
inline float row_scale(Int8MatrixView w, std::size_t r) { return w.scales[r]; }
inline float row_scale(TransposedMatrixView, std::size_t) { return 1.0f; }

namespace detail {
// `lanes` stored weights widened to f32 (int8 still unscaled).
template <simd::VectorBackend B>
typename B::vec load_weights(const float* p) {
  return B::load(p);
}
template <simd::VectorBackend B>
typename B::vec load_weights(const bf16* p) {
  return B::load_bf16(p);
}
template <simd::VectorBackend B>
typename B::vec load_weights(const std::int8_t* p) {
  return B::load_i8(p);
}
}  // namespace detail

}  // namespace kernels
}  // namespace griffin
