// State snapshots and forks (griffin/generation/snapshot.hpp): a state saved and restored, or copied,
// continues with bit-identical logits to the state that never stopped; the file is laid out as format
// version 2 says; damaged snapshots, snapshots of another version and of other models are refused clearly.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "griffin/griffin.hpp"
#include "griffin/generation/snapshot.hpp"
#include "test_support.hpp"

using namespace griffin;
using griffin::test::max_abs_diff;

namespace {
std::vector<std::int64_t> positions(const State& s) {
  std::vector<std::int64_t> p;
  for (std::size_t b = 0; b < s.batch_size(); ++b) p.push_back(s.position(b));
  return p;
}

std::vector<int> random_tokens(std::size_t n, std::size_t vocab, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<int> t(n);
  for (auto& v : t) v = int(rng() % vocab);
  return t;
}

// Decodes `steps` tokens into every sequence of a state and returns all logits.
template <class M>
std::vector<float> run_on(const M& model, State& state, std::size_t steps, unsigned seed) {
  const std::size_t B = state.batch_size(), V = model.config().sizes.vocab_size;
  const auto tokens = random_tokens(steps * B, V, seed);
  std::vector<float> all;
  for (std::size_t s = 0; s < steps; ++s) {
    const auto l = model.decode(state, std::span(tokens).subspan(s * B, B));
    all.insert(all.end(), l.begin(), l.end());
  }
  return all;
}

// A batch-2 state whose sequences have read different amounts (one past the local-attention window).
template <class M>
State busy_state(const M& model) {
  const std::size_t V = model.config().sizes.vocab_size;
  State s = model.new_state(2);
  const std::vector<std::size_t> first{0}, second{1};
  std::vector<float> sink(V);
  model.prefill_sequences(s, first, random_tokens(61, V, 1), sink);
  model.prefill_sequences(s, second, random_tokens(9, V, 2), sink);
  return s;
}
}  // namespace

TEST_CASE("a restored snapshot continues with bit-identical logits (local and global attention)") {
  for (const char* name : {"tiny-griffin", "tiny-mqa", "kjv-griffin"}) {
    CAPTURE(name);
    const auto model = load_model(test::data_dir() / name);
    State original = busy_state(model);
    const auto bytes = save_snapshot(original, {}, "model-A");
    Snapshot restored = load_snapshot(bytes, &original.shape(), "model-A");
    CHECK(restored.model_id == "model-A");
    CHECK(restored.logits.empty());
    CHECK(positions(restored.state) == positions(original));
    // Saving the restored state gives the same bytes.
    CHECK(save_snapshot(restored.state, {}, "model-A") == bytes);
    const auto never_stopped = run_on(model, original, 30, 5);
    const auto resumed = run_on(model, restored.state, 30, 5);
    CHECK(max_abs_diff(never_stopped, resumed) == 0.0f);
  }
}

TEST_CASE("a snapshot file keeps the next-token logits") {
  const auto model = load_model(test::data_dir() / "tiny-griffin");
  State s = model.new_state();
  const auto logits = model.prefill(s, random_tokens(40, 512, 3));
  const auto path = std::filesystem::temp_directory_path() / "griffin-test-snapshot.state";
  write_snapshot(path, s, logits);
  const Snapshot back = read_snapshot(path, &s.shape());
  CHECK(back.logits == logits);
  CHECK(back.state.position() == 40);
  std::filesystem::remove(path);
  CHECK_THROWS_WITH_AS(read_snapshot(path), doctest::Contains("cannot open"), SnapshotError);
}

TEST_CASE("snapshots of another model, damaged or truncated snapshots are refused with a clear error") {
  const auto model = load_model(test::data_dir() / "tiny-griffin");
  const auto other = load_model(test::data_dir() / "tiny-hawk-bf16");
  State s = busy_state(model);
  const auto bytes = save_snapshot(s, model.decode(s, std::vector<int>{1, 2}), "tiny-griffin");
  const StateShape other_shape = other.new_state().shape();
  CHECK_THROWS_WITH_AS(load_snapshot(bytes, &other_shape),
                       doctest::Contains("saved from another model: vocab_size is 512 in the snapshot but 300 in the model"),
                       SnapshotError);
  CHECK_THROWS_WITH_AS(load_snapshot(bytes, nullptr, "another-checkpoint"), doctest::Contains("another checkpoint"),
                       SnapshotError);
  // Every truncation says so.
  for (std::size_t n = 0; n < bytes.size(); n += (n < 200 || n + 64 > bytes.size()) ? 1 : 97) {
    CAPTURE(n);
    CHECK_THROWS_WITH_AS(load_snapshot(std::span(bytes).first(n)), doctest::Contains("truncated"), SnapshotError);
  }
  // A flipped bit anywhere is caught (by a field check or the checksum).
  for (std::size_t at : {std::size_t(0), std::size_t(9), std::size_t(20), std::size_t(100), bytes.size() / 2,
                         bytes.size() - 20, bytes.size() - 1}) {
    CAPTURE(at);
    auto damaged = bytes;
    damaged[at] ^= std::byte{0x10};
    CHECK_THROWS_AS(load_snapshot(damaged), SnapshotError);
  }
  auto wrong_version = bytes;
  wrong_version[8] = std::byte{9};
  CHECK_THROWS_WITH_AS(load_snapshot(wrong_version), doctest::Contains("version 9 is not supported"), SnapshotError);
  const std::string text = "hello, not a snapshot";
  CHECK_THROWS_WITH_AS(load_snapshot(std::as_bytes(std::span(text))), doctest::Contains("not a griffin state snapshot"),
                       SnapshotError);
  auto longer = bytes;
  longer.push_back(std::byte{0});
  CHECK_THROWS_AS(load_snapshot(longer), SnapshotError);
}

TEST_CASE("fork: one sequence copied out of a batch continues exactly as it would have in the batch") {
  const auto model = load_model(test::data_dir() / "tiny-griffin");
  const std::size_t V = model.config().sizes.vocab_size;
  State batch = busy_state(model);
  State one = extract_sequence(batch, 0);
  CHECK(one.batch_size() == 1);
  CHECK(one.position() == 61);
  const auto tokens = random_tokens(20, V, 9);
  const std::vector<std::size_t> first{0};
  std::vector<float> in_batch(V), alone(V);
  for (int t : tokens) {
    model.prefill_sequences(batch, first, std::span(&t, 1), in_batch);  // the same one-row work as alone
    model.decode(one, std::span(&t, 1), alone);
    REQUIRE(max_abs_diff(in_batch, alone) == 0.0f);
  }
  CHECK(batch.position(1) == 9);  // the other sequence was not touched
}

TEST_CASE("fork: a prompt read once and broadcast equals the prompt read into every sequence") {
  const auto model = load_model(test::data_dir() / "tiny-griffin");
  const std::size_t V = model.config().sizes.vocab_size, B = 3;
  const auto prompt = random_tokens(50, V, 4);
  State once = model.new_state(1);
  model.prefill(once, prompt, {}, LogitsRows::none);
  State forked = broadcast(once, B);
  State reread = model.new_state(B);
  std::vector<int> repeated;
  for (std::size_t b = 0; b < B; ++b) repeated.insert(repeated.end(), prompt.begin(), prompt.end());
  model.prefill(reread, repeated, {}, LogitsRows::none);
  CHECK(positions(forked) == positions(reread));
  // Three different continuations, decoded together in both.
  CHECK(max_abs_diff(run_on(model, forked, 15, 8), run_on(model, reread, 15, 8)) == 0.0f);
  CHECK_THROWS_AS(broadcast(forked, 2), std::invalid_argument);
  // A State is a value: a copy continues independently and identically.
  State copy = once;
  CHECK(max_abs_diff(run_on(model, copy, 10, 3), run_on(model, once, 10, 3)) == 0.0f);
}
