// Weights drawn at random for a given config, following the spec's initialisation section ("Released and
// paper configurations"), so benchmarks and tests can run a RecurrentGemma-sized model with no checkpoint:
//
//   auto w = std::make_shared<Weights>(make_random_weights(config, WeightType::bf16, 42));
//   Model<Config, Backend> model(config, w, threads);
//
// Linears ~ N(0, 1/fan_in), the embedding ~ N(0, 1/D) (so the √D-scaled residual stream starts near unit
// size), RG-LRU gate blocks ~ N(0, 1/bw), conv taps ~ N(0, 0.01/K), biases and norm offsets 0, and the
// recurrence set so that a = U^(4r) with U uniform in [0.81, 0.998].
//
// Each value is a hash of (seed, tensor, index), so the result does not depend on how many threads fill
// it, and a 2.7 B-parameter model fills in seconds. The normal variates are Irwin–Hall sums of four
// uniforms (mean and variance exact, tails cut at ±3.46σ): plenty for weights that only have to behave
// like trained ones, and several times cheaper than Box–Muller.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <thread>
#include <vector>

#include "griffin/config.hpp"
#include "griffin/dtype.hpp"
#include "griffin/weights.hpp"

namespace griffin {

namespace detail {

// splitmix64's finaliser: a bijective mix good enough to turn a counter into independent-looking bits.
inline std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// The values of one tensor: stream `key` of a seed, element i.
class RandomStream {
 public:
  RandomStream(std::uint64_t seed, std::uint64_t key) : base_(mix64(seed ^ mix64(key + 0x9e3779b97f4a7c15ull))) {}

  // Standard normal (Irwin–Hall of four 16-bit uniforms, rescaled to variance 1).
  float normal(std::uint64_t i) const {
    const std::uint64_t h = mix64(base_ + i * 0x9e3779b97f4a7c15ull);
    const std::uint32_t sum = std::uint32_t(h & 0xffff) + std::uint32_t((h >> 16) & 0xffff) +
                              std::uint32_t((h >> 32) & 0xffff) + std::uint32_t(h >> 48);
    // Each uniform is (u + 0.5) / 65536, so the sum's mean is exactly 2.
    constexpr float inv = 1.0f / 65536.0f;
    return (float(sum) * inv + 4.0f * 0.5f * inv - 2.0f) * 1.7320508f;  // √12 / 2 = √3
  }
  // Uniform in [lo, hi).
  float uniform(std::uint64_t i, float lo, float hi) const {
    const std::uint64_t h = mix64(base_ + i * 0x9e3779b97f4a7c15ull);
    return lo + (hi - lo) * float(double(h >> 11) * 0x1.0p-53);
  }

 private:
  std::uint64_t base_;
};

// Runs body(r0, r1) over [0, rows) on all hardware threads (the values do not depend on the split).
template <class F>
void fill_rows_in_parallel(std::size_t rows, std::size_t cols, F&& body) {
  const std::size_t work = rows * cols;
  std::size_t threads = std::max<std::size_t>(1, std::thread::hardware_concurrency());
  if (work < (std::size_t(1) << 20)) threads = 1;
  threads = std::min(threads, rows);
  if (threads <= 1) {
    body(std::size_t(0), rows);
    return;
  }
  std::vector<std::thread> pool;
  for (std::size_t t = 1; t < threads; ++t)
    pool.emplace_back([&, t] { body(rows * t / threads, rows * (t + 1) / threads); });
  body(std::size_t(0), rows / threads);
  for (auto& th : pool) th.join();
}

inline std::vector<float> random_normal_vector(std::size_t n, float stddev, std::uint64_t seed, std::uint64_t key) {
  const RandomStream rs(seed, key);
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = stddev * rs.normal(i);
  return v;
}

// A [rows, cols] matrix ~ N(0, stddev²) stored as `type`; int8 is quantised row by row, so no f32 copy
// of the whole matrix is ever held.
inline Matrix random_matrix(std::size_t rows, std::size_t cols, float stddev, WeightType type, std::uint64_t seed,
                            std::uint64_t key) {
  const RandomStream rs(seed, key);
  auto value = [&](std::size_t r, std::size_t c) { return stddev * rs.normal(std::uint64_t(r) * cols + c); };
  return Matrix::from_rows(
      type, rows, cols,
      [&](std::size_t r, std::span<float> row) {
        for (std::size_t c = 0; c < cols; ++c) row[c] = value(r, c);
      },
      [&](std::size_t n, auto&& body) { fill_rows_in_parallel(n, cols, body); });
}

}  // namespace detail

// Random weights for any config (static or dynamic). The same (config, type, seed) always gives the same
// weights; every tensor has its own stream, so changing the depth does not change the layers kept.
template <class Config>
Weights make_random_weights(const Config& config, WeightType type, std::uint64_t seed) {
  config.validate();
  const std::size_t V = config.vocab_size, D = config.width, E = config.lru_width, H = config.num_heads,
                    Dh = config.head_dim, F = config.mlp_width, K = config.conv_width;
  const std::size_t bw = E / H;
  auto stddev = [](std::size_t fan_in) { return 1.0f / std::sqrt(float(fan_in)); };
  // Tensor keys: 0 and 1 for the model's own, then 32 per layer.
  auto key = [](std::size_t layer, std::uint64_t tensor) { return 2 + 32 * std::uint64_t(layer) + tensor; };

  Weights w;
  w.embed_tokens = detail::random_matrix(V, D, stddev(D), type, seed, 0);
  w.final_norm.assign(D, 0.0f);
  w.layers.resize(config.depth);
  for (std::size_t i = 0; i < config.depth; ++i) {
    LayerWeights& l = w.layers[i];
    l.type = config.block_type(i);
    l.temporal_pre_norm.assign(D, 0.0f);
    l.channel_pre_norm.assign(D, 0.0f);
    if (l.type == BlockType::recurrent) {
      RecurrentWeights& r = l.recurrent;
      r.linear_x = detail::random_matrix(E, D, stddev(D), type, seed, key(i, 0));
      r.linear_y = detail::random_matrix(E, D, stddev(D), type, seed, key(i, 1));
      r.linear_out = detail::random_matrix(D, E, stddev(E), type, seed, key(i, 2));
      r.linear_x_bias.assign(E, 0.0f);
      r.linear_y_bias.assign(E, 0.0f);
      r.linear_out_bias.assign(D, 0.0f);
      r.conv_taps = detail::random_normal_vector(K * E, std::sqrt(0.01f / float(K)), seed, key(i, 3));
      r.conv_bias.assign(E, 0.0f);
      r.input_gate_weight = detail::random_normal_vector(H * bw * bw, stddev(bw), seed, key(i, 4));
      r.input_gate_bias.assign(E, 0.0f);
      r.recurrent_gate_weight = detail::random_normal_vector(H * bw * bw, stddev(bw), seed, key(i, 5));
      r.recurrent_gate_bias.assign(E, 0.0f);
      // softplus(Λ) = -½ ln U, so log_a_scale = -8 · softplus(Λ) = 4 ln U and a = exp(r · 4 ln U) = U^(4r).
      const detail::RandomStream u(seed, key(i, 6));
      r.log_a_scale.resize(E);
      for (std::size_t c = 0; c < E; ++c) r.log_a_scale[c] = 4.0f * std::log(u.uniform(c, 0.81f, 0.998f));
    } else {
      AttentionWeights& a = l.attention;
      a.q_proj = detail::random_matrix(H * Dh, D, stddev(D), type, seed, key(i, 10));
      a.k_proj = detail::random_matrix(Dh, D, stddev(D), type, seed, key(i, 11));
      a.v_proj = detail::random_matrix(Dh, D, stddev(D), type, seed, key(i, 12));
      a.o_proj = detail::random_matrix(D, H * Dh, stddev(H * Dh), type, seed, key(i, 13));
      a.o_proj_bias.assign(D, 0.0f);
    }
    MlpWeights& m = l.mlp;
    m.gate_proj = detail::random_matrix(F, D, stddev(D), type, seed, key(i, 20));
    m.up_proj = detail::random_matrix(F, D, stddev(D), type, seed, key(i, 21));
    m.down_proj = detail::random_matrix(D, F, stddev(F), type, seed, key(i, 22));
    m.gate_proj_bias.assign(F, 0.0f);
    m.up_proj_bias.assign(F, 0.0f);
    m.down_proj_bias.assign(D, 0.0f);
  }
  return w;
}

}  // namespace griffin
