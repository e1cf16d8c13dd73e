// The recurrent block (Hawk's temporal mixing; spec "Recurrent block"):
//   y = gelu(linear_y(x));  u = rg_lru(conv1d(linear_x(x)));  out = linear_out(u ⊙ y)
// over a chunk of B sequences × T tokens, continuing from and updating each sequence's Conv1D rows and
// RG-LRU state.
#pragma once

#include <cstddef>
#include <optional>

#include "griffin/blocks/elementwise.hpp"
#include "griffin/blocks/linear_layer.hpp"
#include "griffin/config.hpp"
#include "griffin/extent.hpp"
#include "griffin/state.hpp"
#include "griffin/threads.hpp"
#include "griffin/weights.hpp"
#include "griffin/kernels/activations.hpp"
#include "griffin/kernels/conv1d.hpp"
#include "griffin/kernels/rg_lru.hpp"

namespace griffin::blocks {

// How the block lays out its [B·T, E] intermediates (kernels/activation_layout.hpp). Both give the same bits:
// every kernel computes each element the same way in either. `automatic` is head-major for a chunk of
// gemm_min_tokens rows or more (a prefill) when a head is whole vectors, else row-major (a decode step's
// single rows are contiguous heads already).
enum class RecurrentLayout { automatic, row_major, head_major };

// normed, out: [B·T, D] (sequence-major); positions: [B·T], each token's position in its sequence; chunk
// row-group b belongs to state sequence sequences[b].
template <simd::VectorBackend Backend, class Config>
void recurrent_block(const Config& config, ThreadPool& pool, const RecurrentWeights& rw, LayerState& ls,
                     const float* normed, const int* positions, const std::size_t* sequences, std::size_t B, std::size_t T,
                     float* out, Workspace& ws, RecurrentLayout layout = RecurrentLayout::automatic) {
  const std::size_t N = B * T;
  const auto E = kernel_extent(config.template extent<&Shape::lru_width>());
  const auto D = kernel_extent(config.template extent<&Shape::width>());
  const auto K = kernel_extent(config.template extent<&Shape::conv_width>());
  const auto H = config.template extent<&Shape::num_heads>();
  const auto bw = kernel_extent(extent_quotient(config.template extent<&Shape::lru_width>(), H));
  const std::span<float> y = ws.get(Workspace::branch, N), u = ws.get(Workspace::lru_input, N),
                         conv = ws.get(Workspace::conv_out, N), gate_x = ws.get(Workspace::input_gate, N),
                         gate_a = ws.get(Workspace::recurrence_gate, N);
  if (layout == RecurrentLayout::automatic)
    layout = N >= kernels::gemm_min_tokens && bw % Backend::lanes == 0 ? RecurrentLayout::head_major
                                                                       : RecurrentLayout::row_major;
  // A head's work per row: its two gates (bw × bw multiply-adds each), Conv1D and the scan (some 40
  // operations per channel, the scan's exponentials most of them).
  const std::size_t head_grain = pool.grain_for(H, N * bw * (2 * bw + 40));
  // Head-major, [H][B·T][bw]: head h of token row r at h·N·bw + r·bw. Each thread's heads are contiguous
  // memory, and Conv1D, both gates and the scan of a head run back to back while its rows are still in cache.
  const bool head_major = layout == RecurrentLayout::head_major;
  const auto heads = head_major ? std::optional(kernels::ActivationLayout::head_major(N, bw)) : std::nullopt;
  parallel_linear_pair<Backend>(pool, normed, N, rw.linear_y, rw.linear_y_bias.data(), y.data(), rw.linear_x,
                                rw.linear_x_bias.data(), u.data(), heads, linear_shape(E, D));
  parallel_elementwise<Backend>(pool, N * E, kernels::gelu_work_per_element, [&](std::size_t b, std::size_t e) {
    kernels::gelu_in_place<Backend>(y.data() + b, e - b);
  });
  const float* taps = rw.conv_taps.data();
  if (head_major) {
    pool.parallel_for(H, head_grain, [&](std::size_t h0, std::size_t h1) {
      for (std::size_t h = h0; h < h1; ++h) {
        const std::size_t head = h * N * bw, c = h * bw;  // head h's [N, bw] matrix; its first channel
        for (std::size_t b = 0; b < B; ++b)
          kernels::conv1d<Backend>(u.data() + head + b * T * bw, bw, T, E, K, taps + c, rw.conv_bias.data() + c,
                                   positions + b * T, ls.conv.data() + sequences[b] * (K - 1) * E + c,
                                   conv.data() + head + b * T * bw, 0, bw);
        kernels::block_diagonal_gates<Backend>(conv.data() + head, bw, N, bw, rw.input_gate_weight.data() + h * bw * bw,
                                               rw.input_gate_bias.data() + c, gate_x.data() + head,
                                               rw.recurrent_gate_weight.data() + h * bw * bw,
                                               rw.recurrent_gate_bias.data() + c, gate_a.data() + head, 0, 1);
        for (std::size_t b = 0; b < B; ++b) {
          const std::size_t rows = head + b * T * bw;
          kernels::rg_lru_gated<Backend>(conv.data() + rows, gate_x.data() + rows, gate_a.data() + rows,
                                         rw.log_a_scale.data() + c, positions + b * T, T, bw,
                                         ls.rg_lru.data() + sequences[b] * E + c, y.data() + rows, y.data() + rows, 0, bw);
        }
      }
    });
  } else {
    // Conv1D, the two gates and the scan (gated by the GeLU branch, which it overwrites) all work on
    // channels, and a gate never mixes channels of different blocks.
    auto conv_part = [&](std::size_t c0, std::size_t c1) {
      for (std::size_t b = 0; b < B; ++b)
        kernels::conv1d<Backend>(u.data() + b * T * E, E, T, E, K, taps, rw.conv_bias.data(), positions + b * T,
                                 ls.conv.data() + sequences[b] * (K - 1) * E, conv.data() + b * T * E, c0, c1);
    };
    auto gates_part = [&](std::size_t h0, std::size_t h1) {
      kernels::block_diagonal_gates<Backend>(conv.data(), E, N, bw, rw.input_gate_weight.data(), rw.input_gate_bias.data(),
                                             gate_x.data(), rw.recurrent_gate_weight.data(),
                                             rw.recurrent_gate_bias.data(), gate_a.data(), h0, h1);
    };
    auto scan_part = [&](std::size_t c0, std::size_t c1) {
      for (std::size_t b = 0; b < B; ++b)
        kernels::rg_lru_gated<Backend>(conv.data() + b * T * E, gate_x.data() + b * T * E, gate_a.data() + b * T * E,
                                       rw.log_a_scale.data(), positions + b * T, T, E, ls.rg_lru.data() + sequences[b] * E,
                                       y.data() + b * T * E, y.data() + b * T * E, c0, c1);
    };
    if (bw % Backend::lanes == 0) {
      // One job per thread over whole gate blocks, no fork-join in between (three fewer per decode step).
      // Block edges are whole vectors, so every channel takes the same path as with any other split.
      pool.parallel_for(H, head_grain, [&](std::size_t h0, std::size_t h1) {
        conv_part(h0 * bw, h1 * bw);
        gates_part(h0, h1);
        scan_part(h0 * bw, h1 * bw);
      });
    } else {
      const std::size_t grain = pool.grain_for(E, N * 40, 4 * Backend::lanes);  // whole vectors (see above)
      pool.parallel_for(E, grain, conv_part);
      pool.parallel_for(H, pool.grain_for(H, N * bw * 2 * bw), gates_part);
      pool.parallel_for(E, grain, scan_part);
    }
  }
  parallel_linear<Backend>(pool, y.data(), N, rw.linear_out, rw.linear_out_bias.data(), out, heads, std::nullopt,
                           linear_shape(D, E));
}

}  // namespace griffin::blocks
