// The RG-LRU (griffin/kernels/rg_lru.hpp), every backend: the decay scale -8·softplus(Λ), the block-diagonal
// gates, the scan against the reference implementation's outputs (resets at a new document, a carried state)
// and against its scalar twin, the scan fused with the output gate, and the numerics at the edges (a → 1,
// saturated gates, huge inputs) against the formulas evaluated in long double.
#include <doctest/doctest.h>

#include <cfloat>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "edge_values.hpp"
#include "griffin/kernels/rg_lru.hpp"
#include "griffin/simd/default.hpp"
#include "kernel_golden.hpp"
#include "test_support.hpp"

using namespace griffin;
using test::ld;
using test::max_abs_diff;
using test::random_floats;
namespace golden = test::kernel_golden;

// ---- The decay scale ----

TEST_CASE("softplus and the RG-LRU decay scale are stable for any recurrent_param") {
  for (float z : test::extreme_values()) {
    CAPTURE(z);
    const float ours = kernels::softplus(z);
    CHECK(std::isfinite(ours));
    CHECK(ours >= 0.0f);
    CHECK(test::close(ours, test::softplus_ld(z), 2e-7L));
    // -8·softplus(Λ) is finite wherever it fits in a float (up to Λ ≈ 4e37).
    const ld scale = -8.0L * test::softplus_ld(z);
    if (std::abs(scale) < ld(FLT_MAX)) CHECK(test::close(kernels::rg_lru_log_a_scale(z), scale, 2e-7L));
  }
}

// ---- The gates ----

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
        kernels::block_diagonal_linear<B>(x.data(), E, T, Size<dynamic>(20), w.data(), b.data(), by_block.data(), h,
                                          h + 1);
      // Against the double-precision reference: sums of 20 products of values below 1.
      CHECK(max_abs_diff(chunk, oracle) < 1e-5f);
      CHECK(chunk == one_by_one);
      CHECK(chunk == by_block);
    }
  });
}

TEST_CASE("block-diagonal gates: a compile-time block width gives the run-time width's bits") {
  const std::size_t H = 3, E = H * 24;  // blocks of 24: 1.5 vectors of 16 lanes, three of 8
  const auto x = random_floats(13 * E, 17), w = random_floats(H * 24 * 24, 18, -0.3f, 0.3f), b = random_floats(E, 19);
  simd::for_each_backend([&]<class B>() {
    SUBCASE(B::name) {
      for (const std::size_t tokens : {std::size_t(1), std::size_t(3), std::size_t(13)}) {  // loop and gemm paths
        CAPTURE(tokens);
        std::vector<float> fixed(tokens * E, NAN), run_time(tokens * E, NAN);
        kernels::block_diagonal_linear<B>(x.data(), E, tokens, Size<24>{}, w.data(), b.data(), fixed.data(), 0, H);
        kernels::block_diagonal_linear<B>(x.data(), E, tokens, Size<dynamic>(24), w.data(), b.data(), run_time.data(),
                                          0, H);
        CHECK(fixed == run_time);
      }
    }
  });
}

// ---- The scan against the reference ----

namespace {
struct RgLruWeights {
  std::vector<float> input_w, input_b, rec_w, rec_b, log_a_scale;
};
RgLruWeights rg_lru_weights() {
  const test::Golden& g = golden::file();
  RgLruWeights w{g.f32("rglru.input_gate_weight"), g.f32("rglru.input_gate_bias"), g.f32("rglru.recurrent_gate_weight"),
                 g.f32("rglru.recurrent_gate_bias"), {}};
  for (float p : g.f32("rglru.recurrent_param")) w.log_a_scale.push_back(kernels::rg_lru_log_a_scale(p));
  return w;
}

// Runs gates + scan for both rows from the given initial states; returns y and the final states.
template <class Backend>
std::pair<std::vector<float>, std::vector<float>> run_rg_lru(const std::vector<float>& x, const std::vector<int>& seg,
                                                             std::vector<float> h, bool use_reference) {
  using golden::B, golden::T, golden::D;
  const RgLruWeights w = rg_lru_weights();
  const std::size_t H = 4;
  std::vector<float> gx(B * T * D), ga(B * T * D), y(B * T * D);
  if (use_reference) {
    kernels::reference::block_diagonal_linear(x.data(), B * T, D, H, w.input_w.data(), w.input_b.data(), gx.data());
    kernels::reference::block_diagonal_linear(x.data(), B * T, D, H, w.rec_w.data(), w.rec_b.data(), ga.data());
  } else {
    kernels::block_diagonal_linear<Backend>(x.data(), B * T, D, H, w.input_w.data(), w.input_b.data(), gx.data());
    kernels::block_diagonal_linear<Backend>(x.data(), B * T, D, H, w.rec_w.data(), w.rec_b.data(), ga.data());
  }
  for (std::size_t b = 0; b < B; ++b) {
    const std::size_t o = b * T * D;
    if (use_reference)
      kernels::reference::rg_lru_scan(x.data() + o, gx.data() + o, ga.data() + o, w.log_a_scale.data(), seg.data() + b * T,
                                      T, D, h.data() + b * D, y.data() + o);
    else
      kernels::rg_lru_scan<Backend>(x.data() + o, gx.data() + o, ga.data() + o, w.log_a_scale.data(), seg.data() + b * T,
                                    T, D, h.data() + b * D, y.data() + o);
  }
  return {y, h};
}
}  // namespace

TEST_CASE_TEMPLATE("rg_lru resets at position 0 and matches the reference", Backend, GRIFFIN_TEST_BACKENDS) {
  const test::Golden& g = golden::file();
  const auto x = g.f32("rglru.x");
  REQUIRE(golden::inputs_lost_in_golden(x));
  for (bool use_reference : {false, true}) {
    CAPTURE(use_reference);
    auto [y, h] = run_rg_lru<Backend>(x, g.i32("segment_pos"), std::vector<float>(golden::B * golden::D, 0.0f),
                                      use_reference);
    CHECK(golden::max_abs_diff_except(y, g.f32("rglru.y"), golden::at_lost_inputs) < golden::tolerance);
    CHECK(max_abs_diff(h, g.f32("rglru.h_last")) < golden::tolerance);
  }
}

TEST_CASE_TEMPLATE("rg_lru continues from a given state", Backend, GRIFFIN_TEST_BACKENDS) {
  const test::Golden& g = golden::file();
  const std::size_t D = golden::D;
  for (bool use_reference : {false, true}) {
    CAPTURE(use_reference);
    auto [y, h] = run_rg_lru<Backend>(g.f32("rglru.x"), g.i32("rglru_cont.segment_pos"), g.f32("rglru_cont.h0"),
                                      use_reference);
    CHECK(golden::max_abs_diff_except(y, g.f32("rglru_cont.y"), golden::after_lost_inputs) < golden::tolerance);
    // Only row 0's final state is free of the lost inputs (row 1 never resets).
    const auto h_last = g.f32("rglru_cont.h_last");
    CHECK(max_abs_diff(std::vector<float>(h.begin(), h.begin() + D),
                       std::vector<float>(h_last.begin(), h_last.begin() + D)) < golden::tolerance);
  }
}

// ---- The scan fused with the output gate ----

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

// ---- Numerics at the edges ----

namespace {
// One RG-LRU channel group through T steps with the given inputs; y for every step.
template <class Backend>
std::vector<float> scan(const std::vector<float>& x, const std::vector<float>& gate_x, const std::vector<float>& gate_a,
                        const std::vector<float>& log_a_scale, const std::vector<int>& positions, std::size_t width,
                        std::vector<float> h) {
  std::vector<float> y(x.size());
  kernels::rg_lru_scan<Backend>(x.data(), gate_x.data(), gate_a.data(), log_a_scale.data(), positions.data(),
                                positions.size(), width, h.data(), y.data());
  return y;
}

// The same in long double, from the same float inputs.
std::vector<ld> scan_ld(const std::vector<float>& x, const std::vector<float>& gate_x, const std::vector<float>& gate_a,
                        const std::vector<float>& log_a_scale, const std::vector<int>& positions, std::size_t width,
                        const std::vector<float>& h0) {
  std::vector<ld> y(x.size()), h(h0.begin(), h0.end());
  for (std::size_t t = 0; t < positions.size(); ++t)
    for (std::size_t c = 0; c < width; ++c) {
      const std::size_t at = t * width + c;
      const bool reset = positions[t] == 0;
      const ld log_a = ld(log_a_scale[c]) * test::sigmoid_ld(gate_a[at]);
      const ld a = reset ? 0.0L : std::exp(log_a);
      const ld normaliser = reset ? 1.0L : std::sqrt(-std::expm1(2.0L * log_a));
      h[c] = a * h[c] + ld(x[at]) * test::sigmoid_ld(gate_x[at]) * normaliser;
      y[at] = h[c];
    }
  return y;
}
}  // namespace

TEST_CASE_TEMPLATE("the RG-LRU normaliser sqrt(1 - a²) keeps its precision as a → 1", Backend, GRIFFIN_TEST_BACKENDS) {
  // Gates fully open (r = i = 1), one step from h = 0: y = x · sqrt(1 - a²) with log a = log_a_scale.
  // Computed as 1 - a·a in float, log a = -1e-7 would be ~10% off and log a = -1e-9 would give 0.
  const std::vector<float> log_a{-1e-3f, -1e-5f, -1e-7f, -1e-9f, -1e-12f, -1e-20f, -1e-30f, -1e-38f,
                                 -1.0f,  -10.0f, -100.0f, -1e4f, -1e30f, -FLT_MAX};
  const std::size_t W = log_a.size();
  const std::vector<float> x(W, 1.0f), open(W, 100.0f), h0(W, 0.0f);
  const std::vector<int> positions{5};
  const auto y = scan<Backend>(x, open, open, log_a, positions, W, h0);
  for (std::size_t c = 0; c < W; ++c) {
    CAPTURE(log_a[c]);
    const ld ref = std::sqrt(-std::expm1(2.0L * ld(log_a[c])));
    CHECK(std::isfinite(y[c]));
    CHECK(test::close(y[c], ref, 1e-5L));
  }
}

TEST_CASE_TEMPLATE("the RG-LRU scan is finite and accurate with saturated gates and extreme inputs", Backend,
                   GRIFFIN_TEST_BACKENDS) {
  // Channels: every combination of a decay scale, an input-gate pre-activation and a recurrence-gate
  // pre-activation; tokens: inputs from tiny to huge, a reset in the middle.
  const std::vector<float> scales{0.0f, -1e-30f, -1e-7f, -0.01f, -1.0f, -5.5f, -160.0f, -1e4f, -1e6f};
  const std::vector<float> gates{-1e30f, -200.0f, -88.0f, -20.0f, -1.0f, 0.0f, 1.0f, 20.0f, 88.0f, 200.0f, 1e30f};
  std::vector<float> log_a_scale;
  std::vector<std::pair<float, float>> gate_of_channel;
  for (float s : scales)
    for (float gx : gates)
      for (float ga : gates) {
        log_a_scale.push_back(s);
        gate_of_channel.push_back({gx, ga});
      }
  const std::size_t W = log_a_scale.size();
  const std::vector<float> inputs{1.0f, -1e30f, 1e-30f, 1e30f, -3.0f, 1e20f, 0.0f, -1e-38f, 2.0f, 1e30f};
  const std::vector<int> positions{0, 1, 2, 3, 4, 0, 1, 2, 3, 4};
  const std::size_t T = positions.size();
  std::vector<float> x(T * W), gate_x(T * W), gate_a(T * W);
  for (std::size_t t = 0; t < T; ++t)
    for (std::size_t c = 0; c < W; ++c) {
      x[t * W + c] = inputs[t] * (c % 2 ? -1.0f : 1.0f);
      gate_x[t * W + c] = gate_of_channel[c].first;
      gate_a[t * W + c] = gate_of_channel[c].second;
    }
  const std::vector<float> h0(W, 0.0f);
  const auto y = scan<Backend>(x, gate_x, gate_a, log_a_scale, positions, W, h0);
  const auto ref = scan_ld(x, gate_x, gate_a, log_a_scale, positions, W, h0);
  std::size_t non_finite = 0, inaccurate = 0;
  for (std::size_t t = 0; t < T; ++t) {
    // |h| never exceeds the sum of |x| since the last reset (a, i and the normaliser are in [0, 1]).
    ld bound = 0;
    for (std::size_t u = t + 1; u-- > 0;) {
      bound += std::abs(ld(inputs[u]));
      if (positions[u] == 0) break;
    }
    for (std::size_t c = 0; c < W; ++c) {
      const std::size_t at = t * W + c;
      if (!std::isfinite(y[at])) ++non_finite;
      // The sigmoid saturates at |z| = 88 (σ(-88) ≈ 6e-39 stands in for anything smaller), an error far
      // below float resolution of the bound.
      if (!(std::abs(ld(y[at]) - ref[at]) <= 1e-5L * bound + 1e-37L)) {
        if (inaccurate++ < 5)
          MESSAGE("t ", t, " channel ", c, " (scale ", log_a_scale[c], ", gates ", gate_of_channel[c].first, ", ",
                  gate_of_channel[c].second, "): ", y[at], " vs ", double(ref[at]));
      }
    }
  }
  CHECK(non_finite == 0);
  CHECK(inaccurate == 0);

  // The model's path is the fused kernel (scan ⊙ output gate): with a multiplier of 1 it is the scan.
  std::vector<float> fused(T * W), h(W, 0.0f);
  const std::vector<float> ones(T * W, 1.0f);
  kernels::rg_lru_gated<Backend>(x.data(), gate_x.data(), gate_a.data(), log_a_scale.data(), positions.data(), T, W,
                                 h.data(), ones.data(), fused.data(), 0, W);
  CHECK(fused == y);
}
