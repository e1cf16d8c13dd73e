// Multi-query attention (one key/value head shared by all query heads) over a set of keys with positions:
// a query at position p attends to the keys of its own document with p - window <= position <= p
// (inclusive window: W + 1 keys; spec "Local (and global) multi-query attention"). Global attention is
// the same with window = griffin::dynamic. Softmax in float32 over the scaled dot products.
//
// Keys come as a few contiguous segments (the KV ring may wrap, and a prefill chunk adds its own keys),
// each with per-key positions and document ids, so neither prefill nor decode copies the cache.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <utility>
#include <vector>

#include "griffin/extent.hpp"
#include "griffin/kernels/gemm.hpp"
#include "griffin/simd/backend.hpp"

namespace griffin::kernels {

struct KeySegment {
  const float* keys = nullptr;    // [count, head_dim]
  const float* values = nullptr;  // [count, head_dim]
  const int* positions = nullptr;  // [count] position of each key in the stream
  const int* documents = nullptr;  // [count] document id, or null: all in the query's document
  std::size_t count = 0;
};

struct QueryRows {
  const float* queries = nullptr;  // [count, heads, head_dim], RoPE applied
  const int* positions = nullptr;  // [count]
  const int* documents = nullptr;  // [count] or null
  std::size_t count = 0;
};

inline bool key_visible(int query_pos, int query_doc, int key_pos, int key_doc, std::size_t window) {
  if (key_pos > query_pos || key_doc != query_doc) return false;
  return window == std::numeric_limits<std::size_t>::max() || std::size_t(query_pos - key_pos) <= window;
}

namespace reference {
// out: [queries.count, heads, head_dim].
inline void mqa_attention(QueryRows queries, std::span<const KeySegment> segments, std::size_t heads,
                          std::size_t head_dim, std::size_t window, float* out) {
  const double scale = 1.0 / std::sqrt(double(head_dim));
  for (std::size_t t = 0; t < queries.count; ++t) {
    const int qdoc = queries.documents ? queries.documents[t] : 0;
    for (std::size_t h = 0; h < heads; ++h) {
      const float* q = queries.queries + (t * heads + h) * head_dim;
      double max_score = -std::numeric_limits<double>::infinity();
      for (const auto& seg : segments)
        for (std::size_t s = 0; s < seg.count; ++s) {
          if (!key_visible(queries.positions[t], qdoc, seg.positions[s], seg.documents ? seg.documents[s] : 0, window)) continue;
          double dot = 0;
          for (std::size_t d = 0; d < head_dim; ++d) dot += double(q[d]) * seg.keys[s * head_dim + d];
          max_score = std::max(max_score, dot * scale);
        }
      double total = 0;
      std::vector<double> acc(head_dim, 0.0);
      for (const auto& seg : segments)
        for (std::size_t s = 0; s < seg.count; ++s) {
          if (!key_visible(queries.positions[t], qdoc, seg.positions[s], seg.documents ? seg.documents[s] : 0, window)) continue;
          double dot = 0;
          for (std::size_t d = 0; d < head_dim; ++d) dot += double(q[d]) * seg.keys[s * head_dim + d];
          const double p = std::exp(dot * scale - max_score);
          total += p;
          for (std::size_t d = 0; d < head_dim; ++d) acc[d] += p * seg.values[s * head_dim + d];
        }
      for (std::size_t d = 0; d < head_dim; ++d) out[(t * heads + h) * head_dim + d] = float(acc[d] / total);
    }
  }
}
}  // namespace reference

// ---- Tiled attention (flash-attention style) ----
//
// Query rows are (token, head) pairs, row r = token r / heads, head r % heads: with one key/value head
// every row of a tile is scored against the same keys, so a tile of query rows × a tile of keys is one
// small gemm (S = Q · Kᵀ), and the weighted values another (O += P · V), with an online softmax between
// (running max m and sum l per row, O rescaled when m grows). Key tiles that no query of the tile can see
// (all in its future, or all older than the window) are skipped without being read, so a long chunk
// costs about what its window allows instead of every query scanning every key.
//
// Each row's result depends only on its own scores, whatever rows share its tile: a key tile a row cannot
// see adds exact zeros, so results are bit-identical for any split of the rows across threads.

inline constexpr std::size_t attention_row_tile = 240;  // query rows per tile (24 tokens of 10 heads)
inline constexpr std::size_t attention_key_tile = 128;  // keys per tile

namespace detail {
struct AttentionScratch {
  PackBuffer scores, row_max, row_sum;
};

// row[s] = exp(row[s] - max) for s < n, in place; returns their sum (the softmax's denominator).
template <simd::VectorBackend B>
float exp_shifted_sum(float* row, std::size_t n, float max) {
  constexpr std::size_t L = B::lanes;
  const auto mv = B::set(max);
  auto sum_v = B::zero();
  std::size_t s = 0;
  for (; s + L <= n; s += L) {
    const auto p = B::exp(B::sub(B::load(row + s), mv));
    B::store(row + s, p);
    sum_v = B::add(sum_v, p);
  }
  float sum = B::reduce_add(sum_v);
  for (; s < n; ++s) {
    row[s] = std::exp(row[s] - max);
    sum += row[s];
  }
  return sum;
}
}  // namespace detail

// Query rows [r_begin, r_end) of queries.count · heads; out: [queries.count, heads, head_dim].
template <simd::VectorBackend B>
void mqa_attention_rows(QueryRows queries, std::span<const KeySegment> segments, std::size_t heads,
                        std::size_t head_dim, std::size_t window, float* out, std::size_t r_begin, std::size_t r_end) {
  constexpr float neg_inf = -std::numeric_limits<float>::infinity();
  const std::size_t Dh = head_dim;
  const float scale = 1.0f / std::sqrt(float(head_dim));
  const bool unbounded = window == std::numeric_limits<std::size_t>::max();
  thread_local detail::AttentionScratch scratch;
  float* S = scratch.scores.get(attention_row_tile * attention_key_tile);
  float* m = scratch.row_max.get(attention_row_tile);
  float* l = scratch.row_sum.get(attention_row_tile);

  for (std::size_t r0 = r_begin; r0 < r_end; r0 += attention_row_tile) {
    const std::size_t rows = std::min(attention_row_tile, r_end - r0);
    float* O = out + r0 * Dh;
    std::fill(O, O + rows * Dh, 0.0f);
    std::fill(m, m + rows, neg_inf);
    std::fill(l, l + rows, 0.0f);
    int q_min = std::numeric_limits<int>::max(), q_max = std::numeric_limits<int>::min();
    for (std::size_t t = r0 / heads; t <= (r0 + rows - 1) / heads; ++t) {
      q_min = std::min(q_min, queries.positions[t]);
      q_max = std::max(q_max, queries.positions[t]);
    }
    for (const KeySegment& seg : segments) {
      for (std::size_t s0 = 0; s0 < seg.count; s0 += attention_key_tile) {
        const std::size_t nk = std::min(attention_key_tile, seg.count - s0);
        int k_min = std::numeric_limits<int>::max(), k_max = std::numeric_limits<int>::min();
        for (std::size_t s = s0; s < s0 + nk; ++s) {
          k_min = std::min(k_min, seg.positions[s]);
          k_max = std::max(k_max, seg.positions[s]);
        }
        if (k_min > q_max) continue;  // every key is in every query's future
        if (!unbounded && std::int64_t(q_min) - k_max > std::int64_t(window)) continue;  // all too old
        // S = Q · Kᵀ for the tile (keys are [count, head_dim]: the nn.Linear layout gemm takes).
        gemm_strided<B>(queries.queries + r0 * Dh, Dh, rows, MatrixView<float>{seg.keys + s0 * Dh, nk, Dh}, nullptr, S,
                        nk, 0, nk, false);
        for (std::size_t i = 0; i < rows; ++i) {
          const std::size_t t = (r0 + i) / heads;
          const int qpos = queries.positions[t];
          const int qdoc = queries.documents ? queries.documents[t] : 0;
          float* srow = S + i * nk;
          const bool all_visible = !seg.documents && !queries.documents && k_max <= qpos &&
                                   (unbounded || std::int64_t(qpos) - k_min <= std::int64_t(window));
          float row_max = neg_inf;
          for (std::size_t s = 0; s < nk; ++s) {
            if (!all_visible && !key_visible(qpos, qdoc, seg.positions[s0 + s], seg.documents ? seg.documents[s0 + s] : 0,
                                             window)) {
              srow[s] = neg_inf;
              continue;
            }
            srow[s] *= scale;
            row_max = std::max(row_max, srow[s]);
          }
          if (row_max == neg_inf) {  // nothing visible to this row here: it adds exact zeros below
            std::fill(srow, srow + nk, 0.0f);
            continue;
          }
          const float m_new = std::max(m[i], row_max);
          const float alpha = std::exp(m[i] - m_new);  // 0 for the first visible tile (m = -inf)
          const float sum = detail::exp_shifted_sum<B>(srow, nk, m_new);
          if (alpha != 1.0f) {
            float* orow = O + i * Dh;
            for (std::size_t d = 0; d < Dh; ++d) orow[d] *= alpha;
          }
          l[i] = std::fma(l[i], alpha, sum);
          m[i] = m_new;
        }
        // O += P · V (values are [count, head_dim]: the transposed view of a [head_dim, count] matrix).
        gemm_strided<B>(S, nk, rows, TransposedMatrixView{seg.values + s0 * Dh, Dh, nk, Dh}, nullptr, O, Dh, 0, Dh,
                        true);
      }
    }
    for (std::size_t i = 0; i < rows; ++i) {
      if (!(l[i] > 0.0f)) continue;  // no visible key at all: the output stays 0
      const float inv = 1.0f / l[i];
      float* orow = O + i * Dh;
      for (std::size_t d = 0; d < Dh; ++d) orow[d] *= inv;
    }
  }
}

// ---- A few query rows (decode) ----
//
// A decode step has one token's heads as its query rows: too few for the tiles above to pay for their
// matmuls. Scores are dot products, a key tile at a time for a group of rows (so a tile of keys is read from
// memory once for all heads), with the same online softmax as above; everything lives in fixed buffers on
// the stack, so a decode step allocates nothing whichever thread runs it. The head width may be a
// compile-time extent, which unrolls the dot products and the value sums.

inline constexpr std::size_t attention_decode_max_tokens = 4;  // up to this many query tokens take this path
inline constexpr std::size_t attention_decode_key_tile = 64;
inline constexpr std::size_t attention_decode_row_group = 32;

template <simd::VectorBackend B, std::size_t Dh>
void mqa_attention_decode_rows(QueryRows queries, std::span<const KeySegment> segments, std::size_t heads,
                               Size<Dh> head_dim, std::size_t window, float* out, std::size_t r_begin,
                               std::size_t r_end) {
  constexpr std::size_t L = B::lanes, KT = attention_decode_key_tile, RG = attention_decode_row_group;
  constexpr float neg_inf = -std::numeric_limits<float>::infinity();
  const std::size_t vector_end = head_dim / L * L;
  const float scale = 1.0f / std::sqrt(float(head_dim));
  const auto each = [&]<std::size_t... Q>(std::index_sequence<Q...>, auto&& f) { (f(std::integral_constant<std::size_t, Q>{}), ...); };
  auto dot = [&](const float* q, const float* k) {
    auto acc = B::zero();
    for (std::size_t d = 0; d < vector_end; d += L) acc = B::fma(B::load(q + d), B::load(k + d), acc);
    float total = B::reduce_add(acc);
    for (std::size_t d = vector_end; d < head_dim; ++d) total = std::fma(q[d], k[d], total);
    return total;
  };
  // o = alpha · o + Σ_s p[s] · v_s over a key tile, G vectors of o in registers at a time; each element is one
  // chain over the keys in order.
  const auto add_values = [&]<std::size_t G>(std::integral_constant<std::size_t, G>, float* o, float alpha,
                                             const float* p, const float* v, std::size_t n) {
    typename B::vec acc[G];
    const auto a = B::set(alpha);
    each(std::make_index_sequence<G>{}, [&](auto q) { acc[q] = B::mul(B::load(o + q * L), a); });
    for (std::size_t s = 0; s < n; ++s) {
      if (p[s] == 0.0f) continue;  // invisible (or too small to matter in float)
      const auto ps = B::set(p[s]);
      each(std::make_index_sequence<G>{}, [&](auto q) { acc[q] = B::fma(ps, B::load(v + s * head_dim + q * L), acc[q]); });
    }
    each(std::make_index_sequence<G>{}, [&](auto q) { B::store(o + q * L, acc[q]); });
  };
  for (std::size_t g0 = r_begin; g0 < r_end; g0 += RG) {
    const std::size_t rows = std::min(RG, r_end - g0);
    float m[RG], l[RG];
    alignas(64) float scores[KT];
    for (std::size_t i = 0; i < rows; ++i) {
      m[i] = neg_inf, l[i] = 0.0f;
      std::fill_n(out + (g0 + i) * head_dim, std::size_t(head_dim), 0.0f);
    }
    for (const KeySegment& seg : segments)
      for (std::size_t s0 = 0; s0 < seg.count; s0 += KT) {
        const std::size_t n = std::min(KT, seg.count - s0);
        for (std::size_t i = 0; i < rows; ++i) {
          const std::size_t t = (g0 + i) / heads;
          const int qpos = queries.positions[t], qdoc = queries.documents ? queries.documents[t] : 0;
          const float* q = queries.queries + (g0 + i) * head_dim;
          float tile_max = neg_inf;
          for (std::size_t s = 0; s < n; ++s) {
            const std::size_t key = s0 + s;
            scores[s] = key_visible(qpos, qdoc, seg.positions[key], seg.documents ? seg.documents[key] : 0, window)
                            ? dot(q, seg.keys + key * head_dim) * scale
                            : neg_inf;
            tile_max = std::max(tile_max, scores[s]);
          }
          if (tile_max == neg_inf) continue;  // nothing visible to this row in this tile
          const float m_new = std::max(m[i], tile_max);
          const float alpha = std::exp(m[i] - m_new);  // 0 for the row's first visible tile
          l[i] = std::fma(l[i], alpha, detail::exp_shifted_sum<B>(scores, n, m_new));
          m[i] = m_new;
          float* o = out + (g0 + i) * head_dim;
          const float* v = seg.values + s0 * head_dim;
          std::size_t d = 0;
          for (; d + 8 * L <= vector_end; d += 8 * L) add_values(std::integral_constant<std::size_t, 8>{}, o + d, alpha, scores, v + d, n);
          for (; d + 2 * L <= vector_end; d += 2 * L) add_values(std::integral_constant<std::size_t, 2>{}, o + d, alpha, scores, v + d, n);
          for (; d < vector_end; d += L) add_values(std::integral_constant<std::size_t, 1>{}, o + d, alpha, scores, v + d, n);
          for (; d < head_dim; ++d) {  // one lane at a time, the same chain
            float acc = o[d] * alpha;
            for (std::size_t s = 0; s < n; ++s)
              if (scores[s] != 0.0f) acc = std::fma(scores[s], v[s * head_dim + d], acc);
            o[d] = acc;
          }
        }
      }
    for (std::size_t i = 0; i < rows; ++i) {
      if (!(l[i] > 0.0f)) continue;  // no visible key at all: the output stays 0
      const float inv = 1.0f / l[i];
      float* o = out + (g0 + i) * head_dim;
      for (std::size_t d = 0; d < head_dim; ++d) o[d] *= inv;
    }
  }
}

// Query rows [r_begin, r_end) of queries.count · heads, by whichever path suits the number of query tokens.
template <simd::VectorBackend B, std::size_t Dh>
void mqa_attention(QueryRows queries, std::span<const KeySegment> segments, std::size_t heads, Size<Dh> head_dim,
                   std::size_t window, float* out, std::size_t r_begin, std::size_t r_end) {
  if (queries.count <= attention_decode_max_tokens)
    mqa_attention_decode_rows<B>(queries, segments, heads, head_dim, window, out, r_begin, r_end);
  else
    mqa_attention_rows<B>(queries, segments, heads, head_dim, window, out, r_begin, r_end);
}

// All query tokens and heads.
template <simd::VectorBackend B>
void mqa_attention(QueryRows queries, std::span<const KeySegment> segments, std::size_t heads, std::size_t head_dim,
                   std::size_t window, float* out) {
  mqa_attention<B>(queries, segments, heads, Size<dynamic>(head_dim), window, out, 0, queries.count * heads);
}

}  // namespace griffin::kernels
