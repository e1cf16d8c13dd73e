// A small random Griffin built in memory (no checkpoint), for tests that need many tokens or many models:
// D 32, E 32, 2 heads of 16, window 16, V 64, MLP width 64, depth 3 (recurrent, recurrent, attention).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "griffin/config.hpp"
#include "griffin/model.hpp"
#include "griffin/random_weights.hpp"
#include "griffin/threads.hpp"

namespace griffin::test {

inline DynamicConfig tiny_random_config(std::size_t vocab = 64, std::size_t window = 16) {
  return make_dynamic_config(Shape{.vocab_size = vocab, .width = 32, .lru_width = 32, .num_heads = 2, .head_dim = 16,
                                   .num_kv_heads = 1, .mlp_width = 64, .conv_width = 4, .attention_window = window,
                                   .depth = 3},
                             {BlockType::recurrent, BlockType::recurrent, BlockType::local_attention});
}

// min_part_work: the pool's (ThreadPool); 0 makes a model of this size split every job it can.
template <simd::VectorBackend Backend = simd::Default>
Model<DynamicConfig, Backend> tiny_random_model(const DynamicConfig& config = tiny_random_config(),
                                                std::size_t threads = 1, std::uint64_t seed = 7,
                                                std::size_t min_part_work = ThreadPool::default_min_part_work) {
  auto weights = std::make_shared<const Weights>(make_random_weights(config, WeightType::f32, seed));
  return Model<DynamicConfig, Backend>(config, weights, threads, min_part_work);
}

}  // namespace griffin::test
