// The local or global multi-query attention block (spec "Local (and global) multi-query attention"): q, k, v
// projections, RoPE on half of each head, attention over the cached keys plus the chunk's own, then o_proj.
// The chunk's keys are appended to each sequence's KV cache afterwards.
#pragma once

#include <algorithm>
#include <cstddef>

#include "griffin/blocks/linear_layer.hpp"
#include "griffin/config.hpp"
#include "griffin/extent.hpp"
#include "griffin/kernels/attention.hpp"
#include "griffin/kernels/rope.hpp"
#include "griffin/state.hpp"
#include "griffin/threads.hpp"
#include "griffin/weights.hpp"

namespace griffin::blocks {

// normed, out: [B·T, D]; positions: [B·T]; chunk row-group b belongs to state sequence sequences[b].
// Type is local_attention or global_attention.
template <simd::VectorBackend Backend, BlockType Type, class Config>
void attention_block(const Config& config, ThreadPool& pool, const AttentionWeights& aw, LayerState& ls,
                     const float* normed, const int* positions, const std::size_t* sequences, std::size_t B,
                     std::size_t T, float* out, Workspace& ws) {
  static_assert(Type != BlockType::recurrent);
  const std::size_t N = B * T;
  const std::size_t H = config.sizes.num_heads;
  const auto Dh = kernel_extent(config.template extent<&Shape::head_dim>());
  const auto D = kernel_extent(config.template extent<&Shape::width>());
  const auto HD = kernel_extent(extent_product(config.template extent<&Shape::num_heads>(),
                                               config.template extent<&Shape::head_dim>()));
  const std::size_t window = Type == BlockType::global_attention ? dynamic : std::size_t(config.sizes.attention_window);
  const std::size_t R = config.rope_dims();
  const std::span<float> q = ws.get(Workspace::queries, N), k = ws.get(Workspace::keys, N),
                         v = ws.get(Workspace::values, N), mixed = ws.get(Workspace::attention_out, N),
                         angles = ws.get(Workspace::rope_angles, 1);
  parallel_linear<Backend>(pool, normed, N, aw.q_proj, nullptr, q.data(), std::nullopt, std::nullopt, linear_shape(HD, D));
  parallel_linear_pair<Backend>(pool, normed, N, aw.k_proj, nullptr, k.data(), aw.v_proj, nullptr, v.data(), std::nullopt,
                                linear_shape(Dh, D));
  for (std::size_t r = 0; r < N; ++r) {
    kernels::rope_angles(positions[r], R, config.hyper.rope_theta, angles.data());
    kernels::rope<Backend>(q.data() + r * HD, H, Dh, R, angles.data());
    kernels::rope<Backend>(k.data() + r * Dh, 1, Dh, R, angles.data());
  }
  for (std::size_t b = 0; b < B; ++b) {
    KvCache& cache = ls.kv[sequences[b]];
    kernels::KeySegment segments[3];
    std::size_t n_segments = cache.segments(segments);
    segments[n_segments++] = {k.data() + b * T * Dh, v.data() + b * T * Dh, positions + b * T, nullptr, T};
    const kernels::QueryRows queries{q.data() + b * T * HD, positions + b * T, nullptr, T};
    // Split the (token, head) rows: a prefill chunk by tokens, a decode step by heads; a row's work is a
    // score and a weighted value per key it may see.
    const std::size_t cached = cache.size() + T;
    const std::size_t keys = window == dynamic ? cached : std::min(cached, window + T);
    pool.parallel_for(T * H, pool.grain_for(T * H, 2 * keys * Dh), [&](std::size_t r0, std::size_t r1) {
      kernels::mqa_attention<Backend>(queries, std::span(segments, n_segments), H, Dh, window,
                                      mixed.data() + b * T * HD, r0, r1);
    });
    cache.append(k.data() + b * T * Dh, v.data() + b * T * Dh, positions + b * T, T);
  }
  parallel_linear<Backend>(pool, mixed.data(), N, aw.o_proj, aw.o_proj_bias.data(), out, std::nullopt, std::nullopt,
                           linear_shape(D, HD));
}

}  // namespace griffin::blocks
