// The keys and values of one sequence in one attention layer (griffin/kv_cache.hpp): a ring of the last W keys
// (local attention) or a cache that grows (global attention), read as at most two segments oldest first,
// storage that grows with use, and ring() / assign() that copy one exactly and refuse what is not a ring of
// the cache.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstddef>
#include <stdexcept>
#include <vector>

#include "griffin/kv_cache.hpp"

using namespace griffin;

namespace {

constexpr std::size_t Dh = 4;

// Appends keys at positions [from, to), each key (and value) holding its position in every element (the
// value its negation), in chunks of `chunk`.
void append_positions(KvCache& cache, int from, int to, int chunk = 1) {
  for (int p = from; p < to; p += chunk) {
    const int n = std::min(chunk, to - p);
    std::vector<float> keys, values;
    std::vector<int> positions;
    for (int q = p; q < p + n; ++q) {
      keys.insert(keys.end(), Dh, float(q));
      values.insert(values.end(), Dh, -float(q));
      positions.push_back(q);
    }
    cache.append(keys.data(), values.data(), positions.data(), std::size_t(n));
  }
}

// The positions the segments hold, in segment order; checks each key and value matches its position.
std::vector<int> held(const KvCache& cache, std::size_t* segment_count = nullptr) {
  kernels::KeySegment segments[2];
  const std::size_t n = cache.segments(segments);
  if (segment_count) *segment_count = n;
  std::vector<int> positions;
  std::size_t mismatches = 0;
  for (std::size_t s = 0; s < n; ++s)
    for (std::size_t i = 0; i < segments[s].count; ++i) {
      const int p = segments[s].positions[i];
      positions.push_back(p);
      for (std::size_t d = 0; d < Dh; ++d)
        mismatches += segments[s].keys[i * Dh + d] != float(p) || segments[s].values[i * Dh + d] != -float(p);
    }
  CHECK(mismatches == 0);
  return positions;
}

std::vector<int> range(int from, int to) {
  std::vector<int> v;
  for (int p = from; p < to; ++p) v.push_back(p);
  return v;
}

}  // namespace

TEST_CASE("a ring of capacity W keeps the last W keys, oldest first, in at most two segments") {
  KvCache cache(Dh, 5);
  CHECK(cache.size() == 0);
  CHECK(held(cache).empty());
  append_positions(cache, 0, 3);
  std::size_t segments = 0;
  CHECK(held(cache, &segments) == range(0, 3));
  CHECK(segments == 1);
  append_positions(cache, 3, 5);
  CHECK(held(cache, &segments) == range(0, 5));
  CHECK(segments == 1);  // full, not yet wrapped
  append_positions(cache, 5, 8);
  CHECK(cache.size() == 5);
  CHECK(held(cache, &segments) == range(3, 8));
  CHECK(segments == 2);  // wrapped: the oldest at slot 3, then slots 0 … 2
  CHECK(cache.ring().head == 3);
  append_positions(cache, 8, 10);
  CHECK(held(cache, &segments) == range(5, 10));
  CHECK(segments == 1);  // the head is back at slot 0
  cache.clear();
  CHECK(cache.size() == 0);
  CHECK(held(cache).empty());
}

TEST_CASE("appending a chunk at least as long as the ring keeps its last W keys") {
  for (int chunk : {5, 7, 12}) {
    CAPTURE(chunk);
    KvCache cache(Dh, 5);
    append_positions(cache, 0, 3);
    append_positions(cache, 3, 3 + chunk, chunk);
    CHECK(held(cache) == range(3 + chunk - 5, 3 + chunk));
  }
  // Chunks of other lengths, crossing the wrap: the same keys as one at a time.
  KvCache by_three(Dh, 5), by_one(Dh, 5);
  append_positions(by_three, 0, 23, 3);
  append_positions(by_one, 0, 23);
  CHECK(held(by_three) == held(by_one));
  CHECK(held(by_one) == range(18, 23));
}

TEST_CASE("a cache's storage grows with the keys appended, by doubling up to its capacity") {
  KvCache cache(Dh, 100);
  CHECK(cache.storage_bytes() == 0);
  const std::size_t per_slot = 2 * Dh * sizeof(float) + sizeof(int);
  std::vector<std::size_t> slots;
  for (int p = 0; p < 120; ++p) {
    append_positions(cache, p, p + 1);
    if (slots.empty() || cache.ring().slots != slots.back()) slots.push_back(cache.ring().slots);
    CHECK(cache.storage_bytes() == cache.ring().slots * per_slot);
  }
  CHECK(slots == std::vector<std::size_t>{1, 2, 4, 8, 16, 32, 64, 100});
  CHECK(held(cache) == range(20, 120));
}

TEST_CASE("a global cache (capacity dynamic) keeps every key, in one segment") {
  KvCache cache(Dh, dynamic);
  append_positions(cache, 0, 1000, 7);
  std::size_t segments = 0;
  CHECK(held(cache, &segments) == range(0, 1000));
  CHECK(segments == 1);
  CHECK(cache.ring().head == 0);
  CHECK(cache.capacity() == dynamic);
}

TEST_CASE("assign takes another cache's ring exactly: the same keys in the same segments") {
  for (int keys : {0, 3, 5, 8, 13}) {
    CAPTURE(keys);
    KvCache from(Dh, 5), to(Dh, 5);
    append_positions(from, 0, keys);
    append_positions(to, 100, 102);  // whatever it held is replaced
    to.assign(from.ring());
    std::size_t from_segments = 0, to_segments = 0;
    CHECK(held(to, &to_segments) == held(from, &from_segments));
    CHECK(to_segments == from_segments);
    CHECK(to.ring().head == from.ring().head);
    CHECK(to.ring().slots == from.ring().slots);
    // Both continue alike.
    append_positions(from, keys, keys + 4);
    append_positions(to, keys, keys + 4);
    CHECK(held(to) == held(from));
  }
}

TEST_CASE("assign refuses a ring of another capacity, or one that is not a ring at all") {
  KvCache cache(Dh, 5), other(Dh, 6), global(Dh, dynamic);
  append_positions(other, 0, 9);
  append_positions(global, 0, 3);
  CHECK_THROWS_WITH_AS(cache.assign(other.ring()), doctest::Contains("not a ring of this cache (capacity 6"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(cache.assign(global.ring()), doctest::Contains("not a ring of this cache"), std::invalid_argument);
  CHECK_THROWS_AS(global.assign(cache.ring()), std::invalid_argument);

  KvCache full(Dh, 5);
  append_positions(full, 0, 7);
  const KvCache::Ring good = full.ring();
  CHECK_NOTHROW(cache.assign(good));
  const auto refuses = [&](KvCache::Ring bad, const char* what) {
    CAPTURE(what);
    KvCache target(Dh, 5);
    append_positions(target, 0, 2);
    CHECK_THROWS_WITH_AS(target.assign(bad), doctest::Contains("not a ring of this cache"), std::invalid_argument);
    CHECK(held(target) == range(0, 2));  // left as it was
  };
  KvCache::Ring r = good;
  r.count = 6;
  refuses(r, "more keys than slots");
  r = good;
  r.head = 5;
  refuses(r, "the oldest key past the slots");
  r = good;
  r.slots = 6;
  refuses(r, "more slots than the capacity");
  r = good;
  r.keys = r.keys.first(r.keys.size() - 1);
  refuses(r, "keys of the wrong size");
  r = good;
  r.positions = r.positions.first(4);
  refuses(r, "positions of the wrong size");
  KvCache young(Dh, 5);
  append_positions(young, 0, 3);  // 4 slots, not full
  r = young.ring();
  r.head = 1;
  refuses(r, "a ring that wrapped before it filled its capacity");
}
