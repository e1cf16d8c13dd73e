// Loads a checkpoint in the Hugging Face RecurrentGemma layout (config.json plus one or several
// safetensors files) into Weights, checking every tensor's name, dtype and shape against the config.
// Matrices whose file dtype is already the storage type are used in place from the memory map.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "griffin/config.hpp"
#include "griffin/dtype.hpp"
#include "griffin/io/checkpoint.hpp"
#include "griffin/io/config_json.hpp"
#include "griffin/io/error.hpp"
#include "griffin/io/safetensors.hpp"
#include "griffin/kernels/rg_lru.hpp"
#include "griffin/model.hpp"
#include "griffin/weights.hpp"

namespace griffin {

struct LoadOptions {
  // How to keep the large matrices; unset = as the checkpoint stores them (bf16 stays bf16, f16 → f32).
  // WeightType::int8 quantises each matrix row symmetrically (one f32 scale per row) at load time.
  std::optional<WeightType> weight_type;
  std::size_t threads = 0;  // 0 = one per hardware thread
};

namespace detail {

inline std::string shape_string(const std::vector<std::size_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Hands out the checkpoint's tensors by name, checking each, and remembers which were taken so that
// tensors the model does not use can be reported.
class TensorReader {
 public:
  explicit TensorReader(const io::Checkpoint& checkpoint) : checkpoint_(checkpoint) {}

  const io::TensorView& take(const std::string& name, const std::vector<std::size_t>& shape) {
    const io::TensorView* t = checkpoint_.find(name);
    if (!t) throw io::LoadError(where() + "missing tensor " + name + " (expected shape " + shape_string(shape) + ")");
    if (t->dtype != io::DType::f32 && t->dtype != io::DType::bf16 && t->dtype != io::DType::f16)
      throw io::LoadError(where() + "tensor " + name + " has dtype " + std::string(io::dtype_name(t->dtype)) +
                          " but weights must be F32, BF16 or F16");
    if (t->shape != shape)
      throw io::LoadError(where() + "tensor " + name + " has shape " + shape_string(t->shape) +
                          " but the config implies " + shape_string(shape));
    taken_.insert(name);
    return *t;
  }

  std::vector<float> floats(const std::string& name, const std::vector<std::size_t>& shape) {
    return io::to_f32(take(name, shape));
  }

  Matrix matrix(const std::string& name, std::size_t rows, std::size_t cols, WeightType storage) {
    const io::TensorView& t = take(name, {rows, cols});
    const auto address = reinterpret_cast<std::uintptr_t>(t.data);
    if (storage == WeightType::f32 && t.dtype == io::DType::f32 && address % alignof(float) == 0)
      return Matrix::borrowed(storage, t.data, rows, cols);
    if (storage == WeightType::bf16 && t.dtype == io::DType::bf16 && address % alignof(bf16) == 0)
      return Matrix::borrowed(storage, t.data, rows, cols);
    // Converted a row at a time: a float copy of the whole matrix would cost 4 bytes per weight on top of
    // an int8 or bf16 result (2.6 GB for RecurrentGemma-2B's embedding).
    return Matrix::from_rows(storage, rows, cols,
                             [&](std::size_t r, std::span<float> row) { io::read_f32(t, r * cols, row); });
  }

  // Every tensor of the checkpoint must have been used (lm_head.weight, the tied copy, is allowed).
  void check_all_used() const {
    for (const std::string& name : checkpoint_.names())
      if (!taken_.contains(name))
        throw io::LoadError(where() + "unexpected tensor " + name +
                            " (not part of a model with this config.json; wrong block_types or num_hidden_layers?)");
  }

  void allow(const std::string& name) { taken_.insert(name); }

  // The number of layers the checkpoint holds (one more than the highest i of "model.layers.{i}.…") must
  // be the config's depth. Checked before anything is allocated, so a wrong num_hidden_layers (even an
  // absurd one) is one clear error rather than a missing or unexpected tensor, or a giant allocation.
  void check_layer_count(std::size_t depth) const {
    constexpr std::string_view prefix = "model.layers.";
    std::size_t count = 0;
    for (const std::string& name : checkpoint_.names()) {
      if (!name.starts_with(prefix)) continue;
      std::size_t i = 0, k = prefix.size();
      while (k < name.size() && name[k] >= '0' && name[k] <= '9' && i < (std::size_t{1} << 40))
        i = i * 10 + std::size_t(name[k++] - '0');
      if (k > prefix.size() && k < name.size() && name[k] == '.') count = std::max(count, i + 1);
    }
    if (count == depth) return;
    std::string holds = count == 0 ? "no layers (no model.layers.* tensors)"
                                   : std::to_string(count) + " layers (model.layers.0 to model.layers." +
                                         std::to_string(count - 1) + ")";
    throw io::LoadError(where() + "config.json says num_hidden_layers is " + std::to_string(depth) +
                        " but the checkpoint holds " + holds);
  }

  // A layer whose block type (from block_types) is not the one its tensors are: one error naming both.
  void check_block_type(std::size_t layer, BlockType type) const {
    const std::string p = "model.layers." + std::to_string(layer) + ".temporal_block.";
    const bool want_recurrent = type == BlockType::recurrent;
    const std::string other = want_recurrent ? "q_proj.weight" : "linear_x.weight";
    const std::string mine = want_recurrent ? "linear_x.weight" : "q_proj.weight";
    if (checkpoint_.find(p + mine) || !checkpoint_.find(p + other)) return;
    throw io::LoadError(where() + "model.layers." + std::to_string(layer) + ": block_types says \"" +
                        std::string(block_type_name(type)) + "\" but the checkpoint holds " +
                        (want_recurrent ? "an attention block" : "a recurrent block") + " here (temporal_block." +
                        other + "); block_types does not match the checkpoint");
  }

 private:
  std::string where() const { return checkpoint_.dir().string() + ": "; }
  const io::Checkpoint& checkpoint_;
  std::set<std::string, std::less<>> taken_;
};

}  // namespace detail

// Reads the weights of a model described by `config` from an open checkpoint.
template <class Config>
Weights load_weights(const io::Checkpoint& checkpoint, const Config& config, WeightType storage) {
  const std::size_t V = config.vocab_size, D = config.width, E = config.lru_width, H = config.num_heads,
                    Dh = config.head_dim, F = config.mlp_width, K = config.conv_width;
  const std::size_t bw = E / H;
  detail::TensorReader in(checkpoint);
  in.check_layer_count(config.depth);
  Weights w;
  w.embed_tokens = in.matrix("model.embed_tokens.weight", V, D, storage);
  w.final_norm = in.floats("model.final_norm.weight", {D});
  if (checkpoint.find("lm_head.weight")) in.take("lm_head.weight", {V, D});
  w.layers.resize(config.depth);
  for (std::size_t i = 0; i < config.depth; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    LayerWeights& l = w.layers[i];
    l.type = config.block_type(i);
    in.check_block_type(i, l.type);
    l.temporal_pre_norm = in.floats(p + "temporal_pre_norm.weight", {D});
    l.channel_pre_norm = in.floats(p + "channel_pre_norm.weight", {D});
    const std::string tb = p + "temporal_block.";
    if (l.type == BlockType::recurrent) {
      RecurrentWeights& r = l.recurrent;
      r.linear_x = in.matrix(tb + "linear_x.weight", E, D, storage);
      r.linear_x_bias = in.floats(tb + "linear_x.bias", {E});
      r.linear_y = in.matrix(tb + "linear_y.weight", E, D, storage);
      r.linear_y_bias = in.floats(tb + "linear_y.bias", {E});
      r.linear_out = in.matrix(tb + "linear_out.weight", D, E, storage);
      r.linear_out_bias = in.floats(tb + "linear_out.bias", {D});
      const std::vector<float> conv = in.floats(tb + "conv_1d.weight", {E, 1, K});
      r.conv_taps.resize(K * E);
      for (std::size_t c = 0; c < E; ++c)
        for (std::size_t k = 0; k < K; ++k) r.conv_taps[k * E + c] = conv[c * K + k];
      r.conv_bias = in.floats(tb + "conv_1d.bias", {E});
      r.input_gate_weight = in.floats(tb + "rg_lru.input_gate_weight", {H, bw, bw});
      r.input_gate_bias = in.floats(tb + "rg_lru.input_gate_bias", {H, bw});
      r.recurrent_gate_weight = in.floats(tb + "rg_lru.recurrent_gate_weight", {H, bw, bw});
      r.recurrent_gate_bias = in.floats(tb + "rg_lru.recurrent_gate_bias", {H, bw});
      const std::vector<float> param = in.floats(tb + "rg_lru.recurrent_param", {E});
      r.log_a_scale.resize(E);
      for (std::size_t c = 0; c < E; ++c) r.log_a_scale[c] = kernels::rg_lru_log_a_scale(param[c]);
    } else {
      AttentionWeights& a = l.attention;
      a.q_proj = in.matrix(tb + "q_proj.weight", H * Dh, D, storage);
      a.k_proj = in.matrix(tb + "k_proj.weight", Dh, D, storage);
      a.v_proj = in.matrix(tb + "v_proj.weight", Dh, D, storage);
      a.o_proj = in.matrix(tb + "o_proj.weight", D, H * Dh, storage);
      a.o_proj_bias = in.floats(tb + "o_proj.bias", {D});
    }
    const std::string mp = p + "mlp_block.";
    l.mlp.gate_proj = in.matrix(mp + "gate_proj.weight", F, D, storage);
    l.mlp.gate_proj_bias = in.floats(mp + "gate_proj.bias", {F});
    l.mlp.up_proj = in.matrix(mp + "up_proj.weight", F, D, storage);
    l.mlp.up_proj_bias = in.floats(mp + "up_proj.bias", {F});
    l.mlp.down_proj = in.matrix(mp + "down_proj.weight", D, F, storage);
    l.mlp.down_proj_bias = in.floats(mp + "down_proj.bias", {D});
  }
  in.check_all_used();
  return w;
}

// Reads config.json, checks it against the compile-time parts of Config, opens the safetensors and
// loads the weights. The mapped files stay open as long as any model or copy of the weights lives.
template <class Config = DynamicConfig, simd::VectorBackend Backend = simd::Default>
Model<Config, Backend> load_model(const std::filesystem::path& dir, const LoadOptions& options = {}) {
  const DynamicConfig file_config = io::read_config_json(dir / "config.json");
  Config config = convert_config<Config>(file_config);
  if (options.weight_type) config.weight_type = *options.weight_type;
  auto checkpoint = std::make_shared<io::Checkpoint>(io::Checkpoint::open(dir));
  auto weights = std::make_shared<Weights>(load_weights(*checkpoint, config, config.weight_type));
  weights->keep_alive = checkpoint;
  return Model<Config, Backend>(std::move(config), std::move(weights), options.threads);
}

}  // namespace griffin
