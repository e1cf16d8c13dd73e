// The gated-GeLU MLP of every residual block (spec "MLP"): down(gelu(gate(x)) ⊙ up(x)).
#pragma once

#include <cstddef>

#include "griffin/blocks/elementwise.hpp"
#include "griffin/blocks/linear_layer.hpp"
#include "griffin/config.hpp"
#include "griffin/kernels/activations.hpp"
#include "griffin/state.hpp"
#include "griffin/threads.hpp"
#include "griffin/weights.hpp"

namespace griffin::blocks {

// normed, out: [N, D].
template <simd::VectorBackend Backend, class Config>
void mlp_block(const Config& config, ThreadPool& pool, const MlpWeights& mw, const float* normed, std::size_t N,
               float* out, Workspace& ws) {
  const auto F = kernel_extent(config.template extent<&Shape::mlp_width>());
  const auto D = kernel_extent(config.template extent<&Shape::width>());
  const std::span<float> gate = ws.get(Workspace::mlp_gate, N), up = ws.get(Workspace::mlp_up, N);
  parallel_linear_pair<Backend>(pool, normed, N, mw.gate_proj, mw.gate_proj_bias.data(), gate.data(), mw.up_proj,
                                mw.up_proj_bias.data(), up.data(), std::nullopt, linear_shape(F, D));
  parallel_elementwise<Backend>(pool, N * F, kernels::gelu_work_per_element, [&](std::size_t b, std::size_t e) {
    kernels::gated_gelu<Backend>(gate.data() + b, up.data() + b, e - b, gate.data() + b);
  });
  parallel_linear<Backend>(pool, gate.data(), N, mw.down_proj, mw.down_proj_bias.data(), out, std::nullopt, std::nullopt,
                           linear_shape(D, F));
}

}  // namespace griffin::blocks
