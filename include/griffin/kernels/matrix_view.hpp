// Read-only views of the matrices the matmul kernels take, and the int8 quantisation.
//
// Weights (nn.Linear's W [out, in]) are kept as panels: the rows in groups of panel_width, each group stored
// k-major, so element (r, c) is at panel(r / 16)[c · 16 + r % 16]. A matmul then reads, for each input k,
// sixteen outputs' weights as one contiguous run: the decode GEMV broadcasts x[k] against it and never
// reduces across lanes, the prefill GEMM packs it by copying, and every output of either is the same chain
// acc = fma(x[k], w[n, k], acc) over k (kernels/gemm.hpp). A checkpoint's row-major tensors are laid out
// this way once, when the model is made (griffin/matrix.hpp).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "griffin/dtype.hpp"
#include "griffin/extent.hpp"
#include "griffin/simd/backend.hpp"

namespace griffin {

// Outputs per panel: a 64-byte line of f32 weights per input, whole vectors for every backend up to 16 lanes.
inline constexpr std::size_t panel_width = 16;

constexpr std::size_t panel_count(std::size_t rows) { return (rows + panel_width - 1) / panel_width; }

// A [rows, cols] weight matrix in panels of f32, bf16 or int8 (int8: w[r, c] = scales[r] · data, one scale per
// row, padded with zeros to whole panels). Rows and Cols may be compile-time extents.
template <class W, std::size_t Rows = dynamic, std::size_t Cols = dynamic>
struct PanelMatrix {
  static_assert(std::is_same_v<W, float> || std::is_same_v<W, bf16> || std::is_same_v<W, std::int8_t>,
                "weights are f32, bf16 or int8");
  using weight_type = W;
  static constexpr bool scaled = std::is_same_v<W, std::int8_t>;
  const W* data = nullptr;
  Size<Rows> rows{};
  Size<Cols> cols{};
  const float* scales = nullptr;  // int8 only: [panels · panel_width]

  const W* panel(std::size_t p) const { return data + p * std::size_t(cols) * panel_width; }
  W at(std::size_t r, std::size_t c) const { return panel(r / panel_width)[c * panel_width + r % panel_width]; }
  std::size_t panels() const { return panel_count(rows); }

  // The same storage with other extent types (a block states the sizes it knows at compile time).
  template <std::size_t R, std::size_t C>
  PanelMatrix<W, R, C> with_extents() const {
    return {data, Size<R>(rows), Size<C>(cols), scales};
  }
};

// A read-only [rows, cols] row-major f32 matrix used where a matmul's right operand is an activation
// (attention's keys, S = Q · Kᵀ).
template <class W>
struct MatrixView {
  const W* data = nullptr;
  std::size_t rows = 0;
  std::size_t cols = 0;
  const W* row(std::size_t r) const { return data + r * cols; }
};

// A read-only [rows, cols] f32 matrix stored transposed: element (r, c) is data[c · ld + r]. The matmul
// kernels take it where weights are kept [in, out] (the RG-LRU gate blocks) or where the right operand is
// naturally [K, N] (the values in attention's P · V).
struct TransposedMatrixView {
  const float* data = nullptr;
  std::size_t rows = 0;
  std::size_t cols = 0;
  std::size_t ld = 0;  // distance between consecutive c, ≥ rows
  float at(std::size_t r, std::size_t c) const { return data[c * ld + r]; }
};

template <class V>
inline constexpr bool is_panel_matrix = false;
template <class W, std::size_t R, std::size_t C>
inline constexpr bool is_panel_matrix<PanelMatrix<W, R, C>> = true;

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
