// The per-sequence state (griffin/state.hpp): its shape, read-only views of each sequence's layers, and
// restore() as the only way to write one. A state written back from what visit_buffers showed, or copied,
// continues bit-identically; restore refuses a negative position; a layer of the wrong kind or a sequence
// outside the batch is refused by name.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "griffin/state.hpp"
#include "test_support.hpp"
#include "tiny_random_model.hpp"

using namespace griffin;
using test::tiny_random_config;
using test::tiny_random_model;

namespace {

// One layer of one sequence as plain vectors.
struct LayerCopy {
  BlockType type;
  std::vector<float> rg_lru, conv;
  KvCache kv;
};
std::vector<LayerCopy> copy_of(const State& s, std::size_t b) {
  std::vector<LayerCopy> layers;
  s.visit_buffers(b, [&](const SequenceLayer<false>& l) {
    CHECK(l.layer == layers.size());  // in layer order
    layers.push_back(
        {l.type, {l.rg_lru.begin(), l.rg_lru.end()}, {l.conv.begin(), l.conv.end()}, l.kv ? *l.kv : KvCache{}});
  });
  return layers;
}

bool same(const std::vector<LayerCopy>& a, const std::vector<LayerCopy>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].type != b[i].type || a[i].rg_lru != b[i].rg_lru || a[i].conv != b[i].conv) return false;
    const KvCache::Ring x = a[i].kv.ring(), y = b[i].kv.ring();
    if (x.capacity != y.capacity || x.slots != y.slots || x.count != y.count || x.head != y.head ||
        !std::ranges::equal(x.keys, y.keys) || !std::ranges::equal(x.values, y.values) ||
        !std::ranges::equal(x.positions, y.positions))
      return false;
  }
  return true;
}

std::vector<int> tokens(std::size_t n, int seed) {
  std::vector<int> t(n);
  for (std::size_t i = 0; i < n; ++i) t[i] = int((i * 37 + std::size_t(seed) * 11 + 3) % 64);
  return t;
}

}  // namespace

TEST_CASE("a state's shape is its model's sizes and one block type per layer") {
  const DynamicConfig config = tiny_random_config();
  const StateShape shape = StateShape::of(config);
  CHECK(shape.sizes == config.sizes);
  CHECK(shape.blocks == std::vector<BlockType>{BlockType::recurrent, BlockType::recurrent, BlockType::local_attention});
  const auto model = tiny_random_model(config);
  CHECK(model.new_state(3).shape() == shape);
  CHECK(model.new_state(3).batch_size() == 3);
  CHECK_THROWS_WITH_AS(State(shape, 0), doctest::Contains("batch size must be at least 1"), std::invalid_argument);
}

TEST_CASE("a new state starts at position 0 with zero recurrences and empty caches; reset returns there") {
  const auto model = tiny_random_model();
  State s = model.new_state(2);
  const std::size_t E = model.config().sizes.lru_width, K = model.config().sizes.conv_width;
  const auto check_fresh = [&] {
    for (std::size_t b = 0; b < 2; ++b) {
      CHECK(s.position(b) == 0);
      s.visit_buffers(b, [&](const SequenceLayer<false>& l) {
        if (l.type == BlockType::recurrent) {
          CHECK(l.rg_lru.size() == E);
          CHECK(l.conv.size() == (K - 1) * E);
          CHECK(std::ranges::count(l.rg_lru, 0.0f) == std::ptrdiff_t(E));
          CHECK(std::ranges::count(l.conv, 0.0f) == std::ptrdiff_t((K - 1) * E));
          CHECK(l.kv == nullptr);
        } else {
          REQUIRE(l.kv != nullptr);
          CHECK(l.kv->size() == 0);
          CHECK(l.rg_lru.empty());
        }
      });
    }
  };
  check_fresh();
  model.prefill(s, tokens(2 * 20, 1), {}, LogitsRows::none);
  CHECK(s.position(1) == 20);
  CHECK(s.kv(2, 1).size() == 16);  // the window
  CHECK(std::ranges::count(s.rg_lru(0, 1), 0.0f) < std::ptrdiff_t(E));
  s.reset();
  check_fresh();
}

TEST_CASE("restore writes what visit_buffers showed: the sequence continues bit-identically") {
  const auto model = tiny_random_model();
  State source = model.new_state(2);
  model.prefill_sequences(source, std::vector<std::size_t>{0}, tokens(9, 1), {}, LogitsRows::none);
  model.prefill_sequences(source, std::vector<std::size_t>{1}, tokens(30, 2), {}, LogitsRows::none);  // past the window
  const auto layers = copy_of(source, 1);

  State target = model.new_state(1);
  std::vector<std::size_t> filled;
  target.restore(0, source.position(1), [&](const SequenceLayer<true>& l) {
    filled.push_back(l.layer);
    const LayerCopy& from = layers[l.layer];
    REQUIRE(l.type == from.type);
    REQUIRE(l.rg_lru.size() == from.rg_lru.size());
    REQUIRE(l.conv.size() == from.conv.size());
    std::ranges::copy(from.rg_lru, l.rg_lru.begin());
    std::ranges::copy(from.conv, l.conv.begin());
    if (l.kv) l.kv->assign(from.kv.ring());
  });
  CHECK(filled == std::vector<std::size_t>{0, 1, 2});  // every layer, in order
  CHECK(target.position() == 30);
  CHECK(same(copy_of(target, 0), layers));

  // Continued one token at a time, alone and in its batch (the same one-row work): the same logits.
  const std::size_t V = model.config().sizes.vocab_size;
  std::vector<float> in_batch(V), alone(V);
  for (int t : tokens(12, 3)) {
    model.prefill_sequences(source, std::vector<std::size_t>{1}, std::span(&t, 1), in_batch);
    model.decode(target, std::span(&t, 1), alone);
    REQUIRE(in_batch == alone);
  }
  CHECK(same(copy_of(target, 0), copy_of(source, 1)));
  CHECK(source.position(0) == 9);  // the other sequence was not touched
}

TEST_CASE("a copied State continues bit-identically, and independently of the original") {
  const auto model = tiny_random_model();
  State original = model.new_state(2);
  model.prefill(original, tokens(2 * 25, 4), {}, LogitsRows::none);
  State copy = original;
  CHECK(same(copy_of(copy, 0), copy_of(original, 0)));
  CHECK(same(copy_of(copy, 1), copy_of(original, 1)));
  for (int step = 0; step < 10; ++step) {
    const std::vector<int> next{step, 63 - step};
    REQUIRE(model.decode(copy, next) == model.decode(original, next));
  }
  // Moving the copy on leaves the original where it was.
  const auto before = copy_of(original, 0);
  const std::int64_t position = original.position(0);
  model.decode(copy, std::vector<int>{1, 2});
  CHECK(same(copy_of(original, 0), before));
  CHECK(original.position(0) == position);
  CHECK(copy.position(0) == position + 1);
  // Assignment is a copy too.
  State assigned = model.new_state(2);
  assigned = original;
  CHECK(model.decode(assigned, std::vector<int>{5, 6}) == model.decode(original, std::vector<int>{5, 6}));
}

TEST_CASE("restore refuses a negative position and leaves the sequence as it was") {
  const auto model = tiny_random_model();
  State s = model.new_state();
  model.prefill(s, tokens(7, 5), {}, LogitsRows::none);
  const auto before = copy_of(s, 0);
  bool filled = false;
  CHECK_THROWS_WITH_AS(s.restore(0, -3, [&](const SequenceLayer<true>&) { filled = true; }),
                       doctest::Contains("a position is at least 0, got -3"), std::invalid_argument);
  CHECK_FALSE(filled);
  CHECK(s.position() == 7);
  CHECK(same(copy_of(s, 0), before));
}

TEST_CASE("a layer of the wrong kind, or a sequence outside the batch, is refused by name") {
  const auto model = tiny_random_model();
  State s = model.new_state(2);
  CHECK_THROWS_WITH_AS((void)s.rg_lru(2, 0), doctest::Contains("layer 2 is an attention layer"), std::invalid_argument);
  CHECK_THROWS_WITH_AS((void)s.conv(2, 0), doctest::Contains("layer 2 is an attention layer"), std::invalid_argument);
  CHECK_THROWS_WITH_AS((void)s.kv(0, 0), doctest::Contains("layer 0 is recurrent: it has no KV cache"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS((void)s.rg_lru(0, 2), doctest::Contains("sequence 2 is outside the batch of 2"), std::out_of_range);
  CHECK_THROWS_WITH_AS((void)s.kv(2, 5), doctest::Contains("sequence 5 is outside the batch of 2"), std::out_of_range);
  CHECK_THROWS_AS(s.visit_buffers(2, [](const SequenceLayer<false>&) {}), std::out_of_range);
  CHECK_THROWS_AS(s.restore(2, 0, [](const SequenceLayer<true>&) {}), std::out_of_range);
  CHECK_THROWS_AS((void)s.position(2), std::out_of_range);
  CHECK_THROWS_AS((void)s.rg_lru(3, 0), std::out_of_range);  // no layer 3
}

TEST_CASE("storage_bytes counts the recurrent rows and the KV storage held, which grows with use") {
  const auto model = tiny_random_model();
  const Shape& sizes = model.config().sizes;
  State s = model.new_state(2);
  // Two recurrent layers: h [E] and K-1 rows of E per sequence; the attention caches hold nothing yet.
  const std::size_t recurrent = 2 * 2 * (sizes.lru_width + (sizes.conv_width - 1) * sizes.lru_width) * sizeof(float);
  CHECK(s.storage_bytes() == recurrent);
  model.prefill(s, tokens(2 * 5, 6), {}, LogitsRows::none);
  const std::size_t per_key = 2 * sizes.head_dim * sizeof(float) + sizeof(int);
  CHECK(s.storage_bytes() == recurrent + 2 * s.kv(2, 0).ring().slots * per_key);
  CHECK(s.kv(2, 0).ring().slots >= 5);
}
