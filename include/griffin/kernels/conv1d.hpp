// Causal depthwise Conv1D of width K over the RG-LRU channels (spec "Conv1D"):
//   out[t, c] = b[c] + Σ_k taps[k, c] · u[t - (K-1) + k, c]
// Inputs before the start of the sequence or in an earlier packed document count as 0. `taps` is the
// Hugging Face [E, 1, K] weight transposed to [K, E] at load time, so channels are contiguous and the
// kernel vectorises across channels. The decode state is the last K-1 inputs, oldest first.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>

#include "griffin/extent.hpp"
#include "griffin/simd/backend.hpp"

namespace griffin::kernels {

namespace reference {
// u[t - lag] comes from the chunk or from the state rows carried over from earlier calls; a lag larger
// than the token's position within its document reads a zero (document masking).
inline void conv1d(const float* u, std::size_t tokens, std::size_t channels, std::size_t width, const float* taps,
                   const float* bias, const int* segment_pos, float* state, float* y) {
  const std::size_t history = width - 1;
  for (std::size_t t = 0; t < tokens; ++t)
    for (std::size_t c = 0; c < channels; ++c) {
      double acc = bias[c];
      for (std::size_t k = 0; k < width; ++k) {
        const std::size_t lag = history - k;
        if (lag > std::size_t(segment_pos[t])) continue;
        const float in = lag <= t ? u[(t - lag) * channels + c] : state[(history - (lag - t)) * channels + c];
        acc += double(taps[k * channels + c]) * in;
      }
      y[t * channels + c] = float(acc);
    }
  // New state: the last K-1 inputs of (state ++ u), oldest first.
  std::size_t keep_old = tokens >= history ? 0 : history - tokens;
  // shift old rows: state rows [history - keep_old, history) become rows [0, keep_old)
  std::memmove(state, state + (history - keep_old) * channels, keep_old * channels * sizeof(float));
  const std::size_t from_chunk = history - keep_old;
  std::memcpy(state + keep_old * channels, u + (tokens - from_chunk) * channels, from_chunk * channels * sizeof(float));
}
}  // namespace reference

// u, y: [tokens] rows `ld` floats apart; taps [width, channels]; state [width-1, channels] (read, then
// updated); segment_pos [tokens]: each token's position within its document. Channels [c_begin, c_end) only,
// so callers can split channels across threads; the state update covers the same channels. For a
// [tokens, channels] chunk ld = channels; the recurrent block's head-major chunks pass one head at a time (u
// and y that head's [tokens, head width] matrix, ld its width, taps, bias and state offset to its first
// channel). A compile-time width (Size<4> for every released model) unrolls the taps; each output is the
// chain acc = fma(tap, input, acc) from the bias over lags 0 … width-1 either way.
template <simd::VectorBackend B, std::size_t Width>
void conv1d(const float* u, std::size_t ld, std::size_t tokens, std::size_t channels, Size<Width> width,
            const float* taps, const float* bias, const int* segment_pos, float* state, float* y, std::size_t c_begin,
            std::size_t c_end) {
  constexpr std::size_t L = B::lanes;
  const std::size_t history = width - 1;
  const std::size_t vector_end = c_begin + (c_end - c_begin) / L * L;
  // Row `lag` tokens before t, as a pointer its channel c is read at.
  auto input_row = [&](std::size_t t, std::size_t lag) -> const float* {
    return lag <= t ? u + (t - lag) * ld : state + (history - (lag - t)) * channels;
  };
  // The taps that can see input: all of them once a document is `history` tokens old.
  auto one_row = [&](std::size_t t, auto visible) {
    const float* rows[Width == dynamic ? 1 : Width];
    if constexpr (Width != dynamic)
      for (std::size_t lag = 0; lag <= std::size_t(visible); ++lag) rows[lag] = input_row(t, lag);
    auto row = [&](std::size_t lag) {
      if constexpr (Width != dynamic) return rows[lag];
      else return input_row(t, lag);
    };
    for (std::size_t c = c_begin; c < vector_end; c += L) {
      auto acc = B::load(bias + c);
      for (std::size_t lag = 0; lag <= std::size_t(visible); ++lag)
        acc = B::fma(B::load(taps + (history - lag) * channels + c), B::load(row(lag) + c), acc);
      B::store(y + t * ld + c, acc);
    }
    // The same fused multiply-adds one lane at a time (a plain a * b + c is fused or not as the compiler
    // likes, and then a channel's result would depend on whether a split put it in a vector).
    for (std::size_t c = vector_end; c < c_end; ++c) {
      float acc = bias[c];
      for (std::size_t lag = 0; lag <= std::size_t(visible); ++lag)
        acc = std::fma(taps[(history - lag) * channels + c], row(lag)[c], acc);
      y[t * ld + c] = acc;
    }
  };
  for (std::size_t t = 0; t < tokens; ++t) {
    const std::size_t visible = std::min<std::size_t>(history, std::size_t(std::max(segment_pos[t], 0)));
    if constexpr (Width != dynamic) {
      if (visible == history) {
        one_row(t, std::integral_constant<std::size_t, Width - 1>{});
        continue;
      }
    }
    one_row(t, visible);
  }
  // New state: the last K-1 inputs of (old state ++ u), oldest first.
  const std::size_t keep_old = tokens >= history ? 0 : history - tokens;
  const std::size_t n = c_end - c_begin;
  for (std::size_t r = 0; r < keep_old; ++r)
    std::memmove(state + r * channels + c_begin, state + (r + history - keep_old) * channels + c_begin, n * sizeof(float));
  for (std::size_t r = keep_old; r < history; ++r)
    std::memcpy(state + r * channels + c_begin, u + (tokens - (history - r)) * ld + c_begin, n * sizeof(float));
}

// u, y: [tokens, channels]; the rest as above.
template <simd::VectorBackend B, std::size_t Width>
void conv1d(const float* u, std::size_t tokens, std::size_t channels, Size<Width> width, const float* taps,
            const float* bias, const int* segment_pos, float* state, float* y) {
  conv1d<B>(u, channels, tokens, channels, width, taps, bias, segment_pos, state, y, 0, channels);
}

}  // namespace griffin::kernels
