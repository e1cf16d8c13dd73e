// Token embedding (griffin/kernels/embedding.hpp): the scale sqrt(D) rounded to bfloat16, and a row read out
// of the panel layout for every storage type.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "griffin/kernels/embedding.hpp"
#include "griffin/matrix.hpp"
#include "test_support.hpp"

using namespace griffin;

TEST_CASE("embedding scale is sqrt(D) rounded to bfloat16") {
  CHECK(kernels::embedding_scale(2560, true) == 50.5f);
  CHECK(kernels::embedding_scale(128, true) == 11.3125f);
  CHECK(kernels::embedding_scale(128, false) == 1.0f);
}

TEST_CASE("embed gives row `token` of the table times the scale, for f32, bf16 and int8 tables") {
  // 37 rows: two whole panels and a partial one; tokens in each.
  const std::size_t V = 37, D = 21;
  const auto values = test::random_floats(V * D, 51, -2, 2);
  const float scale = kernels::embedding_scale(D, true);
  for (WeightType type : {WeightType::f32, WeightType::bf16, WeightType::int8}) {
    CAPTURE(weight_type_name(type));
    const Matrix table = test::matrix_from_rows(type, values, V, D);
    for (int token : {0, 5, 15, 16, 31, 32, 36}) {
      CAPTURE(token);
      std::vector<float> y(D, NAN);
      table.visit([&](auto view) { kernels::embed(view, token, scale, y.data()); });
      for (std::size_t c = 0; c < D; ++c) {
        const float want = table.at(std::size_t(token), c) * scale;
        if (type == WeightType::int8) {
          // int8 multiplies the stored integer by (row scale · scale), at() by the row scale first: the two
          // roundings may differ by an ulp.
          CHECK(std::abs(y[c] - want) <= 2.5e-7f * std::abs(want));
        } else {
          CHECK(y[c] == want);  // the stored value widened to f32 (exactly as at() gives it), times the scale
        }
      }
    }
  }
}
