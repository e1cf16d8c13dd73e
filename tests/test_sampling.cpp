// Sampling: a seed fixes the tokens, greedy is the argmax, and the distribution sampled from is the
// softmax of logits / temperature restricted to the top-k tokens and then to the smallest top-p set.
#include <doctest/doctest.h>

#include <cmath>
#include <algorithm>
#include <map>
#include <numeric>
#include <vector>

#include "griffin/generation/sampling.hpp"

using namespace griffin;

namespace {
// Probabilities 0.5, 0.3, 0.15, 0.05 over tokens 3, 0, 2, 1 (as logits, at temperature 1).
const std::vector<float> four = {std::log(0.3f), std::log(0.05f), std::log(0.15f), std::log(0.5f)};

std::vector<float> random_logits(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<float> l(n);
  for (auto& v : l) v = float(double(rng() >> 11) * 0x1.0p-53 * 8.0 - 4.0);
  return l;
}
}  // namespace

TEST_CASE("the same seed gives the same tokens; another seed gives others") {
  const auto logits = random_logits(500, 1);
  auto draw = [&](std::uint64_t seed) {
    Sampler s({.temperature = 0.9f, .top_k = 50, .top_p = 0.95f, .seed = seed});
    std::vector<int> out;
    for (int i = 0; i < 200; ++i) out.push_back(s.sample(logits));
    return out;
  };
  CHECK(draw(42) == draw(42));
  CHECK(draw(42) != draw(43));
}

TEST_CASE("the uniforms are fixed by the standard's mt19937_64 sequence") {
  // C++ [rand.predef]: the 10000th draw of mt19937_64 seeded with 5489 (its default) is
  // 9981545732273789042; our uniform is the top 53 bits of a draw scaled to [0, 1).
  Sampler s({.seed = 5489});
  for (int i = 1; i < 10000; ++i) s.uniform();
  CHECK(s.uniform() == double(9981545732273789042ull >> 11) * 0x1.0p-53);
}

TEST_CASE("greedy: temperature 0 and top-k 1 both pick the argmax, lowest id on ties") {
  const auto logits = random_logits(1000, 2);
  const int best = argmax(logits);
  Sampler zero({.temperature = 0.0f, .seed = 1});
  Sampler k1({.temperature = 1.5f, .top_k = 1, .seed = 2});
  for (int i = 0; i < 20; ++i) {
    CHECK(zero.sample(logits) == best);
    CHECK(k1.sample(logits) == best);
  }
  CHECK(argmax(std::vector<float>{1, 3, 3, 2}) == 1);
}

TEST_CASE("the distribution is the softmax of logits / temperature") {
  const auto d = Sampler({.temperature = 1.0f}).distribution(four);
  REQUIRE(d.size() == 4);
  CHECK(d[0].token == 3);
  CHECK(d[0].probability == doctest::Approx(0.5).epsilon(1e-6));
  CHECK(d[3].token == 1);
  CHECK(d[3].probability == doctest::Approx(0.05).epsilon(1e-6));
  // At temperature 2 the probabilities are proportional to sqrt(p).
  const auto hot = Sampler({.temperature = 2.0f}).distribution(four);
  const double z = std::sqrt(0.5) + std::sqrt(0.3) + std::sqrt(0.15) + std::sqrt(0.05);
  CHECK(hot[0].probability == doctest::Approx(std::sqrt(0.5) / z).epsilon(1e-6));
}

TEST_CASE("top-k keeps exactly the k most likely tokens, renormalised") {
  const auto d = Sampler({.top_k = 2}).distribution(four);
  REQUIRE(d.size() == 2);
  CHECK(d[0].token == 3);
  CHECK(d[1].token == 0);
  CHECK(d[0].probability == doctest::Approx(0.5 / 0.8).epsilon(1e-6));
  const auto logits = random_logits(300, 3);
  const auto big = Sampler({.top_k = 40}).distribution(logits);
  REQUIRE(big.size() == 40);
  for (std::size_t v = 0; v < logits.size(); ++v) {
    bool kept = false;
    for (const auto& c : big) kept = kept || c.token == int(v);
    if (!kept) CHECK(logits[v] <= logits[big.back().token]);
  }
}

TEST_CASE("top-p keeps the smallest set of most likely tokens whose probability reaches p") {
  CHECK(Sampler({.top_p = 0.45f}).distribution(four).size() == 1);  // 0.5 alone reaches 0.45
  CHECK(Sampler({.top_p = 0.75f}).distribution(four).size() == 2);  // 0.5 + 0.3
  CHECK(Sampler({.top_p = 0.81f}).distribution(four).size() == 3);  // 0.5 + 0.3 + 0.15
  CHECK(Sampler({.top_p = 0.99f}).distribution(four).size() == 4);
  const auto d = Sampler({.top_p = 0.9f}).distribution(four);
  REQUIRE(d.size() == 3);
  CHECK(d[2].token == 2);
  CHECK(d[2].probability == doctest::Approx(0.15 / 0.95).epsilon(1e-6));
  // With top-k too: top-k first, then top-p of the renormalised rest.
  CHECK(Sampler({.top_k = 3, .top_p = 0.8f}).distribution(four).size() == 2);   // 0.5/0.95 + 0.3/0.95 = 0.84
  CHECK(Sampler({.top_k = 3, .top_p = 0.85f}).distribution(four).size() == 3);
}

TEST_CASE("sampled frequencies follow the distribution, and excluded tokens never appear") {
  Sampler s({.top_p = 0.9f, .seed = 7});
  std::map<int, int> counts;
  const int n = 40000;
  for (int i = 0; i < n; ++i) ++counts[s.sample(four)];
  CHECK(counts.count(1) == 0);  // token 1 (p = 0.05) is outside the top-0.9 set
  // Binomial standard deviation for p ≈ 0.5 and n = 40000 is 0.0025; allow 4 of them.
  CHECK(std::abs(double(counts[3]) / n - 0.5 / 0.95) < 0.01);
  CHECK(std::abs(double(counts[0]) / n - 0.3 / 0.95) < 0.01);
  CHECK(std::abs(double(counts[2]) / n - 0.15 / 0.95) < 0.01);
}

TEST_CASE("invalid sampling options are refused") {
  CHECK_THROWS_AS(Sampler({.temperature = -1.0f}), std::invalid_argument);
  CHECK_THROWS_AS(Sampler({.top_p = 0.0f}), std::invalid_argument);
  CHECK_THROWS_AS(Sampler({.top_p = 1.5f}), std::invalid_argument);
}

TEST_CASE("top-p on a large vocabulary keeps exactly the set a full sort gives") {
  // Flat logits: the 0.9 set holds thousands of tokens, past the first partial sorts.
  const auto logits = random_logits(20000, 5);
  for (float p : {0.1f, 0.5f, 0.9f, 0.999f}) {
    CAPTURE(p);
    const auto d = Sampler({.temperature = 0.7f, .top_p = p}).distribution(logits);
    // The reference: sort everything, softmax, take the shortest prefix reaching p.
    std::vector<int> ids(logits.size());
    std::iota(ids.begin(), ids.end(), 0);
    std::sort(ids.begin(), ids.end(), [&](int a, int b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
    double z = 0;
    for (float l : logits) z += std::exp((double(l) - double(logits[ids[0]])) / 0.7);
    double cumulative = 0;
    std::size_t n = 0;
    while (n < ids.size() && cumulative < double(p)) cumulative += std::exp((double(logits[ids[n++]]) - double(logits[ids[0]])) / 0.7) / z;
    std::vector<int> kept;
    for (const auto& c : d) kept.push_back(c.token);
    CHECK(kept == std::vector<int>(ids.begin(), ids.begin() + std::ptrdiff_t(n)));
  }
}
