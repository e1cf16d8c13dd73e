// The shipped demo model (kjv-griffin) through the public API: its reference perplexity on heldout.txt,
// its greedy continuation of "And God said", stop strings and streaming.
#include <doctest/doctest.h>

#include <fstream>
#include <sstream>

#include "griffin/generation/generate.hpp"
#include "griffin/griffin.hpp"
#include "griffin/generation/perplexity.hpp"
#include "griffin/generation/load_tokenizer.hpp"
#include "test_support.hpp"

using namespace griffin;

namespace {
std::filesystem::path kjv() { return test::data_dir() / "kjv-griffin"; }

std::string heldout() {
  std::ifstream in(kjv() / "heldout.txt", std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}
}  // namespace

TEST_CASE("kjv-griffin: perplexity on heldout.txt is the reference 1.5420 bits/byte") {
  // The README's figure, computed in float32 from the bf16 weights, is given to 4 decimals.
  const auto model = load_model(kjv(), {.weight_type = WeightType::f32});
  const auto tokenizer = load_tokenizer(kjv());
  const std::string text = heldout();
  REQUIRE(text.size() == 4091);
  const Perplexity p = evaluate_perplexity(model, *tokenizer, text, 700);  // chunks of 700: six prefills
  CHECK(p.predicted_tokens == 4090);  // bytes 2..N
  CHECK(p.bytes == 4090);
  MESSAGE("bits/byte ", p.bits_per_byte(), ", nats/byte ", p.nats_per_token());
  CHECK(std::abs(p.bits_per_byte() - 1.5420) <= 0.0005);
  CHECK(std::abs(p.nats_per_token() - 1.0688) <= 0.0005);
  // The chunk size does not matter.
  CHECK(std::abs(evaluate_perplexity(model, *tokenizer, text, 4096).nats - p.nats) < 1e-3);
}

TEST_CASE("kjv-griffin: greedy continuation of \"And God said\" is the reference's") {
  const auto model = load_model(kjv());
  const auto tokenizer = load_tokenizer(kjv());
  GenerateOptions options;
  options.max_tokens = 40;
  options.sampling.temperature = 0;
  std::string streamed;
  State state = model.new_state();
  const Generation g = generate(model, state, *tokenizer, tokenizer->encode_prompt("And God said"), options,
                                [&](int, std::string_view text) {
                                  streamed += text;
                                  return true;
                                });
  MESSAGE("continuation: ", g.text);
  CHECK(g.text.rfind(", I will send thee a man", 0) == 0);
  CHECK(streamed == g.text);
  CHECK(g.tokens.size() == 40);
  CHECK(g.stop == StopReason::max_tokens);
  CHECK(state.position() == 12 + 40);  // the prompt and every generated token were read

  SUBCASE("a stop string ends generation and is cut from the text") {
    options.stop_strings = {"thee"};
    State s = model.new_state();
    std::string shown;
    const Generation stopped = generate(model, s, *tokenizer, tokenizer->encode_prompt("And God said"), options,
                                        [&](int, std::string_view text) {
                                          shown += text;
                                          return true;
                                        });
    CHECK(stopped.text == ", I will send ");
    CHECK(shown == ", I will send ");  // "t", "th", "the" were held back, never shown
    CHECK(stopped.stop == StopReason::stop_string);
    CHECK(stopped.tokens.size() == std::string(", I will send thee").size());
  }
  SUBCASE("the callback can stop generation") {
    State s = model.new_state();
    int calls = 0;
    const Generation stopped = generate(model, s, *tokenizer, tokenizer->encode_prompt("And God said"), options,
                                        [&](int, std::string_view) { return ++calls < 5; });
    CHECK(stopped.tokens.size() == 5);
    CHECK(stopped.stop == StopReason::callback);
    CHECK(stopped.text == ", I w");
  }
  SUBCASE("the same seed samples the same text; sampling differs from greedy") {
    options.sampling = {.temperature = 0.8f, .seed = 1234};
    State a = model.new_state(), b = model.new_state();
    const auto prompt = tokenizer->encode_prompt("And God said");
    const Generation ga = generate(model, a, *tokenizer, prompt, options);
    const Generation gb = generate(model, b, *tokenizer, prompt, options);
    CHECK(ga.tokens == gb.tokens);
    CHECK(ga.text != g.text);
  }
}
