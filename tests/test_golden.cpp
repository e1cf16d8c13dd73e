// Whole models against the reference implementation (tests/data/<case>/golden.safetensors): logits from
// one prefill, logits from prefill + one-token decode steps, the recurrent states and every layer's
// residual stream, for every backend; plus the static and dynamic configs of one model agreeing exactly.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <random>

#include "griffin/griffin.hpp"
#include "test_support.hpp"

using namespace griffin;
using griffin::test::Golden;
using griffin::test::max_abs_diff;

namespace {

// The golden README: a float32 implementation agrees with the reference's logits to about 1e-4 (logits
// are of order 10); more is a bug, not rounding. The residual stream is of order 10-100, so it gets the
// same bound relative to its size.
constexpr float logits_tolerance = 1e-4f;
constexpr float state_tolerance = 1e-4f;

struct Case {
  const char* name;
};
constexpr Case cases[] = {{"tiny-griffin"}, {"tiny-hawk-bf16"}, {"tiny-mqa"}, {"kjv-griffin"}};

std::filesystem::path dir(const char* name) { return test::data_dir() / name; }

float relative_error(std::span<const float> ours, std::span<const float> ref) {
  float scale = 1.0f;
  for (float v : ref) scale = std::max(scale, std::abs(v));
  return max_abs_diff(ours, ref) / scale;
}

template <class Config, class Backend>
void check_case(const char* name, std::size_t threads) {
  CAPTURE(name);
  const Golden g(dir(name) / "golden.safetensors");
  LoadOptions options;
  options.threads = threads;
  const auto model = load_model<Config, Backend>(dir(name), options);
  const auto tokens = g.i32("tokens");
  const std::size_t B = g.shape("tokens")[0], T = g.shape("tokens")[1], V = model.config().sizes.vocab_size;
  const std::size_t D = model.config().sizes.width;

  std::map<std::string, std::vector<float>> hidden;
  auto state = model.new_state(B);
  const auto logits = model.prefill(state, tokens, LogitsRows::all, [&](std::string_view n, std::span<const float> rows) {
    hidden[std::string(n)] = std::vector<float>(rows.begin(), rows.end());
  });
  const float logits_error = max_abs_diff(logits, g.f32("logits"));
  MESSAGE((std::string(name) + " [" + Backend::name + "] logits max error " + std::to_string(logits_error)));
  CHECK(logits_error < logits_tolerance);

  for (const auto& [key, ours] : hidden) {
    const std::string golden_name = "hidden." + key;
    if (!g.has(golden_name)) continue;
    CAPTURE(golden_name);
    REQUIRE(ours.size() == B * T * D);
    CHECK(relative_error(ours, g.f32(golden_name)) < state_tolerance);
  }

  for (std::size_t i = 0; i < model.config().sizes.depth; ++i) {
    const std::string prefix = "state.layers." + std::to_string(i);
    if (!g.has(prefix + ".rg_lru")) continue;
    CAPTURE(prefix);
    // The golden states are [B, E] and [B, K-1, E]: every sequence's, one after another.
    std::vector<float> rg_lru, conv;
    for (std::size_t b = 0; b < B; ++b) {
      rg_lru.insert(rg_lru.end(), state.rg_lru(i, b).begin(), state.rg_lru(i, b).end());
      conv.insert(conv.end(), state.conv(i, b).begin(), state.conv(i, b).end());
    }
    CHECK(relative_error(rg_lru, g.f32(prefix + ".rg_lru")) < state_tolerance);
    CHECK(relative_error(conv, g.f32(prefix + ".conv1d")) < state_tolerance);
  }

  // Prefill P tokens, then decode the rest one at a time.
  const std::size_t P = std::size_t(g.i32("prefill_len").at(0));
  auto s = model.new_state(B);
  std::vector<int> prompt(B * P), step(B);
  for (std::size_t b = 0; b < B; ++b) std::copy_n(tokens.begin() + b * T, P, prompt.begin() + b * P);
  model.prefill(s, prompt, {}, LogitsRows::none);
  std::vector<float> decoded(B * (T - P) * V);
  for (std::size_t t = P; t < T; ++t) {
    for (std::size_t b = 0; b < B; ++b) step[b] = tokens[b * T + t];
    const auto l = model.decode(s, step);
    for (std::size_t b = 0; b < B; ++b) std::copy_n(l.begin() + b * V, V, decoded.begin() + (b * (T - P) + t - P) * V);
  }
  const float decode_error = max_abs_diff(decoded, g.f32("decode_logits"));
  MESSAGE((std::string(name) + " [" + Backend::name + "] decode_logits max error " + std::to_string(decode_error)));
  CHECK(decode_error < logits_tolerance);
}

}  // namespace

TEST_CASE_TEMPLATE("every golden case matches the reference through the dynamic config", Backend, GRIFFIN_TEST_BACKENDS) {
  for (const Case& c : cases) check_case<DynamicConfig, Backend>(c.name, 0);
}

TEST_CASE("one thread and two threads give identical logits") {
  // min_part_work 0: the second thread takes every split the kernels allow, however small the job.
  const auto one = load_model(dir("tiny-griffin"), {.weight_type = std::nullopt, .threads = 1, .min_part_work = 0});
  const auto two = one.with_threads(2);
  REQUIRE(two.threads() == 2);
  const Golden g(dir("tiny-griffin") / "golden.safetensors");
  auto s1 = one.new_state(2), s2 = two.new_state(2);
  CHECK(one.prefill(s1, g.i32("tokens"), LogitsRows::all) == two.prefill(s2, g.i32("tokens"), LogitsRows::all));
  const std::vector<int> step{7, 300};
  CHECK(one.decode(s1, step) == two.decode(s2, step));
}

namespace {
// Compile-time descriptions of two golden models, as a user would write them.
using TinyGriffin = ModelConfig<Shape{.vocab_size = 512, .width = 128, .lru_width = 192, .num_heads = 4, .head_dim = 32,
                                      .num_kv_heads = 1, .mlp_width = 384, .conv_width = 4, .attention_window = 24,
                                      .depth = 6},
                                GriffinPattern>;
using TinyHawk = ModelConfig<Shape{.vocab_size = 300, .width = 64, .lru_width = 64, .num_heads = 2, .head_dim = 32,
                                   .num_kv_heads = 1, .mlp_width = 192, .conv_width = 4, .attention_window = 2048,
                                   .depth = 4},
                             HawkPattern>;
// Only some sizes fixed: the rest come from config.json.
using PartlyStaticGriffin = ModelConfig<Shape{.width = 128, .lru_width = 192}, DynamicPattern>;
}  // namespace

TEST_CASE_TEMPLATE("static presets reproduce the golden cases", Backend, simd::Scalar, simd::Highway) {
  check_case<TinyGriffin, Backend>("tiny-griffin", 0);
  check_case<TinyHawk, Backend>("tiny-hawk-bf16", 0);
  check_case<presets::KjvGriffin, Backend>("kjv-griffin", 0);
}

TEST_CASE("static, partly static and dynamic configs of one model agree exactly") {
  const Golden g(dir("tiny-griffin") / "golden.safetensors");
  const auto tokens = g.i32("tokens");
  auto run = [&](const auto& model) {
    auto s = model.new_state(2);
    return model.prefill(s, tokens, LogitsRows::all);
  };
  const auto dynamic_logits = run(load_model<DynamicConfig>(dir("tiny-griffin")));
  CHECK(run(load_model<TinyGriffin>(dir("tiny-griffin"))) == dynamic_logits);
  CHECK(run(load_model<PartlyStaticGriffin>(dir("tiny-griffin"))) == dynamic_logits);
}

TEST_CASE("the demo model as presets::KjvGriffin and as a DynamicConfig: prefill and 20 decode steps, bit for bit") {
  // The compile-time config unrolls its loops and fixes its tiling, the run-time one does not; every kernel
  // computes each output as the same chain either way. On two threads with min_part_work 0, so both take
  // every split the kernels allow.
  const Golden g(dir("kjv-griffin") / "golden.safetensors");
  const auto tokens = g.i32("tokens");
  const std::size_t B = g.shape("tokens")[0], T = g.shape("tokens")[1];
  for (std::size_t threads : {std::size_t(1), std::size_t(2)}) {
    CAPTURE(threads);
    const LoadOptions options{.weight_type = std::nullopt, .threads = threads, .min_part_work = 0};
    const auto fixed = load_model<presets::KjvGriffin>(dir("kjv-griffin"), options);
    const auto run_time = load_model<DynamicConfig>(dir("kjv-griffin"), options);
    static_assert(presets::KjvGriffin::fully_static);
    const std::size_t V = run_time.config().sizes.vocab_size;
    auto fixed_state = fixed.new_state(B), run_time_state = run_time.new_state(B);
    const auto logits = run_time.prefill(run_time_state, tokens, LogitsRows::all);
    CHECK(fixed.prefill(fixed_state, tokens, LogitsRows::all) == logits);
    // Greedy continuations of every sequence, fed to both: the next token is the argmax of its last row.
    const auto argmax = [V](const float* row) { return int(std::max_element(row, row + V) - row); };
    std::vector<int> next(B);
    for (std::size_t b = 0; b < B; ++b) next[b] = argmax(logits.data() + (b * T + T - 1) * V);
    std::size_t differing_steps = 0;
    for (int step = 0; step < 20; ++step) {
      const auto want = run_time.decode(run_time_state, next);
      differing_steps += fixed.decode(fixed_state, next) != want;
      for (std::size_t b = 0; b < B; ++b) next[b] = argmax(want.data() + b * V);
    }
    CHECK(differing_steps == 0);
    CHECK(fixed_state.position() == run_time_state.position());
  }
}

TEST_CASE("a compile-time config that does not match the checkpoint is refused, naming the field") {
  CHECK_THROWS_WITH_AS(load_model<TinyHawk>(dir("tiny-griffin")),
                       doctest::Contains("vocab_size: the compile-time config says 300 but the checkpoint has 512"),
                       ConfigError);
  using WrongPattern = ModelConfig<Shape{.width = 128}, HawkPattern>;
  CHECK_THROWS_WITH_AS(load_model<WrongPattern>(dir("tiny-griffin")), doctest::Contains("block_types: layer 2"), ConfigError);
}

TEST_CASE("a prompt several times the window: one prefill, chunked prefill and decode agree") {
  const auto model = load_model(dir("tiny-griffin"));  // window 24
  const std::size_t T = 24 * 7 + 5, V = model.config().sizes.vocab_size;
  std::mt19937 rng(3);
  std::vector<int> tokens(T);
  for (auto& t : tokens) t = int(rng() % V);
  auto whole_state = model.new_state();
  const auto whole = model.prefill(whole_state, tokens, LogitsRows::all);

  auto chunk_state = model.new_state();
  std::vector<float> chunked;
  for (std::size_t t = 0; t < T; t += 17) {
    const std::size_t n = std::min<std::size_t>(17, T - t);
    const auto l = model.prefill(chunk_state, std::span(tokens).subspan(t, n), LogitsRows::all);
    chunked.insert(chunked.end(), l.begin(), l.end());
  }
  CHECK(max_abs_diff(chunked, whole) < 1e-5f);

  auto step_state = model.new_state();
  std::vector<float> stepped;
  for (std::size_t t = 0; t < T; ++t) {
    const auto l = model.decode(step_state, std::span(tokens).subspan(t, 1));
    stepped.insert(stepped.end(), l.begin(), l.end());
  }
  CHECK(max_abs_diff(stepped, whole) < 1e-5f);
  CHECK(step_state.position() == std::int64_t(T));
  // The local-attention ring holds exactly the window.
  CHECK(step_state.kv(2, 0).size() == 24);
}

TEST_CASE("bad inputs to a loaded model give clear errors") {
  const auto model = load_model(dir("tiny-hawk-bf16"));
  auto state = model.new_state();
  CHECK_THROWS_WITH_AS(model.prefill(state, std::vector<int>{1, 300}), doctest::Contains("token id 300"), InputError);
  CHECK_THROWS_WITH_AS(model.prefill(state, std::vector<int>{-1}), doctest::Contains("token id -1"), InputError);
  CHECK_THROWS_WITH_AS(model.prefill(state, std::vector<int>{}), doctest::Contains("empty prompt"), InputError);
  auto other = load_model(dir("tiny-griffin")).new_state();
  CHECK_THROWS_WITH_AS(model.decode(other, std::vector<int>{1}), doctest::Contains("another model"), InputError);
  auto pair = model.new_state(2);
  CHECK_THROWS_WITH_AS(model.decode(pair, std::vector<int>{1}), doctest::Contains("one token per sequence"), InputError);
  CHECK(state.position() == 0);  // nothing was consumed by the failed calls
}

TEST_CASE("global attention gives the reference's logits when the window covers the sequence") {
  // tiny-mqa's checkpoint says "attention" with a 4096 window, longer than its 48 tokens: local attention
  // that sees everything, i.e. global attention. The same weights run as global_attention must agree.
  auto config = io::read_config_json(dir("tiny-mqa") / "config.json");
  for (auto& block : config.pattern.blocks) block = BlockType::global_attention;
  // The loader copies every tensor out of the files: the weights outlive the checkpoint.
  auto weights = std::make_shared<Weights>(load_weights(io::Checkpoint::open(dir("tiny-mqa")), config, WeightType::f32));
  const Model<DynamicConfig> model(config, weights);
  const Golden g(dir("tiny-mqa") / "golden.safetensors");
  auto state = model.new_state(2);
  CHECK(max_abs_diff(model.prefill(state, g.i32("tokens"), LogitsRows::all), g.f32("logits")) < logits_tolerance);
  // The global cache keeps every key.
  CHECK(state.kv(0, 0).size() == g.shape("tokens")[1]);
}
