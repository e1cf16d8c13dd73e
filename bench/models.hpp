// The models the benchmarks run: the presets with their names, a run-time (dynamic) twin of each static
// preset, presets cut to fewer layers, what one forward step must read and compute (the cost model
// behind every GB/s and GFLOP/s), and states filled to a given length without running the tokens.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "griffin/config.hpp"
#include "griffin/dtype.hpp"
#include "griffin/random_weights.hpp"
#include "griffin/state.hpp"
#include "griffin/weights.hpp"

namespace griffin::bench {

template <class Config>
inline constexpr const char* preset_name = "custom";
template <>
inline constexpr const char* preset_name<presets::RecurrentGemma2B> = "RecurrentGemma-2B";
template <>
inline constexpr const char* preset_name<presets::RecurrentGemma9B> = "RecurrentGemma-9B";
template <>
inline constexpr const char* preset_name<presets::Griffin7B> = "Griffin-7B";
template <>
inline constexpr const char* preset_name<presets::Hawk7B> = "Hawk-7B";

// The same model with every size read at run time: what load_model returns for its config.json.
template <class StaticConfig>
DynamicConfig dynamic_twin(const StaticConfig& config) {
  return convert_config<DynamicConfig>(config);
}

// A preset's shape with another depth (the end-to-end benchmarks run a few layers of a full width).
constexpr Shape with_depth(Shape s, std::size_t depth) {
  s.depth = depth;
  return s;
}

// RecurrentGemma-2B's width, heads, MLP and vocabulary with `Depth` layers of its R R A pattern.
template <std::size_t Depth>
using RecurrentGemma2BLayers = ModelConfig<with_depth(presets::recurrent_gemma_2b, Depth), GriffinPattern>;

template <class Config>
Config make_preset(WeightType type = WeightType::bf16) {
  static_assert(Config::fully_static, "a preset fixes every size");
  Config c{};
  c.hyper = presets::recurrent_gemma_hyper;
  c.weight_type = type;
  return c;
}

// Uniform values in [-scale, scale), the same for the same seed (splitmix64): inputs and synthetic state.
inline std::vector<float> random_floats(std::size_t n, float scale, std::uint64_t seed) {
  std::vector<float> v(n);
  std::uint64_t z = seed * 0x9e3779b97f4a7c15ull + 1;
  for (auto& x : v) {
    std::uint64_t h = (z += 0x9e3779b97f4a7c15ull);
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
    h ^= h >> 31;
    x = scale * (float(double(h >> 11) * 0x1.0p-53) * 2.0f - 1.0f);
  }
  return v;
}

// A [rows, cols] matrix of uniform values with variance 1/cols (the spec's fan-in scaling), stored as `type`.
inline Matrix random_matrix(std::size_t rows, std::size_t cols, WeightType type, std::uint64_t seed = 1) {
  const std::vector<float> v = random_floats(rows * cols, std::sqrt(3.0f / float(cols)), seed);
  return Matrix::from_rows(
      type, rows, cols, [&](std::size_t r, std::span<float> row) { std::copy_n(v.data() + r * cols, cols, row.data()); },
      ParallelRanges::for_work(rows * cols));
}

// ---- The cost model: bytes that must cross the memory bus and FLOPs that must be done per step ----
// Both come from the tensor tables (weights.hpp): a decode step reads every weight once, and every weight of
// a layer (a matrix's, a gate block's, a Conv1D tap) takes part in one multiply-add per token.

// Bytes of layer i's weights as loaded (matrices in their storage type, small tensors in f32).
template <class Config>
double layer_bytes(const Config& config, const Weights& w, std::size_t i) {
  double bytes = 0;
  LayerWeights::visit_tensors(w.layers[i], config.sizes, config.block_type(i), [&](const auto& member, const TensorSpec&) {
    if constexpr (std::is_same_v<std::remove_cvref_t<decltype(member)>, Matrix>) bytes += double(member.size_bytes());
    else bytes += double(member.size()) * sizeof(float);
  });
  return bytes;
}

// Bytes of all weights one decode step reads once (every layer, the embedding as the tied logits
// projection, the final norm), independent of the batch: the decode roofline's numerator.
template <class Config>
double weight_bytes_per_step(const Config& config, const Weights& w) {
  return double(weight_bytes(config, w));
}

// FLOPs of the layers for one token: two per weight of every layer (attention scores and the logits
// projection are counted separately: they depend on the context length and on which rows want logits).
template <class Config>
double layer_flops_per_token(const Config& config) {
  Weights shapes;
  shapes.layers.resize(config.sizes.depth);
  double flops = 0;
  Weights::visit_tensors(shapes, config, [&](const auto&, const TensorSpec& spec, std::size_t layer) {
    if (layer != no_layer) flops += 2.0 * double(spec.elements());
  });
  return flops;
}

template <class Config>
double logits_flops_per_row(const Config& config) {
  return 2.0 * double(config.sizes.vocab_size) * double(config.sizes.width);
}

// Keys and values a decode step reads from the state: every attention layer's cache, every sequence.
inline double kv_bytes(const State& s) {
  double bytes = 0;
  for (std::size_t i = 0; i < s.shape().blocks.size(); ++i) {
    if (s.shape().blocks[i] == BlockType::recurrent) continue;
    for (std::size_t b = 0; b < s.batch_size(); ++b)
      bytes += 2.0 * double(s.kv(i, b).size()) * double(s.kv(i, b).head_dim()) * sizeof(float);
  }
  return bytes;
}

// Puts every sequence of `s` at position `length` as if `length` tokens had been run: KV caches hold the
// keys a real run would keep (the last W for local attention, all for global), with random values; the
// RG-LRU and Conv1D rows are random. A decode step's cost depends only on these sizes, so the inference
// study measures decode at length L without spending O(L²) on a prefill first.
inline void fill_state(State& s, std::size_t length, std::uint64_t seed = 7) {
  auto fill = [&](std::span<float> v, float scale) {
    const auto r = random_floats(v.size(), scale, seed++);
    std::copy(r.begin(), r.end(), v.begin());
  };
  s.reset();
  for (std::size_t b = 0; b < s.batch_size(); ++b)
    s.restore(b, std::int64_t(length), [&](const SequenceLayer<true>& l) {
      if (l.type == BlockType::recurrent) {
        fill(l.rg_lru, 0.5f);
        fill(l.conv, 0.5f);
        return;
      }
      KvCache& cache = *l.kv;
      const std::size_t n = cache.capacity() == dynamic ? length : std::min(length, cache.capacity());
      const std::size_t Dh = cache.head_dim();
      std::vector<float> keys(n * Dh), values(n * Dh);
      fill(keys, 1.0f);
      fill(values, 1.0f);
      std::vector<int> positions(n);
      for (std::size_t i = 0; i < n; ++i) positions[i] = int(length - n + i);
      cache.clear();
      cache.append(keys.data(), values.data(), positions.data(), n);
    });
}

}  // namespace griffin::bench
