// The gated-GeLU MLP of every residual block (spec "MLP"): down(gelu(gate(x)) ⊙ up(x)).
#pragma once

#include <cstddef>
#include <vector>

#include "griffin/blocks/linear_layer.hpp"
#include "griffin/config.hpp"
#include "griffin/state.hpp"
#include "griffin/threads.hpp"
#include "griffin/weights.hpp"
#include "griffin/kernels/activations.hpp"

namespace griffin::blocks {

// normed, out: [N, D].
template <simd::VectorBackend Backend, class Config>
void mlp_block(const Config& config, ThreadPool& pool, const MlpWeights& mw, const float* normed, std::size_t N,
               float* out, Workspace& ws) {
  const std::size_t F = config.mlp_width;
  const std::span<float> gate = ws.get(Workspace::mlp_gate, N * F), up = ws.get(Workspace::mlp_up, N * F);
  parallel_linear_pair<Backend>(pool, normed, N, mw.gate_proj, mw.gate_proj_bias.data(), gate.data(), mw.up_proj,
                                mw.up_proj_bias.data(), up.data());
  pool.parallel_for(N, 1, [&](std::size_t r0, std::size_t r1) {
    kernels::gated_gelu<Backend>(gate.data() + r0 * F, up.data() + r0 * F, (r1 - r0) * F, gate.data() + r0 * F);
  });
  parallel_linear<Backend>(pool, gate.data(), N, mw.down_proj, mw.down_proj_bias.data(), out);
}


}  // namespace griffin::blocks
