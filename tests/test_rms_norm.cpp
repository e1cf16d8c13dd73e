// RMSNorm with the (1 + w) scale (griffin/kernels/rms_norm.hpp), every backend: against the reference
// implementation's outputs and the scalar twin, a compile-time row width giving the run-time width's bits,
// and rows from tiny to huge against the formula in long double.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "edge_values.hpp"
#include "griffin/kernels/rms_norm.hpp"
#include "kernel_golden.hpp"
#include "test_support.hpp"

using namespace griffin;
using test::ld;
using test::max_abs_diff;
namespace golden = test::kernel_golden;

TEST_CASE_TEMPLATE("rms_norm uses (1 + w) and matches the reference", Backend, GRIFFIN_TEST_BACKENDS) {
  using golden::B, golden::T, golden::D;
  const test::Golden& g = golden::file();
  const auto x = g.f32("rmsnorm.x"), w = g.f32("rmsnorm.weight"), expected = g.f32("rmsnorm.y");
  std::vector<float> ours(x.size()), fixed(x.size()), oracle(x.size());
  kernels::rms_norm_rows<Backend>(x.data(), w.data(), 1e-6f, B * T, Size<dynamic>(D), ours.data());
  kernels::rms_norm_rows<Backend>(x.data(), w.data(), 1e-6f, B * T, Size<D>{}, fixed.data());
  for (std::size_t r = 0; r < B * T; ++r)
    kernels::reference::rms_norm(x.data() + r * D, w.data(), 1e-6f, D, oracle.data() + r * D);
  CHECK(max_abs_diff(ours, expected) < golden::tolerance);
  CHECK(max_abs_diff(oracle, expected) < golden::tolerance);
  // The compile-time width unrolls the same operations.
  CHECK(fixed == ours);
}

TEST_CASE_TEMPLATE("rms_norm: static and dynamic row widths agree bit for bit, in place too", Backend,
                   GRIFFIN_TEST_BACKENDS) {
  // 37: whole vectors and a one-lane tail on every backend.
  const std::size_t n = 37, rows = 3;
  const auto x = test::random_floats(rows * n, 41, -3, 3), w = test::random_floats(n, 42, -0.5f, 0.5f);
  std::vector<float> run_time(rows * n), fixed(rows * n), in_place = x;
  kernels::rms_norm_rows<Backend>(x.data(), w.data(), 1e-6f, rows, Size<dynamic>(n), run_time.data());
  kernels::rms_norm_rows<Backend>(x.data(), w.data(), 1e-6f, rows, Size<n>{}, fixed.data());
  kernels::rms_norm_rows<Backend>(in_place.data(), w.data(), 1e-6f, rows, Size<n>{}, in_place.data());
  CHECK(fixed == run_time);
  CHECK(in_place == run_time);
  std::vector<float> one_row(n);
  kernels::rms_norm<Backend>(x.data() + n, w.data(), 1e-6f, n, one_row.data());
  CHECK(std::vector<float>(run_time.begin() + n, run_time.begin() + 2 * n) == one_row);
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
