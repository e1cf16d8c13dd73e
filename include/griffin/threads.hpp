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

  // The grain for parallel_for over n items costing `item_work` each: a multiple of `grain` that cuts [0, n) into
  // as many equal parts as the pool has threads, but into fewer where a part would do less than min_part_work.
  // Small jobs then run on the calling thread, and a split is never one large part and a small one.
  std::size_t grain_for(std::size_t n, std::size_t item_work, std::size_t grain = 1) const {
    grain = std::max<std::size_t>(grain, 1);
    if (n == 0) return grain;
    const std::size_t items_per_part = item_work == 0 ? 1 : std::max<std::size_t>(1, (min_part_work_ + item_work - 1) / item_work);
    const std::size_t parts = std::clamp<std::size_t>(n / items_per_part, 1, size());
    const std::size_t per_part = (n + parts - 1) / parts;
    return (per_part + grain - 1) / grain * grain;
  }
  std::size_t min_part_work() const { return min_part_work_; }

  // threads = 0 means one per hardware thread.
  explicit ThreadPool(std::size_t threads = 0, std::size_t min_part_work = default_min_part_work)
      : min_part_work_(min_part_work) {
    if (threads == 0) threads = std::max<std::size_t>(1, std::thread::hardware_concurrency());
    if (threads > max_threads)
      throw std::invalid_argument("griffin::ThreadPool: " + std::to_string(threads) + " threads requested, at most " +
                                  std::to_string(max_threads));
    for (std::size_t i = 1; i < threads; ++i) workers_.emplace_back([this] { work(); });
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
  // job, where the next one is picked up within a microsecond, and only then sleep. Every thread, the
  // caller included, claims parts until none is left, so a worker the system has not scheduled delays
  // nothing: the caller takes its part. The parts are fixed ranges, so who runs one never changes a bit.
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
    std::uint64_t job;
    {
      std::lock_guard lock(mutex_);
      body_ = body;
      n_ = n;
      grain_ = grain;
      chunks_ = chunks;
      error_ = nullptr;
      pending_.store(parts, std::memory_order_relaxed);
      job = (ticket_.load(std::memory_order_relaxed) >> 32) + 1;
      ticket_.store(job << 32 | parts << 16, std::memory_order_release);
    }
    wake_.notify_all();
    run_parts(job);
    if (!spin_until([&] { return pending_.load(std::memory_order_acquire) == 0; })) {
      std::unique_lock lock(mutex_);
      done_.wait(lock, [this] { return pending_.load(std::memory_order_acquire) == 0; });
    }
    if (error_) std::rethrow_exception(error_);
  }

 private:
  // The ticket is one word: the job's number (bits 32-63), its number of parts (16-31) and the next part
  // to claim (0-15). A thread claims a part by moving the last field on, which fails once the job is over.
  static constexpr std::uint64_t field_mask = 0xffff;

  std::pair<std::size_t, std::size_t> range(std::size_t part, std::size_t parts) const {
    const std::size_t first = chunks_ * part / parts * grain_;
    const std::size_t last = std::min(n_, chunks_ * (part + 1) / parts * grain_);
    return {first, last};
  }

  // Claims and runs parts of job `job` until none is left (or the job is another one already).
  void run_parts(std::uint64_t job) {
    for (;;) {
      std::uint64_t t = ticket_.load(std::memory_order_acquire);
      do {
        if (t >> 32 != job || (t & field_mask) >= (t >> 16 & field_mask)) return;
      } while (!ticket_.compare_exchange_weak(t, t + 1, std::memory_order_acq_rel));
      // The claim succeeded, so the job is still running and its fields are the ones written before it.
      const auto [b, e] = range(std::size_t(t & field_mask), std::size_t(t >> 16 & field_mask));
      try {
        body_(b, e);
      } catch (...) {
        std::lock_guard lock(mutex_);
        if (!error_) error_ = std::current_exception();
      }
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard lock(mutex_);  // the caller may be about to sleep: wake it under the lock
        done_.notify_one();
      }
    }
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

  void work() {
    std::uint64_t seen = 0;
    for (;;) {
      auto fresh = [&] {
        return stop_.load(std::memory_order_acquire) || ticket_.load(std::memory_order_acquire) >> 32 != seen;
      };
      if (!spin_until(fresh)) {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, fresh);
      }
      if (stop_.load(std::memory_order_acquire)) return;
      seen = ticket_.load(std::memory_order_acquire) >> 32;
      run_parts(seen);
    }
  }

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::mutex caller_mutex_;
  std::condition_variable wake_, done_;
  RangeBody body_;
  std::size_t min_part_work_;
  std::size_t n_ = 0, grain_ = 1, chunks_ = 0;
  std::atomic<std::size_t> pending_{0};
  std::atomic<std::uint64_t> ticket_{0};
  std::atomic<bool> stop_{false};
  std::exception_ptr error_;
};

}  // namespace griffin
