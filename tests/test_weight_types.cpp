// Whole models with other weight storage: the kjv-griffin checkpoint quantised to int8 at load time stays
// close to the reference's logits; random weights (random_weights.hpp) follow the spec's initialisation,
// are reproducible, and give the same logits bit for bit on one thread or two.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "griffin/griffin.hpp"
#include "griffin/random_weights.hpp"
#include "test_support.hpp"

using namespace griffin;
using griffin::test::Golden;
using griffin::test::max_abs_diff;

TEST_CASE("kjv-griffin with int8 weights stays within 0.2 (max) and 0.05 (rms) of the reference logits") {
  const auto dir = test::data_dir() / "kjv-griffin";
  const Golden g(dir / "golden.safetensors");
  LoadOptions options;
  options.weight_type = WeightType::int8;
  const auto model = load_model(dir, options);
  REQUIRE(model.config().weight_type == WeightType::int8);
  REQUIRE(model.weights().embed_tokens.type() == WeightType::int8);
  const auto tokens = g.i32("tokens");
  const std::size_t B = g.shape("tokens")[0];
  auto state = model.new_state(B);
  const auto logits = model.prefill(state, tokens, LogitsRows::all);
  const auto reference = g.f32("logits");
  REQUIRE(logits.size() == reference.size());
  float scale = 0;
  double sum_sq = 0;
  for (std::size_t i = 0; i < reference.size(); ++i) {
    scale = std::max(scale, std::abs(reference[i]));
    sum_sq += double(logits[i] - reference[i]) * (logits[i] - reference[i]);
  }
  const float error = max_abs_diff(logits, reference);
  const double rms = std::sqrt(sum_sq / double(reference.size()));
  MESSAGE("kjv-griffin int8: max |logit error| = ", error, ", rms ", rms, " (logits up to ", scale, ")");
  // Per-row int8 moves each weight by up to half a step (max|row| / 254), about 0.5% of a typical
  // weight at D = 192; through six layers and the tied int8 output projection that gives logit errors
  // of a few hundredths (measured: max 0.136, rms 0.028 on logits up to 19.5). The bounds leave some room
  // and are far below what a wrong scale or a dropped row gives (errors of order 1 and more).
  CHECK(error < 0.2f);
  CHECK(rms < 0.05);
  CHECK(error > 0.0f);  // it really ran quantised
}

TEST_CASE("converting at load time, row by row, gives the whole matrix's conversion exactly") {
  // kjv-griffin is stored in bf16 and tiny-griffin in f32. A matrix kept in the checkpoint's own type is
  // copied into panels as it is; any other is converted a row at a time.
  const auto check = [](const char* name, WeightType storage) {
    CAPTURE(name);
    CAPTURE(weight_type_name(storage));
    const auto dir = test::data_dir() / name;
    LoadOptions options;
    options.weight_type = storage;
    const auto model = load_model(dir, options);
    const auto checkpoint = io::Checkpoint::open(dir);
    const std::vector<float> values = io::to_f32(*checkpoint.find("model.embed_tokens.weight"));
    const Matrix& got = model.weights().embed_tokens;
    REQUIRE(got.type() == storage);
    const std::size_t rows = got.rows(), cols = got.cols();
    REQUIRE(values.size() == rows * cols);
    // The whole matrix converted at once, from the same values.
    const Matrix want = test::matrix_from_rows(storage, values, rows, cols);
    REQUIRE(want.size_bytes() == got.size_bytes());
    const auto storage_of = [](const Matrix& m) {
      return m.visit([](auto view) { return static_cast<const void*>(view.data); });
    };
    const std::size_t stored_bytes = want.panels() * panel_width * cols * (storage == WeightType::f32    ? 4
                                                                           : storage == WeightType::bf16 ? 2
                                                                                                         : 1);
    CHECK(std::memcmp(storage_of(got), storage_of(want), stored_bytes) == 0);
    std::size_t differ = 0;
    for (std::size_t r = 0; r < rows; ++r)
      for (std::size_t c = 0; c < cols; ++c) differ += got.at(r, c) != want.at(r, c);  // int8: the scales too
    CHECK(differ == 0);
  };
  check("kjv-griffin", WeightType::int8);
  check("kjv-griffin", WeightType::bf16);
  check("kjv-griffin", WeightType::f32);
  check("tiny-griffin", WeightType::int8);
  check("tiny-griffin", WeightType::bf16);
  check("tiny-griffin", WeightType::f32);
}

namespace {
DynamicConfig small_config(std::size_t lru_width = 96) {
  return make_dynamic_config(Shape{.vocab_size = 300, .width = 64, .lru_width = lru_width, .num_heads = 4,
                                   .head_dim = 16, .num_kv_heads = 1, .mlp_width = 160, .conv_width = 4,
                                   .attention_window = 8, .depth = 3},
                             {BlockType::recurrent, BlockType::recurrent, BlockType::local_attention});
}
}  // namespace

TEST_CASE("random weights follow the spec's initialisation and are reproducible") {
  const DynamicConfig c = small_config();
  const Weights w = make_random_weights(c, WeightType::f32, 1);
  REQUIRE(w.layers.size() == 3);
  // Linears ~ N(0, 1/fan_in): the sample variance of 64·160 weights is within a few percent.
  const Matrix& gate = w.layers[0].mlp.gate_proj;
  REQUIRE(gate.rows() == 160);
  REQUIRE(gate.cols() == 64);
  double sum = 0, sum_sq = 0;
  for (std::size_t r = 0; r < gate.rows(); ++r)
    for (std::size_t col = 0; col < gate.cols(); ++col) {
      sum += gate.at(r, col);
      sum_sq += double(gate.at(r, col)) * gate.at(r, col);
    }
  const double n = double(gate.rows() * gate.cols());
  CHECK(std::abs(sum / n) < 0.01);
  CHECK(sum_sq / n == doctest::Approx(1.0 / 64).epsilon(0.05).scale(0));  // relative: scale(0)
  // a = U^(4r) with U in [0.81, 0.998]: log_a_scale = 4 ln U.
  for (float s : w.layers[1].recurrent.log_a_scale) {
    CHECK(s >= 4.0f * std::log(0.81f) - 1e-6f);
    CHECK(s <= 4.0f * std::log(0.998f) + 1e-6f);
  }
  for (float b : w.layers[0].recurrent.linear_x_bias) CHECK(b == 0.0f);
  CHECK(w.layers[2].attention.q_proj.rows() == 64);

  // Same seed, same weights; another seed, others.
  const Weights again = make_random_weights(c, WeightType::f32, 1);
  const Weights other = make_random_weights(c, WeightType::f32, 2);
  std::size_t same_as_again = 0, same_as_other = 0;
  for (std::size_t r = 0; r < gate.rows(); ++r)
    for (std::size_t col = 0; col < gate.cols(); ++col) {
      same_as_again += again.layers[0].mlp.gate_proj.at(r, col) == gate.at(r, col);
      same_as_other += other.layers[0].mlp.gate_proj.at(r, col) == gate.at(r, col);
    }
  CHECK(same_as_again == 160 * 64);
  CHECK(same_as_other < 160);  // of 10240 weights, equal only by chance

  // bf16 and int8 hold the same values, rounded: bf16 to the nearest, int8 to half a step of its row's scale.
  const Weights wb = make_random_weights(c, WeightType::bf16, 1);
  const Weights wq = make_random_weights(c, WeightType::int8, 1);
  const Matrix& gb = wb.layers[0].mlp.gate_proj;
  const Matrix& gq = wq.layers[0].mlp.gate_proj;
  REQUIRE(gb.type() == WeightType::bf16);
  REQUIRE(gq.type() == WeightType::int8);
  for (std::size_t r : {std::size_t(0), std::size_t(159)}) {
    float max_abs = 0;
    for (std::size_t col = 0; col < 64; ++col) max_abs = std::max(max_abs, std::abs(gate.at(r, col)));
    const float step = max_abs / 127.0f;
    for (std::size_t col = 0; col < 64; ++col) {
      CHECK(gb.at(r, col) == round_to_bf16(gate.at(r, col)));
      CHECK(std::abs(gq.at(r, col) - gate.at(r, col)) <= 0.5f * step * 1.0001f);
    }
  }
}

TEST_CASE("a model of random weights runs for every weight type, the same on one thread or two") {
  // lru_width 96 (gate blocks of 24: not whole vectors, the recurrent block's split path) and 128
  // (blocks of 32: the fused one-job path).
  for (std::size_t lru_width : {std::size_t(96), std::size_t(128)}) {
    CAPTURE(lru_width);
    const DynamicConfig c = small_config(lru_width);
    std::vector<int> tokens(2 * 21);
    for (std::size_t i = 0; i < tokens.size(); ++i) tokens[i] = int((i * 37 + 5) % 300);
    for (WeightType type : {WeightType::f32, WeightType::bf16, WeightType::int8}) {
      CAPTURE(weight_type_name(type));
      auto weights = std::make_shared<Weights>(make_random_weights(c, type, 7));
      // min_part_work 0: two threads split every job they can, even at this size.
      Model<DynamicConfig> one(c, weights, 1), two(c, weights, 2, 0);
      auto s1 = one.new_state(2), s2 = two.new_state(2);
      const auto l1 = one.prefill(s1, tokens, LogitsRows::all);
      const auto l2 = two.prefill(s2, tokens, LogitsRows::all);
      CHECK(l1 == l2);
      bool finite = true;
      for (float v : l1) finite = finite && std::isfinite(v);
      CHECK(finite);
      // Decode steps (the gemv path) agree across thread counts too.
      const std::vector<int> step{3, 4};
      CHECK(one.decode(s1, step) == two.decode(s2, step));
      for (std::size_t b = 0; b < 2; ++b) CHECK(std::ranges::equal(s1.rg_lru(0, b), s2.rg_lru(0, b)));
    }
  }
}
