// The element-wise kernels (griffin/kernels/activations.hpp), every backend: the gated-GeLU MLP against the
// reference implementation's outputs, GeLU from tiny to huge inputs and the logits soft cap c·tanh(x/c)
// against the formulas in long double.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "edge_values.hpp"
#include "griffin/kernels/activations.hpp"
#include "griffin/kernels/gemm.hpp"
#include "griffin/matrix.hpp"
#include "kernel_golden.hpp"
#include "test_support.hpp"

using namespace griffin;
using test::ld;
using test::max_abs_diff;
namespace golden = test::kernel_golden;

TEST_CASE_TEMPLATE("gated GeLU MLP matches the reference", Backend, GRIFFIN_TEST_BACKENDS) {
  using golden::B, golden::T, golden::D;
  const test::Golden& g = golden::file();
  const auto x = g.f32("mlp.x"), expected = g.f32("mlp.y");
  const auto gw = g.f32("mlp.gate_proj.weight"), gb = g.f32("mlp.gate_proj.bias");
  const auto uw = g.f32("mlp.up_proj.weight"), ub = g.f32("mlp.up_proj.bias");
  const auto dw = g.f32("mlp.down_proj.weight"), db = g.f32("mlp.down_proj.bias");
  const std::size_t F = gb.size();
  const std::size_t N = B * T;
  const Matrix gate_proj = Matrix::from_row_major(WeightType::f32, gw.data(), F, D),
               up_proj = Matrix::from_row_major(WeightType::f32, uw.data(), F, D),
               down_proj = Matrix::from_row_major(WeightType::f32, dw.data(), D, F);
  std::vector<float> gate(N * F), up(N * F), ours(N * D);
  test::linear<Backend>(x.data(), N, gate_proj, gb.data(), gate.data());
  test::linear<Backend>(x.data(), N, up_proj, ub.data(), up.data());
  kernels::gated_gelu<Backend>(gate.data(), up.data(), N * F, gate.data());
  test::linear<Backend>(gate.data(), N, down_proj, db.data(), ours.data());
  CHECK(max_abs_diff(ours, expected) < golden::tolerance);

  // The scalar reference path (the matmul's specification, the GeLU in double) gives the same.
  const auto matmul = [](const float* in, std::size_t tokens, const Matrix& w, const float* bias, float* out) {
    w.visit([&](auto view) { kernels::reference::matmul(in, tokens, view, bias, out); });
  };
  std::vector<float> rg(N * F), ru(N * F), oracle(N * D);
  matmul(x.data(), N, gate_proj, gb.data(), rg.data());
  matmul(x.data(), N, up_proj, ub.data(), ru.data());
  kernels::reference::gated_gelu(rg.data(), ru.data(), N * F, rg.data());
  matmul(rg.data(), N, down_proj, db.data(), oracle.data());
  CHECK(max_abs_diff(oracle, expected) < golden::tolerance);
}

TEST_CASE_TEMPLATE("GeLU is finite and accurate from tiny to huge inputs", Backend, GRIFFIN_TEST_BACKENDS) {
  const std::vector<float> x = test::extreme_values();
  std::vector<float> y = x, up(x.size(), 1.0f), gated(x.size());
  kernels::gelu_in_place<Backend>(y.data(), y.size());
  kernels::gated_gelu<Backend>(x.data(), up.data(), x.size(), gated.data());
  for (std::size_t i = 0; i < x.size(); ++i) {
    CAPTURE(x[i]);
    const ld ref = test::gelu_ld(x[i]);
    CHECK(std::isfinite(y[i]));
    // Relative to max(|x|, 1): GeLU of a large negative x is a tiny negative number that float rounds to 0.
    CHECK(std::abs(ld(y[i]) - ref) <= 1e-6L * std::max<ld>(std::abs(ld(x[i])), 1.0L));
    CHECK(gated[i] == y[i]);
  }
}

TEST_CASE_TEMPLATE("soft cap bounds logits by c·tanh(x/c)", Backend, GRIFFIN_TEST_BACKENDS) {
  std::vector<float> x = {0.0f, 1.0f, -1.0f, 29.0f, 300.0f, -1e30f, 1e30f, 5.5f, -7.25f};
  std::vector<float> y = x;
  kernels::soft_cap<Backend>(y.data(), y.size(), 30.0f);
  for (std::size_t i = 0; i < x.size(); ++i) CHECK(y[i] == doctest::Approx(30.0 * std::tanh(double(x[i]) / 30.0)).epsilon(1e-6));
}

TEST_CASE_TEMPLATE("the soft cap is c·tanh(x/c) for any x", Backend, GRIFFIN_TEST_BACKENDS) {
  constexpr float inf = std::numeric_limits<float>::infinity();
  std::vector<float> x = test::extreme_values();
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
      CHECK(test::close(y[i], ref, 4e-6L));
    }
  }
}
