// The gated-GeLU MLP of every residual block (spec "MLP"): down(gelu(gate(x)) ⊙ up(x)).
#pragma once

#include <cstddef>
#include <vector>

#include "griffin/blocks/elementwise.hpp"
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
  parallel_elementwise<Backend>(pool, N * F, kernels::gelu_work_per_element, [&](std::size_t b, std::size_t e) {
    kernels::gated_gelu<Backend>(gate.data() + b, up.data() + b, e - b, gate.data() + b);
  });
  parallel_linear<Backend>(pool, gate.data(), N, mw.down_proj, mw.down_proj_bias.data(), out);
}


}  // namespace griffin::blocks
