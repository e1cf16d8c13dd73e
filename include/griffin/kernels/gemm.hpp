// The prefill matmul Y[T, N] = X[T, K] · Wᵀ + b with W stored [N, K] (nn.Linear's layout), in the
// GotoBLAS/BLIS structure: W is packed K-block by N-block (kc × nc, widened to f32 on the way, so bf16 and
// int8 weights cost nothing in the inner loop), X is packed mc × kc, and a micro-kernel keeps an
// mr × nr tile of Y (6 rows × two vectors: 12 accumulators) in registers while it walks the K block.
//
// Every output is one sequential chain acc = fma(x[k], w[n, k], acc) over k = 0 … K-1 starting from the
// bias: blocking K only stores and reloads acc between blocks, so the result does not depend on the
// tiling, on how outputs are split across threads, or on the backend, and reference::gemm (that chain
// written as a loop) reproduces it bit for bit.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <type_traits>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "griffin/dtype.hpp"
#include "griffin/kernels/activation_layout.hpp"
#include "griffin/kernels/matrix_view.hpp"
#include "griffin/simd/backend.hpp"

namespace griffin::kernels {

namespace detail {
// The f32 value a matmul uses for weight (n, k): bf16 widened exactly; int8 times its row's scale, rounded
// once (so prefill multiplies by the same float weights whatever the blocking).
inline float weight_value(MatrixView<float> w, std::size_t n, std::size_t k) { return w.row(n)[k]; }
inline float weight_value(MatrixView<bf16> w, std::size_t n, std::size_t k) { return bf16_to_f32(w.row(n)[k]); }
inline float weight_value(Int8MatrixView w, std::size_t n, std::size_t k) {
  return static_cast<float>(w.row(n)[k]) * w.scales[n];
}
inline float weight_value(TransposedMatrixView w, std::size_t n, std::size_t k) { return w.at(n, k); }
}  // namespace detail

namespace reference {
// The specification of gemm, element by element: one fused multiply-add chain per output.
template <class View>
void gemm(const float* x, std::size_t tokens, View w, const float* bias, float* y) {
  for (std::size_t t = 0; t < tokens; ++t)
    for (std::size_t n = 0; n < w.rows; ++n) {
      float acc = bias ? bias[n] : 0.0f;
      for (std::size_t k = 0; k < w.cols; ++k) acc = std::fma(x[t * w.cols + k], detail::weight_value(w, n, k), acc);
      y[t * w.rows + n] = acc;
    }
}
}  // namespace reference

// Block sizes for Zen 3/4-class cores (32 KiB L1d, 512 KiB-1 MiB L2, a shared L3). The micro-kernel loads
// two vectors of W per 2 × mr FMAs, few enough that its W micro-panel (kc × nr floats, 64 KiB at kc = 512
// with 16 lanes) can stream from L2. kc is long because each K block reloads and stores the Y tiles, and Y
// is larger than the caches: at T = 512, N = 7680 that took 13% of the time with kc = 128, 4% with 512. The
// X block (mc × kc, 576 KiB) stays in L2 for every panel. nc = 1024: packing reads W in kc-long pieces of
// rows a row apart, and revisiting 1024 rows per K block rather than 4096 packed 8-20% faster (and made
// gemms of 16-64 tokens up to 25% faster). Each can be overridden at build time (-DGRIFFIN_GEMM_MC=...).
#ifndef GRIFFIN_GEMM_KC_BYTES
#define GRIFFIN_GEMM_KC_BYTES 65536  // one packed W micro-panel, streamed from L2
#endif
#ifndef GRIFFIN_GEMM_MC
#define GRIFFIN_GEMM_MC 288  // rows of X per block, kept in L2
#endif
#ifndef GRIFFIN_GEMM_NC
#define GRIFFIN_GEMM_NC 1024  // outputs per packed W block
#endif
template <simd::VectorBackend B>
struct GemmBlocking {
  static constexpr std::size_t mr = 6;
  static constexpr std::size_t nr = 2 * B::lanes;
  static constexpr std::size_t kc = std::clamp<std::size_t>(GRIFFIN_GEMM_KC_BYTES / (nr * sizeof(float)), 64, 512);
  static constexpr std::size_t mc = GRIFFIN_GEMM_MC / mr * mr;
  static constexpr std::size_t nc = std::max<std::size_t>(GRIFFIN_GEMM_NC / nr * nr, nr);
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

#if defined(__AVX2__)
// Eight weight rows, each as 8 f32 (widened, int8 scaled), transposed to 8 rows of 8 outputs: the packing
// is a transpose, and element by element it costs more than the matmul does at small T.
inline __m256 widen8(const float* p, float) { return _mm256_loadu_ps(p); }
inline __m256 widen8(const bf16* p, float) {
  const __m128i bits = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(bits), 16));
}
inline __m256 widen8(const std::int8_t* p, float scale) {
  const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
  return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes)), _mm256_set1_ps(scale));
}
inline void transpose8_store(__m256 r[8], float* out, std::size_t stride) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xee);
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xee);
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xee);
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xee);
  _mm256_storeu_ps(out + 0 * stride, _mm256_permute2f128_ps(u0, u4, 0x20));
  _mm256_storeu_ps(out + 1 * stride, _mm256_permute2f128_ps(u1, u5, 0x20));
  _mm256_storeu_ps(out + 2 * stride, _mm256_permute2f128_ps(u2, u6, 0x20));
  _mm256_storeu_ps(out + 3 * stride, _mm256_permute2f128_ps(u3, u7, 0x20));
  _mm256_storeu_ps(out + 4 * stride, _mm256_permute2f128_ps(u0, u4, 0x31));
  _mm256_storeu_ps(out + 5 * stride, _mm256_permute2f128_ps(u1, u5, 0x31));
  _mm256_storeu_ps(out + 6 * stride, _mm256_permute2f128_ps(u2, u6, 0x31));
  _mm256_storeu_ps(out + 7 * stride, _mm256_permute2f128_ps(u3, u7, 0x31));
}
#endif

// W rows [n0, n0 + nb) × columns [k0, k0 + kb) as panels of NR outputs, each k-major ([kb][NR]) and
// zero-padded to NR, so the micro-kernel reads one contiguous stream.
template <std::size_t NR>
void pack_weights(TransposedMatrixView w, std::size_t n0, std::size_t nb, std::size_t k0, std::size_t kb, float* out) {
  // Already k-major: each k is a contiguous run of outputs.
  for (std::size_t p = 0; p < nb; p += NR) {
    float* panel = out + p * kb;
    const std::size_t cols = std::min(NR, nb - p);
    for (std::size_t k = 0; k < kb; ++k) {
      const float* src = w.data + (k0 + k) * w.ld + n0 + p;
      std::copy_n(src, cols, panel + k * NR);
      std::fill(panel + k * NR + cols, panel + (k + 1) * NR, 0.0f);
    }
  }
}

template <std::size_t NR, class View>
void pack_weights(View w, std::size_t n0, std::size_t nb, std::size_t k0, std::size_t kb, float* out) {
  for (std::size_t p = 0; p < nb; p += NR) {
    float* panel = out + p * kb;
    const std::size_t cols = std::min(NR, nb - p);
    std::size_t j = 0;
#if defined(__AVX2__)
    // Blocks of 8 outputs × 8 k, transposed in registers (the values are the same as the loop below).
    for (; j + 8 <= cols && NR % 8 == 0; j += 8) {
      const std::remove_cvref_t<decltype(*w.row(0))>* rows[8];
      float scales[8];
      for (std::size_t r = 0; r < 8; ++r) {
        rows[r] = w.row(n0 + p + j + r) + k0;
        scales[r] = row_scale(w, n0 + p + j + r);
      }
      std::size_t k = 0;
      for (; k + 8 <= kb; k += 8) {
        __m256 r8[8];
        for (std::size_t r = 0; r < 8; ++r) r8[r] = widen8(rows[r] + k, scales[r]);
        transpose8_store(r8, panel + k * NR + j, NR);
      }
      for (; k < kb; ++k)
        for (std::size_t r = 0; r < 8; ++r) panel[k * NR + j + r] = weight_to_f32(rows[r][k]) * scales[r];
    }
#endif
    for (; j < cols; ++j) {
      const std::size_t n = n0 + p + j;
      const auto* row = w.row(n) + k0;
      if constexpr (std::is_same_v<View, Int8MatrixView>) {
        const float s = w.scales[n];
        for (std::size_t k = 0; k < kb; ++k) panel[k * NR + j] = static_cast<float>(row[k]) * s;
      } else if constexpr (std::is_same_v<View, MatrixView<bf16>>) {
        for (std::size_t k = 0; k < kb; ++k) panel[k * NR + j] = bf16_to_f32(row[k]);
      } else {
        for (std::size_t k = 0; k < kb; ++k) panel[k * NR + j] = row[k];
      }
    }
    for (std::size_t j = cols; j < NR; ++j)
      for (std::size_t k = 0; k < kb; ++k) panel[k * NR + j] = 0.0f;
  }
}

// Slice `part` of `parts` (at most `max` lines) of the cache lines that W's rows [n0, n0 + nb) × columns
// [k0, k0 + kb) span, as addresses: the gemm fetches the next panel's W a slice per tile of the current one.
template <class View>
std::size_t weight_lines(View w, std::size_t n0, std::size_t nb, std::size_t k0, std::size_t kb, std::size_t part,
                         std::size_t parts, std::size_t max, const char** out) {
  const std::size_t per_row = (kb * sizeof(*w.row(0)) + 63) / 64, total = nb * per_row;
  const std::size_t first = part * total / parts, last = std::min((part + 1) * total / parts, first + max);
  std::size_t n = n0 + first / per_row, line = first % per_row;
  for (std::size_t i = first; i < last; ++i) {
    *out++ = reinterpret_cast<const char*>(w.row(n) + k0) + line * 64;
    if (++line == per_row) line = 0, ++n;
  }
  return last - first;
}
// Stored k-major, W is packed by reading whole lines in order, which the hardware prefetcher follows.
inline std::size_t weight_lines(TransposedMatrixView, std::size_t, std::size_t, std::size_t, std::size_t, std::size_t,
                                std::size_t, std::size_t, const char**) {
  return 0;
}

// X rows [m0, m0 + mb) × columns [k0, k0 + kb) as panels of MR rows, k-major ([kb][MR]), zero-padded.
// Each panel is copied a run of columns at a time, a run being contiguous within each row (the whole K
// block for a row-major X, up to a head's end for a head-major one). `out` needs 8 floats of slack at the
// end (the vector path stores whole 8-float rows).
template <std::size_t MR>
void pack_inputs(const float* x, ActivationLayout layout, std::size_t m0, std::size_t mb, std::size_t k0,
                 std::size_t kb, float* out) {
  for (std::size_t p = 0; p < mb; p += MR) {
    float* panel = out + p * kb;
    const std::size_t rows = std::min(MR, mb - p);
    for (std::size_t k = 0; k < kb;) {
      const std::size_t run = std::min(kb - k, layout.run_from(k0 + k)), ld = layout.ld;
      const float* src = x + layout.offset(m0 + p, k0 + k);  // (row m0 + p + i, column k0 + k + j) is src[i·ld + j]
      float* dst = panel + k * MR;
      std::size_t j = 0;
#if defined(__AVX2__)
      if constexpr (MR <= 8) {
        if (rows == MR) {
          // 8 k at a time: MR rows of 8 transposed to 8 rows of MR, each stored as 8 floats whose last
          // 8 - MR are overwritten by the next k's row (or the next run's or panel's, or land in the slack).
          for (; j + 8 <= run; j += 8) {
            __m256 r8[8];
            for (std::size_t i = 0; i < 8; ++i) r8[i] = i < MR ? _mm256_loadu_ps(src + i * ld + j) : _mm256_setzero_ps();
            transpose8_store(r8, dst + j * MR, MR);
          }
        }
      }
#endif
      for (; j < run; ++j) {
        for (std::size_t i = 0; i < rows; ++i) dst[j * MR + i] = src[i * ld + j];
        for (std::size_t i = rows; i < MR; ++i) dst[j * MR + i] = 0.0f;
      }
      k += run;
    }
  }
}

// c[MR][NR] (row stride ldc) = (bias or c) + a · b over kb, where a is an MR-row panel and b an NR-output
// panel. `bias` non-null means this is the first K block: the chain starts from the bias, not from c.
// The `prefetch` lines (at most kb / 8) are fetched one every 8 k, spread through the FMAs.
template <simd::VectorBackend B, std::size_t MR, std::size_t NR>
inline void gemm_micro_tile(std::size_t kb, const float* a, const float* b, float* c, std::size_t ldc,
                            const float* bias, bool first, const char* const* prefetch = nullptr,
                            std::size_t prefetch_lines = 0) {
  constexpr std::size_t L = B::lanes;
  constexpr std::size_t NV = NR / L;
  typename B::vec acc[MR][NV];
  for (std::size_t i = 0; i < MR; ++i)
    for (std::size_t j = 0; j < NV; ++j)
      acc[i][j] = !first ? B::load(c + i * ldc + j * L) : bias ? B::load(bias + j * L) : B::zero();
  auto step = [&](std::size_t k) {
    typename B::vec bv[NV];
    for (std::size_t j = 0; j < NV; ++j) bv[j] = B::load(b + k * NR + j * L);
    for (std::size_t i = 0; i < MR; ++i) {
      const auto av = B::set(a[k * MR + i]);
      for (std::size_t j = 0; j < NV; ++j) acc[i][j] = B::fma(av, bv[j], acc[i][j]);
    }
  };
  std::size_t k = 0;
  for (std::size_t p = 0; p < prefetch_lines && k + 8 <= kb; ++p) {
    simd::prefetch(prefetch[p]);
    for (std::size_t e = k + 8; k < e; ++k) step(k);
  }
  for (; k < kb; ++k) step(k);
  for (std::size_t i = 0; i < MR; ++i)
    for (std::size_t j = 0; j < NV; ++j) B::store(c + i * ldc + j * L, acc[i][j]);
}

}  // namespace detail

// The general form: x and y in any ActivationLayout (row-major at any stride, or head-major), and with
// `accumulate` each chain starts from y's current value instead of the bias (y += x · Wᵀ). Every output is
// the same chain whatever the layouts: they only move where X is read and Y written.
//
// Kept out of line: inlined into a caller whose sizes are constants (a test's), GCC 12 follows paths no
// call takes and warns of out-of-bounds stores (-Warray-bounds); a call costs nothing beside a matmul.
template <simd::VectorBackend B, class View>
[[gnu::noinline]] void gemm_in_layouts(const float* x, ActivationLayout x_layout, std::size_t tokens, View w, const float* bias,
                     float* y, ActivationLayout y_layout, std::size_t n_begin, std::size_t n_end, bool accumulate) {
  using Blk = GemmBlocking<B>;
  constexpr std::size_t MR = Blk::mr, NR = Blk::nr;
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
  const std::size_t nc_max = std::min(Blk::nc, (n_end - n_begin + NR - 1) / NR * NR);
  const std::size_t mc_max = std::min(Blk::mc, (tokens + MR - 1) / MR * MR);
  float* packed_w = w_buffer.get(Blk::kc * nc_max);
  float* packed_x = x_buffer.get(Blk::kc * mc_max + 8);
  alignas(64) float edge[MR * NR];
  alignas(64) float edge_bias[NR];
  const std::size_t ldc = y_layout.ld;

  for (std::size_t jc = n_begin; jc < n_end; jc += Blk::nc) {
    const std::size_t nb = std::min(Blk::nc, n_end - jc);
    for (std::size_t pc = 0; pc < K; pc += Blk::kc) {
      const std::size_t kb = std::min(Blk::kc, K - pc);
      const bool first = pc == 0 && !accumulate;
      for (std::size_t ic = 0; ic < tokens; ic += Blk::mc) {
        const std::size_t mb = std::min(Blk::mc, tokens - ic);
        detail::pack_inputs<MR>(x, x_layout, ic, mb, pc, kb, packed_x);
        for (std::size_t jr = 0; jr < nb; jr += NR) {
          const std::size_t cols = std::min(NR, nb - jr);
          // W is packed a panel at a time during the first row block, just before the panel's first use: it is
          // still in L2 for it, and the next panel's W can be fetched while this one computes (below).
          if (ic == 0) detail::pack_weights<NR>(w, jc + jr, cols, pc, kb, packed_w + jr * kb);
          const float* wp = packed_w + jr * kb;
          const float* tile_bias = first && bias ? bias + jc + jr : nullptr;
          if (tile_bias && cols < NR) {  // pad the bias of a partial panel
            std::fill(std::begin(edge_bias), std::end(edge_bias), 0.0f);
            std::copy_n(tile_bias, cols, edge_bias);
            tile_bias = edge_bias;
          }
          // The panel's outputs are a contiguous run of each Y row unless it crosses a head of Y.
          const bool panel_in_one_run = y_layout.run_from(jc + jr) >= cols;
          const std::size_t tiles = (mb + MR - 1) / MR, next_cols = jr + NR < nb ? std::min(NR, nb - jr - NR) : 0;
          for (std::size_t ir = 0; ir < mb; ir += MR) {
            const std::size_t rows = std::min(MR, mb - ir);
            // Packing reads W from memory in short runs a whole row apart, which the hardware prefetcher
            // does not follow: the next panel's W is fetched a slice per tile, behind this panel's FMAs.
            const char* lines[Blk::kc / 8];
            const std::size_t line_count =
                ic == 0 && next_cols
                    ? detail::weight_lines(w, jc + jr + NR, next_cols, pc, kb, ir / MR, tiles, kb / 8, lines)
                    : 0;
            const float* xp = packed_x + ir * kb;
            if (panel_in_one_run) {
              float* c = y + y_layout.offset(ic + ir, jc + jr);
              // Y is far larger than the caches and every K block reloads its tile, so fetch the next
              // tile's rows while this one computes (the load would otherwise stall the first FMAs).
              if (!first && ir + MR < mb)
                for (std::size_t i = 0; i < MR; ++i)
                  for (std::size_t j = 0; j < NR; j += 64 / sizeof(float)) simd::prefetch_for_write(c + (MR + i) * ldc + j);
              if (rows == MR && cols == NR) {
                detail::gemm_micro_tile<B, MR, NR>(kb, xp, wp, c, ldc, tile_bias, first, lines, line_count);
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
            detail::gemm_micro_tile<B, MR, NR>(kb, xp, wp, edge, NR, tile_bias, first, lines, line_count);
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
// split outputs across threads; any split gives the same bits). x: [tokens, w.cols]; y: [tokens, w.rows];
// bias may be null. View is MatrixView<float>, MatrixView<bf16>, Int8MatrixView or TransposedMatrixView.
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
