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

TEST_CASE("grain_for: as many equal parts as there are threads, none under the least work per part") {
  for (const std::size_t threads : {std::size_t(1), std::size_t(2), std::size_t(3)})
    for (const std::size_t min_part_work : {ThreadPool::default_min_part_work, std::size_t(1000)}) {
      const ThreadPool pool(threads, min_part_work);
      for (std::size_t n : {std::size_t(1), std::size_t(48), std::size_t(192), std::size_t(1000), std::size_t(7680)})
        for (std::size_t item_work :
             {std::size_t(1), std::size_t(7), std::size_t(192), std::size_t(1000), std::size_t(65536), std::size_t(1) << 20})
          for (std::size_t grain : {std::size_t(1), std::size_t(16), std::size_t(32)}) {
            CAPTURE(threads);
            CAPTURE(min_part_work);
            CAPTURE(n);
            CAPTURE(item_work);
            CAPTURE(grain);
            const std::size_t g = pool.grain_for(n, item_work, grain);
            REQUIRE(g % grain == 0);
            const std::size_t parts = (n + g - 1) / g;  // what parallel_for makes of it
            CHECK(parts >= 1);
            CHECK(parts <= threads);
            // Every part but the last does at least min_part_work, unless there is only one part.
            if (parts > 1) CHECK(g * item_work >= min_part_work);
            // Where the work has room for one part per thread, each at least min_part_work, that is the cut.
            const std::size_t items_per_part = (min_part_work + item_work - 1) / item_work;
            if (grain == 1 && n >= threads * items_per_part) CHECK(parts == threads);
            if (parts > 1) CHECK(n - (parts - 1) * g <= g);  // the last part is no larger than the others
          }
      CHECK(pool.grain_for(0, 100, 16) == 16);  // nothing to split: the caller's grain
    }
}

TEST_CASE("with min_part_work 0, grain_for cuts any work into one part per thread") {
  const ThreadPool pool(2, 0);
  for (std::size_t item_work : {std::size_t(0), std::size_t(1), std::size_t(100), std::size_t(1) << 20})
    for (std::size_t grain : {std::size_t(1), std::size_t(16)}) {
      CAPTURE(item_work);
      CAPTURE(grain);
      const std::size_t g = pool.grain_for(100, item_work, grain);
      CHECK(g % grain == 0);
      CHECK((100 + g - 1) / g == 2);
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
  const Parts small = run(pool, 100, pool.grain_for(100, 100));
  REQUIRE(small.ranges.size() == 1);
  CHECK(small.ranges[0] == std::pair<std::size_t, std::size_t>{0, 100});
  CHECK(small.threads == std::set<std::thread::id>{std::this_thread::get_id()});
  // 1000 items of 10^4 operations: 10^7, many parts' worth.
  const Parts large = run(pool, 1000, pool.grain_for(1000, 10000));
  CHECK(large.ranges.size() == 2);
  CHECK(large.threads.size() == 2);
}

TEST_CASE("with min_part_work 0 the same small work is split between both threads") {
  ThreadPool pool(2, 0);
  const Parts small = run(pool, 100, pool.grain_for(100, 100));
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
