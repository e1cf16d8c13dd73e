// The pool's sizing of parts (griffin/threads.hpp): work too small to pay for a hand-off to another thread runs
// on the caller, larger work is split. The threshold is the pool's own (a constructor argument): the shipped
// default, which every model uses unless told otherwise, and 0, which splits every job.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include "griffin/threads.hpp"

using griffin::ThreadPool;

TEST_CASE("a pool keeps the least work per part it was made with; the default is the shipped threshold") {
  CHECK(ThreadPool(2).min_part_work() == ThreadPool::default_min_part_work);
  CHECK(ThreadPool(2, 0).min_part_work() == 0);
  CHECK(ThreadPool(1, 12345).min_part_work() == 12345);
  // About what one core takes for 2^16 multiply-adds from cache (docs/performance.md).
  CHECK(ThreadPool::default_min_part_work == 65536);
}

TEST_CASE("grain_for: the fewest items that reach the least work per part, in whole grains") {
  for (const std::size_t min_part_work : {ThreadPool::default_min_part_work, std::size_t(1000)}) {
    const ThreadPool pool(1, min_part_work);
    for (std::size_t item_work :
         {std::size_t(1), std::size_t(7), std::size_t(1000), std::size_t(65536), std::size_t(1) << 20}) {
      for (std::size_t grain : {std::size_t(1), std::size_t(8), std::size_t(32)}) {
        CAPTURE(min_part_work);
        CAPTURE(item_work);
        CAPTURE(grain);
        const std::size_t g = pool.grain_for(item_work, grain);
        CHECK(g % grain == 0);
        CHECK(g * item_work >= min_part_work);
        // One grain fewer would not reach it (or g is the caller's grain already).
        CHECK((g == grain || (g - grain) * item_work < min_part_work));
      }
    }
    CHECK(pool.grain_for(0, 16) == 16);  // no stated cost: the caller's grain
  }
}

TEST_CASE("with min_part_work 0, grain_for is the caller's grain whatever the work") {
  const ThreadPool pool(2, 0);
  for (std::size_t item_work : {std::size_t(0), std::size_t(1), std::size_t(100), std::size_t(1) << 20})
    for (std::size_t grain : {std::size_t(0), std::size_t(1), std::size_t(16)}) {
      CAPTURE(item_work);
      CAPTURE(grain);
      CHECK(pool.grain_for(item_work, grain) == std::max<std::size_t>(grain, 1));
    }
}

namespace {
// The parts parallel_for made, and the threads that ran them. Every thread claims parts until none is left, so
// a part that is over at once may all be run by the caller before a worker wakes: each part takes 20 ms, ample
// time for the other thread to claim the next one.
struct Parts {
  std::vector<std::pair<std::size_t, std::size_t>> ranges;
  std::set<std::thread::id> threads;
};
Parts run(ThreadPool& pool, std::size_t n, std::size_t grain) {
  Parts p;
  std::mutex m;
  pool.parallel_for(n, grain, [&](std::size_t b, std::size_t e) {
    {
      std::lock_guard lock(m);
      p.ranges.emplace_back(b, e);
      p.threads.insert(std::this_thread::get_id());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  });
  return p;
}
}  // namespace

TEST_CASE("with the shipped threshold small work runs on the calling thread, large work is split") {
  ThreadPool pool(2);
  // 100 items of 100 operations: 10^4 in all, less than one part's worth.
  const Parts small = run(pool, 100, pool.grain_for(100));
  REQUIRE(small.ranges.size() == 1);
  CHECK(small.ranges[0] == std::pair<std::size_t, std::size_t>{0, 100});
  CHECK(small.threads == std::set<std::thread::id>{std::this_thread::get_id()});
  // 1000 items of 10^4 operations: 10^7, many parts' worth.
  const Parts large = run(pool, 1000, pool.grain_for(10000));
  CHECK(large.ranges.size() == 2);
  CHECK(large.threads.size() == 2);
}

TEST_CASE("with min_part_work 0 the same small work is split between both threads") {
  ThreadPool pool(2, 0);
  const Parts small = run(pool, 100, pool.grain_for(100));
  REQUIRE(small.ranges.size() == 2);
  CHECK(small.threads.size() == 2);
  // Two disjoint parts covering [0, 100).
  auto ranges = small.ranges;
  std::sort(ranges.begin(), ranges.end());
  CHECK(ranges.front().first == 0);
  CHECK(ranges.front().second == ranges.back().first);
  CHECK(ranges.back().second == 100);
}

TEST_CASE("an exception thrown in a part reaches the caller, and the pool keeps working") {
  ThreadPool pool(2, 0);
  CHECK_THROWS_WITH_AS(pool.parallel_for(100, 1,
                                         [](std::size_t b, std::size_t) {
                                           if (b > 0) throw std::runtime_error("the second part failed");
                                         }),
                       "the second part failed", std::runtime_error);
  const Parts after = run(pool, 100, 1);
  CHECK(after.ranges.size() == 2);
}
