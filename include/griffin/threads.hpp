// A small fork-join pool: parallel_for splits a range into one contiguous part per thread and waits.
// Kernels take ranges (outputs, channels, heads), so splitting never changes what is computed: results
// are bit-identical for any thread count.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace griffin {

class ThreadPool {
 public:
  // threads = 0 means one per hardware thread.
  explicit ThreadPool(std::size_t threads = 0) {
    if (threads == 0) threads = std::max<std::size_t>(1, std::thread::hardware_concurrency());
    for (std::size_t i = 1; i < threads; ++i) workers_.emplace_back([this, i] { work(i); });
  }
  ~ThreadPool() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& w : workers_) w.join();
  }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  std::size_t size() const { return workers_.size() + 1; }

  // Calls body(begin, end) on disjoint parts of [0, n), each part a multiple of `grain` (but the last).
  // Runs inline when there is one thread or too little work. Not reentrant: a body must not call it.
  void parallel_for(std::size_t n, std::size_t grain, const std::function<void(std::size_t, std::size_t)>& body) {
    grain = std::max<std::size_t>(grain, 1);
    const std::size_t chunks = (n + grain - 1) / grain;
    const std::size_t parts = std::min(size(), chunks);
    if (parts <= 1) {
      if (n) body(0, n);
      return;
    }
    // Callers on different threads sharing one pool take turns.
    std::lock_guard turn(caller_mutex_);
    auto range = [=](std::size_t part) {
      const std::size_t first = chunks * part / parts * grain;
      const std::size_t last = std::min(n, chunks * (part + 1) / parts * grain);
      return std::pair{first, last};
    };
    {
      std::lock_guard lock(mutex_);
      body_ = &body;
      range_ = range;
      parts_ = parts;
      pending_ = parts - 1;
      error_ = nullptr;
      ++generation_;
    }
    wake_.notify_all();
    std::exception_ptr mine;
    try {
      auto [b, e] = range(0);
      body(b, e);
    } catch (...) {
      mine = std::current_exception();
    }
    std::unique_lock lock(mutex_);
    done_.wait(lock, [this] { return pending_ == 0; });
    body_ = nullptr;
    if (mine) std::rethrow_exception(mine);
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void work(std::size_t index) {
    std::size_t seen = 0;
    for (;;) {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      if (index >= parts_) continue;
      auto [b, e] = range_(index);
      const auto* body = body_;
      lock.unlock();
      std::exception_ptr err;
      try {
        (*body)(b, e);
      } catch (...) {
        err = std::current_exception();
      }
      lock.lock();
      if (err && !error_) error_ = err;
      if (--pending_ == 0) done_.notify_one();
    }
  }

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::mutex caller_mutex_;
  std::condition_variable wake_, done_;
  const std::function<void(std::size_t, std::size_t)>* body_ = nullptr;
  std::function<std::pair<std::size_t, std::size_t>(std::size_t)> range_;
  std::size_t parts_ = 0, pending_ = 0, generation_ = 0;
  std::exception_ptr error_;
  bool stop_ = false;
};

}  // namespace griffin
