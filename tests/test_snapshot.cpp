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

// ---- The file format (version 2) ----

namespace {
// Reads the format's little-endian fields by hand, as the header comment of snapshot.hpp lays them out.
struct FormatReader {
  std::span<const std::byte> bytes;
  std::size_t at = 0;
  template <class T>
  T get() {
    REQUIRE(at + sizeof(T) <= bytes.size());
    T v;
    std::memcpy(&v, bytes.data() + at, sizeof(T));
    at += sizeof(T);
    return v;
  }
  std::string text(std::size_t n) {
    REQUIRE(at + n <= bytes.size());
    std::string s(reinterpret_cast<const char*>(bytes.data() + at), n);
    at += n;
    return s;
  }
};

// The FNV-1a hash of everything before the last 8 bytes, written into them: a damaged snapshot whose
// checksum still matches, so the field checks behind it are what refuses it.
std::vector<std::byte> rechecksummed(std::vector<std::byte> bytes) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (std::size_t i = 0; i + 8 < bytes.size(); ++i) h = (h ^ std::uint64_t(bytes[i])) * 0x100000001b3ull;
  std::memcpy(bytes.data() + bytes.size() - 8, &h, 8);
  return bytes;
}

template <class T>
void put(std::vector<std::byte>& bytes, std::size_t at, T v) {
  std::memcpy(bytes.data() + at, &v, sizeof v);
}
}  // namespace

TEST_CASE("a version 2 snapshot holds the sizes by their field-table names, then each sequence's position and layers") {
  const auto model = load_model(test::data_dir() / "tiny-griffin");
  const State s = busy_state(model);
  const auto bytes = save_snapshot(s, {}, "tiny-griffin");
  FormatReader r{bytes};
  CHECK(r.text(8) == "GRIFSNAP");
  CHECK(r.get<std::uint32_t>() == 2);
  CHECK(r.get<std::uint32_t>() == 0);
  std::size_t sizes = 0;
  visit_sizes([&](const SizeField&) { ++sizes; });
  REQUIRE(r.get<std::uint32_t>() == sizes);
  visit_sizes([&](const SizeField& f) {
    CAPTURE(f.name);
    const auto length = r.get<std::uint8_t>();
    CHECK(r.text(length) == f.name);
    CHECK(r.get<std::uint64_t>() == s.shape().sizes.*f.member);
  });
  for (BlockType b : s.shape().blocks) CHECK(r.get<std::uint8_t>() == static_cast<std::uint8_t>(b));
  REQUIRE(r.get<std::uint64_t>() == 2);  // the batch
  // Sequence-major: sequence 0's position and every layer of it, then sequence 1's.
  for (std::size_t b = 0; b < 2; ++b) {
    CAPTURE(b);
    CHECK(r.get<std::int64_t>() == s.position(b));
    s.visit_buffers(b, [&](const SequenceLayer<false>& l) {
      CAPTURE(l.layer);
      if (l.type == BlockType::recurrent) {
        for (float h : l.rg_lru) CHECK(r.get<float>() == h);
        for (float c : l.conv) CHECK(r.get<float>() == c);
        return;
      }
      const KvCache::Ring ring = l.kv->ring();
      CHECK(r.get<std::uint64_t>() == ring.capacity);
      CHECK(r.get<std::uint64_t>() == ring.slots);
      CHECK(r.get<std::uint64_t>() == ring.count);
      CHECK(r.get<std::uint64_t>() == ring.head);
      std::size_t differ = 0;
      for (float k : ring.keys) differ += r.get<float>() != k;
      for (float v : ring.values) differ += r.get<float>() != v;
      for (int p : ring.positions) differ += r.get<int>() != p;
      CHECK(differ == 0);
    });
  }
  CHECK(r.get<std::uint64_t>() == 0);  // no logits
  const auto id_length = r.get<std::uint32_t>();
  CHECK(r.text(id_length) == "tiny-griffin");
  r.get<std::uint64_t>();  // the checksum
  CHECK(r.at == bytes.size());
}

TEST_CASE("a snapshot of another version, or whose fields are corrupted behind a valid checksum, is refused") {
  const auto model = load_model(test::data_dir() / "tiny-griffin");
  const State s = busy_state(model);
  const auto bytes = save_snapshot(s);
  // Offsets, from the layout checked above: 16 bytes of magic and version, the field count, the sizes.
  std::size_t sizes_end = 16 + 4;
  visit_sizes([&](const SizeField& f) { sizes_end += 1 + f.name.size() + 8; });
  const std::size_t depth = s.shape().sizes.depth, batch_at = sizes_end + depth, first_position = batch_at + 8;

  SUBCASE("version 1, the format before the field table") {
    auto v1 = bytes;
    put<std::uint32_t>(v1, 8, 1);
    CHECK_THROWS_WITH_AS(load_snapshot(v1), doctest::Contains("version 1 is not supported (this build reads version 2)"),
                         SnapshotError);
  }
  SUBCASE("damage the checksum catches") {
    auto damaged = bytes;
    damaged[first_position + 100] ^= std::byte{0x01};  // a bit of a stored float: no field check could see it
    CHECK_THROWS_WITH_AS(load_snapshot(damaged), doctest::Contains("the checksum does not match"), SnapshotError);
  }
  SUBCASE("a field count other than the table's") {
    auto damaged = bytes;
    put<std::uint32_t>(damaged, 16, 9);
    CHECK_THROWS_WITH_AS(load_snapshot(rechecksummed(damaged)), doctest::Contains("9 shape fields, expected 10"),
                         SnapshotError);
  }
  SUBCASE("a size under another name") {
    auto damaged = bytes;
    damaged[16 + 4 + 1] = std::byte{'w'};  // the first field: "vocab_size" becomes "wocab_size"
    CHECK_THROWS_WITH_AS(load_snapshot(rechecksummed(damaged)),
                         doctest::Contains("shape field \"wocab_size\" where \"vocab_size\" belongs"), SnapshotError);
  }
  SUBCASE("a size of zero") {
    auto damaged = bytes;
    put<std::uint64_t>(damaged, 16 + 4 + 1 + 10, 0);  // vocab_size's value
    CHECK_THROWS_WITH_AS(load_snapshot(rechecksummed(damaged)), doctest::Contains("vocab_size is 0"), SnapshotError);
  }
  SUBCASE("a negative position") {
    auto damaged = bytes;
    put<std::int64_t>(damaged, first_position, -5);
    CHECK_THROWS_WITH_AS(load_snapshot(rechecksummed(damaged)), doctest::Contains("corrupted (a negative position)"),
                         SnapshotError);
  }
  SUBCASE("a KV ring of another capacity") {
    // tiny-griffin: layers 0 and 1 are recurrent (h [E] and K-1 rows of E floats each), layer 2 attention.
    const std::size_t E = s.shape().sizes.lru_width, K = s.shape().sizes.conv_width;
    REQUIRE(s.shape().blocks[2] == BlockType::local_attention);
    auto damaged = bytes;
    put<std::uint64_t>(damaged, first_position + 8 + 2 * (E + (K - 1) * E) * sizeof(float), 25);
    CHECK_THROWS_WITH_AS(load_snapshot(rechecksummed(damaged)),
                         doctest::Contains("layer 2, sequence 0: KV capacity 25"), SnapshotError);
  }
  SUBCASE("the untouched bytes, rechecksummed, still load") {
    CHECK(save_snapshot(load_snapshot(rechecksummed(bytes)).state) == bytes);
  }
}
