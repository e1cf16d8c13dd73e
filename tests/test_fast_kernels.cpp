// The fused and tiled kernels of the recurrent and attention blocks against their scalar twins, for every
// backend: the RG-LRU scan fused with its output gate, the block-diagonal gates through gemm, and tiled
// multi-query attention (windows, documents, key segments, tiles skipped), plus their independence of how
// work is split across threads.
#include <doctest/doctest.h>

#include "test_support.hpp"

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "griffin/kernels/attention.hpp"
#include "griffin/kernels/rg_lru.hpp"
#include "griffin/simd/default.hpp"
#include "griffin/threads.hpp"

using namespace griffin;

namespace {

std::vector<float> random_floats(std::size_t n, std::uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

using test::max_abs_diff;

}  // namespace

TEST_CASE("rg_lru_gated is the RG-LRU scan followed by the output gate, resets included") {
  // Width 37: full vectors plus a scalar tail on every backend; 1061: several whole channel blocks of the
  // kernel's two passes (rg_lru_block_floats), a partial one and a tail. A reset in the middle (a new document).
  for (const std::size_t E : {std::size_t(37), std::size_t(1061)}) {
    CAPTURE(E);
    const std::size_t T = 9;
    const auto x = random_floats(T * E, 1), gx = random_floats(T * E, 2, -3, 3), ga = random_floats(T * E, 3, -3, 3);
    const auto mult = random_floats(T * E, 4);
    std::vector<float> log_a_scale(E);
    for (std::size_t c = 0; c < E; ++c) log_a_scale[c] = 4.0f * std::log(0.81f + 0.188f * float(c) / float(E));
    const std::vector<int> pos{5, 6, 7, 0, 1, 2, 3, 4, 5};
    const auto h0 = random_floats(E, 5);
    std::vector<float> h_ref = h0, oracle(T * E);
    kernels::reference::rg_lru_gated(x.data(), gx.data(), ga.data(), log_a_scale.data(), pos.data(), T, E, h_ref.data(),
                                     mult.data(), oracle.data());
    simd::for_each_backend([&]<class B>() {
      // A name per width too: doctest tells subcases apart by name, and this one runs in a loop.
      SUBCASE((std::string(B::name) + " E=" + std::to_string(E)).c_str()) {
        std::vector<float> h = h0, out(T * E);
        kernels::rg_lru_gated<B>(x.data(), gx.data(), ga.data(), log_a_scale.data(), pos.data(), T, E, h.data(), mult.data(),
                                 out.data(), 0, E);
        // float32 transcendental functions: a few ulps of values of order 1.
        CHECK(max_abs_diff(out, oracle) < 2e-6f);
        CHECK(max_abs_diff(h, h_ref) < 2e-6f);
        // The same as the unfused scan and a multiply, bit for bit.
        std::vector<float> h2 = h0, y(T * E);
        kernels::rg_lru_scan<B>(x.data(), gx.data(), ga.data(), log_a_scale.data(), pos.data(), T, E, h2.data(), y.data());
        for (std::size_t i = 0; i < T * E; ++i) y[i] *= mult[i];
        CHECK(out == y);
        CHECK(h == h2);
        // In place over the multiplier (as the recurrent block calls it), and split into channel ranges.
        std::vector<float> h3 = h0, in_place = mult;
        const std::size_t cut = 2 * B::lanes < E ? 2 * B::lanes : 3;
        kernels::rg_lru_gated<B>(x.data(), gx.data(), ga.data(), log_a_scale.data(), pos.data(), T, E, h3.data(),
                                 in_place.data(), in_place.data(), 0, cut);
        kernels::rg_lru_gated<B>(x.data(), gx.data(), ga.data(), log_a_scale.data(), pos.data(), T, E, h3.data(),
                                 in_place.data(), in_place.data(), cut, E);
        CHECK(in_place == out);
        CHECK(h3 == h);
      }
    });
  }
}

TEST_CASE("block-diagonal gates: the gemm path of a chunk equals the token-by-token path bit for bit") {
  const std::size_t E = 3 * 20, H = 3, T = 13;  // blocks of 20: partial vectors and partial gemm panels
  const auto x = random_floats(T * E, 7), w = random_floats(H * 20 * 20, 8, -0.3f, 0.3f), b = random_floats(E, 9);
  std::vector<float> oracle(T * E);
  kernels::reference::block_diagonal_linear(x.data(), T, E, H, w.data(), b.data(), oracle.data());
  simd::for_each_backend([&]<class B>() {
    SUBCASE(B::name) {
      std::vector<float> chunk(T * E), one_by_one(T * E), by_block(T * E);
      REQUIRE(T >= kernels::gemm_min_tokens);
      kernels::block_diagonal_linear<B>(x.data(), T, E, H, w.data(), b.data(), chunk.data());
      for (std::size_t t = 0; t < T; ++t)
        kernels::block_diagonal_linear<B>(x.data() + t * E, 1, E, H, w.data(), b.data(), one_by_one.data() + t * E);
      for (std::size_t h = 0; h < H; ++h)
        kernels::block_diagonal_linear<B>(x.data(), T, E, H, w.data(), b.data(), by_block.data(), h, h + 1);
      CHECK(max_abs_diff(chunk, oracle) < 1e-5f);
      CHECK(chunk == one_by_one);
      CHECK(chunk == by_block);
    }
  });
}

namespace {

// Keys in two segments, as a wrapped KV ring gives them, followed by the chunk's own keys.
struct AttentionCase {
  std::size_t heads, head_dim, tokens, cached;
  std::size_t window;
  bool documents;
};

void check_attention(const AttentionCase& ac) {
  CAPTURE(ac.heads);
  CAPTURE(ac.tokens);
  CAPTURE(ac.cached);
  CAPTURE(ac.window);
  CAPTURE(ac.documents);
  const std::size_t H = ac.heads, Dh = ac.head_dim, T = ac.tokens, C = ac.cached;
  const auto q = random_floats(T * H * Dh, 11, -2, 2);
  const auto keys = random_floats((C + T) * Dh, 12, -2, 2), values = random_floats((C + T) * Dh, 13);
  std::vector<int> key_pos(C + T), key_doc(C + T), q_pos(T), q_doc(T);
  // Cached keys at positions 0 … C-1, stored as a ring wrapped at C/3; the chunk continues at C.
  const std::size_t wrap = C / 3;
  for (std::size_t i = 0; i < C; ++i) key_pos[i] = int((i + C - wrap) % C);
  for (std::size_t t = 0; t < T; ++t) key_pos[C + t] = q_pos[t] = int(C + t);
  for (std::size_t i = 0; i < C + T; ++i) key_doc[i] = ac.documents && key_pos[i] >= int(C + T / 2) ? 1 : 0;
  for (std::size_t t = 0; t < T; ++t) q_doc[t] = key_doc[C + t];
  // Reorder the ring storage so that each segment's positions increase (segment 1: oldest).
  std::vector<kernels::KeySegment> segments;
  const int* docs = ac.documents ? key_doc.data() : nullptr;
  if (wrap > 0) segments.push_back({keys.data(), values.data(), key_pos.data(), docs, wrap});
  if (C > wrap)
    segments.push_back({keys.data() + wrap * Dh, values.data() + wrap * Dh, key_pos.data() + wrap, docs ? docs + wrap : nullptr, C - wrap});
  segments.push_back({keys.data() + C * Dh, values.data() + C * Dh, key_pos.data() + C, docs ? docs + C : nullptr, T});
  const kernels::QueryRows queries{q.data(), q_pos.data(), ac.documents ? q_doc.data() : nullptr, T};

  std::vector<float> oracle(T * H * Dh);
  kernels::reference::mqa_attention(queries, segments, H, Dh, ac.window, oracle.data());
  ThreadPool two(2);
  simd::for_each_backend([&]<class B>() {
    SUBCASE(B::name) {
      std::vector<float> ours(T * H * Dh, NAN);
      kernels::mqa_attention_rows<B>(queries, segments, H, Dh, ac.window, ours.data(), 0, T * H);
      CHECK(max_abs_diff(ours, oracle) < 2e-6f);  // outputs are averages of values in [-1, 1]
      // Any split of the rows gives the same bits: by thread, by token, by an odd cut.
      std::vector<float> split(T * H * Dh, NAN);
      two.parallel_for(T * H, 1, [&](std::size_t r0, std::size_t r1) {
        kernels::mqa_attention_rows<B>(queries, segments, H, Dh, ac.window, split.data(), r0, r1);
      });
      CHECK(split == ours);
      std::vector<float> cut(T * H * Dh, NAN);
      const std::size_t at = (T * H) / 3 + 1;
      kernels::mqa_attention_rows<B>(queries, segments, H, Dh, ac.window, cut.data(), at, T * H);
      kernels::mqa_attention_rows<B>(queries, segments, H, Dh, ac.window, cut.data(), 0, at);
      CHECK(cut == ours);
    }
  });
}

}  // namespace

TEST_CASE("tiled attention matches the reference: windows, key segments, documents, skipped tiles") {
  constexpr std::size_t global = std::numeric_limits<std::size_t>::max();
  // More than one row tile (240) and key tile (128); windows that skip whole tiles; a decode step.
  check_attention({4, 16, 70, 300, 40, false});
  check_attention({4, 16, 70, 300, global, false});
  check_attention({3, 12, 90, 0, 17, false});
  check_attention({4, 16, 60, 150, 100, true});
  check_attention({10, 32, 1, 400, 256, false});
  check_attention({2, 8, 5, 3, 2, false});
}
