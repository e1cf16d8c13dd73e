// Batched generation: prompts of different lengths prefilled by length group and decoded together give
// the same tokens as generating each prompt alone, and logits equal within float rounding.
#include <doctest/doctest.h>

#include <random>

#include "griffin/generation/generate.hpp"
#include "griffin/griffin.hpp"
#include "test_support.hpp"

using namespace griffin;

namespace {
// A different number of rows in a matrix product may round differently; 1e-5 is far below any logit
// difference that changes a token.
constexpr float batch_tolerance = 1e-5f;

// Token ids as text: every id is a "byte" so the tiny models (vocab 512) can use a tokenizer.
class IdTokenizer final : public Tokenizer {
 public:
  std::string_view name() const override { return "ids"; }
  std::size_t vocab_size() const override { return 512; }
  std::vector<int> encode(std::string_view) const override { return {}; }
  std::string decode(std::span<const int> tokens) const override {
    std::string s;
    for (int t : tokens) {  // piecewise: GCC 12 warns (-Wrestrict, a false positive) about "<" + std::string
      s += '<';
      s += std::to_string(t);
      s += '>';
    }
    return s;
  }
};

std::vector<int> random_tokens(std::size_t n, std::size_t vocab, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<int> t(n);
  for (auto& v : t) v = int(rng() % vocab);
  return t;
}
}  // namespace

TEST_CASE("batched generation equals generating each prompt alone") {
  const auto model = load_model(test::data_dir() / "tiny-griffin");  // window 24
  IdTokenizer tokenizer;
  const std::vector<std::vector<int>> prompts{random_tokens(5, 512, 1), random_tokens(37, 512, 2),
                                              random_tokens(37, 512, 3), random_tokens(12, 512, 4)};
  for (float temperature : {0.0f, 0.8f}) {
    CAPTURE(temperature);
    GenerateOptions options;
    options.max_tokens = 20;
    options.sampling = {.temperature = temperature, .top_k = 40, .seed = 11};
    options.prefill_chunk = 16;  // the 37-token prompts are read in three chunks

    std::vector<Generation> alone;
    for (std::size_t i = 0; i < prompts.size(); ++i) {
      GenerateOptions o = options;
      o.sampling.seed = options.sampling.seed + i;  // what the batch gives sequence i
      State s = model.new_state();
      alone.push_back(generate(model, s, tokenizer, prompts[i], o));
    }
    // Stop sequence 1 early on the token it generates 6th alone, so the batch continues with a subset.
    options.stop_tokens = {alone[1].tokens[5]};
    State batch_state = model.new_state(prompts.size());
    std::vector<std::vector<int>> streamed(prompts.size());
    const auto batch = generate_batch(model, batch_state, tokenizer, prompts, options,
                                      [&](std::size_t seq, int token, std::string_view) {
                                        streamed[seq].push_back(token);
                                        return true;
                                      });
    REQUIRE(batch.size() == prompts.size());
    for (std::size_t i = 0; i < prompts.size(); ++i) {
      CAPTURE(i);
      const auto& a = alone[i].tokens;
      const std::size_t stop_at = std::size_t(std::find(a.begin(), a.end(), options.stop_tokens[0]) - a.begin());
      const std::vector<int> expected(a.begin(), a.begin() + std::min(a.size(), stop_at + 1));
      CHECK(batch[i].tokens == expected);
      CHECK(streamed[i] == expected);
      CHECK(batch[i].stop == (expected.size() < a.size() || stop_at < a.size() ? StopReason::stop_token : StopReason::max_tokens));
      CHECK(batch_state.position(i) == std::int64_t(prompts[i].size() + expected.size()));
      if (expected.size() == a.size()) CHECK(test::max_abs_diff(batch[i].logits, alone[i].logits) < batch_tolerance);
    }
    CHECK(batch[1].tokens.size() <= 6);  // sequence 1 stopped early: the others went on as a subset
    CHECK(batch[1].stop == StopReason::stop_token);
  }
}

TEST_CASE("generation continues from the state: two calls equal one") {
  const auto model = load_model(test::data_dir() / "tiny-griffin");
  IdTokenizer tokenizer;
  const auto prompt = random_tokens(30, 512, 5);
  GenerateOptions options;
  options.max_tokens = 16;
  options.sampling.temperature = 0;
  State whole = model.new_state();
  const Generation all = generate(model, whole, tokenizer, prompt, options);
  State split = model.new_state();
  options.max_tokens = 7;
  const Generation first = generate(model, split, tokenizer, prompt, options);
  options.max_tokens = 9;
  const Generation rest = continue_generation(model, split, tokenizer, first.logits, first.tokens, options);
  std::vector<int> joined = first.tokens;
  joined.insert(joined.end(), rest.tokens.begin(), rest.tokens.end());
  CHECK(joined == all.tokens);
  CHECK(test::max_abs_diff(rest.logits, all.logits) == 0.0f);
  CHECK(split.position() == whole.position());
}
