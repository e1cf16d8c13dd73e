// A small fork-join pool: parallel_for splits a range into one contiguous part per thread and waits.
// Kernels take ranges (outputs, channels, heads), so splitting never changes what is computed: results
// are bit-identical for any thread count.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "griffin/simd/backend.hpp"

namespace griffin {

// A reference to a callable body(begin, end), two pointers wide: parallel_for hands one to its workers
// without the allocation a std::function of a large lambda would make on every call.
class RangeBody {
 public:
  RangeBody() = default;
  template <class F>
  RangeBody(const F& f) : object_(&f), call_([](const void* o, std::size_t b, std::size_t e) { (*static_cast<const F*>(o))(b, e); }) {}
  void operator()(std::size_t begin, std::size_t end) const { call_(object_, begin, end); }

 private:
  const void* object_ = nullptr;
  void (*call_)(const void*, std::size_t, std::size_t) = nullptr;
};

class ThreadPool {
 public:
  // More threads than this is a mistake (a typo'd count would otherwise start them all and spin).
  static constexpr std::size_t max_threads = 1024;
  // The least work (multiply-adds, or element operations) worth a part of its own: handing a part to
  // another thread and waiting for it costs about what one core takes for 2^16 multiply-adds from cache,
  // even with the workers spinning (docs/performance.md, "Design notes"). 0 splits every job the kernels
  // allow, which the tests use to check that splits keep the bits.
  static constexpr std::size_t default_min_part_work = 65536;

  // The grain for parallel_for over items costing `item_work` each: a multiple of `grain`, of enough items
  // that every part (but the last) does at least min_part_work. Small jobs then run on the calling thread.
  std::size_t grain_for(std::size_t item_work, std::size_t grain = 1) const {
    grain = std::max<std::size_t>(grain, 1);
    if (item_work == 0) return grain;
    const std::size_t items = (min_part_work_ + item_work - 1) / item_work;
    return std::max(grain, (items + grain - 1) / grain * grain);
  }
  std::size_t min_part_work() const { return min_part_work_; }

  // threads = 0 means one per hardware thread.
  explicit ThreadPool(std::size_t threads = 0, std::size_t min_part_work = default_min_part_work)
      : min_part_work_(min_part_work) {
    if (threads == 0) threads = std::max<std::size_t>(1, std::thread::hardware_concurrency());
    if (threads > max_threads)
      throw std::invalid_argument("griffin::ThreadPool: " + std::to_string(threads) + " threads requested, at most " +
                                  std::to_string(max_threads));
    for (std::size_t i = 1; i < threads; ++i) workers_.emplace_back([this, i] { work(i); });
  }
  ~ThreadPool() {
    {
      std::lock_guard lock(mutex_);
      stop_.store(true);
    }
    wake_.notify_all();
    for (auto& w : workers_) w.join();
  }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  std::size_t size() const { return workers_.size() + 1; }

  // Calls body(begin, end) on disjoint parts of [0, n), each part a multiple of `grain` (but the last).
  // Runs inline when there is one thread or too little work. Not reentrant: a body must not call it.
  //
  // A decode step is a few hundred short parallel_for calls, so waking a sleeping thread each time (tens
  // of microseconds) would cost several percent of the step: threads spin for a short while after each
  // job, where the next one is picked up within a microsecond, and only then sleep.
  void parallel_for(std::size_t n, std::size_t grain, RangeBody body) {
    grain = std::max<std::size_t>(grain, 1);
    const std::size_t chunks = (n + grain - 1) / grain;
    const std::size_t parts = std::min(size(), chunks);
    if (parts <= 1) {
      if (n) body(0, n);
      return;
    }
    // Callers on different threads sharing one pool take turns.
    std::lock_guard turn(caller_mutex_);
    {
      std::lock_guard lock(mutex_);
      body_ = body;
      n_ = n;
      grain_ = grain;
      chunks_ = chunks;
      parts_ = parts;
      error_ = nullptr;
      pending_.store(parts - 1, std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    std::exception_ptr mine;
    try {
      auto [b, e] = range(0);
      body(b, e);
    } catch (...) {
      mine = std::current_exception();
    }
    if (!spin_until([&] { return pending_.load(std::memory_order_acquire) == 0; })) {
      std::unique_lock lock(mutex_);
      done_.wait(lock, [this] { return pending_.load(std::memory_order_acquire) == 0; });
    }
    if (mine) std::rethrow_exception(mine);
    if (error_) std::rethrow_exception(error_);
  }

 private:
  std::pair<std::size_t, std::size_t> range(std::size_t part) const {
    const std::size_t first = chunks_ * part / parts_ * grain_;
    const std::size_t last = std::min(n_, chunks_ * (part + 1) / parts_ * grain_);
    return {first, last};
  }

  // Spins (with a pause) until done() or about 200 µs have passed; false if it gave up.
  template <class Done>
  static bool spin_until(Done&& done) {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::microseconds(200);
    for (unsigned i = 0;; ++i) {
      if (done()) return true;
      simd::spin_pause();
      if ((i & 63) == 63 && std::chrono::steady_clock::now() > give_up) return false;
    }
  }

  void work(std::size_t index) {
    std::uint64_t seen = 0;
    for (;;) {
      auto fresh = [&] { return stop_.load(std::memory_order_acquire) || generation_.load(std::memory_order_acquire) != seen; };
      if (!spin_until(fresh)) {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, fresh);
      }
      if (stop_.load(std::memory_order_acquire)) return;
      std::exception_ptr err;
      {
        // The job's fields were written under the mutex before the generation moved; taking it here
        // orders them before this thread's reads.
        std::lock_guard lock(mutex_);
        seen = generation_.load(std::memory_order_acquire);
      }
      if (index < parts_) {
        auto [b, e] = range(index);
        try {
          body_(b, e);
        } catch (...) {
          err = std::current_exception();
        }
      }
      if (err) {
        std::lock_guard lock(mutex_);
        if (!error_) error_ = err;
      }
      if (index < parts_ && pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard lock(mutex_);  // the caller may be about to sleep: wake it under the lock
        done_.notify_one();
      }
    }
  }

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::mutex caller_mutex_;
  std::condition_variable wake_, done_;
  RangeBody body_;
  std::size_t min_part_work_;
  std::size_t n_ = 0, grain_ = 1, chunks_ = 0, parts_ = 0;
  std::atomic<std::size_t> pending_{0};
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<bool> stop_{false};
  std::exception_ptr error_;
};

}  // namespace griffin
