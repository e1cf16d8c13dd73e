// A small random Griffin built in memory (no checkpoint), for tests that need many tokens or many models:
// D 32, E 32, 2 heads of 16, window 16, V 64, MLP width 64, depth 3 (recurrent, recurrent, attention).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "griffin/config.hpp"
#include "griffin/model.hpp"
#include "griffin/random_weights.hpp"

namespace griffin::test {

inline DynamicConfig tiny_random_config(std::size_t vocab = 64, std::size_t window = 16) {
  DynamicConfig c;
  c.vocab_size = Size<dynamic>(vocab);
  c.width = Size<dynamic>(32);
  c.lru_width = Size<dynamic>(32);
  c.num_heads = Size<dynamic>(2);
  c.head_dim = Size<dynamic>(16);
  c.num_kv_heads = Size<dynamic>(1);
  c.mlp_width = Size<dynamic>(64);
  c.conv_width = Size<dynamic>(4);
  c.attention_window = Size<dynamic>(window);
  c.depth = Size<dynamic>(3);
  c.pattern.blocks = {BlockType::recurrent, BlockType::recurrent, BlockType::local_attention};
  c.validate();
  return c;
}

template <simd::VectorBackend Backend = simd::Default>
Model<DynamicConfig, Backend> tiny_random_model(const DynamicConfig& config = tiny_random_config(),
                                                std::size_t threads = 1, std::uint64_t seed = 7) {
  auto weights = std::make_shared<const Weights>(make_random_weights(config, WeightType::f32, seed));
  return Model<DynamicConfig, Backend>(config, weights, threads);
}

}  // namespace griffin::test
