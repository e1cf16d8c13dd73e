// The RG-LRU (spec "RG-LRU"), all in float32:
//   r = σ(recurrent_gate(u)), i = σ(input_gate(u)), log_a = -8 · r · softplus(Λ), a = exp(log_a)
//   h_t = a_t ⊙ h_{t-1} + sqrt(1 - a_t²) ⊙ i_t ⊙ u_t      (a := 0 and the normaliser := 1 at a reset)
// The gates are block-diagonal linears (H blocks of E/H, weights stored [block, in, out]). The scan is
// vectorised across channels, never across time.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>

#include <utility>
#include <vector>

#include "griffin/extent.hpp"
#include "griffin/kernels/linear.hpp"
#include "griffin/simd/backend.hpp"
#include "griffin/simd/math.hpp"
#include "griffin/simd/scalar.hpp"

namespace griffin::kernels {

inline constexpr float rg_lru_c = 8.0f;

// softplus(z) = log(1 + exp(z)), without overflow for large z or loss of precision for very negative z.
inline float softplus(float z) {
  if (z > 20.0f) return z + std::log1p(std::exp(-z));
  return std::log1p(std::exp(z));
}

// -c · softplus(Λ): the per-channel constant the scan multiplies by r; computed once at load time.
inline float rg_lru_log_a_scale(float recurrent_param) { return -rg_lru_c * softplus(recurrent_param); }

namespace reference {
// y[t, h·bw + j] = Σ_i x[t, h·bw + i] · w[h, i, j] + b[h, j]
inline void block_diagonal_linear(const float* x, std::size_t tokens, std::size_t width, std::size_t blocks,
                                  const float* w, const float* b, float* y) {
  const std::size_t bw = width / blocks;
  for (std::size_t t = 0; t < tokens; ++t)
    for (std::size_t h = 0; h < blocks; ++h)
      for (std::size_t j = 0; j < bw; ++j) {
        double acc = b[h * bw + j];
        for (std::size_t i = 0; i < bw; ++i) acc += double(x[t * width + h * bw + i]) * w[(h * bw + i) * bw + j];
        y[t * width + h * bw + j] = float(acc);
      }
}

inline double sigmoid(double z) { return 1.0 / (1.0 + std::exp(-z)); }

// x, y: [tokens, width]; gate_x, gate_a: the input and recurrence gates before the sigmoid;
// log_a_scale: -c·softplus(Λ) per channel; h: [width] state, read and updated.
inline void rg_lru_scan(const float* x, const float* gate_x, const float* gate_a, const float* log_a_scale,
                        const int* segment_pos, std::size_t tokens, std::size_t width, float* h, float* y) {
  for (std::size_t t = 0; t < tokens; ++t) {
    const bool reset = segment_pos[t] == 0;
    for (std::size_t c = 0; c < width; ++c) {
      const std::size_t at = t * width + c;
      const double log_a = double(log_a_scale[c]) * sigmoid(gate_a[at]);
      const double a = reset ? 0.0 : std::exp(log_a);
      const double normaliser = reset ? 1.0 : std::sqrt(-std::expm1(2.0 * log_a));
      const double next = a * h[c] + double(x[at]) * sigmoid(gate_x[at]) * normaliser;
      h[c] = float(next);
      y[at] = h[c];
    }
  }
}
}  // namespace reference

namespace detail {
// One vector of outputs of a gate block: its inputs, the weights of its first output (the next input's are bw
// further), its bias and where it goes.
struct GateColumn {
  const float* x;
  const float* w;
  const float* b;
  float* y;
};

// G columns at once, each the chain acc = fma(x_i, w_ij, acc) from the bias over the block's inputs i: G
// independent chains, so a decode step is not bound by one chain's latency (a gate block's few vectors, and
// both gates of every head of a thread's share, go side by side).
template <simd::VectorBackend B, std::size_t G, std::size_t BW>
inline void gate_columns(const GateColumn* c, Size<BW> bw) {
  typename B::vec acc[G];
  const auto each = [&]<std::size_t... Q>(std::index_sequence<Q...>, auto&& f) { (f(std::integral_constant<std::size_t, Q>{}), ...); };
  constexpr auto columns = std::make_index_sequence<G>{};
  each(columns, [&](auto q) { acc[q] = B::load(c[q].b); });
  for (std::size_t i = 0; i < bw; ++i)
    each(columns, [&](auto q) { acc[q] = B::fma(B::set(c[q].x[i]), B::load(c[q].w + i * bw), acc[q]); });
  each(columns, [&](auto q) { B::store(c[q].y, acc[q]); });
}

// Every column in passes of 8, then 4, 2, 1.
template <simd::VectorBackend B, std::size_t BW>
inline void gate_columns(const GateColumn* c, std::size_t n, Size<BW> bw) {
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) gate_columns<B, 8>(c + i, bw);
  for (; i + 4 <= n; i += 4) gate_columns<B, 4>(c + i, bw);
  for (; i + 2 <= n; i += 2) gate_columns<B, 2>(c + i, bw);
  for (; i < n; ++i) gate_columns<B, 1>(c + i, bw);
}

// The outputs past the last whole vector of a block, one lane at a time with the same chain.
inline void gate_tail(const float* xh, const float* wh, const float* bh, float* yh, std::size_t bw, std::size_t from) {
  for (std::size_t j = from; j < bw; ++j) {
    float acc = bh[j];
    for (std::size_t i = 0; i < bw; ++i) acc = std::fma(xh[i], wh[i * bw + j], acc);
    yh[j] = acc;
  }
}
}  // namespace detail

// The RG-LRU's two gates, y1 = block_diagonal(x; w1, b1) and y2 = block_diagonal(x; w2, b2), for all tokens
// and the blocks [h_begin, h_end) (callers split blocks across threads); x, y1, y2: [tokens] rows ld apart,
// block h's channels at h·bw; w: [blocks, bw, bw] as [block, in, out], b: [blocks, bw]. Each output is the
// chain acc = fma(x_i, w_ij, acc) from the bias over i, whichever path computes it: a prefill chunk goes
// through gemm (the [in, out] block is a transposed view), a few tokens through gate_columns, which reads
// each block's weights once. w2 may be null for one gate.
template <simd::VectorBackend B, std::size_t BW>
void block_diagonal_gates(const float* x, std::size_t ld, std::size_t tokens, Size<BW> bw, const float* w1,
                          const float* b1, float* y1, const float* w2, const float* b2, float* y2, std::size_t h_begin,
                          std::size_t h_end) {
  constexpr std::size_t L = B::lanes;
  const std::size_t gates = w2 ? 2 : 1;
  const float* const ws[2] = {w1, w2};
  const float* const bs[2] = {b1, b2};
  float* const ys[2] = {y1, y2};
  if (tokens >= gemm_min_tokens) {
    for (std::size_t g = 0; g < gates; ++g)
      for (std::size_t h = h_begin; h < h_end; ++h)
        gemm_strided<B>(x + h * bw, ld, tokens, TransposedMatrixView{ws[g] + h * bw * bw, bw, bw, bw}, bs[g] + h * bw,
                        ys[g] + h * bw, ld, 0, bw, false);
    return;
  }
  // The columns go in batches from a fixed buffer on the stack: a decode step allocates nothing.
  const std::size_t vectors = bw / L;
  constexpr std::size_t batch = 64;
  detail::GateColumn columns[batch];
  for (std::size_t t = 0; t < tokens; ++t) {
    std::size_t n = 0;
    for (std::size_t h = h_begin; h < h_end; ++h)
      for (std::size_t g = 0; g < gates; ++g)
        for (std::size_t v = 0; v < vectors; ++v) {
          columns[n++] = {x + t * ld + h * bw, ws[g] + h * bw * bw + v * L, bs[g] + h * bw + v * L,
                          ys[g] + t * ld + h * bw + v * L};
          if (n == batch) detail::gate_columns<B>(columns, std::exchange(n, 0), bw);
        }
    detail::gate_columns<B>(columns, n, bw);
    if (vectors * L < bw)
      for (std::size_t h = h_begin; h < h_end; ++h)
        for (std::size_t g = 0; g < gates; ++g)
          detail::gate_tail(x + t * ld + h * bw, ws[g] + h * bw * bw, bs[g] + h * bw, ys[g] + t * ld + h * bw, bw,
                            vectors * L);
  }
}

// One block-diagonal linear (the gates' arithmetic for a single gate).
template <simd::VectorBackend B, std::size_t BW>
void block_diagonal_linear(const float* x, std::size_t ld, std::size_t tokens, Size<BW> bw, const float* w,
                           const float* b, float* y, std::size_t h_begin, std::size_t h_end) {
  block_diagonal_gates<B>(x, ld, tokens, bw, w, b, y, nullptr, nullptr, nullptr, h_begin, h_end);
}

// x, y: [tokens, width] with `blocks` blocks of width / blocks channels; all blocks.
template <simd::VectorBackend B>
void block_diagonal_linear(const float* x, std::size_t tokens, std::size_t width, std::size_t blocks,
                           const float* w, const float* b, float* y) {
  block_diagonal_linear<B>(x, width, tokens, Size<dynamic>(width / blocks), w, b, y, 0, blocks);
}

namespace detail {
// How far ahead along its walk a call prefetches its inputs, per stream (see rg_lru_rows): 2 KiB into L1
// where the walk covers whole rows, 4 KiB into L2 where it covers part of each row (docs/performance.md,
// "Design notes").
inline constexpr std::size_t rg_lru_prefetch_floats = 512;
inline constexpr std::size_t rg_lru_prefetch_floats_partial_rows = 1024;
// Channels per block of the two passes below: their two buffers, 2 KiB, stay in L1, and the block is long
// enough to keep many independent steps in flight (docs/performance.md, "Design notes").
inline constexpr std::size_t rg_lru_block_floats = 256;

// The step is split in two at the buffers between the passes, so each half is written once for the vector
// and the one-lane paths. The sigmoids and the decay use simd/math.hpp's polynomial exponentials, which
// keep the kernel's arithmetic below its memory traffic (simd/math.hpp says why).
template <simd::VectorBackend B>
struct RgLruGates {
  typename B::vec input;   // x ⊙ i
  typename B::vec log2_a;  // log2(a) = log_a_scale · log2(e) · r, in [-∞, 0]
};

template <simd::VectorBackend B>
RgLruGates<B> rg_lru_gates(typename B::vec x, typename B::vec gate_x, typename B::vec gate_a,
                           typename B::vec log_a_scale) {
  // In base 2, a = 2^log2(a) needs no ln 2 reduction. The scale is -c·softplus(Λ) ≤ 0; the min holds a
  // caller's stray positive one at a = 1 (the exponential below takes y ≤ 0 only).
  const auto log2_a_scale = B::min(B::mul(log_a_scale, B::set(simd::detail::log2_e)), B::zero());
  return {simd::times_sigmoid<B>(x, gate_x), simd::times_sigmoid<B>(log2_a_scale, gate_a)};
}

// h_t from h_{t-1} and the gates.
template <simd::VectorBackend B>
typename B::vec rg_lru_update(typename B::vec input, typename B::vec log2_a, typename B::vec h, bool reset) {
  if (reset) return input;  // a = 0, normaliser 1
  // One exp gives both: a = 1 + e and 1 - a² = -e · (2 + e) with e = a - 1 = 2^log2(a) - 1, which stays
  // accurate as a → 1, where 1 - a·a would cancel.
  const auto e = simd::exp2m1_nonpositive<B>(log2_a);
  const auto normaliser = B::sqrt(B::mul(e, B::sub(B::set(-2.0f), e)));
  return B::fma(e, h, B::fma(input, normaliser, h));  // (1 + e) · h + input · normaliser
}

// Time outer and channels inner: each step reads whole contiguous rows of its channel range (walking one
// channel vector down the rows, a row apart, would cost a TLB miss and a conflict-evicted prefetch per
// load). The state lives in h, which stays in L1. With a multiplier, out = h_t ⊙ multiplier (the recurrent
// block's output gate).
//
// Each row is taken a block of channels at a time in two passes: the gates for the whole block into two
// buffers in L1, then the recurrence from them. Fused into one loop, a channel vector's step would be one
// dependent chain of about 110 cycles (two exponentials and a division, then a third exponential and a
// square root) that the out-of-order window overlaps with too few others; each pass is a chain of about
// half that length whose iterations are independent (docs/performance.md, "Design notes"). Channels past
// the last whole vector take the same two halves one lane at a time.
template <simd::VectorBackend B>
void rg_lru_rows(const float* x, const float* gate_x, const float* gate_a, const float* log_a_scale,
                 const int* segment_pos, std::size_t tokens, std::size_t width, float* h, const float* multiplier,
                 float* out, std::size_t c_begin, std::size_t c_end) {
  constexpr std::size_t L = B::lanes;
  using One = simd::Scalar;
  alignas(64) float input[rg_lru_block_floats], log2_a[rg_lru_block_floats];
  // The inputs are fetched in software, ahead along this call's own walk (its channel range, row after
  // row): with the hardware prefetcher alone the loads stalled the arithmetic. Over whole rows the walk is
  // one contiguous stream per array, which the hardware prefetcher follows into L2, so the software one
  // only brings lines into L1, just ahead. Over part of each row (channels split across threads) the walk
  // jumps a row every few KiB and the hardware prefetcher restarts at each jump; there lines are fetched
  // further ahead and into L2 only: that many lines in flight into L1 would likely exceed its
  // outstanding-miss slots.
  constexpr std::size_t floats_per_line = 64 / sizeof(float);
  const std::size_t span = c_end - c_begin;
  const bool whole_rows = span == width;
  const std::size_t distance = whole_rows ? rg_lru_prefetch_floats : rg_lru_prefetch_floats_partial_rows;
  const std::size_t ahead_rows = span ? distance / span : 0;
  const std::size_t ahead_cols = span ? distance % span : 0;
  const auto fetch = [whole_rows](const float* p) {
    if (whole_rows) simd::prefetch(p);
    else simd::prefetch_to_outer_cache(p);
  };
  const std::size_t vector_end = c_begin + span / L * L;
  for (std::size_t t = 0; t < tokens; ++t) {
    const bool reset = segment_pos[t] == 0;
    const std::size_t row = t * width;
    std::size_t ahead_t = t + ahead_rows, ahead_c = c_begin + ahead_cols;
    for (std::size_t block = c_begin; block < vector_end; block += rg_lru_block_floats) {
      const std::size_t block_end = std::min(block + rg_lru_block_floats, vector_end);
      for (std::size_t c = block; c < block_end; c += L) {
        if (ahead_t < tokens && ahead_c % floats_per_line < L) {  // once per cache line, whatever the lanes
          const std::size_t ahead = ahead_t * width + ahead_c;
          fetch(x + ahead);
          fetch(gate_x + ahead);
          fetch(gate_a + ahead);
          if (multiplier) fetch(multiplier + ahead);
        }
        ahead_c += L;
        if (ahead_c >= c_end) {
          ahead_c = c_begin + (ahead_c - c_end);
          ++ahead_t;
        }
        const std::size_t at = row + c;
        const auto gates = rg_lru_gates<B>(B::load(x + at), B::load(gate_x + at), B::load(gate_a + at),
                                           B::load(log_a_scale + c));
        B::store(input + (c - block), gates.input);
        B::store(log2_a + (c - block), gates.log2_a);
      }
      for (std::size_t c = block; c < block_end; c += L) {
        const std::size_t at = row + c;
        const auto state = rg_lru_update<B>(B::load(input + (c - block)), B::load(log2_a + (c - block)),
                                            B::load(h + c), reset);
        B::store(h + c, state);
        B::store(out + at, multiplier ? B::mul(state, B::load(multiplier + at)) : state);
      }
    }
    for (std::size_t c = vector_end; c < c_end; ++c) {
      const std::size_t at = row + c;
      const auto gates = rg_lru_gates<One>(x[at], gate_x[at], gate_a[at], log_a_scale[c]);
      const float state = rg_lru_update<One>(gates.input, gates.log2_a, h[c], reset);
      h[c] = state;
      out[at] = multiplier ? state * multiplier[at] : state;
    }
  }
}
}  // namespace detail

// The scan over channels [c_begin, c_end); arguments as in reference::rg_lru_scan.
template <simd::VectorBackend B>
void rg_lru_scan(const float* x, const float* gate_x, const float* gate_a, const float* log_a_scale,
                 const int* segment_pos, std::size_t tokens, std::size_t width, float* h, float* y,
                 std::size_t c_begin, std::size_t c_end) {
  detail::rg_lru_rows<B>(x, gate_x, gate_a, log_a_scale, segment_pos, tokens, width, h, nullptr, y, c_begin, c_end);
}

template <simd::VectorBackend B>
void rg_lru_scan(const float* x, const float* gate_x, const float* gate_a, const float* log_a_scale,
                 const int* segment_pos, std::size_t tokens, std::size_t width, float* h, float* y) {
  rg_lru_scan<B>(x, gate_x, gate_a, log_a_scale, segment_pos, tokens, width, h, y, 0, width);
}

namespace reference {
// The recurrent block's RG-LRU and its output gate in one: out = rg_lru(x) ⊙ multiplier.
inline void rg_lru_gated(const float* x, const float* gate_x, const float* gate_a, const float* log_a_scale,
                         const int* segment_pos, std::size_t tokens, std::size_t width, float* h,
                         const float* multiplier, float* out) {
  std::vector<float> y(tokens * width);
  rg_lru_scan(x, gate_x, gate_a, log_a_scale, segment_pos, tokens, width, h, y.data());
  for (std::size_t i = 0; i < tokens * width; ++i) out[i] = y[i] * multiplier[i];
}
}  // namespace reference

// The scan fused with what surrounds it in the recurrent block: both gates' sigmoids, the decay, the
// normaliser, the recurrence and the output gate (out = h_t ⊙ multiplier, the GeLU branch) in one pass
// that reads x, the two gate pre-activations and the multiplier once and writes out once, channel
// vectors across, time down (never vectorised across time). Channels [c_begin, c_end); h is updated.
// out may alias multiplier. Same arithmetic per element as rg_lru_scan followed by a multiply.
template <simd::VectorBackend B>
void rg_lru_gated(const float* x, const float* gate_x, const float* gate_a, const float* log_a_scale,
                  const int* segment_pos, std::size_t tokens, std::size_t width, float* h, const float* multiplier,
                  float* out, std::size_t c_begin, std::size_t c_end) {
  detail::rg_lru_rows<B>(x, gate_x, gate_a, log_a_scale, segment_pos, tokens, width, h, multiplier, out, c_begin,
                         c_end);
}

}  // namespace griffin::kernels
