// The prefill matmul Y[T, N] = X[T, K] · Wᵀ + b, in the GotoBLAS/BLIS structure: W is packed K-block by
// N-block (kc × nc, widened to f32 on the way, so bf16 and int8 weights cost nothing in the inner loop), X
// is packed mc × kc, and a micro-kernel keeps an mr × nr tile of Y (6 rows × two vectors: 12 accumulators)
// in registers while it walks the K block.
//
// Every output is one sequential chain acc = fma(x[k], w[n, k], acc) over k = 0 … K-1 starting from the bias
// (int8: from 0 over the stored integers, then y = fma(acc, scale, bias)): blocking K only stores and
// reloads acc between blocks, so the result depends neither on the tiling, nor on how outputs are split
// across threads, nor on the backend, and reference::matmul (that chain written as a loop) and gemv
// reproduce it bit for bit.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <type_traits>

#include "griffin/dtype.hpp"
#include "griffin/kernels/activation_layout.hpp"
#include "griffin/kernels/matrix_view.hpp"
#include "griffin/simd/backend.hpp"

namespace griffin::kernels {

namespace detail {
// The stored weight (n, k) as the chain multiplies it (int8 unscaled), for each kind of right operand.
template <class W, std::size_t R, std::size_t C>
float weight_value(PanelMatrix<W, R, C> w, std::size_t n, std::size_t k) {
  return weight_to_f32(w.at(n, k));
}
inline float weight_value(MatrixView<float> w, std::size_t n, std::size_t k) { return w.row(n)[k]; }
inline float weight_value(TransposedMatrixView w, std::size_t n, std::size_t k) { return w.at(n, k); }

template <class View>
inline constexpr bool scaled_weights = false;
template <class W, std::size_t R, std::size_t C>
inline constexpr bool scaled_weights<PanelMatrix<W, R, C>> = PanelMatrix<W, R, C>::scaled;
}  // namespace detail

namespace reference {
// The specification of every matmul (gemm and gemv), element by element: one fused multiply-add chain per
// output. x: [tokens, w.cols]; y: [tokens, w.rows]; bias may be null.
template <class View>
void matmul(const float* x, std::size_t tokens, View w, const float* bias, float* y) {
  for (std::size_t t = 0; t < tokens; ++t)
    for (std::size_t n = 0; n < w.rows; ++n) {
      const float b = bias ? bias[n] : 0.0f;
      float acc = detail::scaled_weights<View> ? 0.0f : b;
      for (std::size_t k = 0; k < w.cols; ++k) acc = std::fma(x[t * w.cols + k], detail::weight_value(w, n, k), acc);
      if constexpr (detail::scaled_weights<View>) acc = std::fma(acc, w.scales[n], b);
      y[t * w.rows + n] = acc;
    }
}
}  // namespace reference

// Block sizes for Zen 3/4/5-class cores (32-48 KiB L1d, 512 KiB-1 MiB L2, a shared L3). The micro-kernel
// loads two vectors of W per 2 × mr FMAs, few enough that its W micro-panel (kc × nr floats, 64 KiB at
// kc = 512 with 16 lanes) can stream from L2. kc is long because each K block reloads and stores the Y
// tiles, and Y is larger than the caches. The X block (mc × kc) stays in L2 for every panel; nc bounds the
// packed W block (docs/performance.md, "Design notes"). A caller may pass other values.
template <simd::VectorBackend B, std::size_t KcBytes = 65536, std::size_t Mc = 288, std::size_t Nc = 1024>
struct GemmBlocking {
  static constexpr std::size_t mr = 6;
  static constexpr std::size_t nr = 2 * B::lanes;
  static constexpr std::size_t kc = std::clamp<std::size_t>(KcBytes / (nr * sizeof(float)), 64, 512);
  static constexpr std::size_t mc = Mc / mr * mr;
  static constexpr std::size_t nc = std::max<std::size_t>(Nc / nr * nr, nr);
};

namespace detail {

// Per-thread packing buffers, grown once and reused: a prefill calls gemm hundreds of times and the
// buffers are a few MiB, so allocating per call would cost page faults every time.
struct PackBuffer {
  float* get(std::size_t floats) {
    if (floats > size) {
      data.reset(static_cast<float*>(::operator new[](floats * sizeof(float), std::align_val_t{64})));
      size = floats;
    }
    return data.get();
  }
  struct Free {
    void operator()(float* p) const { ::operator delete[](p, std::align_val_t{64}); }
  };
  std::unique_ptr<float, Free> data;
  std::size_t size = 0;
};

// Zeros standing in for the rows a partial panel does not have (kc is at most 512).
alignas(64) inline constexpr float zero_row[512] = {};

// W rows [n0, n0 + nb) × columns [k0, k0 + kb) as packed panels of NR outputs, each k-major ([kb][NR]) and
// zero-padded to NR, so the micro-kernel reads one contiguous stream. From weight panels every packed row
// is a run of whole vectors copied (and widened) from a panel.
template <simd::VectorBackend B, std::size_t NR, class W, std::size_t R, std::size_t C>
void pack_weights(PanelMatrix<W, R, C> w, std::size_t n0, std::size_t nb, std::size_t k0, std::size_t kb, float* out) {
  constexpr std::size_t L = B::lanes, run = std::min(NR, panel_width);
  const std::size_t panels = w.panels();
  for (std::size_t p = 0; p < nb; p += NR) {
    float* packed = out + p * kb;
    for (std::size_t j = 0; j < NR; j += run) {
      const std::size_t n = n0 + p + j, q = n / panel_width;
      if (q >= panels) {
        for (std::size_t k = 0; k < kb; ++k) std::fill_n(packed + k * NR + j, run, 0.0f);
        continue;
      }
      const W* src = w.panel(q) + k0 * panel_width + n % panel_width;
      for (std::size_t k = 0; k < kb; ++k)
        for (std::size_t v = 0; v < run; v += L)
          B::store(packed + k * NR + j + v, load_weights<B>(src + k * panel_width + v));
    }
  }
}

// Weights kept [in, out] (TransposedMatrixView) are k-major already: each k is a contiguous run of outputs.
template <simd::VectorBackend B, std::size_t NR>
void pack_weights(TransposedMatrixView w, std::size_t n0, std::size_t nb, std::size_t k0, std::size_t kb, float* out) {
  for (std::size_t p = 0; p < nb; p += NR) {
    float* panel = out + p * kb;
    const std::size_t cols = std::min(NR, nb - p);
    for (std::size_t k = 0; k < kb; ++k) {
      std::copy_n(w.data + (k0 + k) * w.ld + n0 + p, cols, panel + k * NR);
      std::fill(panel + k * NR + cols, panel + (k + 1) * NR, 0.0f);
    }
  }
}

// A row-major right operand (attention's keys) is transposed into the panels eight rows at a time.
template <simd::VectorBackend B, std::size_t NR>
void pack_weights(MatrixView<float> w, std::size_t n0, std::size_t nb, std::size_t k0, std::size_t kb, float* out) {
  for (std::size_t p = 0; p < nb; p += NR) {
    float* panel = out + p * kb;
    for (std::size_t r = 0; r < NR; r += 8) {
      const float* rows[8];
      const std::size_t count = std::min<std::size_t>(8, NR - r);
      for (std::size_t i = 0; i < count; ++i) {
        const std::size_t n = p + r + i;
        rows[i] = n < nb ? w.row(n0 + n) + k0 : zero_row;
      }
      simd::transpose_rows<B>(rows, count, kb, panel + r, NR);
    }
  }
}

// X rows [m0, m0 + mb) × columns [k0, k0 + kb) as panels of MR rows, k-major ([kb][MR]), zero-padded. Each
// panel is copied a run of columns at a time, a run being contiguous within each row (the whole K block for
// a row-major X, up to a head's end for a head-major one). Eight rows are transposed at a time, the ones
// past MR zeros whose columns the next column's overwrite: `out` needs 8 floats of slack at the end.
template <simd::VectorBackend B, std::size_t MR>
void pack_inputs(const float* x, ActivationLayout layout, std::size_t m0, std::size_t mb, std::size_t k0,
                 std::size_t kb, float* out) {
  static_assert(MR <= 8);
  for (std::size_t p = 0; p < mb; p += MR) {
    float* panel = out + p * kb;
    const std::size_t rows = std::min(MR, mb - p);
    for (std::size_t k = 0; k < kb;) {
      const std::size_t run = std::min(kb - k, layout.run_from(k0 + k));
      const float* src[8];
      for (std::size_t i = 0; i < 8; ++i) src[i] = i < rows ? x + layout.offset(m0 + p + i, k0 + k) : zero_row;
      simd::transpose_rows<B>(src, 8, run, panel + k * MR, MR);
      k += run;
    }
  }
}

// c[MR][NR] (row stride ldc) = (start or c) + a · b over kb, where a is an MR-row panel and b an NR-output
// panel; with `first` the chain starts from `start` (the bias, or zero when null), else from c. With
// `scale` (the last K block of int8 weights) the result is fma(acc, scale, end_bias).
template <simd::VectorBackend B, std::size_t MR, std::size_t NR>
inline void gemm_micro_tile(std::size_t kb, const float* a, const float* b, float* c, std::size_t ldc,
                            const float* start, bool first, const float* scale, const float* end_bias) {
  constexpr std::size_t L = B::lanes;
  constexpr std::size_t NV = NR / L;
  typename B::vec acc[MR][NV];
  for (std::size_t i = 0; i < MR; ++i)
    for (std::size_t j = 0; j < NV; ++j)
      acc[i][j] = !first ? B::load(c + i * ldc + j * L) : start ? B::load(start + j * L) : B::zero();
  for (std::size_t k = 0; k < kb; ++k) {
    typename B::vec bv[NV];
    for (std::size_t j = 0; j < NV; ++j) bv[j] = B::load(b + k * NR + j * L);
    for (std::size_t i = 0; i < MR; ++i) {
      const auto av = B::set(a[k * MR + i]);
      for (std::size_t j = 0; j < NV; ++j) acc[i][j] = B::fma(av, bv[j], acc[i][j]);
    }
  }
  if (scale)
    for (std::size_t i = 0; i < MR; ++i)
      for (std::size_t j = 0; j < NV; ++j)
        acc[i][j] = B::fma(acc[i][j], B::load(scale + j * L), end_bias ? B::load(end_bias + j * L) : B::zero());
  for (std::size_t i = 0; i < MR; ++i)
    for (std::size_t j = 0; j < NV; ++j) B::store(c + i * ldc + j * L, acc[i][j]);
}

}  // namespace detail

// The general form: x and y in any ActivationLayout (row-major at any stride, or head-major), and with
// `accumulate` each chain starts from y's current value instead of the bias (y += x · Wᵀ). Every output is
// the same chain whatever the layouts: they only move where X is read and Y written. W is a PanelMatrix,
// a TransposedMatrixView or a MatrixView<float>; outputs [n_begin, n_end).
//
// Kept out of line: inlined into a caller whose sizes are constants (a test's), GCC 12 follows paths no call
// takes and warns of out-of-bounds stores (-Warray-bounds); a call costs nothing beside a matmul.
template <simd::VectorBackend B, class Blocking = GemmBlocking<B>, class View>
[[gnu::noinline]] void gemm_in_layouts(const float* x, ActivationLayout x_layout, std::size_t tokens, View w,
                                       const float* bias, float* y, ActivationLayout y_layout, std::size_t n_begin,
                                       std::size_t n_end, bool accumulate) {
  constexpr std::size_t MR = Blocking::mr, NR = Blocking::nr;
  constexpr bool scaled = detail::scaled_weights<View>;
  static_assert(!is_panel_matrix<View> || NR % panel_width == 0 || panel_width % NR == 0,
                "packed panels are whole weight panels or parts of one");
  const std::size_t K = w.cols;
  if (tokens == 0 || n_begin >= n_end) return;
  if (accumulate) bias = nullptr;
  if (K == 0) {  // an empty sum: just the bias
    if (!accumulate)
      for (std::size_t t = 0; t < tokens; ++t)
        for (std::size_t n = n_begin; n < n_end; ++n) y[y_layout.offset(t, n)] = bias ? bias[n] : 0.0f;
    return;
  }
  thread_local detail::PackBuffer w_buffer, x_buffer;
  const std::size_t nc_max = std::min(Blocking::nc, (n_end - n_begin + NR - 1) / NR * NR);
  const std::size_t mc_max = std::min(Blocking::mc, (tokens + MR - 1) / MR * MR);
  float* packed_w = w_buffer.get(Blocking::kc * nc_max);
  float* packed_x = x_buffer.get(Blocking::kc * mc_max + 8);
  alignas(64) float edge[MR * NR];
  alignas(64) float edge_bias[NR];
  alignas(64) float edge_scale[NR];
  const std::size_t ldc = y_layout.ld;

  for (std::size_t jc = n_begin; jc < n_end; jc += Blocking::nc) {
    const std::size_t nb = std::min(Blocking::nc, n_end - jc);
    for (std::size_t pc = 0; pc < K; pc += Blocking::kc) {
      const std::size_t kb = std::min(Blocking::kc, K - pc);
      const bool first = pc == 0 && !accumulate, last = pc + kb == K;
      for (std::size_t ic = 0; ic < tokens; ic += Blocking::mc) {
        const std::size_t mb = std::min(Blocking::mc, tokens - ic);
        detail::pack_inputs<B, MR>(x, x_layout, ic, mb, pc, kb, packed_x);
        for (std::size_t jr = 0; jr < nb; jr += NR) {
          const std::size_t cols = std::min(NR, nb - jr);
          // W is packed a panel at a time during the first row block, just before the panel's first use:
          // it is still in L2 for it.
          if (ic == 0) detail::pack_weights<B, NR>(w, jc + jr, cols, pc, kb, packed_w + jr * kb);
          const float* wp = packed_w + jr * kb;
          // Where the chain starts and how it ends, padded for a partial panel.
          const float* start = first && bias && !scaled ? bias + jc + jr : nullptr;
          const float* scale = nullptr;
          const float* end_bias = nullptr;
          if constexpr (scaled) {
            if (last) {
              scale = w.scales + jc + jr;
              end_bias = bias ? bias + jc + jr : nullptr;
            }
          }
          if (cols < NR) {
            const auto pad = [&](const float*& p, float* buffer) {
              if (!p) return;
              std::fill(buffer, buffer + NR, 0.0f);
              std::copy_n(p, cols, buffer);
              p = buffer;
            };
            pad(start, edge_bias);
            pad(scale, edge_scale);
            if (end_bias) pad(end_bias, edge_bias);
          }
          // The panel's outputs are a contiguous run of each Y row unless it crosses a head of Y.
          const bool panel_in_one_run = y_layout.run_from(jc + jr) >= cols;
          for (std::size_t ir = 0; ir < mb; ir += MR) {
            const std::size_t rows = std::min(MR, mb - ir);
            const float* xp = packed_x + ir * kb;
            if (panel_in_one_run) {
              float* c = y + y_layout.offset(ic + ir, jc + jr);
              // Y is far larger than the caches and every K block reloads its tile, so fetch the next
              // tile's rows while this one computes (the load would otherwise stall the first FMAs).
              if (!first && ir + MR < mb)
                for (std::size_t i = 0; i < MR; ++i)
                  for (std::size_t j = 0; j < NR; j += 64 / sizeof(float)) simd::prefetch_for_write(c + (MR + i) * ldc + j);
              if (rows == MR && cols == NR) {
                detail::gemm_micro_tile<B, MR, NR>(kb, xp, wp, c, ldc, start, first, scale, end_bias);
                continue;
              }
            }
            // A partial tile (or one split between heads) runs in a full-size scratch tile; only its valid
            // part is copied in and out, a run of columns (within one head of Y) at a time.
            const auto copy_tile = [&](bool into_edge) {
              for (std::size_t j = 0; j < cols;) {
                const std::size_t run = panel_in_one_run ? cols - j : std::min(cols - j, y_layout.run_from(jc + jr + j));
                float* c = y + y_layout.offset(ic + ir, jc + jr + j);
                for (std::size_t i = 0; i < rows; ++i)
                  if (into_edge) std::copy_n(c + i * ldc, run, edge + i * NR + j);
                  else std::copy_n(edge + i * NR + j, run, c + i * ldc);
                j += run;
              }
            };
            if (!first) copy_tile(true);
            detail::gemm_micro_tile<B, MR, NR>(kb, xp, wp, edge, NR, start, first, scale, end_bias);
            copy_tile(false);
          }
        }
      }
    }
  }
}

// Rows of x and y at any stride (ldx ≥ w.cols, ldy ≥ n_end).
template <simd::VectorBackend B, class View>
void gemm_strided(const float* x, std::size_t ldx, std::size_t tokens, View w, const float* bias, float* y,
                  std::size_t ldy, std::size_t n_begin, std::size_t n_end, bool accumulate) {
  gemm_in_layouts<B>(x, ActivationLayout::row_major(ldx), tokens, w, bias, y, ActivationLayout::row_major(ldy),
                     n_begin, n_end, accumulate);
}

// y[t, n] = Σ_k x[t, k] · w[n, k] + bias[n] for all tokens and the outputs n in [n_begin, n_end) (callers
// split outputs across threads; any split gives the same bits). x: [tokens, w.cols]; y: [tokens, w.rows].
template <simd::VectorBackend B, class View>
void gemm(const float* x, std::size_t tokens, View w, const float* bias, float* y, std::size_t n_begin,
          std::size_t n_end) {
  gemm_strided<B>(x, w.cols, tokens, w, bias, y, w.rows, n_begin, n_end, false);
}

template <simd::VectorBackend B, class View>
void gemm(const float* x, std::size_t tokens, View w, const float* bias, float* y) {
  gemm<B>(x, tokens, w, bias, y, 0, w.rows);
}

}  // namespace griffin::kernels
