// The pool's sizing of parts: work too small to pay for a hand-off to another thread runs on the caller,
// larger work is split. With the threshold the library ships (the other tests build with 0, which splits
// everything), so this file sets it back before including the pool; no other file of this executable
// includes it.
#undef GRIFFIN_MIN_PART_WORK
#define GRIFFIN_MIN_PART_WORK 65536
#include <doctest/doctest.h>

#include <mutex>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "griffin/threads.hpp"

using griffin::ThreadPool;

TEST_CASE("grain_for: the fewest items that reach the least work per part, in whole grains") {
  REQUIRE(ThreadPool::min_part_work == 65536);
  for (std::size_t item_work : {std::size_t(1), std::size_t(7), std::size_t(1000), std::size_t(65536), std::size_t(1) << 20}) {
    for (std::size_t grain : {std::size_t(1), std::size_t(8), std::size_t(32)}) {
      CAPTURE(item_work);
      CAPTURE(grain);
      const std::size_t g = ThreadPool::grain_for(item_work, grain);
      CHECK(g % grain == 0);
      CHECK(g * item_work >= ThreadPool::min_part_work);
      // One grain fewer would not reach it (or g is the caller's grain already).
      CHECK((g == grain || (g - grain) * item_work < ThreadPool::min_part_work));
    }
  }
  CHECK(ThreadPool::grain_for(0, 16) == 16);  // no stated cost: the caller's grain
}

namespace {
// The parts parallel_for made, and the threads that ran them.
struct Parts {
  std::vector<std::pair<std::size_t, std::size_t>> ranges;
  std::set<std::thread::id> threads;
};
Parts run(ThreadPool& pool, std::size_t n, std::size_t grain) {
  Parts p;
  std::mutex m;
  pool.parallel_for(n, grain, [&](std::size_t b, std::size_t e) {
    std::lock_guard lock(m);
    p.ranges.emplace_back(b, e);
    p.threads.insert(std::this_thread::get_id());
  });
  return p;
}
}  // namespace

TEST_CASE("small work runs on the calling thread, large work is split") {
  ThreadPool pool(2);
  // 100 items of 100 operations: 10^4 in all, less than one part's worth.
  const Parts small = run(pool, 100, ThreadPool::grain_for(100));
  REQUIRE(small.ranges.size() == 1);
  CHECK(small.ranges[0] == std::pair<std::size_t, std::size_t>{0, 100});
  CHECK(small.threads == std::set<std::thread::id>{std::this_thread::get_id()});
  // 1000 items of 10^4 operations: 10^7, many parts' worth.
  const Parts large = run(pool, 1000, ThreadPool::grain_for(10000));
  CHECK(large.ranges.size() == 2);
  CHECK(large.threads.size() == 2);
}
