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
// Each value is a hash of (seed, tensor, index), so the result does not depend on how many threads fill it
// (a large matrix fills on every hardware thread: ParallelRanges in matrix.hpp). The normal variates are
// Irwin–Hall sums of four uniforms (mean and variance exact, tails cut at ±3.46σ): plenty for weights that
// only have to behave like trained ones, and cheaper than Box–Muller (no logarithm, no sine).
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

// A tensor's stream: its layer and its name, so every tensor draws its own values.
inline std::uint64_t tensor_key(std::size_t layer, std::string_view name) {
  std::uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a
  for (char c : name) h = (h ^ std::uint8_t(c)) * 0x100000001b3ull;
  return mix64(h ^ mix64(std::uint64_t(layer) + 1));
}

}  // namespace detail

// Random weights for any config (static or dynamic), every tensor drawn as its tensor table says. The same
// (config, type, seed) always gives the same weights; every tensor has its own stream, so changing the depth
// does not change the layers kept.
template <class Config>
Weights make_random_weights(const Config& config, WeightType type, std::uint64_t seed) {
  config.validate();
  Weights w;
  w.layers.resize(config.sizes.depth);
  for (std::size_t i = 0; i < config.sizes.depth; ++i) w.layers[i].type = config.block_type(i);
  Weights::visit_tensors(w, config, [&](auto& member, const TensorSpec& spec, std::size_t layer) {
    const detail::RandomStream rs(seed, detail::tensor_key(layer, spec.name));
    const float stddev = spec.init == Init::conv_taps ? std::sqrt(0.01f / float(spec.fan_in))
                                                      : 1.0f / std::sqrt(float(spec.fan_in));
    if constexpr (std::is_same_v<std::remove_cvref_t<decltype(member)>, Matrix>) {
      const std::size_t rows = spec.shape[0], cols = spec.shape[1];
      member = Matrix::from_rows(
          type, rows, cols,
          [&](std::size_t r, std::span<float> row) {
            for (std::size_t c = 0; c < cols; ++c) row[c] = stddev * rs.normal(std::uint64_t(r) * cols + c);
          },
          ParallelRanges::for_work(rows * cols));
    } else {
      member.resize(spec.elements());
      for (std::size_t i = 0; i < member.size(); ++i)
        switch (spec.init) {
          case Init::zero: member[i] = 0.0f; break;
          case Init::normal_fan_in:
          case Init::conv_taps: member[i] = stddev * rs.normal(i); break;
          // softplus(Λ) = -½ ln U, so log_a_scale = -8 · softplus(Λ) = 4 ln U and a = exp(r · 4 ln U) = U^(4r).
          case Init::lru_decay: member[i] = 4.0f * std::log(rs.uniform(i, 0.81f, 0.998f)); break;
        }
    }
  });
  return w;
}

}  // namespace griffin
