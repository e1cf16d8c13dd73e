// Inputs at run time: every call the model cannot run is an InputError with a message that says why,
// raised before the state is touched, so the state stays usable and gives the same results afterwards.
#include <doctest/doctest.h>

#include <climits>
#include <cmath>
#include <string>
#include <vector>

#include "griffin/griffin.hpp"
#include "test_support.hpp"
#include "tiny_random_model.hpp"

using namespace griffin;
using griffin::test::tiny_random_config;
using griffin::test::tiny_random_model;

namespace {

constexpr std::size_t V = 64;

// A state with some history: a refused call must leave exactly this behind.
State warmed_state(const Model<>& model, std::size_t batch = 1) {
  State s = model.new_state(batch);
  std::vector<int> prompt;
  for (std::size_t b = 0; b < batch; ++b)
    for (int t : {2, 5, 9, 33, 60}) prompt.push_back(t + int(b));
  model.prefill(s, prompt, {}, LogitsRows::none);
  return s;
}

std::vector<std::int64_t> positions(const State& s) {
  std::vector<std::int64_t> p;
  for (std::size_t b = 0; b < s.batch_size(); ++b) p.push_back(s.position(b));
  return p;
}

// The state is what it was: the next decode gives the same logits as from an untouched copy.
void check_unchanged(const Model<>& model, State& after, const State& before) {
  CHECK(positions(after) == positions(before));
  State copy = before;
  std::vector<int> next(before.batch_size(), 7);
  CHECK(model.decode(after, next) == model.decode(copy, next));
}

}  // namespace

TEST_CASE("token ids outside the vocabulary are refused") {
  const auto model = tiny_random_model();
  State s = warmed_state(model);
  const State before = s;
  std::vector<float> logits(V);
  for (int bad : {int(V), int(V) + 1, -1, INT_MIN, INT_MAX}) {
    CAPTURE(bad);
    const std::vector<int> one{bad};
    CHECK_THROWS_WITH_AS(model.decode(s, one, logits),
                         doctest::Contains(("token id " + std::to_string(bad) + " at sequence 0, index 0 is outside "
                                            "the vocabulary [0, 64)").c_str()),
                         InputError);
    const std::vector<int> prompt{1, 2, bad, 3};
    CHECK_THROWS_WITH_AS(model.prefill(s, prompt, logits),
                         doctest::Contains("index 2 is outside the vocabulary"), InputError);
  }
  check_unchanged(model, s, before);
}

TEST_CASE("a thread count past the pool's limit is refused, not started") {
  // A typo'd count (100000) used to start every thread and spin; now it is refused before any starts.
  CHECK_THROWS_WITH_AS(ThreadPool(100000), doctest::Contains("100000 threads requested, at most 1024"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(tiny_random_model(tiny_random_config(), ThreadPool::max_threads + 1),
                       doctest::Contains("1025 threads requested"), std::invalid_argument);
  CHECK(ThreadPool(2).size() == 2);
}

TEST_CASE("an empty prompt is refused") {
  const auto model = tiny_random_model();
  State s = warmed_state(model);
  const State before = s;
  std::vector<float> logits(V);
  CHECK_THROWS_WITH_AS(model.prefill(s, std::span<const int>{}, logits), doctest::Contains("empty prompt"), InputError);
  CHECK_THROWS_WITH_AS(model.prefill(s, std::span<const int>{}), doctest::Contains("empty prompt"), InputError);
  CHECK_THROWS_WITH_AS(model.decode(s, std::span<const int>{}), doctest::Contains("decode takes one token per sequence"),
                       InputError);
  check_unchanged(model, s, before);
}

TEST_CASE("a state made for another model is refused") {
  const auto model = tiny_random_model();
  std::vector<float> logits(128);
  const std::vector<int> one{3};
  const char* expected = "this state was made for another model";

  SUBCASE("another vocabulary") {
    const auto other = tiny_random_model(tiny_random_config(128));
    State s = other.new_state();
    CHECK_THROWS_WITH_AS(model.decode(s, one, logits), doctest::Contains(expected), InputError);
    CHECK(s.position() == 0);
  }
  SUBCASE("another window") {
    const auto other = tiny_random_model(tiny_random_config(V, 8));
    State s = other.new_state();
    CHECK_THROWS_WITH_AS(model.prefill(s, one, logits), doctest::Contains(expected), InputError);
  }
  SUBCASE("another block pattern") {
    auto config = tiny_random_config();
    config.pattern.blocks = {BlockType::recurrent};
    const auto hawk = tiny_random_model(config);
    State s = hawk.new_state();
    CHECK_THROWS_WITH_AS(model.decode(s, one, logits), doctest::Contains(expected), InputError);
  }
  SUBCASE("a default-constructed state") {
    State s;
    CHECK_THROWS_WITH_AS(model.decode(s, one, logits), doctest::Contains(expected), InputError);
  }
  SUBCASE("the same sizes with other weights is the same model shape, and allowed") {
    const auto twin = tiny_random_model(tiny_random_config(), 1, /*seed=*/99);
    State s = twin.new_state();
    CHECK_NOTHROW(model.decode(s, one, logits));
  }
}

TEST_CASE("a batch that does not match the state is refused") {
  const auto model = tiny_random_model();
  State s = warmed_state(model, 2);
  const State before = s;
  std::vector<float> logits(4 * V);
  const std::vector<int> three{1, 2, 3}, four{1, 2, 3, 4}, one{1};
  CHECK_THROWS_WITH_AS(model.decode(s, four, logits),
                       doctest::Contains("decode takes one token per sequence: got 4 tokens for a state of 2 sequences"),
                       InputError);
  CHECK_THROWS_WITH_AS(model.decode(s, one, logits), doctest::Contains("got 1 tokens for a state of 2"), InputError);
  CHECK_THROWS_WITH_AS(model.prefill(s, three, logits),
                       doctest::Contains("3 tokens do not split into the state's 2 sequences"), InputError);
  CHECK_THROWS_WITH_AS((void)model.new_state(0), doctest::Contains("batch size must be at least 1"),
                       std::invalid_argument);
  check_unchanged(model, s, before);
}

TEST_CASE("prefill_sequences refuses bad sequence indices") {
  const auto model = tiny_random_model();
  State s = warmed_state(model, 3);
  const State before = s;
  std::vector<float> logits(3 * V);
  const std::vector<int> two{4, 5}, four{4, 5, 6, 7}, three{4, 5, 6};
  using Seq = std::vector<std::size_t>;
  CHECK_THROWS_WITH_AS(model.prefill_sequences(s, Seq{0, 3}, four, logits),
                       doctest::Contains("sequence index 3 is outside the state's batch of 3"), InputError);
  CHECK_THROWS_WITH_AS(model.prefill_sequences(s, Seq{SIZE_MAX}, two, logits),
                       doctest::Contains("is outside the state's batch of 3"), InputError);
  CHECK_THROWS_WITH_AS(model.prefill_sequences(s, Seq{1, 1}, four, logits),
                       doctest::Contains("sequence index 1 is listed twice"), InputError);
  CHECK_THROWS_WITH_AS(model.prefill_sequences(s, Seq{}, two, logits),
                       doctest::Contains("2 tokens do not split into 0 non-empty sequences"), InputError);
  CHECK_THROWS_WITH_AS(model.prefill_sequences(s, Seq{0, 2}, three, logits),
                       doctest::Contains("3 tokens do not split into 2 non-empty sequences"), InputError);
  CHECK_THROWS_WITH_AS(model.prefill_sequences(s, Seq{0, 2}, std::span<const int>{}, logits),
                       doctest::Contains("0 tokens do not split into 2 non-empty sequences"), InputError);
  const std::vector<int> bad_token{4, 64};
  CHECK_THROWS_WITH_AS(model.prefill_sequences(s, Seq{2}, bad_token, logits),
                       doctest::Contains("token id 64 at sequence 0, index 1 is outside the vocabulary"), InputError);
  check_unchanged(model, s, before);

  // The valid call moves only the listed sequence.
  model.prefill_sequences(s, Seq{1}, two, logits);
  CHECK(positions(s) == std::vector<std::int64_t>{6, 8, 6});  // 5 warm-up tokens + 1 decoded
}

TEST_CASE("a logits buffer too small is refused") {
  const auto model = tiny_random_model();
  State s = warmed_state(model, 2);
  const State before = s;
  const std::vector<int> step{1, 2}, prompt{1, 2, 3, 4, 5, 6};  // 2 sequences of 3
  std::vector<float> small(2 * V - 1), last(2 * V), all(2 * 3 * V - 1);
  CHECK_THROWS_WITH_AS(model.decode(s, step, small),
                       doctest::Contains("the logits buffer holds 127 floats but 128 are needed"), InputError);
  CHECK_THROWS_WITH_AS(model.prefill(s, prompt, small, LogitsRows::last),
                       doctest::Contains("holds 127 floats but 128 are needed"), InputError);
  CHECK_THROWS_WITH_AS(model.prefill(s, prompt, all, LogitsRows::all),
                       doctest::Contains("holds 383 floats but 384 are needed"), InputError);
  CHECK_THROWS_WITH_AS(model.prefill_sequences(s, std::vector<std::size_t>{0}, std::vector<int>{3}, {}),
                       doctest::Contains("holds 0 floats but 64 are needed"), InputError);
  check_unchanged(model, s, before);
  // No logits wanted: no buffer needed.
  CHECK_NOTHROW(model.prefill(s, prompt, {}, LogitsRows::none));
  // A larger buffer is fine; only the first rows are written.
  std::vector<float> big(3 * V, -12345.0f);
  model.decode(s, step, big);
  CHECK(big[2 * V] == -12345.0f);
  CHECK(std::isfinite(big[0]));
}

TEST_CASE("positions that would pass 2^31 - 1 are refused") {
  // A state can only reach such a position through restore (a snapshot's, say): a negative one it refuses
  // itself (test_state.cpp), one near the end of int32 the model refuses before running a token.
  const auto model = tiny_random_model();
  std::vector<float> logits(V);
  const std::vector<int> one{1}, five{1, 2, 3, 4, 5};
  State s = model.new_state();
  s.restore(0, std::int64_t(INT_MAX) - 2, [](const SequenceLayer<true>&) {});  // zero state, far along
  CHECK_THROWS_WITH_AS(model.prefill(s, five, logits), doctest::Contains("sequence 0 would pass position 2^31 - 1"),
                       InputError);
  CHECK(s.position() == std::int64_t(INT_MAX) - 2);
  // Two tokens still fit: positions INT_MAX - 2 and INT_MAX - 1.
  CHECK_NOTHROW(model.prefill(s, std::vector<int>{1, 2}, logits));
  CHECK(s.position() == std::int64_t(INT_MAX));
  CHECK_THROWS_WITH_AS(model.decode(s, one, logits), doctest::Contains("would pass position 2^31 - 1"), InputError);
}

TEST_CASE("a model refuses weights that do not fit its config") {
  const auto config = tiny_random_config();
  auto build = [&](auto&& damage) {
    auto w = std::make_shared<Weights>(make_random_weights(config, WeightType::f32, 1));
    damage(*w);
    return Model<>(config, w, 1);
  };
  CHECK_THROWS_WITH_AS(build([](Weights& w) { w.layers.pop_back(); }),
                       doctest::Contains("the weights do not fit the config: 2 layers but the config has depth 3"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(build([](Weights& w) { w.layers[1].type = BlockType::local_attention; }),
                       doctest::Contains("model.layers.1 is attention but the config's pattern says recurrent"),
                       std::invalid_argument);
  // A tensor of the wrong shape is named as the checkpoint names it.
  CHECK_THROWS_WITH_AS(build([](Weights& w) { w.layers[0].recurrent.log_a_scale.pop_back(); }),
                       doctest::Contains("model.layers.0.temporal_block.rg_lru.recurrent_param is [31, 1] but the "
                                         "config implies [32, 1]"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(build([](Weights& w) {
                         w.embed_tokens = Matrix::from_rows(WeightType::f32, 63, 32, [](std::size_t, std::span<float>) {});
                       }),
                       doctest::Contains("model.embed_tokens.weight is [63, 32] but the config implies [64, 32]"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(Model<>(config, nullptr, 1), doctest::Contains("no weights"), std::invalid_argument);
  CHECK_NOTHROW(build([](Weights&) {}));

  auto impossible = config;
  impossible.sizes.lru_width = 33;  // not divisible by the 2 heads
  CHECK_THROWS_WITH_AS(make_random_weights(impossible, WeightType::f32, 1),
                       doctest::Contains("lru_width must be divisible by num_attention_heads"), ConfigError);
}
