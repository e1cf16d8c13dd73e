// The causal depthwise Conv1D (griffin/kernels/conv1d.hpp), every backend: against the reference
// implementation's outputs and state, against its scalar twin, token by token through the state, and with a
// compile-time width giving exactly the run-time width's bits.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "griffin/kernels/conv1d.hpp"
#include "kernel_golden.hpp"
#include "test_support.hpp"

using namespace griffin;
using test::max_abs_diff;
namespace golden = test::kernel_golden;

namespace {
// The checkpoint's [E, 1, K] taps as the kernel takes them, [K, E].
std::vector<float> taps_k_major(const std::vector<float>& w, std::size_t channels, std::size_t K) {
  std::vector<float> taps(K * channels);
  for (std::size_t c = 0; c < channels; ++c)
    for (std::size_t k = 0; k < K; ++k) taps[k * channels + c] = w[c * K + k];
  return taps;
}
}  // namespace

TEST_CASE_TEMPLATE("conv1d is causal, masks earlier documents and carries its state", Backend, GRIFFIN_TEST_BACKENDS) {
  using golden::B, golden::T, golden::D;
  const test::Golden& g = golden::file();
  const auto x = g.f32("conv1d.x"), bias = g.f32("conv1d.bias");
  const auto expected = g.f32("conv1d.y"), expected_state = g.f32("conv1d.state");
  const auto seg = g.i32("segment_pos");
  const std::size_t K = 4;
  const auto taps = taps_k_major(g.f32("conv1d.weight"), D, K);
  std::vector<float> ours(B * T * D), oracle(B * T * D);
  std::vector<float> state((K - 1) * D), oracle_state((K - 1) * D);
  for (std::size_t b = 0; b < B; ++b) {
    std::fill(state.begin(), state.end(), 0.0f);
    std::fill(oracle_state.begin(), oracle_state.end(), 0.0f);
    kernels::conv1d<Backend>(x.data() + b * T * D, T, D, Size<dynamic>(K), taps.data(), bias.data(), seg.data() + b * T,
                             state.data(), ours.data() + b * T * D);
    kernels::reference::conv1d(x.data() + b * T * D, T, D, K, taps.data(), bias.data(), seg.data() + b * T,
                               oracle_state.data(), oracle.data() + b * T * D);
    const std::vector<float> want(expected_state.begin() + b * (K - 1) * D, expected_state.begin() + (b + 1) * (K - 1) * D);
    CHECK(max_abs_diff(state, want) == 0.0f);
    CHECK(max_abs_diff(oracle_state, want) == 0.0f);
  }
  REQUIRE(golden::inputs_lost_in_golden(x));
  CHECK(golden::max_abs_diff_except(ours, expected, golden::at_lost_inputs) < golden::tolerance);
  CHECK(golden::max_abs_diff_except(oracle, expected, golden::at_lost_inputs) < golden::tolerance);

  SUBCASE("token by token through the state gives the same as the whole chunk") {
    std::vector<float> stepped(B * T * D);
    for (std::size_t b = 0; b < B; ++b) {
      std::fill(state.begin(), state.end(), 0.0f);
      for (std::size_t t = 0; t < T; ++t)
        kernels::conv1d<Backend>(x.data() + (b * T + t) * D, 1, D, Size<dynamic>(K), taps.data(), bias.data(),
                                 seg.data() + b * T + t, state.data(), stepped.data() + (b * T + t) * D);
    }
    CHECK(stepped == ours);
  }
  SUBCASE("the compile-time width Size<4> gives the same bits as the run-time width") {
    std::vector<float> fixed(B * T * D);
    for (std::size_t b = 0; b < B; ++b) {
      std::fill(state.begin(), state.end(), 0.0f);
      kernels::conv1d<Backend>(x.data() + b * T * D, T, D, Size<4>{}, taps.data(), bias.data(), seg.data() + b * T,
                               state.data(), fixed.data() + b * T * D);
    }
    CHECK(fixed == ours);
  }
}

TEST_CASE_TEMPLATE("conv1d: static and dynamic widths agree bit for bit on every path", Backend, GRIFFIN_TEST_BACKENDS) {
  // Widths 2, 3 and 4; 37 channels (vectors and a one-lane tail); chunks longer than the history, shorter
  // than it (part of the old state is kept), documents that start mid-chunk, and a channel range.
  const std::size_t E = 37, T = 9;
  const auto u = test::random_floats(T * E, 31), bias = test::random_floats(E, 32);
  const std::vector<int> positions{6, 7, 0, 1, 2, 0, 1, 2, 3};
  const auto check_width = [&](auto width) {
    const std::size_t K = width;
    CAPTURE(K);
    const auto taps = test::random_floats(K * E, 33), start_state = test::random_floats((K - 1) * E, 34);
    for (const std::size_t tokens : {T, std::size_t(1), std::size_t(2)}) {
      for (const auto& [c0, c1] : {std::pair<std::size_t, std::size_t>{0, E}, {16, 35}}) {
        CAPTURE(tokens);
        CAPTURE(c0);
        std::vector<float> y_fixed(T * E, NAN), y_run_time(T * E, NAN), y_oracle(T * E, NAN);
        std::vector<float> s_fixed = start_state, s_run_time = start_state, s_oracle = start_state;
        kernels::conv1d<Backend>(u.data(), E, tokens, E, width, taps.data(), bias.data(), positions.data(),
                                 s_fixed.data(), y_fixed.data(), c0, c1);
        kernels::conv1d<Backend>(u.data(), E, tokens, E, Size<dynamic>(K), taps.data(), bias.data(), positions.data(),
                                 s_run_time.data(), y_run_time.data(), c0, c1);
        kernels::reference::conv1d(u.data(), tokens, E, K, taps.data(), bias.data(), positions.data(), s_oracle.data(),
                                   y_oracle.data());
        CHECK(test::same_bits(y_fixed, y_run_time));  // NaN outside the range, if neither wrote there
        CHECK(s_fixed == s_run_time);
        // Inside the range, the double-precision reference to rounding (sums of K products below 1).
        float worst = 0;
        for (std::size_t t = 0; t < tokens; ++t)
          for (std::size_t c = c0; c < c1; ++c) {
            worst = std::max(worst, std::abs(y_fixed[t * E + c] - y_oracle[t * E + c]));
            for (std::size_t r = 0; r + 1 < K; ++r) CHECK(s_fixed[r * E + c] == s_oracle[r * E + c]);
          }
        CHECK(worst < 1e-6f);
      }
    }
  };
  check_width(Size<2>{});
  check_width(Size<3>{});
  check_width(Size<4>{});
}
