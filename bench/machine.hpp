// What the machine can do, measured in the same process as the numbers compared with it: the FMA peak
// (GFLOP/s, own loop of independent FMAs) and the streaming bandwidth (GB/s, own STREAM-style triad over
// arrays far larger than the last-level cache), plus its name and the process's resident memory.
#pragma once

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "griffin/simd/default.hpp"

namespace griffin::bench {

inline double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The best (smallest) time of one call of f: at least `min_reps` calls and at least `min_seconds` in
// total, after one untimed warm-up call. The minimum, because on a shared machine noise only adds time.
inline double best_seconds(const std::function<void()>& f, double min_seconds, int min_reps = 3, int max_reps = 1000) {
  f();
  double best = 1e300, total = 0;
  for (int rep = 0; rep < max_reps && (rep < min_reps || total < min_seconds); ++rep) {
    const double t0 = now_seconds();
    f();
    const double dt = now_seconds() - t0;
    best = std::min(best, dt);
    total += dt;
  }
  return best;
}

// Runs body(part) on `threads` threads (part 0 on the caller) and waits.
inline void run_on_threads(std::size_t threads, const std::function<void(std::size_t)>& body) {
  std::vector<std::thread> others;
  for (std::size_t p = 1; p < threads; ++p) others.emplace_back(body, p);
  body(0);
  for (auto& t : others) t.join();
}

// "AMD EPYC 7B13" from /proc/cpuinfo (what lscpu prints as "Model name").
inline std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("model name", 0) == 0) {
      auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(" \t", colon + 1));
    }
  return "unknown CPU";
}

// Peak resident set size of this process so far (getrusage ru_maxrss), in bytes.
inline double peak_rss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) * 1024.0;
}

// Resident set size now (/proc/self/statm), in bytes.
inline double current_rss_bytes() {
  std::ifstream in("/proc/self/statm");
  double size = 0, resident = 0;
  in >> size >> resident;
  return resident * double(sysconf(_SC_PAGESIZE));
}

namespace detail {
// Twelve independent FMA chains per thread: enough to cover FMA latency × throughput on current x86.
template <simd::VectorBackend B>
float fma_chains(std::size_t steps) {
  constexpr int chains = 12;
  typename B::vec acc[chains];
  for (int j = 0; j < chains; ++j) acc[j] = B::set(float(j) * 1e-3f);
  const auto m = B::set(0.999999f), a = B::set(1e-7f);
  for (std::size_t s = 0; s < steps; ++s)
    for (int j = 0; j < chains; ++j) acc[j] = B::fma(acc[j], m, a);
  auto sum = acc[0];
  for (int j = 1; j < chains; ++j) sum = B::add(sum, acc[j]);
  return B::reduce_add(sum);
}
}  // namespace detail

// Peak single-precision FMA throughput on `threads` threads, GFLOP/s (an FMA is 2 FLOP).
template <simd::VectorBackend B = simd::Default>
double fma_peak_gflops(std::size_t threads, double min_seconds = 0.2) {
  constexpr std::size_t steps = std::size_t(1) << 22;
  volatile float sink = 0;
  const double t = best_seconds(
      [&] {
        std::vector<float> out(threads);
        run_on_threads(threads, [&](std::size_t p) { out[p] = detail::fma_chains<B>(steps); });
        sink = sink + out[0];
      },
      min_seconds, 3);
  return double(threads) * double(steps) * 12.0 * double(B::lanes) * 2.0 / t / 1e9;
}

// STREAM triad a[i] = b[i] + s·c[i] over three arrays of `floats` floats each, split across `threads`
// threads (each first-touches its own part). GB/s counting 12 bytes per element, STREAM's convention
// (the write-allocate read of a is not counted; our kernels' byte counts do not count it either).
class Triad {
 public:
  explicit Triad(std::size_t floats = std::size_t(1) << 24)  // 3 × 64 MB: twice a 32 MB L3 at least
      : n_(floats), a_(new float[floats]), b_(new float[floats]), c_(new float[floats]) {}

  double gbps(std::size_t threads, double min_seconds = 0.3) {
    auto part = [&](std::size_t p) { return std::pair{n_ * p / threads, n_ * (p + 1) / threads}; };
    run_on_threads(threads, [&](std::size_t p) {
      auto [lo, hi] = part(p);
      for (std::size_t i = lo; i < hi; ++i) a_[i] = 0.0f, b_[i] = 1.0f, c_[i] = 2.0f;
    });
    const float s = 0.5f;
    float* a = a_.get();
    const float* b = b_.get();
    const float* c = c_.get();
    const double t = best_seconds(
        [&] {
          run_on_threads(threads, [&](std::size_t p) {
            auto [lo, hi] = part(p);
            for (std::size_t i = lo; i < hi; ++i) a[i] = b[i] + s * c[i];
          });
        },
        min_seconds, 5);
    return 12.0 * double(n_) / t / 1e9;
  }

 private:
  std::size_t n_;
  std::unique_ptr<float[]> a_, b_, c_;
};

}  // namespace griffin::bench
