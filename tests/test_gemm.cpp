// The matmuls and the weights they read: Matrix (griffin/matrix.hpp) in panels of 16 rows
// (kernels/matrix_view.hpp), f32, bf16 or int8 with a scale per row; the prefill gemm (kernels/gemm.hpp), the
// decode gemv (kernels/gemv.hpp) and linear, which picks one (kernels/linear.hpp). Every output of every one
// of them is the single fused multiply-add chain reference::matmul writes out, so they give its bits exactly,
// for every backend, storage type and token count, sizes that leave partial register tiles, panels and cache
// blocks, any split of the outputs across threads, and compile-time or run-time extents.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "griffin/kernels/gemm.hpp"
#include "griffin/kernels/gemv.hpp"
#include "griffin/kernels/linear.hpp"
#include "griffin/matrix.hpp"
#include "griffin/simd/default.hpp"
#include "griffin/threads.hpp"
#include "test_support.hpp"

using namespace griffin;
using test::random_floats;

namespace {

constexpr WeightType weight_types[] = {WeightType::f32, WeightType::bf16, WeightType::int8};

// Sizes that exercise partial micro-tiles (rows not a multiple of 6, outputs not a multiple of 2·lanes), partial
// weight panels (outputs not a multiple of 16), several K blocks (K = 520, 1100 beyond kc), row blocks (T = 300
// beyond mc) and W blocks (N = 3100 beyond nc).
struct Dims {
  std::size_t tokens, k, n;
};
constexpr Dims gemm_dims[] = {{1, 1, 1},      {8, 3, 5},     {13, 17, 33},  {6, 64, 32},    {7, 300, 70},
                              {150, 129, 47}, {9, 520, 100}, {300, 20, 40}, {20, 40, 3100}, {14, 1100, 70}};

// y = reference::matmul for `tokens` rows of x.
std::vector<float> reference_matmul(const std::vector<float>& x, std::size_t tokens, const Matrix& w, const float* bias) {
  std::vector<float> y(tokens * w.rows());
  w.visit([&](auto view) { kernels::reference::matmul(x.data(), tokens, view, bias, y.data()); });
  return y;
}

}  // namespace

// ---- The specification ----

TEST_CASE("gemm reproduces the sequential fused multiply-add chain of reference::matmul exactly") {
  simd::for_each_backend([]<class B>() {
    SUBCASE(B::name) {
      for (const auto& d : gemm_dims) {
        CAPTURE(d.tokens);
        CAPTURE(d.k);
        CAPTURE(d.n);
        const auto values = random_floats(d.n * d.k, 7 + std::uint32_t(d.k));
        const auto x = random_floats(d.tokens * d.k, 11);
        const auto bias = random_floats(d.n, 13);
        for (WeightType type : weight_types) {
          CAPTURE(weight_type_name(type));
          const Matrix w = test::matrix_from_rows(type, values, d.n, d.k);
          for (const float* b : {bias.data(), static_cast<const float*>(nullptr)}) {
            std::vector<float> ours(d.tokens * d.n, NAN);
            w.visit([&](auto view) { kernels::gemm<B>(x.data(), d.tokens, view, b, ours.data()); });
            CHECK(ours == reference_matmul(x, d.tokens, w, b));
          }
        }
        // The right operands attention multiplies by: keys row-major (S = Q · Kᵀ), values transposed (P · V).
        const MatrixView<float> keys{values.data(), d.n, d.k};
        const TransposedMatrixView transposed{values.data(), d.n, d.k, d.n};
        for (const float* b : {bias.data(), static_cast<const float*>(nullptr)}) {
          std::vector<float> ours(d.tokens * d.n, NAN), oracle(d.tokens * d.n);
          kernels::gemm<B>(x.data(), d.tokens, keys, b, ours.data());
          kernels::reference::matmul(x.data(), d.tokens, keys, b, oracle.data());
          CHECK(ours == oracle);
          kernels::gemm<B>(x.data(), d.tokens, transposed, b, ours.data());
          kernels::reference::matmul(x.data(), d.tokens, transposed, b, oracle.data());
          CHECK(ours == oracle);
        }
      }
    }
  });
}

TEST_CASE("gemv and linear give reference::matmul's bits for every token count, as gemm does") {
  simd::for_each_backend([]<class B>() {
    SUBCASE(B::name) {
      for (const auto& d : gemm_dims) {
        const auto values = random_floats(d.n * d.k, 3);
        const auto bias = random_floats(d.n, 6);
        for (WeightType type : weight_types) {
          const Matrix w = test::matrix_from_rows(type, values, d.n, d.k);
          // Below, at and above gemm_min_tokens; 1-4 are gemv's own passes, 5-7 a pass of 4 and a remainder.
          for (std::size_t tokens : {std::size_t(1), std::size_t(2), std::size_t(3), std::size_t(4), std::size_t(5),
                                     std::size_t(7), std::size_t(8), std::size_t(9), d.tokens}) {
            CAPTURE(tokens);
            CAPTURE(d.k);
            CAPTURE(d.n);
            CAPTURE(weight_type_name(type));
            const auto x = random_floats(tokens * d.k, 5);
            const auto oracle = reference_matmul(x, tokens, w, bias.data());
            std::vector<float> via_gemv(tokens * d.n, NAN), via_gemm(tokens * d.n, NAN), via_linear(tokens * d.n, NAN);
            w.visit([&](auto view) {
              kernels::gemv<B>(x.data(), d.k, tokens, view, bias.data(), via_gemv.data(), d.n, 0, d.n);
              kernels::gemm<B>(x.data(), tokens, view, bias.data(), via_gemm.data());
              kernels::linear<B>(x.data(), tokens, view, bias.data(), via_linear.data());
            });
            CHECK(via_gemv == oracle);
            CHECK(via_gemm == oracle);
            CHECK(via_linear == oracle);
          }
        }
      }
    }
  });
}

TEST_CASE("gemv and gemm read and write rows at any stride") {
  const std::size_t tokens = 5, K = 37, N = 41, ldx = 50, ldy = 60;
  const auto values = random_floats(N * K, 21), bias = random_floats(N, 22);
  const auto strided_x = random_floats(tokens * ldx, 23);
  std::vector<float> x(tokens * K);
  for (std::size_t t = 0; t < tokens; ++t)
    std::copy_n(strided_x.begin() + std::ptrdiff_t(t * ldx), K, x.begin() + std::ptrdiff_t(t * K));
  simd::for_each_backend([&]<class B>() {
    SUBCASE(B::name) {
      for (WeightType type : weight_types) {
        CAPTURE(weight_type_name(type));
        const Matrix w = test::matrix_from_rows(type, values, N, K);
        const auto oracle = reference_matmul(x, tokens, w, bias.data());
        std::vector<float> via_gemv(tokens * ldy, -7.0f), via_gemm(tokens * ldy, -7.0f);
        w.visit([&](auto view) {
          kernels::gemv<B>(strided_x.data(), ldx, tokens, view, bias.data(), via_gemv.data(), ldy, 0, N);
          kernels::gemm_strided<B>(strided_x.data(), ldx, tokens, view, bias.data(), via_gemm.data(), ldy, 0, N, false);
        });
        for (const auto* y : {&via_gemv, &via_gemm})
          for (std::size_t t = 0; t < tokens; ++t) {
            CAPTURE(t);
            CHECK(std::vector<float>(y->begin() + std::ptrdiff_t(t * ldy), y->begin() + std::ptrdiff_t(t * ldy + N)) ==
                  std::vector<float>(oracle.begin() + std::ptrdiff_t(t * N), oracle.begin() + std::ptrdiff_t((t + 1) * N)));
            // The gap between rows is left alone.
            for (std::size_t c = N; c < ldy; ++c) CHECK((*y)[t * ldy + c] == -7.0f);
          }
      }
    }
  });
}

TEST_CASE("the matmul agrees with the double-precision sum over Matrix::at to rounding") {
  for (const auto& d : gemm_dims) {
    const auto values = random_floats(d.n * d.k, 3);
    const auto x = random_floats(d.tokens * d.k, 5), bias = random_floats(d.n, 6);
    for (WeightType type : weight_types) {
      CAPTURE(d.k);
      CAPTURE(d.n);
      CAPTURE(weight_type_name(type));
      const Matrix w = test::matrix_from_rows(type, values, d.n, d.k);
      const auto ours = reference_matmul(x, d.tokens, w, bias.data());  // = gemm, gemv, linear (above)
      // |x|, |w| <= 1 (int8: |q·s| <= 1): the float sum of K products is within K·2⁻²³ of the exact one per
      // product, plus the rounding of q·s in at() for int8: a few K ulps in all.
      const float tolerance = 4e-7f * float(d.k + 8);
      float worst = 0;
      for (std::size_t t = 0; t < d.tokens; ++t)
        for (std::size_t n = 0; n < d.n; ++n) {
          double exact = bias[n];
          for (std::size_t k = 0; k < d.k; ++k) exact += double(x[t * d.k + k]) * double(w.at(n, k));
          worst = std::max(worst, float(std::abs(double(ours[t * d.n + n]) - exact)));
        }
      CHECK(worst <= tolerance);
    }
  }
}

// ---- Splits and extents ----

TEST_CASE("splitting a linear's outputs across threads does not change a bit") {
  // parallel_for with an explicit grain takes every split it can; min_part_work (grain_for) plays no part.
  ThreadPool one(1), two(2);
  const std::size_t N = 203, K = 129;  // 203 outputs: a partial panel and a partial gemm tile at the end
  const auto values = random_floats(N * K, 9), bias = random_floats(N, 12);
  simd::for_each_backend([&]<class B>() {
    SUBCASE(B::name) {
      for (std::size_t tokens : {std::size_t(1), std::size_t(4), std::size_t(7), std::size_t(8), std::size_t(31)}) {
        CAPTURE(tokens);
        const auto x = random_floats(tokens * K, 10);
        for (WeightType type : weight_types) {
          CAPTURE(weight_type_name(type));
          const Matrix w = test::matrix_from_rows(type, values, N, K);
          auto run = [&](ThreadPool& pool, std::size_t grain) {
            std::vector<float> y(tokens * N, NAN);
            w.visit([&](auto view) {
              pool.parallel_for(N, grain, [&](std::size_t n0, std::size_t n1) {
                kernels::linear<B>(x.data(), tokens, view, bias.data(), y.data(), n0, n1);
              });
            });
            return y;
          };
          const auto serial = run(one, 1);
          CHECK(serial == reference_matmul(x, tokens, w, bias.data()));
          // Parts start at whole panels (gemv) or whole gemm tiles (gemm): kernels::linear_output_grain.
          const std::size_t grain = kernels::linear_output_grain<B>(tokens);
          for (std::size_t m : {1, 2, 3, 5}) {
            CAPTURE(m);
            CHECK(run(two, m * grain) == serial);
          }
        }
      }
    }
  });
}

TEST_CASE("a matrix's compile-time extents give the run-time extents' bits") {
  // 48 rows: three panels, which gemv covers in passes that divide them when the count is a constant.
  constexpr std::size_t N = 48, K = 37;
  const auto values = random_floats(N * K, 31), bias = random_floats(N, 32);
  simd::for_each_backend([&]<class B>() {
    SUBCASE(B::name) {
      for (WeightType type : weight_types) {
        CAPTURE(weight_type_name(type));
        const Matrix w = test::matrix_from_rows(type, values, N, K);
        for (std::size_t tokens : {std::size_t(1), std::size_t(3), std::size_t(4), std::size_t(6), std::size_t(9)}) {
          CAPTURE(tokens);
          const auto x = random_floats(tokens * K, 33);
          std::vector<float> fixed(tokens * N, NAN), run_time(tokens * N, NAN);
          w.visit<N, K>([&](auto view) { kernels::linear<B>(x.data(), tokens, view, bias.data(), fixed.data()); });
          w.visit([&](auto view) { kernels::linear<B>(x.data(), tokens, view, bias.data(), run_time.data()); });
          CHECK(fixed == run_time);
        }
      }
    }
  });
}

TEST_CASE_TEMPLATE("linear with bf16 weights equals linear with the same values in f32", Backend, GRIFFIN_TEST_BACKENDS) {
  const std::size_t N = 37, K = 70;  // odd sizes: every tile and tail path
  const auto values = random_floats(N * K, 7, -3, 3);
  std::vector<float> rounded(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) rounded[i] = round_to_bf16(values[i]);
  const Matrix wb = test::matrix_from_rows(WeightType::bf16, values, N, K);
  const Matrix wf = test::matrix_from_rows(WeightType::f32, rounded, N, K);
  const auto bias = random_floats(N, 8);
  for (std::size_t tokens : {std::size_t(1), std::size_t(5), std::size_t(12)}) {  // gemv and gemm
    CAPTURE(tokens);
    const auto x = random_floats(tokens * K, 9);
    std::vector<float> from_bf16(tokens * N), from_f32(tokens * N);
    test::linear<Backend>(x.data(), tokens, wb, bias.data(), from_bf16.data());
    test::linear<Backend>(x.data(), tokens, wf, bias.data(), from_f32.data());
    // bf16 widens to f32 exactly, and both run the same chain.
    CHECK(from_bf16 == from_f32);
  }
}

// ---- The weights: panels, storage types, quantisation ----

TEST_CASE("Matrix: from_rows and from_row_major lay out the same panels, and at() gives back each weight") {
  for (const std::size_t rows : {std::size_t(1), std::size_t(16), std::size_t(37)}) {  // a partial panel, one, three
    const std::size_t cols = 19;
    CAPTURE(rows);
    const auto values = random_floats(rows * cols, 61, -4, 4);
    std::vector<bf16> bf16_values(values.size());
    for (std::size_t i = 0; i < values.size(); ++i) bf16_values[i] = f32_to_bf16(values[i]);
    for (WeightType type : {WeightType::f32, WeightType::bf16}) {
      CAPTURE(weight_type_name(type));
      const Matrix filled = test::matrix_from_rows(type, values, rows, cols);
      const void* stored = type == WeightType::f32 ? static_cast<const void*>(values.data()) : bf16_values.data();
      const Matrix copied = Matrix::from_row_major(type, stored, rows, cols);
      // Made a panel range at a time on three threads: the same matrix.
      const auto fill_row = [&](std::size_t r, std::span<float> row) {
        std::copy_n(values.begin() + std::ptrdiff_t(r * cols), cols, row.begin());
      };
      const Matrix parallel = Matrix::from_rows(type, rows, cols, fill_row, ParallelRanges{3});
      CHECK(filled.type() == type);
      CHECK(filled.rows() == rows);
      CHECK(filled.cols() == cols);
      CHECK(filled.panels() == (rows + 15) / 16);
      // The stored panels, padding rows included, are byte for byte the same.
      const std::size_t element = type == WeightType::f32 ? 4 : 2, bytes = filled.panels() * panel_width * cols * element;
      CHECK(filled.size_bytes() == bytes);
      const auto data = [](const Matrix& m) {
        return m.visit([](auto view) { return static_cast<const void*>(view.data); });
      };
      CHECK(std::memcmp(data(filled), data(copied), bytes) == 0);
      CHECK(std::memcmp(data(filled), data(parallel), bytes) == 0);
      filled.visit([&](auto view) {
        for (std::size_t r = 0; r < filled.panels() * panel_width; ++r)
          for (std::size_t c = 0; c < cols; ++c) {
            // Element (r, c) lies at panel(r / 16)[c · 16 + r % 16]; rows past the end are zeros.
            const float stored_value = kernels::weight_to_f32(view.data[(r / 16 * cols + c) * 16 + r % 16]);
            if (r >= rows) {
              CHECK(stored_value == 0.0f);
              continue;
            }
            const float want = type == WeightType::f32 ? values[r * cols + c] : round_to_bf16(values[r * cols + c]);
            CHECK(stored_value == want);
            CHECK(kernels::weight_to_f32(view.at(r, c)) == want);
            CHECK(filled.at(r, c) == want);
          }
      });
    }
  }
  const std::vector<float> values(4, 1.0f);
  CHECK_THROWS_WITH_AS(Matrix::from_row_major(WeightType::int8, values.data(), 2, 2),
                       doctest::Contains("int8 needs its row scales"), std::invalid_argument);
}

TEST_CASE("int8 quantisation: per-row symmetric scale, error at most half a step") {
  const std::size_t rows = 37, cols = 101;
  const auto w = random_floats(rows * cols, 21, -3, 3);
  const Matrix m = test::matrix_from_rows(WeightType::int8, w, rows, cols);
  CHECK(m.type() == WeightType::int8);
  // The panels (the last one padded to 16 rows) and a scale for every stored row.
  CHECK(m.size_bytes() == 3 * 16 * cols + 3 * 16 * sizeof(float));
  // The stored integers and scales, through the typed view an int8 matrix hands out.
  const auto int8_view = [](const Matrix& matrix) {
    return matrix.visit([](auto view) -> PanelMatrix<std::int8_t> {
      if constexpr (std::is_same_v<typename decltype(view)::weight_type, std::int8_t>) return view;
      FAIL("an int8 matrix handed out a view of another type");
      return {};
    });
  };
  const PanelMatrix<std::int8_t> q = int8_view(m);
  for (std::size_t r = 0; r < rows; ++r) {
    CAPTURE(r);
    float max_abs = 0;
    for (std::size_t c = 0; c < cols; ++c) max_abs = std::max(max_abs, std::abs(w[r * cols + c]));
    CHECK(q.scales[r] == max_abs / 127.0f);
    int extreme = 0;
    for (std::size_t c = 0; c < cols; ++c) {
      const int stored = q.at(r, c);
      CHECK(std::abs(stored) <= 127);
      extreme = std::max(extreme, std::abs(stored));
      CHECK(std::abs(float(stored) * q.scales[r] - w[r * cols + c]) <= 0.5f * q.scales[r] * 1.0001f);
      CHECK(m.at(r, c) == float(stored) * q.scales[r]);  // at(): the weight as the matmul multiplies it
    }
    CHECK(extreme == 127);  // the largest weight of each row uses the full range
  }
  for (std::size_t r = rows; r < 3 * 16; ++r) CHECK(q.scales[r] == 0.0f);  // padding rows
  // An all-zero row quantises to zeros with scale 0 (no division by zero).
  const std::vector<float> zeros(16, 0.0f);
  const Matrix z = test::matrix_from_rows(WeightType::int8, zeros, 2, 8);
  CHECK(int8_view(z).scales[0] == 0.0f);
  CHECK(int8_view(z).at(1, 7) == 0);
  CHECK(z.at(1, 7) == 0.0f);
}
