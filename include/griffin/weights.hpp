// The weights of a model, loaded once and shared read-only by every state and thread. Large matrices are
// kept in the storage type (f32 or bf16), pointing straight into the memory-mapped checkpoint when the
// file already holds that type; small tensors are converted to f32 and re-laid out for the kernels.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "griffin/config.hpp"
#include "griffin/dtype.hpp"
#include "griffin/kernels/linear.hpp"

namespace griffin {

// A [rows, cols] weight matrix in f32 or bf16, either owned or borrowed from a mapped file.
namespace detail {
struct OneRange {
  template <class Body>
  void operator()(std::size_t rows, Body&& body) const {
    body(std::size_t(0), rows);
  }
};
}  // namespace detail

class Matrix {
 public:
  Matrix() = default;
  static Matrix owned_f32(std::vector<float> values, std::size_t rows, std::size_t cols) {
    Matrix m;
    m.type_ = WeightType::f32;
    m.rows_ = rows;
    m.cols_ = cols;
    m.f32_ = std::move(values);
    m.data_ = m.f32_.data();
    return m;
  }
  static Matrix owned_bf16(std::vector<bf16> values, std::size_t rows, std::size_t cols) {
    Matrix m;
    m.type_ = WeightType::bf16;
    m.rows_ = rows;
    m.cols_ = cols;
    m.bf16_ = std::move(values);
    m.data_ = m.bf16_.data();
    return m;
  }
  // A [rows, cols] matrix stored as `type` from rows given in float: fill_row(r, row) writes row r into
  // `row` (cols floats), which is then rounded to bf16 or quantised to int8 (kernels::quantize_int8_row)
  // one row at a time, so no float copy of the whole matrix is held. for_ranges(rows, body) calls
  // body(r0, r1) over ranges covering [0, rows), possibly on several threads at once; the default is
  // one range.
  template <class FillRow, class ForRanges = detail::OneRange>
  static Matrix from_rows(WeightType type, std::size_t rows, std::size_t cols, FillRow fill_row,
                          ForRanges for_ranges = {}) {
    switch (type) {
      case WeightType::f32: {
        std::vector<float> v(rows * cols);
        for_ranges(rows, [&](std::size_t r0, std::size_t r1) {
          for (std::size_t r = r0; r < r1; ++r) fill_row(r, std::span<float>(v.data() + r * cols, cols));
        });
        return owned_f32(std::move(v), rows, cols);
      }
      case WeightType::bf16: {
        std::vector<bf16> v(rows * cols);
        for_ranges(rows, [&](std::size_t r0, std::size_t r1) {
          std::vector<float> row(cols);
          for (std::size_t r = r0; r < r1; ++r) {
            fill_row(r, std::span<float>(row));
            for (std::size_t c = 0; c < cols; ++c) v[r * cols + c] = f32_to_bf16(row[c]);
          }
        });
        return owned_bf16(std::move(v), rows, cols);
      }
      case WeightType::int8: {
        std::vector<std::int8_t> q(rows * cols);
        std::vector<float> scales(rows);
        for_ranges(rows, [&](std::size_t r0, std::size_t r1) {
          std::vector<float> row(cols);
          for (std::size_t r = r0; r < r1; ++r) {
            fill_row(r, std::span<float>(row));
            scales[r] = kernels::quantize_int8_row(row.data(), cols, q.data() + r * cols);
          }
        });
        return owned_int8(std::move(q), std::move(scales), rows, cols);
      }
    }
    throw std::invalid_argument("griffin::Matrix: unknown weight type");
  }
  // Quantises f32 values [rows, cols] to int8 with one scale per row (kernels::quantize_int8_row).
  static Matrix quantized_int8(const float* values, std::size_t rows, std::size_t cols) {
    return from_rows(WeightType::int8, rows, cols,
                     [&](std::size_t r, std::span<float> row) { std::copy_n(values + r * cols, cols, row.data()); });
  }
  // Takes int8 values [rows, cols] and their row scales as they are.
  static Matrix owned_int8(std::vector<std::int8_t> values, std::vector<float> scales, std::size_t rows,
                           std::size_t cols) {
    Matrix m;
    m.type_ = WeightType::int8;
    m.rows_ = rows;
    m.cols_ = cols;
    m.int8_ = std::move(values);
    m.scales_ = std::move(scales);
    m.data_ = m.int8_.data();
    return m;
  }
  // Borrows memory that outlives the matrix (the mapped checkpoint, kept alive by Weights::keep_alive).
  static Matrix borrowed(WeightType type, const void* data, std::size_t rows, std::size_t cols) {
    Matrix m;
    m.type_ = type;
    m.rows_ = rows;
    m.cols_ = cols;
    m.data_ = data;
    return m;
  }
  Matrix(Matrix&& o) noexcept { *this = std::move(o); }
  Matrix& operator=(Matrix&& o) noexcept {
    type_ = o.type_;
    rows_ = o.rows_;
    cols_ = o.cols_;
    const bool was_f32 = o.data_ == o.f32_.data() && !o.f32_.empty();
    const bool was_bf16 = o.data_ == o.bf16_.data() && !o.bf16_.empty();
    const bool was_int8 = o.data_ == o.int8_.data() && !o.int8_.empty();
    f32_ = std::move(o.f32_);
    bf16_ = std::move(o.bf16_);
    int8_ = std::move(o.int8_);
    scales_ = std::move(o.scales_);
    data_ = was_f32    ? f32_.data()
            : was_bf16 ? static_cast<const void*>(bf16_.data())
            : was_int8 ? static_cast<const void*>(int8_.data())
                       : o.data_;
    return *this;
  }
  Matrix(const Matrix&) = delete;
  Matrix& operator=(const Matrix&) = delete;

  WeightType type() const { return type_; }
  std::size_t rows() const { return rows_; }
  std::size_t cols() const { return cols_; }
  // Bytes a matmul streams: the values, plus the row scales for int8.
  std::size_t size_bytes() const {
    if (type_ == WeightType::int8) return rows_ * cols_ + rows_ * sizeof(float);
    return rows_ * cols_ * (type_ == WeightType::f32 ? 4 : 2);
  }
  MatrixView<float> f32() const { return {static_cast<const float*>(data_), rows_, cols_}; }
  MatrixView<bf16> bf16_view() const { return {static_cast<const bf16*>(data_), rows_, cols_}; }
  Int8MatrixView int8_view() const { return {static_cast<const std::int8_t*>(data_), scales_.data(), rows_, cols_}; }

  // Calls f with the typed view: one branch per matmul, not per element.
  template <class F>
  decltype(auto) visit(F&& f) const {
    if (type_ == WeightType::f32) return f(f32());
    if (type_ == WeightType::int8) return f(int8_view());
    return f(bf16_view());
  }

 private:
  WeightType type_ = WeightType::f32;
  std::size_t rows_ = 0, cols_ = 0;
  const void* data_ = nullptr;
  std::vector<float> f32_;
  std::vector<bf16> bf16_;
  std::vector<std::int8_t> int8_;
  std::vector<float> scales_;  // int8 only: one per row
};

struct RecurrentWeights {
  Matrix linear_x, linear_y, linear_out;       // [E, D], [E, D], [D, E]
  std::vector<float> linear_x_bias, linear_y_bias, linear_out_bias;
  std::vector<float> conv_taps;                 // [K, E]: the HF [E, 1, K] weight transposed
  std::vector<float> conv_bias;                 // [E]
  std::vector<float> input_gate_weight;         // [H, E/H, E/H] as [block, in, out]
  std::vector<float> input_gate_bias;           // [H·E/H]
  std::vector<float> recurrent_gate_weight;     // same layout
  std::vector<float> recurrent_gate_bias;
  std::vector<float> log_a_scale;               // [E]: -8 · softplus(recurrent_param)
};

struct AttentionWeights {
  Matrix q_proj, k_proj, v_proj, o_proj;        // [H·Dh, D], [Dh, D], [Dh, D], [D, H·Dh]
  std::vector<float> o_proj_bias;               // [D]
};

struct MlpWeights {
  Matrix gate_proj, up_proj, down_proj;         // [F, D], [F, D], [D, F]
  std::vector<float> gate_proj_bias, up_proj_bias, down_proj_bias;
};

struct LayerWeights {
  BlockType type = BlockType::recurrent;
  std::vector<float> temporal_pre_norm, channel_pre_norm;  // [D], stored as offsets from 1
  RecurrentWeights recurrent;                              // set when type == recurrent
  AttentionWeights attention;                              // set for local and global attention
  MlpWeights mlp;
};

struct Weights {
  Matrix embed_tokens;                 // [V, D], also the (tied) output projection
  std::vector<float> final_norm;       // [D]
  std::vector<LayerWeights> layers;
  std::shared_ptr<const void> keep_alive;  // the mapped checkpoint borrowed matrices point into

  std::size_t parameter_count() const {
    std::size_t n = embed_tokens.rows() * embed_tokens.cols() + final_norm.size();
    auto m = [](const Matrix& x) { return x.rows() * x.cols(); };
    for (const auto& l : layers) {
      n += l.temporal_pre_norm.size() + l.channel_pre_norm.size();
      const auto& r = l.recurrent;
      n += m(r.linear_x) + m(r.linear_y) + m(r.linear_out) + r.linear_x_bias.size() + r.linear_y_bias.size() +
           r.linear_out_bias.size() + r.conv_taps.size() + r.conv_bias.size() + r.input_gate_weight.size() +
           r.input_gate_bias.size() + r.recurrent_gate_weight.size() + r.recurrent_gate_bias.size() +
           r.log_a_scale.size();
      const auto& a = l.attention;
      n += m(a.q_proj) + m(a.k_proj) + m(a.v_proj) + m(a.o_proj) + a.o_proj_bias.size();
      n += m(l.mlp.gate_proj) + m(l.mlp.up_proj) + m(l.mlp.down_proj) + l.mlp.gate_proj_bias.size() +
           l.mlp.up_proj_bias.size() + l.mlp.down_proj_bias.size();
    }
    return n;
  }
};

// Checks that hand-built (or randomly drawn) weights have the shapes `config` implies, so a mismatch is a
// clear std::invalid_argument from the Model constructor instead of out-of-bounds reads later. O(depth).
template <class Config>
void check_weights_fit(const Config& config, const Weights& w) {
  const std::size_t V = config.vocab_size, D = config.width, E = config.lru_width, H = config.num_heads,
                    Dh = config.head_dim, F = config.mlp_width, K = config.conv_width;
  auto fail = [](const std::string& what, std::size_t a, std::size_t b, std::size_t c, std::size_t d) {
    throw std::invalid_argument("griffin: the weights do not fit the config: " + what + " is [" + std::to_string(a) +
                                ", " + std::to_string(b) + "] but the config implies [" + std::to_string(c) + ", " +
                                std::to_string(d) + "]");
  };
  auto matrix = [&](const Matrix& m, std::size_t rows, std::size_t cols, const std::string& what) {
    if (m.rows() != rows || m.cols() != cols) fail(what, m.rows(), m.cols(), rows, cols);
  };
  auto vec = [&](const std::vector<float>& v, std::size_t n, const std::string& what) {
    if (v.size() != n) fail(what, v.size(), 1, n, 1);
  };
  matrix(w.embed_tokens, V, D, "embed_tokens");
  vec(w.final_norm, D, "final_norm");
  if (w.layers.size() != config.depth)
    throw std::invalid_argument("griffin: the weights do not fit the config: " + std::to_string(w.layers.size()) +
                                " layers but the config has depth " + std::to_string(config.depth));
  for (std::size_t i = 0; i < config.depth; ++i) {
    const LayerWeights& l = w.layers[i];
    const std::string p = "layers." + std::to_string(i) + ".";
    if (l.type != config.block_type(i))
      throw std::invalid_argument("griffin: the weights do not fit the config: " + p + "type is " +
                                  std::string(block_type_name(l.type)) + " but the config's pattern says " +
                                  std::string(block_type_name(config.block_type(i))));
    vec(l.temporal_pre_norm, D, p + "temporal_pre_norm");
    vec(l.channel_pre_norm, D, p + "channel_pre_norm");
    if (l.type == BlockType::recurrent) {
      const RecurrentWeights& r = l.recurrent;
      matrix(r.linear_x, E, D, p + "linear_x");
      matrix(r.linear_y, E, D, p + "linear_y");
      matrix(r.linear_out, D, E, p + "linear_out");
      vec(r.linear_x_bias, E, p + "linear_x_bias");
      vec(r.linear_y_bias, E, p + "linear_y_bias");
      vec(r.linear_out_bias, D, p + "linear_out_bias");
      vec(r.conv_taps, K * E, p + "conv_taps");
      vec(r.conv_bias, E, p + "conv_bias");
      vec(r.input_gate_weight, E * (E / H), p + "input_gate_weight");
      vec(r.input_gate_bias, E, p + "input_gate_bias");
      vec(r.recurrent_gate_weight, E * (E / H), p + "recurrent_gate_weight");
      vec(r.recurrent_gate_bias, E, p + "recurrent_gate_bias");
      vec(r.log_a_scale, E, p + "log_a_scale");
    } else {
      const AttentionWeights& a = l.attention;
      matrix(a.q_proj, H * Dh, D, p + "q_proj");
      matrix(a.k_proj, Dh, D, p + "k_proj");
      matrix(a.v_proj, Dh, D, p + "v_proj");
      matrix(a.o_proj, D, H * Dh, p + "o_proj");
      vec(a.o_proj_bias, D, p + "o_proj_bias");
    }
    matrix(l.mlp.gate_proj, F, D, p + "gate_proj");
    matrix(l.mlp.up_proj, F, D, p + "up_proj");
    matrix(l.mlp.down_proj, D, F, p + "down_proj");
    vec(l.mlp.gate_proj_bias, F, p + "gate_proj_bias");
    vec(l.mlp.up_proj_bias, F, p + "up_proj_bias");
    vec(l.mlp.down_proj_bias, D, p + "down_proj_bias");
  }
}

}  // namespace griffin
