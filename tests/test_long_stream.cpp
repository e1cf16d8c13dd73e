// Long streams: a million decode steps keep resident memory flat (the local-attention cache is a ring of
// W keys, the recurrences are fixed-size) and the state finite; and a prompt ten times the window gives
// the same logits whether it goes through prefill, through decode, or through prefill in odd chunks.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "griffin/griffin.hpp"
#include "test_support.hpp"
#include "tiny_random_model.hpp"

using namespace griffin;

namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define GRIFFIN_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define GRIFFIN_TEST_SANITIZED 1
#endif
#endif

// About 6 s in a Release build (5-6 µs a token for this model on one thread). Sanitized builds are 10-30x
// slower, and ASan's quarantine makes RSS meaningless, so they run a tenth of the stream and skip the
// RSS bound (LeakSanitizer covers leaks there).
#ifdef GRIFFIN_TEST_SANITIZED
constexpr std::size_t stream_tokens = 100'000;
constexpr bool check_rss = false;
#else
constexpr std::size_t stream_tokens = 1'000'000;
constexpr bool check_rss = true;
#endif

std::size_t rss_kib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.starts_with("VmRSS:")) return std::stoul(line.substr(6));
  return 0;
}

bool all_finite(std::span<const float> v) {
  return std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); });
}

// Every float the state holds is finite, and every attention cache is a full ring of W keys.
void check_state(const State& s, std::size_t window) {
  for (std::size_t b = 0; b < s.batch_size(); ++b)
    s.visit_buffers(b, [&](const SequenceLayer<false>& l) {
      CAPTURE(l.layer);
      CHECK(all_finite(l.rg_lru));
      CHECK(all_finite(l.conv));
      if (!l.kv) return;
      const KvCache::Ring ring = l.kv->ring();
      CHECK(ring.count == window);
      CHECK(ring.slots == window);
      CHECK(all_finite(ring.keys));
      CHECK(all_finite(ring.values));
    });
}

// A fixed pseudo-random token stream (a 64-bit LCG's high bits).
struct TokenStream {
  std::uint64_t x = 0x9e3779b97f4a7c15ull;
  int next(std::size_t vocab) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    return int((x >> 33) % vocab);
  }
};

}  // namespace

TEST_CASE("a million decode steps keep memory flat and the state finite") {
  const auto config = test::tiny_random_config();
  const auto model = test::tiny_random_model(config);
  State s = model.new_state();
  std::vector<float> logits(config.sizes.vocab_size);
  TokenStream tokens;
  std::size_t non_finite_steps = 0;
  auto step = [&] {
    const int t[1] = {tokens.next(config.sizes.vocab_size)};
    model.decode(s, t, logits);
    if (!all_finite(logits)) ++non_finite_steps;
  };

  // Warm up past the window, so every buffer has reached its final size.
  const std::size_t warm_up = 10'000;
  for (std::size_t i = 0; i < warm_up; ++i) step();
  const std::size_t rss_before = rss_kib();
  std::size_t rss_peak = rss_before;
  const std::size_t checkpoints = 10;
  for (std::size_t part = 0; part < checkpoints; ++part) {
    for (std::size_t i = 0; i < (stream_tokens - warm_up) / checkpoints; ++i) step();
    rss_peak = std::max(rss_peak, rss_kib());
    check_state(s, config.sizes.attention_window);
  }
  MESSAGE(stream_tokens, " tokens: RSS ", rss_before, " KiB after warm-up, peak ", rss_peak, " KiB");
  CHECK(non_finite_steps == 0);
  CHECK(s.position() == std::int64_t(warm_up + (stream_tokens - warm_up) / checkpoints * checkpoints));
  if (check_rss) CHECK(rss_peak - rss_before < 8 * 1024);  // generous: the state itself is ~10 KiB
}

TEST_CASE("a prompt ten times the window gives the same logits through prefill and through decode") {
  const auto config = test::tiny_random_config();
  const auto model = test::tiny_random_model(config);
  const std::size_t V = config.sizes.vocab_size, W = config.sizes.attention_window, T = 10 * W;
  TokenStream stream;
  std::vector<int> prompt(T);
  for (int& t : prompt) t = stream.next(V);

  State whole = model.new_state();
  const std::vector<float> prefilled = model.prefill(whole, prompt, LogitsRows::all);
  REQUIRE(prefilled.size() == T * V);
  CHECK(all_finite(prefilled));

  State stepped = model.new_state();
  std::vector<float> decoded;
  for (int t : prompt) {
    const auto row = model.decode(stepped, std::span<const int>(&t, 1));
    decoded.insert(decoded.end(), row.begin(), row.end());
  }
  // Prefill runs matrix-matrix products and decode matrix-vector ones, each output the same chain; only
  // attention's tiled and decode paths add the softmax in another order: they agree at float precision
  // (logits here are of order 1-10).
  CHECK(test::max_abs_diff(prefilled, decoded) < 1e-4f);

  for (std::size_t chunk : {std::size_t(1), std::size_t(7), W, W + 1, std::size_t(100)}) {
    CAPTURE(chunk);
    State chunked = model.new_state();
    std::vector<float> out;
    for (std::size_t at = 0; at < T; at += chunk) {
      const std::size_t n = std::min(chunk, T - at);
      const auto rows = model.prefill(chunked, std::span<const int>(prompt.data() + at, n), LogitsRows::all);
      out.insert(out.end(), rows.begin(), rows.end());
    }
    CHECK(test::max_abs_diff(out, prefilled) < 1e-4f);
    // The caches hold the same keys, so the states continue identically.
    CHECK(chunked.position() == whole.position());
    for (std::size_t i = 0; i < config.sizes.depth; ++i) {
      CAPTURE(i);
      if (config.block_type(i) == BlockType::recurrent) {
        CHECK(test::max_abs_diff(chunked.rg_lru(i, 0), whole.rg_lru(i, 0)) < 1e-5f);
      } else {
        CHECK(chunked.kv(i, 0).size() == whole.kv(i, 0).size());
      }
    }
  }
}

TEST_CASE("a long prompt in one prefill keeps only the window in the cache") {
  const auto config = test::tiny_random_config();
  const auto model = test::tiny_random_model(config);
  TokenStream stream;
  std::vector<int> prompt(5000);
  for (int& t : prompt) t = stream.next(config.sizes.vocab_size);
  State s = model.new_state();
  const auto logits = model.prefill(s, prompt);
  CHECK(all_finite(logits));
  check_state(s, config.sizes.attention_window);
  CHECK(s.kv(2, 0).size() == config.sizes.attention_window);
}
