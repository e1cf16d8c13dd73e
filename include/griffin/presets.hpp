// The presets: the paper's and RecurrentGemma's models as fully static configs (spec "Released and paper
// configurations"), and the small byte-level Griffin shipped in models/kjv-griffin.
#pragma once

#include "griffin/config.hpp"

namespace griffin::presets {

inline constexpr Shape recurrent_gemma_2b{.vocab_size = 256000, .width = 2560, .lru_width = 2560, .num_heads = 10,
                                          .head_dim = 256, .num_kv_heads = 1, .mlp_width = 7680, .conv_width = 4,
                                          .attention_window = 2048, .depth = 26};
inline constexpr Shape recurrent_gemma_9b{.vocab_size = 256000, .width = 4096, .lru_width = 4096, .num_heads = 16,
                                          .head_dim = 256, .num_kv_heads = 1, .mlp_width = 12288, .conv_width = 4,
                                          .attention_window = 2048, .depth = 38};
inline constexpr Shape griffin_7b{.vocab_size = 256000, .width = 4096, .lru_width = 5632, .num_heads = 32,
                                  .head_dim = 128, .num_kv_heads = 1, .mlp_width = 12288, .conv_width = 4,
                                  .attention_window = 1024, .depth = 32};
inline constexpr Shape hawk_7b = griffin_7b;  // the same sizes; the pattern has no attention
inline constexpr Shape kjv_griffin{.vocab_size = 256, .width = 192, .lru_width = 192, .num_heads = 4, .head_dim = 48,
                                   .num_kv_heads = 1, .mlp_width = 576, .conv_width = 4, .attention_window = 64,
                                   .depth = 6};

inline constexpr Hyperparameters recurrent_gemma_hyper{};  // soft cap 30, embeddings scaled
inline constexpr Hyperparameters paper_hyper{.logits_soft_cap = 0.0f, .embeddings_scale_by_sqrt_dim = false};

using RecurrentGemma2B = ModelConfig<recurrent_gemma_2b, GriffinPattern>;
using RecurrentGemma9B = ModelConfig<recurrent_gemma_9b, GriffinPattern>;
using Griffin7B = ModelConfig<griffin_7b, GriffinPattern>;
using Hawk7B = ModelConfig<hawk_7b, HawkPattern>;
using KjvGriffin = ModelConfig<kjv_griffin, GriffinPattern>;

}  // namespace griffin::presets
