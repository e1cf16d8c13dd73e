// The weights of a model, loaded once and shared read-only by every state and thread: the large matrices in
// the model's storage type (matrix.hpp), the small tensors in f32, re-laid out for the kernels.
//
// Each block kind lists its tensors once, in its tensor table (visit_tensors): the checkpoint's name and
// shape, how random weights draw it, and what the loader does to it. The loader, make_random_weights, the
// fit check, the parameter count and the byte counts all visit the tables.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "griffin/config.hpp"
#include "griffin/matrix.hpp"

namespace griffin {

// How make_random_weights draws a tensor (spec "Released and paper configurations").
enum class Init : std::uint8_t {
  zero,           // biases and norm offsets
  normal_fan_in,  // N(0, 1 / fan_in)
  conv_taps,      // N(0, 0.01 / K)
  lru_decay,      // log_a_scale = 4 ln U, U uniform in [0.81, 0.998]: a = U^(4r)
};

// What the loader does between the checkpoint's tensor and the kernels' layout.
enum class Transform : std::uint8_t {
  none,
  taps_k_major,  // conv_1d.weight [E, 1, K] → taps [K, E], channels contiguous
  log_a_scale,   // rg_lru.recurrent_param Λ → -8 · softplus(Λ), the scan's per-channel constant
};

// One tensor: its name within the layer (or the model) and its shape in the checkpoint. Matrices are the
// rank-2 tensors kept as Matrix; everything else is a std::vector<float>.
struct TensorSpec {
  std::string_view name;
  std::array<std::size_t, 3> shape{};
  std::size_t rank = 1;
  Init init = Init::zero;
  std::size_t fan_in = 1;
  Transform transform = Transform::none;

  std::size_t elements() const {
    std::size_t n = 1;
    for (std::size_t i = 0; i < rank; ++i) n *= shape[i];
    return n;
  }
  std::vector<std::size_t> dims() const { return {shape.begin(), shape.begin() + std::ptrdiff_t(rank)}; }
};

namespace detail {
constexpr TensorSpec matrix_spec(std::string_view name, std::size_t rows, std::size_t cols) {
  return {name, {rows, cols, 0}, 2, Init::normal_fan_in, cols};
}
constexpr TensorSpec vector_spec(std::string_view name, std::size_t n, Init init = Init::zero) {
  return {name, {n, 0, 0}, 1, init};
}
// A linear layer's two tensors, "{name}.weight" [rows, cols] and "{name}.bias" [rows]: the names are literals
// so that a spec's name is a view of static storage.
template <class Weight, class Bias, class Visitor>
void visit_linear(Visitor&& v, Weight& weight, Bias& bias, std::string_view weight_name, std::string_view bias_name,
                  std::size_t rows, std::size_t cols) {
  v(weight, matrix_spec(weight_name, rows, cols));
  v(bias, vector_spec(bias_name, rows));
}
}  // namespace detail

struct RecurrentWeights {
  Matrix linear_x, linear_y, linear_out;       // [E, D], [E, D], [D, E]
  std::vector<float> linear_x_bias, linear_y_bias, linear_out_bias;
  std::vector<float> conv_taps;                 // [K, E]: the checkpoint's [E, 1, K] transposed
  std::vector<float> conv_bias;                 // [E]
  std::vector<float> input_gate_weight;         // [H, E/H, E/H] as [block, in, out]
  std::vector<float> input_gate_bias;           // [H·E/H]
  std::vector<float> recurrent_gate_weight;     // same layout
  std::vector<float> recurrent_gate_bias;
  std::vector<float> log_a_scale;               // [E]: -8 · softplus(recurrent_param)

  template <class Self, class Visitor>
  static void visit_tensors(Self& w, const Shape& s, Visitor&& v) {
    using namespace detail;
    const std::size_t D = s.width, E = s.lru_width, H = s.num_heads, bw = E / H, K = s.conv_width;
    visit_linear(v, w.linear_x, w.linear_x_bias, "temporal_block.linear_x.weight", "temporal_block.linear_x.bias", E, D);
    visit_linear(v, w.linear_y, w.linear_y_bias, "temporal_block.linear_y.weight", "temporal_block.linear_y.bias", E, D);
    visit_linear(v, w.linear_out, w.linear_out_bias, "temporal_block.linear_out.weight", "temporal_block.linear_out.bias",
                 D, E);
    v(w.conv_taps, TensorSpec{"temporal_block.conv_1d.weight", {E, 1, K}, 3, Init::conv_taps, K, Transform::taps_k_major});
    v(w.conv_bias, vector_spec("temporal_block.conv_1d.bias", E));
    v(w.input_gate_weight, TensorSpec{"temporal_block.rg_lru.input_gate_weight", {H, bw, bw}, 3, Init::normal_fan_in, bw});
    v(w.input_gate_bias, TensorSpec{"temporal_block.rg_lru.input_gate_bias", {H, bw, 0}, 2});
    v(w.recurrent_gate_weight,
      TensorSpec{"temporal_block.rg_lru.recurrent_gate_weight", {H, bw, bw}, 3, Init::normal_fan_in, bw});
    v(w.recurrent_gate_bias, TensorSpec{"temporal_block.rg_lru.recurrent_gate_bias", {H, bw, 0}, 2});
    v(w.log_a_scale,
      TensorSpec{"temporal_block.rg_lru.recurrent_param", {E, 0, 0}, 1, Init::lru_decay, 1, Transform::log_a_scale});
  }
};

struct AttentionWeights {
  Matrix q_proj, k_proj, v_proj, o_proj;        // [H·Dh, D], [Dh, D], [Dh, D], [D, H·Dh]
  std::vector<float> o_proj_bias;               // [D]

  template <class Self, class Visitor>
  static void visit_tensors(Self& w, const Shape& s, Visitor&& v) {
    using namespace detail;
    const std::size_t D = s.width, HD = s.num_heads * s.head_dim, Dh = s.head_dim;
    v(w.q_proj, matrix_spec("temporal_block.q_proj.weight", HD, D));
    v(w.k_proj, matrix_spec("temporal_block.k_proj.weight", Dh, D));
    v(w.v_proj, matrix_spec("temporal_block.v_proj.weight", Dh, D));
    v(w.o_proj, matrix_spec("temporal_block.o_proj.weight", D, HD));
    v(w.o_proj_bias, vector_spec("temporal_block.o_proj.bias", D));
  }
};

struct MlpWeights {
  Matrix gate_proj, up_proj, down_proj;         // [F, D], [F, D], [D, F]
  std::vector<float> gate_proj_bias, up_proj_bias, down_proj_bias;

  template <class Self, class Visitor>
  static void visit_tensors(Self& w, const Shape& s, Visitor&& v) {
    using namespace detail;
    const std::size_t D = s.width, F = s.mlp_width;
    visit_linear(v, w.gate_proj, w.gate_proj_bias, "mlp_block.gate_proj.weight", "mlp_block.gate_proj.bias", F, D);
    visit_linear(v, w.up_proj, w.up_proj_bias, "mlp_block.up_proj.weight", "mlp_block.up_proj.bias", F, D);
    visit_linear(v, w.down_proj, w.down_proj_bias, "mlp_block.down_proj.weight", "mlp_block.down_proj.bias", D, F);
  }
};

struct LayerWeights {
  BlockType type = BlockType::recurrent;
  std::vector<float> temporal_pre_norm, channel_pre_norm;  // [D], stored as offsets from 1
  RecurrentWeights recurrent;                              // set when type == recurrent
  AttentionWeights attention;                              // set for local and global attention
  MlpWeights mlp;

  // The layer's tensors for its block type: its norms, its temporal block's, its MLP's.
  template <class Self, class Visitor>
  static void visit_tensors(Self& w, const Shape& s, BlockType type, Visitor&& v) {
    v(w.temporal_pre_norm, detail::vector_spec("temporal_pre_norm.weight", s.width));
    v(w.channel_pre_norm, detail::vector_spec("channel_pre_norm.weight", s.width));
    if (type == BlockType::recurrent) RecurrentWeights::visit_tensors(w.recurrent, s, v);
    else AttentionWeights::visit_tensors(w.attention, s, v);
    MlpWeights::visit_tensors(w.mlp, s, v);
  }
};

// The checkpoint's name of a tensor of layer `layer` (or of the model, for layer = no_layer).
inline constexpr std::size_t no_layer = dynamic;
inline std::string tensor_name(std::size_t layer, std::string_view name) {
  if (layer == no_layer) return "model." + std::string(name);
  return "model.layers." + std::to_string(layer) + "." + std::string(name);
}

struct Weights {
  Matrix embed_tokens;                 // [V, D], also the (tied) output projection
  std::vector<float> final_norm;       // [D]
  std::vector<LayerWeights> layers;

  // Every tensor of a model of `config`'s sizes and pattern: v(member, spec, layer) with layer = no_layer for
  // the embedding and the final norm. `w` needs as many layers as the config's depth.
  template <class Self, class Config, class Visitor>
  static void visit_tensors(Self& w, const Config& config, Visitor&& v) {
    v(w.embed_tokens, detail::matrix_spec("embed_tokens.weight", config.sizes.vocab_size, config.sizes.width), no_layer);
    v(w.final_norm, detail::vector_spec("final_norm.weight", config.sizes.width), no_layer);
    for (std::size_t i = 0; i < config.sizes.depth; ++i)
      LayerWeights::visit_tensors(w.layers[i], config.sizes, config.block_type(i),
                                  [&](auto& member, const TensorSpec& spec) { v(member, spec, i); });
  }
};

// The number of parameters a model of `config` has (every tensor in the checkpoint's shape).
template <class Config>
std::size_t parameter_count(const Config& config) {
  Weights shapes;
  shapes.layers.resize(config.sizes.depth);
  std::size_t n = 0;
  Weights::visit_tensors(shapes, config, [&](auto&, const TensorSpec& spec, std::size_t) { n += spec.elements(); });
  return n;
}

// The bytes the weights occupy as loaded: matrices in their storage type (as a matmul streams them), the
// rest f32. A decode step reads all of it once.
template <class Config>
std::size_t weight_bytes(const Config& config, const Weights& w) {
  std::size_t n = 0;
  Weights::visit_tensors(w, config, [&](const auto& member, const TensorSpec&, std::size_t) {
    if constexpr (std::is_same_v<std::remove_cvref_t<decltype(member)>, Matrix>) n += member.size_bytes();
    else n += member.size() * sizeof(float);
  });
  return n;
}

// Checks that hand-built (or randomly drawn) weights have the shapes `config` implies, so a mismatch is a clear
// std::invalid_argument from the Model constructor instead of out-of-bounds reads later. O(depth).
template <class Config>
void check_weights_fit(const Config& config, const Weights& w) {
  const auto fail = [](const std::string& what) {
    throw std::invalid_argument("griffin: the weights do not fit the config: " + what);
  };
  if (w.layers.size() != config.sizes.depth)
    fail(std::to_string(w.layers.size()) + " layers but the config has depth " + std::to_string(config.sizes.depth));
  for (std::size_t i = 0; i < config.sizes.depth; ++i)
    if (w.layers[i].type != config.block_type(i))
      fail("model.layers." + std::to_string(i) + " is " + std::string(block_type_name(w.layers[i].type)) +
           " but the config's pattern says " + std::string(block_type_name(config.block_type(i))));
  Weights::visit_tensors(w, config, [&](const auto& member, const TensorSpec& spec, std::size_t layer) {
    std::size_t rows, cols, want_rows = spec.shape[0], want_cols = spec.rank == 2 ? spec.shape[1] : 1;
    if constexpr (std::is_same_v<std::remove_cvref_t<decltype(member)>, Matrix>) {
      rows = member.rows(), cols = member.cols();
    } else {
      rows = member.size(), cols = 1, want_rows = spec.elements(), want_cols = 1;
    }
    if (rows != want_rows || cols != want_cols)
      fail(tensor_name(layer, spec.name) + " is [" + std::to_string(rows) + ", " + std::to_string(cols) +
           "] but the config implies [" + std::to_string(want_rows) + ", " + std::to_string(want_cols) + "]");
  });
}

}  // namespace griffin
