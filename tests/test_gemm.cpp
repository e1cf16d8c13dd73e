// The matmul kernels against their scalar twins: gemm (prefill) reproduces reference::gemm bit for bit,
// gemv (decode) matches reference::gemv to rounding, for f32, bf16 and int8 weights, every backend, sizes
// that leave partial register tiles and partial cache blocks, and any split of the outputs across threads.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "griffin/kernels/linear.hpp"
#include "griffin/simd/default.hpp"
#include "griffin/threads.hpp"
#include "griffin/weights.hpp"

using namespace griffin;

namespace {

std::vector<float> random_floats(std::size_t n, std::uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-scale, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// One weight matrix in all three storage types.
struct Weights3 {
  Weights3(std::size_t n, std::size_t k, std::uint32_t seed) : rows(n), cols(k), f32(random_floats(n * k, seed)) {
    bf16_values.resize(f32.size());
    for (std::size_t i = 0; i < f32.size(); ++i) bf16_values[i] = f32_to_bf16(f32[i]);
    int8 = Matrix::quantized_int8(f32.data(), n, k);
  }
  MatrixView<float> f32_view() const { return {f32.data(), rows, cols}; }
  MatrixView<bf16> bf16_view() const { return {bf16_values.data(), rows, cols}; }
  Int8MatrixView int8_view() const { return int8.int8_view(); }
  std::size_t rows, cols;
  std::vector<float> f32;
  std::vector<bf16> bf16_values;
  Matrix int8;
};

// Calls f(view, name) for the f32, bf16 and int8 views of w.
template <class F>
void for_each_weight_type(const Weights3& w, F&& f) {
  f(w.f32_view(), "f32");
  f(w.bf16_view(), "bf16");
  f(w.int8_view(), "int8");
}

// Sizes that exercise partial micro-tiles (rows not a multiple of 6, outputs not a multiple of 2·lanes),
// several K blocks (K = 520, 1100 beyond kc), row blocks (T = 300 beyond mc) and W blocks (N = 3100 beyond nc).
struct Dims {
  std::size_t tokens, k, n;
};
constexpr Dims gemm_dims[] = {{1, 1, 1},      {8, 3, 5},     {13, 17, 33},  {6, 64, 32},    {7, 300, 70},
                              {150, 129, 47}, {9, 520, 100}, {300, 20, 40}, {20, 40, 3100}, {14, 1100, 70}};

}  // namespace

TEST_CASE("gemm reproduces the sequential fused multiply-add chain of reference::gemm exactly") {
  simd::for_each_backend([]<class B>() {
    SUBCASE(B::name) {
      for (const auto& d : gemm_dims) {
        CAPTURE(d.tokens);
        CAPTURE(d.k);
        CAPTURE(d.n);
        const Weights3 w(d.n, d.k, 7 + std::uint32_t(d.k));
        const auto x = random_floats(d.tokens * d.k, 11);
        const auto bias = random_floats(d.n, 13);
        for_each_weight_type(w, [&](auto view, const char* type) {
          CAPTURE(type);
          for (const float* b : {bias.data(), static_cast<const float*>(nullptr)}) {
            std::vector<float> ours(d.tokens * d.n, NAN), oracle(d.tokens * d.n);
            kernels::gemm<B>(x.data(), d.tokens, view, b, ours.data());
            kernels::reference::gemm(x.data(), d.tokens, view, b, oracle.data());
            CHECK(ours == oracle);
          }
        });
      }
    }
  });
}

TEST_CASE("gemm and gemv agree with the double-precision matmul to rounding") {
  simd::for_each_backend([]<class B>() {
    SUBCASE(B::name) {
      for (const auto& d : gemm_dims) {
        for (std::size_t tokens : {std::size_t(1), std::size_t(2), std::size_t(3), std::size_t(5), d.tokens}) {
          CAPTURE(tokens);
          CAPTURE(d.k);
          CAPTURE(d.n);
          const Weights3 w(d.n, d.k, 3);
          const auto x = random_floats(tokens * d.k, 5);
          const auto bias = random_floats(d.n, 6);
          for_each_weight_type(w, [&](auto view, const char* type) {
            CAPTURE(type);
            std::vector<float> via_gemm(tokens * d.n), via_gemv(tokens * d.n), via_linear(tokens * d.n),
                oracle(tokens * d.n);
            kernels::gemm<B>(x.data(), tokens, view, bias.data(), via_gemm.data());
            kernels::gemv<B>(x.data(), tokens, view, bias.data(), via_gemv.data());
            kernels::linear<B>(x.data(), tokens, view, bias.data(), via_linear.data());
            kernels::reference::gemv(x.data(), tokens, view, bias.data(), oracle.data());
            // |x|, |w| <= 1 (int8: |q·s| <= 1): the float sum of K products is within K·2⁻²³ of the exact one
            // per product, plus the int8 path's rounding of q·s (gemm) — a few K ulps in all.
            const float tolerance = 4e-7f * float(d.k + 8);
            float worst_gemm = 0, worst_gemv = 0;
            for (std::size_t i = 0; i < oracle.size(); ++i) {
              worst_gemm = std::max(worst_gemm, std::abs(via_gemm[i] - oracle[i]));
              worst_gemv = std::max(worst_gemv, std::abs(via_gemv[i] - oracle[i]));
            }
            CHECK(worst_gemm <= tolerance);
            CHECK(worst_gemv <= tolerance);
            CHECK(via_linear == (tokens >= kernels::gemm_min_tokens ? via_gemm : via_gemv));
          });
        }
      }
    }
  });
}

TEST_CASE("splitting a linear's outputs across threads does not change a bit") {
  ThreadPool one(1), two(2);
  simd::for_each_backend([&]<class B>() {
    SUBCASE(B::name) {
      for (std::size_t tokens : {std::size_t(1), std::size_t(4), std::size_t(31)}) {
        CAPTURE(tokens);
        const Weights3 w(203, 129, 9);
        const auto x = random_floats(tokens * 129, 10);
        const auto bias = random_floats(203, 12);
        for_each_weight_type(w, [&](auto view, const char* type) {
          CAPTURE(type);
          auto run = [&](ThreadPool& pool, std::size_t grain) {
            std::vector<float> y(tokens * 203);
            pool.parallel_for(203, grain, [&](std::size_t n0, std::size_t n1) {
              kernels::linear<B>(x.data(), tokens, view, bias.data(), y.data(), n0, n1);
            });
            return y;
          };
          const auto serial = run(one, 1);
          CHECK(run(two, kernels::linear_output_grain<B>(tokens)) == serial);
          CHECK(run(two, 1) == serial);  // even splits that cut a register tile
          CHECK(run(two, 7) == serial);
        });
      }
    }
  });
}

TEST_CASE("load_i8 converts every int8 value exactly, on every backend") {
  std::vector<std::int8_t> all(256 + 64);
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<std::int8_t>(int(i % 256) - 128);
  simd::for_each_backend([&]<class B>() {
    SUBCASE(B::name) {
      float lanes[B::lanes];
      for (std::size_t i = 0; i + B::lanes <= all.size(); i += B::lanes) {
        B::store(lanes, B::load_i8(all.data() + i));
        for (std::size_t l = 0; l < B::lanes; ++l) CHECK(lanes[l] == float(all[i + l]));
      }
    }
  });
}

TEST_CASE("int8 quantisation: per-row symmetric scale, error at most half a step") {
  const auto w = random_floats(37 * 101, 21, 3.0f);
  const Matrix m = Matrix::quantized_int8(w.data(), 37, 101);
  const Int8MatrixView q = m.int8_view();
  CHECK(m.type() == WeightType::int8);
  CHECK(m.size_bytes() == 37 * 101 + 37 * sizeof(float));
  for (std::size_t r = 0; r < 37; ++r) {
    float max_abs = 0;
    for (std::size_t c = 0; c < 101; ++c) max_abs = std::max(max_abs, std::abs(w[r * 101 + c]));
    CHECK(q.scales[r] == doctest::Approx(max_abs / 127.0f));
    int extreme = 0;
    for (std::size_t c = 0; c < 101; ++c) {
      CHECK(std::abs(q.row(r)[c]) <= 127);
      extreme = std::max(extreme, std::abs(int(q.row(r)[c])));
      CHECK(std::abs(float(q.row(r)[c]) * q.scales[r] - w[r * 101 + c]) <= 0.5f * q.scales[r] * 1.0001f);
    }
    CHECK(extreme == 127);  // the largest weight of each row uses the full range
  }
  // An all-zero row quantises to zeros with scale 0 (no division by zero).
  const std::vector<float> zeros(16, 0.0f);
  const Matrix z = Matrix::quantized_int8(zeros.data(), 2, 8);
  CHECK(z.int8_view().scales[0] == 0.0f);
  CHECK(z.int8_view().row(1)[7] == 0);
}
