// The model (griffin/model.hpp) as a whole, on weights that are not a checkpoint's: it stays finite with
// extreme weights, and the pool's threshold for splitting work (min_part_work) decides only which thread
// computes what, never a bit of the result.
#include <doctest/doctest.h>

#include <cmath>
#include <memory>
#include <vector>

#include "griffin/griffin.hpp"
#include "test_support.hpp"
#include "tiny_random_model.hpp"

using namespace griffin;

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
    s.visit_buffers(0, [&](const SequenceLayer<false>& l) {
      for (float h : l.rg_lru) bad += !std::isfinite(h);
    });
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
            const std::size_t D = config.sizes.width;
            const auto huge_row = [&](std::size_t r, std::span<float> row) {
              for (std::size_t c = 0; c < D; ++c) row[c] = (r * D + c) % 5 ? 1e19f : -3e19f;
            };
            w.embed_tokens = Matrix::from_rows(WeightType::f32, config.sizes.vocab_size, D, huge_row);
          }) == 0);
  }
}

TEST_CASE("the shipped min_part_work and 0 (every split) give the same logits as one thread") {
  // tiny-griffin's sizes: with the shipped threshold some of its jobs are split between two threads and the
  // small ones run on the caller; with 0 every job is split. Prefill chunks and decode steps alike.
  const auto dir = test::data_dir() / "tiny-griffin";
  const auto one = load_model(dir, {.weight_type = std::nullopt, .threads = 1});
  const auto shipped = load_model(dir, {.weight_type = std::nullopt, .threads = 2});
  const auto every_split = load_model(dir, {.weight_type = std::nullopt, .threads = 2, .min_part_work = 0});
  std::vector<int> prompt(2 * 40);
  for (std::size_t i = 0; i < prompt.size(); ++i) prompt[i] = int((i * 97 + 11) % 512);
  auto run = [&](const Model<>& model) {
    State s = model.new_state(2);
    auto logits = model.prefill(s, prompt, LogitsRows::all);
    for (int step = 0; step < 8; ++step) {
      const auto row = model.decode(s, std::vector<int>{step, 500 - step});
      logits.insert(logits.end(), row.begin(), row.end());
    }
    return logits;
  };
  const auto reference = run(one);
  CHECK(run(shipped) == reference);
  CHECK(run(every_split) == reference);
}
