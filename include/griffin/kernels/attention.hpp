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
#include <limits>
#include <span>
#include <vector>

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

namespace detail {
template <simd::VectorBackend B>
float dot(const float* a, const float* b, std::size_t n) {
  constexpr std::size_t L = B::lanes;
  auto acc0 = B::zero(), acc1 = B::zero();
  std::size_t i = 0;
  for (; i + 2 * L <= n; i += 2 * L) {
    acc0 = B::fma(B::load(a + i), B::load(b + i), acc0);
    acc1 = B::fma(B::load(a + i + L), B::load(b + i + L), acc1);
  }
  for (; i + L <= n; i += L) acc0 = B::fma(B::load(a + i), B::load(b + i), acc0);
  float sum = B::reduce_add(B::add(acc0, acc1));
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

// y += p · x
template <simd::VectorBackend B>
void axpy(float p, const float* x, float* y, std::size_t n) {
  constexpr std::size_t L = B::lanes;
  const auto pv = B::set(p);
  std::size_t i = 0;
  for (; i + L <= n; i += L) B::store(y + i, B::fma(pv, B::load(x + i), B::load(y + i)));
  for (; i < n; ++i) y[i] += p * x[i];
}
}  // namespace detail

// Query rows [t_begin, t_end) (so callers can split queries across threads). `scores` is scratch for
// one row of scores: at least the total key count. out: [queries.count, heads, head_dim].
template <simd::VectorBackend B>
void mqa_attention(QueryRows queries, std::span<const KeySegment> segments, std::size_t heads, std::size_t head_dim,
                   std::size_t window, float* out, float* scores, std::size_t t_begin, std::size_t t_end) {
  const float scale = 1.0f / std::sqrt(float(head_dim));
  for (std::size_t t = t_begin; t < t_end; ++t) {
    const int qpos = queries.positions[t];
    const int qdoc = queries.documents ? queries.documents[t] : 0;
    for (std::size_t h = 0; h < heads; ++h) {
      const float* q = queries.queries + (t * heads + h) * head_dim;
      float* o = out + (t * heads + h) * head_dim;
      // Pass 1: scores of the visible keys (invisible ones are skipped, not computed and masked).
      float max_score = -std::numeric_limits<float>::infinity();
      std::size_t at = 0;
      for (const auto& seg : segments)
        for (std::size_t s = 0; s < seg.count; ++s, ++at) {
          if (!key_visible(qpos, qdoc, seg.positions[s], seg.documents ? seg.documents[s] : 0, window)) {
            scores[at] = -std::numeric_limits<float>::infinity();
            continue;
          }
          scores[at] = detail::dot<B>(q, seg.keys + s * head_dim, head_dim) * scale;
          max_score = std::max(max_score, scores[at]);
        }
      // Pass 2: softmax weights and the weighted sum of values.
      std::fill(o, o + head_dim, 0.0f);
      float total = 0.0f;
      at = 0;
      for (const auto& seg : segments)
        for (std::size_t s = 0; s < seg.count; ++s, ++at) {
          if (scores[at] == -std::numeric_limits<float>::infinity()) continue;
          const float p = std::exp(scores[at] - max_score);
          total += p;
          detail::axpy<B>(p, seg.values + s * head_dim, o, head_dim);
        }
      if (total > 0.0f) {
        const float inv = 1.0f / total;
        for (std::size_t d = 0; d < head_dim; ++d) o[d] *= inv;
      }
    }
  }
}

template <simd::VectorBackend B>
void mqa_attention(QueryRows queries, std::span<const KeySegment> segments, std::size_t heads, std::size_t head_dim,
                   std::size_t window, float* out, float* scores) {
  mqa_attention<B>(queries, segments, heads, head_dim, window, out, scores, 0, queries.count);
}

}  // namespace griffin::kernels
