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
  std::vector<float> v = random_floats(rows * cols, std::sqrt(3.0f / float(cols)), seed);
  switch (type) {
    case WeightType::f32: return Matrix::owned_f32(std::move(v), rows, cols);
    case WeightType::bf16: {
      std::vector<bf16> b(v.size());
      for (std::size_t i = 0; i < v.size(); ++i) b[i] = f32_to_bf16(v[i]);
      return Matrix::owned_bf16(std::move(b), rows, cols);
    }
    case WeightType::int8: return Matrix::quantized_int8(v.data(), rows, cols);
  }
  return {};
}

// ---- The cost model: bytes that must cross the memory bus and FLOPs that must be done per step ----

inline double vector_bytes(std::span<const float> v) { return double(v.size()) * sizeof(float); }

// Bytes of one layer's weights (matrices in their storage type, small tensors in f32).
inline double layer_bytes(const LayerWeights& l) {
  double bytes = vector_bytes(l.temporal_pre_norm) + vector_bytes(l.channel_pre_norm);
  const auto& r = l.recurrent;
  for (const Matrix* m : {&r.linear_x, &r.linear_y, &r.linear_out}) bytes += double(m->size_bytes());
  for (const auto* v : {&r.linear_x_bias, &r.linear_y_bias, &r.linear_out_bias, &r.conv_taps, &r.conv_bias,
                        &r.input_gate_weight, &r.input_gate_bias, &r.recurrent_gate_weight, &r.recurrent_gate_bias,
                        &r.log_a_scale})
    bytes += vector_bytes(*v);
  const auto& a = l.attention;
  for (const Matrix* m : {&a.q_proj, &a.k_proj, &a.v_proj, &a.o_proj}) bytes += double(m->size_bytes());
  bytes += vector_bytes(a.o_proj_bias);
  const auto& m = l.mlp;
  for (const Matrix* x : {&m.gate_proj, &m.up_proj, &m.down_proj}) bytes += double(x->size_bytes());
  for (const auto* v : {&m.gate_proj_bias, &m.up_proj_bias, &m.down_proj_bias}) bytes += vector_bytes(*v);
  return bytes;
}

// Bytes of all weights one decode step reads once (every layer, the embedding as the tied logits
// projection, the final norm), independent of the batch: the decode roofline's numerator.
inline double weight_bytes_per_step(const Weights& w) {
  double bytes = double(w.embed_tokens.size_bytes()) + vector_bytes(w.final_norm);
  for (const auto& l : w.layers) bytes += layer_bytes(l);
  return bytes;
}

// Multiply-adds ×2 of the layers' matrices and RG-LRU gates for one token (attention scores and the
// logits projection are counted separately: they depend on the context length and on which rows want
// logits).
inline double layer_flops_per_token(const Weights& w) {
  auto mm = [](const Matrix& m) { return 2.0 * double(m.rows()) * double(m.cols()); };
  double flops = 0;
  for (const auto& l : w.layers) {
    const auto& r = l.recurrent;
    flops += mm(r.linear_x) + mm(r.linear_y) + mm(r.linear_out);
    flops += 2.0 * double(r.input_gate_weight.size() + r.recurrent_gate_weight.size());  // block-diagonal gates
    const auto& a = l.attention;
    flops += mm(a.q_proj) + mm(a.k_proj) + mm(a.v_proj) + mm(a.o_proj);
    flops += mm(l.mlp.gate_proj) + mm(l.mlp.up_proj) + mm(l.mlp.down_proj);
  }
  return flops;
}

inline double logits_flops_per_row(const Weights& w) {
  return 2.0 * double(w.embed_tokens.rows()) * double(w.embed_tokens.cols());
}

// Keys and values a decode step reads from the state: every attention layer's cache, every sequence.
inline double kv_bytes(const State& s) {
  double bytes = 0;
  for (const auto& l : s.layers())
    for (const auto& c : l.kv) bytes += 2.0 * double(c.size()) * double(c.head_dim()) * sizeof(float);
  return bytes;
}

// All the memory a state holds (RG-LRU and Conv1D rows, KV caches as allocated).
inline double state_bytes(const State& s) {
  double bytes = 0;
  for (const auto& l : s.layers()) {
    bytes += vector_bytes(l.rg_lru) + vector_bytes(l.conv);
    for (const auto& c : l.kv)
      bytes += vector_bytes(c.key_storage()) + vector_bytes(c.value_storage()) +
               double(c.position_storage().size()) * sizeof(int);
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
  for (auto& l : s.layers()) {
    fill(l.rg_lru, 0.5f);
    fill(l.conv, 0.5f);
    for (auto& cache : l.kv) {
      const std::size_t n = cache.capacity() == dynamic ? length : std::min(length, cache.capacity());
      const std::size_t Dh = cache.head_dim();
      std::vector<float> keys(n * Dh), values(n * Dh);
      fill(keys, 1.0f);
      fill(values, 1.0f);
      std::vector<int> positions(n);
      for (std::size_t i = 0; i < n; ++i) positions[i] = int(length - n + i);
      cache.append(keys.data(), values.data(), positions.data(), n);
    }
  }
  for (auto& p : s.positions()) p = std::int64_t(length);
}

}  // namespace griffin::bench
