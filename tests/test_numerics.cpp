// Numerics at the edges: extreme activations (huge or tiny inputs, gates saturated at 0 and 1, a
// recurrent_param far beyond any trained value) give finite results wherever the formula does, for every
// backend, and the functions written for stability (softplus, sqrt(1 - a²) as sqrt(-expm1(2·log a)), the
// soft cap, the RMS of huge rows, the softmax of huge scores) agree with the formula evaluated in long
// double.
#include <doctest/doctest.h>

#include <cfloat>
#include <cmath>
#include <limits>
#include <vector>

#include "griffin/griffin.hpp"
#include "test_support.hpp"
#include "tiny_random_model.hpp"

using namespace griffin;
using ld = long double;

#ifndef GRIFFIN_TEST_BACKENDS
#define GRIFFIN_TEST_BACKENDS ::griffin::simd::Scalar, ::griffin::simd::Xsimd, ::griffin::simd::Highway
#endif

namespace {

constexpr float inf = std::numeric_limits<float>::infinity();

// The formulas of the spec, in long double.
ld softplus_ld(ld z) { return z > 40 ? z + std::log1p(std::exp(-z)) : std::log1p(std::exp(z)); }
ld sigmoid_ld(ld z) { return 1.0L / (1.0L + std::exp(-z)); }
ld gelu_ld(ld x) {
  const ld k = std::sqrt(2.0L / 3.14159265358979323846264338327950288L);
  return 0.5L * x * (1.0L + std::tanh(k * (x + 0.044715L * x * x * x)));
}

// |ours - ref| within `rel` of |ref|, or below `abs` (for results in float's subnormal range).
bool close(float ours, ld ref, ld rel, ld abs = 1e-37L) {
  if (std::isnan(ours) || std::isnan(double(ref))) return false;
  if (std::isinf(ours) || std::isinf(double(ref))) return ours == float(ref);
  return std::abs(ld(ours) - ref) <= rel * std::abs(ref) + abs;
}

// Values from the subnormal range to FLT_MAX, both signs, and zero.
std::vector<float> extreme_values() {
  std::vector<float> v{0.0f};
  for (float m : {1e-44f, 1e-38f, 1e-30f, 1e-10f, 1e-6f, 1e-3f, 0.5f, 1.0f, 3.0f, 10.0f, 20.0f, 20.5f, 30.0f, 50.0f,
                  88.0f, 89.0f, 100.0f, 200.0f, 1e4f, 1e10f, 1e20f, 1e30f, FLT_MAX}) {
    v.push_back(m);
    v.push_back(-m);
  }
  return v;
}

}  // namespace

TEST_CASE("softplus and the RG-LRU decay scale are stable for any recurrent_param") {
  for (float z : extreme_values()) {
    CAPTURE(z);
    const float ours = kernels::softplus(z);
    CHECK(std::isfinite(ours));
    CHECK(ours >= 0.0f);
    CHECK(close(ours, softplus_ld(z), 2e-7L));
    // -8·softplus(Λ) is finite wherever it fits in a float (up to Λ ≈ 4e37).
    const ld scale = -8.0L * softplus_ld(z);
    if (std::abs(scale) < ld(FLT_MAX)) CHECK(close(kernels::rg_lru_log_a_scale(z), scale, 2e-7L));
  }
}

TEST_CASE_TEMPLATE("the soft cap is c·tanh(x/c) for any x", Backend, GRIFFIN_TEST_BACKENDS) {
  std::vector<float> x = extreme_values();
  x.push_back(inf);
  x.push_back(-inf);
  for (float cap : {30.0f, 1.0f, 1e-3f}) {
    CAPTURE(cap);
    std::vector<float> y = x;
    kernels::soft_cap<Backend>(y.data(), y.size(), cap);
    for (std::size_t i = 0; i < x.size(); ++i) {
      CAPTURE(x[i]);
      const ld ref = ld(cap) * std::tanh(ld(x[i]) / ld(cap));
      CHECK(std::isfinite(y[i]));
      CHECK(std::abs(y[i]) <= cap);
      CHECK(close(y[i], ref, 4e-6L));
    }
  }
}

TEST_CASE_TEMPLATE("GeLU is finite and accurate from tiny to huge inputs", Backend, GRIFFIN_TEST_BACKENDS) {
  const std::vector<float> x = extreme_values();
  std::vector<float> y = x, up(x.size(), 1.0f), gated(x.size());
  kernels::gelu_in_place<Backend>(y.data(), y.size());
  kernels::gated_gelu<Backend>(x.data(), up.data(), x.size(), gated.data());
  for (std::size_t i = 0; i < x.size(); ++i) {
    CAPTURE(x[i]);
    const ld ref = gelu_ld(x[i]);
    CHECK(std::isfinite(y[i]));
    // Relative to max(|x|, 1): GeLU of a large negative x is a tiny negative number that float rounds to 0.
    CHECK(std::abs(ld(y[i]) - ref) <= 1e-6L * std::max<ld>(std::abs(ld(x[i])), 1.0L));
    CHECK(gated[i] == y[i]);
  }
}

TEST_CASE_TEMPLATE("RMSNorm of tiny and huge rows", Backend, GRIFFIN_TEST_BACKENDS) {
  const std::size_t n = 128;
  std::vector<float> pattern(n), weight(n);
  for (std::size_t i = 0; i < n; ++i) {
    pattern[i] = float(std::sin(double(i) * 0.7) + (i % 3 == 0 ? 0.5 : -0.25));
    weight[i] = float(i % 7) * 0.05f - 0.1f;
  }
  const float eps = 1e-6f;
  for (float scale : {0.0f, 1e-30f, 1e-10f, 1e-3f, 1.0f, 1e3f, 1e10f, 1e15f, 1e18f, 1e19f, 1e25f, 1e30f, 1e38f}) {
    CAPTURE(scale);
    std::vector<float> x(n), y(n);
    for (std::size_t i = 0; i < n; ++i) x[i] = pattern[i] * scale;
    ld sum_sq = 0;
    for (float v : x) sum_sq += ld(v) * ld(v);
    const ld inv_rms = 1.0L / std::sqrt(sum_sq / ld(n) + ld(eps));
    kernels::rms_norm<Backend>(x.data(), weight.data(), eps, n, y.data());
    ld worst = 0;
    bool finite = true;
    for (std::size_t i = 0; i < n; ++i) {
      finite = finite && std::isfinite(y[i]);
      worst = std::max(worst, std::abs(ld(y[i]) - ld(x[i]) * inv_rms * (1.0L + ld(weight[i]))));
    }
    CHECK(finite);
    // The output is of order 1 (or, below eps, of order x / sqrt(eps)): an absolute bound suits both.
    CHECK(double(worst) <= 2e-6);
  }
}

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
      const ld log_a = ld(log_a_scale[c]) * sigmoid_ld(gate_a[at]);
      const ld a = reset ? 0.0L : std::exp(log_a);
      const ld normaliser = reset ? 1.0L : std::sqrt(-std::expm1(2.0L * log_a));
      h[c] = a * h[c] + ld(x[at]) * sigmoid_ld(gate_x[at]) * normaliser;
      y[at] = h[c];
    }
  return y;
}

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
    CHECK(close(y[c], ref, 1e-5L));
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
    std::vector<float> ours(H * Dh), ref(H * Dh), scores(keys);
    kernels::mqa_attention<Backend>(rows, std::span(&seg, 1), H, Dh, 4, ours.data(), scores.data());
    kernels::reference::mqa_attention(rows, std::span(&seg, 1), H, Dh, 4, ref.data());
    for (float o : ours) CHECK(std::isfinite(o));
    // Outputs are convex combinations of values in [-5, 5]; near a tie between two huge scores the float
    // and double softmaxes may pick different weights, so the bound is loose where scores are huge.
    CHECK(test::max_abs_diff(ours, ref) < (scale > 1e3f ? 1.0f : 1e-5f));
  }
}

TEST_CASE("a whole model stays finite with extreme weights") {
  const auto config = test::tiny_random_config();
  const std::vector<int> prompt{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20};
  auto run = [&](auto&& damage) {
    auto w = std::make_shared<Weights>(make_random_weights(config, WeightType::f32, 3));
    damage(*w);
    const Model<> model(config, w, 1);
    State s = model.new_state();
    auto logits = model.prefill(s, prompt, LogitsRows::all);
    for (int t = 0; t < 20; ++t) {
      const int next = t % 64;
      const auto row = model.decode(s, std::span<const int>(&next, 1));
      logits.insert(logits.end(), row.begin(), row.end());
    }
    std::size_t bad = 0;
    for (float x : logits) bad += !std::isfinite(x);
    for (const auto& l : s.layers())
      for (float h : l.rg_lru) bad += !std::isfinite(h);
    return bad;
  };
  SUBCASE("recurrent_param very large: a = 0, no memory") {
    CHECK(run([](Weights& w) {
            for (auto& l : w.layers) std::fill(l.recurrent.log_a_scale.begin(), l.recurrent.log_a_scale.end(),
                                               kernels::rg_lru_log_a_scale(1e30f));
          }) == 0);
  }
  SUBCASE("recurrent_param very negative: a = 1, the normaliser vanishes") {
    CHECK(run([](Weights& w) {
            for (auto& l : w.layers) std::fill(l.recurrent.log_a_scale.begin(), l.recurrent.log_a_scale.end(),
                                               kernels::rg_lru_log_a_scale(-1e4f));
          }) == 0);
  }
  SUBCASE("gates saturated by huge gate biases") {
    CHECK(run([](Weights& w) {
            for (auto& l : w.layers) {
              std::fill(l.recurrent.input_gate_bias.begin(), l.recurrent.input_gate_bias.end(), 1e30f);
              std::fill(l.recurrent.recurrent_gate_bias.begin(), l.recurrent.recurrent_gate_bias.end(), -1e30f);
            }
          }) == 0);
  }
  SUBCASE("huge embeddings (the residual stream near 1e20)") {
    CHECK(run([&](Weights& w) {
            std::vector<float> big(config.vocab_size * config.width);
            for (std::size_t i = 0; i < big.size(); ++i) big[i] = (i % 5 ? 1e19f : -3e19f);
            w.embed_tokens = Matrix::owned_f32(std::move(big), config.vocab_size, config.width);
          }) == 0);
  }
}
