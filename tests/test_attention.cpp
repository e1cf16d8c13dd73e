// Multi-query attention (griffin/kernels/attention.hpp) and RoPE (kernels/rope.hpp), every backend: local
// attention against the reference implementation's outputs; the tiled prefill path and the decode path
// against the scalar reference (windows, key segments as a wrapped KV ring gives them, documents, skipped
// tiles), their independence of how rows are split across threads, the decode path's compile-time head
// width; and the softmax of huge and tiny scores.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "griffin/kernels/attention.hpp"
#include "griffin/kernels/rope.hpp"
#include "griffin/matrix.hpp"
#include "griffin/simd/default.hpp"
#include "griffin/threads.hpp"
#include "kernel_golden.hpp"
#include "test_support.hpp"

using namespace griffin;
using test::max_abs_diff;
using test::random_floats;
namespace golden = test::kernel_golden;

TEST_CASE_TEMPLATE("local attention: inclusive window, RoPE on half the head, documents masked", Backend,
                   GRIFFIN_TEST_BACKENDS) {
  using golden::B, golden::T, golden::D;
  const test::Golden& g = golden::file();
  const auto x = g.f32("attn.x"), expected = g.f32("attn.y");
  const auto ob = g.f32("attn.o_proj.bias");
  const auto seg = g.i32("segment_pos");
  const std::size_t window = std::size_t(g.i32("attn.window").at(0));
  const std::size_t Dh = g.shape("attn.k_proj.weight")[0], H = D / Dh, R = Dh / 2, N = B * T;
  const auto weight = [&](const char* name, std::size_t rows) {
    const auto values = g.f32(name);
    return Matrix::from_row_major(WeightType::f32, values.data(), rows, D);
  };
  const Matrix qw = weight("attn.q_proj.weight", D), kw = weight("attn.k_proj.weight", Dh),
               vw = weight("attn.v_proj.weight", Dh), ow = weight("attn.o_proj.weight", D);
  std::vector<float> q(N * D), k(N * Dh), v(N * Dh), mixed(N * D), ours(N * D), oracle_mixed(N * D), cos_sin(R);
  test::linear<Backend>(x.data(), N, qw, nullptr, q.data());
  test::linear<Backend>(x.data(), N, kw, nullptr, k.data());
  test::linear<Backend>(x.data(), N, vw, nullptr, v.data());
  std::vector<float> q_ref = q, k_ref = k;
  for (std::size_t r = 0; r < N; ++r) {
    kernels::rope_angles(seg[r], R, 10000.0f, cos_sin.data());
    kernels::rope<Backend>(q.data() + r * D, H, Dh, R, cos_sin.data());
    kernels::rope<Backend>(k.data() + r * Dh, 1, Dh, R, cos_sin.data());
    kernels::reference::rope(q_ref.data() + r * D, H, Dh, R, seg[r], 10000.0f);
    kernels::reference::rope(k_ref.data() + r * Dh, 1, Dh, R, seg[r], 10000.0f);
  }
  // RoPE in float against RoPE in double: values of order 1.
  CHECK(max_abs_diff(q, q_ref) < 1e-5f);
  // Stream index for the window, document id from the segment positions.
  std::vector<int> index(N), doc(N);
  for (std::size_t b = 0; b < B; ++b)
    for (std::size_t t = 0, d = 0; t < T; ++t) {
      if (t > 0 && seg[b * T + t] == 0) ++d;
      index[b * T + t] = int(t);
      doc[b * T + t] = int(d);
    }
  for (std::size_t b = 0; b < B; ++b) {
    const std::size_t o = b * T;
    const kernels::KeySegment keys[] = {{k.data() + o * Dh, v.data() + o * Dh, index.data() + o, doc.data() + o, T}};
    kernels::mqa_attention<Backend>({q.data() + o * D, index.data() + o, doc.data() + o, T}, keys, H, Dh, window,
                                    mixed.data() + o * D);
    const kernels::KeySegment ref_keys[] = {{k_ref.data() + o * Dh, v.data() + o * Dh, index.data() + o, doc.data() + o, T}};
    kernels::reference::mqa_attention({q_ref.data() + o * D, index.data() + o, doc.data() + o, T}, ref_keys, H, Dh, window,
                                      oracle_mixed.data() + o * D);
  }
  CHECK(max_abs_diff(mixed, oracle_mixed) < 1e-5f);
  test::linear<Backend>(mixed.data(), N, ow, ob.data(), ours.data());
  CHECK(max_abs_diff(ours, expected) < golden::tolerance);
}

namespace {

constexpr std::size_t global = std::numeric_limits<std::size_t>::max();

// Keys in two segments, as a wrapped KV ring gives them, followed by the chunk's own keys.
struct AttentionCase {
  std::size_t heads, head_dim, tokens, cached;
  std::size_t window;
  bool documents;
};

struct AttentionInputs {
  std::vector<float> q, keys, values;
  std::vector<int> key_pos, key_doc, q_pos, q_doc;
  std::vector<kernels::KeySegment> segments;
  kernels::QueryRows queries;
  std::vector<float> oracle;
};

void make_inputs(const AttentionCase& ac, AttentionInputs& in) {
  const std::size_t H = ac.heads, Dh = ac.head_dim, T = ac.tokens, C = ac.cached;
  in.q = random_floats(T * H * Dh, 11, -2, 2);
  in.keys = random_floats((C + T) * Dh, 12, -2, 2);
  in.values = random_floats((C + T) * Dh, 13);
  in.key_pos.resize(C + T), in.key_doc.resize(C + T), in.q_pos.resize(T), in.q_doc.resize(T);
  // Cached keys at positions 0 … C-1, stored as a ring wrapped at C/3; the chunk continues at C.
  const std::size_t wrap = C / 3;
  for (std::size_t i = 0; i < C; ++i) in.key_pos[i] = int((i + C - wrap) % C);
  for (std::size_t t = 0; t < T; ++t) in.key_pos[C + t] = in.q_pos[t] = int(C + t);
  for (std::size_t i = 0; i < C + T; ++i) in.key_doc[i] = ac.documents && in.key_pos[i] >= int(C + T / 2) ? 1 : 0;
  for (std::size_t t = 0; t < T; ++t) in.q_doc[t] = in.key_doc[C + t];
  // The ring's storage in two segments whose positions each increase (segment 1: the oldest keys).
  const int* docs = ac.documents ? in.key_doc.data() : nullptr;
  const float *keys = in.keys.data(), *values = in.values.data();
  if (wrap > 0) in.segments.push_back({keys, values, in.key_pos.data(), docs, wrap});
  if (C > wrap)
    in.segments.push_back(
        {keys + wrap * Dh, values + wrap * Dh, in.key_pos.data() + wrap, docs ? docs + wrap : nullptr, C - wrap});
  in.segments.push_back({keys + C * Dh, values + C * Dh, in.key_pos.data() + C, docs ? docs + C : nullptr, T});
  in.queries = {in.q.data(), in.q_pos.data(), ac.documents ? in.q_doc.data() : nullptr, T};
  in.oracle.resize(T * H * Dh);
  kernels::reference::mqa_attention(in.queries, in.segments, H, Dh, ac.window, in.oracle.data());
}

// A subcase's name: the backend and the case (doctest tells subcases apart by name, and these run in a loop).
template <class B>
std::string subcase_name(const AttentionCase& ac) {
  return std::string(B::name) + " x" + std::to_string(B::lanes) + ": heads " + std::to_string(ac.heads) + ", head_dim " +
         std::to_string(ac.head_dim) + ", tokens " + std::to_string(ac.tokens) + ", cached " + std::to_string(ac.cached) +
         ", window " + (ac.window == global ? std::string("global") : std::to_string(ac.window)) +
         (ac.documents ? ", documents" : "");
}

// Outputs are averages of values in [-1, 1]: the float softmax against the double one.
constexpr float attention_tolerance = 2e-6f;

// The tiled path: against the reference, and the same bits for any split of the rows.
void check_tiled(const AttentionCase& ac) {
  AttentionInputs in;
  make_inputs(ac, in);
  const std::size_t H = ac.heads, Dh = ac.head_dim, rows = ac.tokens * H;
  ThreadPool two(2);
  simd::for_each_backend([&]<class B>() {
    SUBCASE(subcase_name<B>(ac).c_str()) {
      std::vector<float> ours(rows * Dh, NAN);
      kernels::mqa_attention_rows<B>(in.queries, in.segments, H, Dh, ac.window, ours.data(), 0, rows);
      CHECK(max_abs_diff(ours, in.oracle) < attention_tolerance);
      // Any split of the rows gives the same bits: by thread, by token, by an odd cut.
      std::vector<float> split(rows * Dh, NAN);
      two.parallel_for(rows, 1, [&](std::size_t r0, std::size_t r1) {
        kernels::mqa_attention_rows<B>(in.queries, in.segments, H, Dh, ac.window, split.data(), r0, r1);
      });
      CHECK(test::same_bits(split, ours));
      std::vector<float> cut(rows * Dh, NAN);
      const std::size_t at = rows / 3 + 1;
      kernels::mqa_attention_rows<B>(in.queries, in.segments, H, Dh, ac.window, cut.data(), at, rows);
      kernels::mqa_attention_rows<B>(in.queries, in.segments, H, Dh, ac.window, cut.data(), 0, at);
      CHECK(test::same_bits(cut, ours));
    }
  });
}

// Calls f(Size<Dh>{}) with the head width as a compile-time extent.
template <class F>
void with_static_head_dim(std::size_t head_dim, F&& f) {
  switch (head_dim) {
    case 8: return f(Size<8>{});
    case 12: return f(Size<12>{});
    case 16: return f(Size<16>{});
    case 32: return f(Size<32>{});
    default: FAIL("no compile-time head width for " << head_dim);
  }
}

// The decode path (up to attention_decode_max_tokens query tokens): against the reference, the same bits for a
// compile-time and a run-time head width and for any split of the rows, and what mqa_attention picks.
void check_decode(const AttentionCase& ac) {
  REQUIRE(ac.tokens <= kernels::attention_decode_max_tokens);
  AttentionInputs in;
  make_inputs(ac, in);
  const std::size_t H = ac.heads, Dh = ac.head_dim, rows = ac.tokens * H;
  ThreadPool two(2);
  simd::for_each_backend([&]<class B>() {
    SUBCASE(subcase_name<B>(ac).c_str()) {
      std::vector<float> ours(rows * Dh, NAN);
      kernels::mqa_attention_decode_rows<B>(in.queries, in.segments, H, Size<dynamic>(Dh), ac.window, ours.data(), 0,
                                            rows);
      CHECK(max_abs_diff(ours, in.oracle) < attention_tolerance);
      with_static_head_dim(Dh, [&](auto head_dim) {
        std::vector<float> fixed(rows * Dh, NAN);
        kernels::mqa_attention_decode_rows<B>(in.queries, in.segments, H, head_dim, ac.window, fixed.data(), 0, rows);
        CHECK(test::same_bits(fixed, ours));
        // mqa_attention takes this path for so few tokens, with either extent.
        std::vector<float> picked(rows * Dh, NAN);
        kernels::mqa_attention<B>(in.queries, in.segments, H, head_dim, ac.window, picked.data(), 0, rows);
        CHECK(test::same_bits(picked, ours));
      });
      std::vector<float> split(rows * Dh, NAN);
      two.parallel_for(rows, 1, [&](std::size_t r0, std::size_t r1) {
        kernels::mqa_attention_decode_rows<B>(in.queries, in.segments, H, Size<dynamic>(Dh), ac.window, split.data(), r0,
                                              r1);
      });
      CHECK(test::same_bits(split, ours));
      std::vector<float> all(rows * Dh, NAN);
      kernels::mqa_attention<B>(in.queries, in.segments, H, Dh, ac.window, all.data());
      CHECK(test::same_bits(all, ours));
    }
  });
}

}  // namespace

TEST_CASE("tiled attention matches the reference: windows, key segments, documents, skipped tiles") {
  // More than one row tile (240) and key tile (128); windows that skip whole tiles; a decode step's shape.
  check_tiled({4, 16, 70, 300, 40, false});
  check_tiled({4, 16, 70, 300, global, false});
  check_tiled({3, 12, 90, 0, 17, false});
  check_tiled({4, 16, 60, 150, 100, true});
  check_tiled({10, 32, 1, 400, 256, false});
  check_tiled({2, 8, 5, 3, 2, false});
}

TEST_CASE("decode attention matches the reference for up to four query tokens, with either head-width extent") {
  // Several decode key tiles (64) and a partial one; a ring wrapped in two segments; windows shorter than the
  // cache; documents; no cache at all; the most tokens the path takes.
  check_decode({10, 32, 1, 400, 256, false});
  check_decode({4, 16, 1, 300, 40, false});
  check_decode({4, 16, 3, 300, global, false});
  check_decode({3, 12, 4, 0, 17, false});
  check_decode({4, 16, 2, 150, 100, true});
  check_decode({2, 8, 4, 3, 2, false});
  check_decode({1, 8, 1, 64, global, false});
}

TEST_CASE("mqa_attention takes the tiled path from five query tokens on") {
  const AttentionCase ac{4, 16, kernels::attention_decode_max_tokens + 1, 100, 30, false};
  AttentionInputs in;
  make_inputs(ac, in);
  const std::size_t rows = ac.tokens * ac.heads;
  simd::for_each_backend([&]<class B>() {
    SUBCASE(B::name) {
      std::vector<float> tiled(rows * ac.head_dim, NAN), picked(rows * ac.head_dim, NAN);
      kernels::mqa_attention_rows<B>(in.queries, in.segments, ac.heads, ac.head_dim, ac.window, tiled.data(), 0, rows);
      kernels::mqa_attention<B>(in.queries, in.segments, ac.heads, Size<16>{}, ac.window, picked.data(), 0, rows);
      CHECK(test::same_bits(picked, tiled));
      CHECK(max_abs_diff(picked, in.oracle) < attention_tolerance);
    }
  });
}

TEST_CASE_TEMPLATE("attention softmax is stable for huge and tiny scores", Backend, GRIFFIN_TEST_BACKENDS) {
  const std::size_t Dh = 16, H = 2, keys = 9;
  for (float scale : {0.0f, 1e-20f, 1.0f, 1e3f, 1e9f, 1e17f}) {
    CAPTURE(scale);
    std::vector<float> q(H * Dh), k(keys * Dh), v(keys * Dh);
    for (std::size_t i = 0; i < q.size(); ++i) q[i] = scale * float(std::cos(double(i) * 1.3));
    for (std::size_t i = 0; i < k.size(); ++i) k[i] = scale * float(std::sin(double(i) * 0.9 + 0.2));
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = float(i % 11) - 5.0f;
    std::vector<int> key_pos(keys);
    for (std::size_t s = 0; s < keys; ++s) key_pos[s] = int(s);
    const int qpos = int(keys - 1);
    const kernels::KeySegment seg{k.data(), v.data(), key_pos.data(), nullptr, keys};
    const kernels::QueryRows rows{q.data(), &qpos, nullptr, 1};
    std::vector<float> decode(H * Dh), tiled(H * Dh), ref(H * Dh);
    kernels::mqa_attention<Backend>(rows, std::span(&seg, 1), H, Dh, 4, decode.data());  // one token: the decode path
    kernels::mqa_attention_rows<Backend>(rows, std::span(&seg, 1), H, Dh, 4, tiled.data(), 0, H);
    kernels::reference::mqa_attention(rows, std::span(&seg, 1), H, Dh, 4, ref.data());
    for (const auto* out : {&decode, &tiled}) {
      for (float o : *out) CHECK(std::isfinite(o));
      // Outputs are convex combinations of values in [-5, 5]; near a tie between two huge scores the float
      // and double softmaxes may pick different weights, so the bound is loose where scores are huge.
      CHECK(max_abs_diff(*out, ref) < (scale > 1e3f ? 1.0f : 1e-5f));
    }
  }
}
