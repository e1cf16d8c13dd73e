// What the machine can do, measured in the same process as the numbers compared with it: the FMA peak
// (GFLOP/s, own loop of independent FMAs) and the streaming bandwidths (GB/s, own STREAM-style triad and
// read loops, in L2, in L3 and from main memory), plus its name and the process's resident memory.
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

// Cache sizes from sysfs (per core for L2, shared for L3), with Zen 4's values when sysfs says nothing.
inline std::size_t cache_bytes(int level) {
  for (int index = 0; index < 8; ++index) {
    const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index) + "/";
    std::ifstream lv(dir + "level"), sz(dir + "size"), ty(dir + "type");
    int l = 0;
    std::string size, type;
    if (!(lv >> l) || !(sz >> size)) break;
    ty >> type;
    if (l != level || type == "Instruction") continue;
    std::size_t v = std::stoul(size);
    if (size.back() == 'K') v <<= 10;
    if (size.back() == 'M') v <<= 20;
    return v;
  }
  return level == 2 ? std::size_t(1) << 20 : std::size_t(32) << 20;
}

// The least a working set meant to stream from main memory must span. Sysfs may say nothing of the caches
// (the fallback above then assumes Zen 4's 32 MB L3), and what a VM's two CPUs see can exceed it: on the
// Zen 5 VM of 30 Nov, cblas_sgemv cycling 157 MB of matrices read 74 GB/s, from 314 MB on 53, and a triad
// over 3 × 64 MB read 15–20% faster than over 3 × 256 MB.
inline constexpr std::size_t main_memory_min_bytes = std::size_t(512) << 20;

// Floats per array of a main-memory stream of three arrays (triad, read loop): 3 × 256 MB.
inline constexpr std::size_t main_memory_stream_floats = main_memory_min_bytes / 2 / sizeof(float);

// Bytes a set of copies cycled to stream from main memory must span: `l3_multiple` × L3, and at least
// main_memory_min_bytes.
inline double main_memory_set_bytes(double l3_multiple) {
  return std::max(l3_multiple * double(cache_bytes(3)), double(main_memory_min_bytes));
}

// Where a working set of `bytes` lives when `threads` threads share it.
enum class MemoryLevel { l2, l3, dram };
inline MemoryLevel level_of(double bytes, std::size_t threads) {
  if (bytes <= 0.5 * double(cache_bytes(2)) * double(threads)) return MemoryLevel::l2;
  if (bytes <= 0.5 * double(cache_bytes(3))) return MemoryLevel::l3;
  return MemoryLevel::dram;
}
inline const char* level_name(MemoryLevel l) { return l == MemoryLevel::l2 ? "L2" : l == MemoryLevel::l3 ? "L3" : "DRAM"; }

// Streaming bandwidth over three arrays of `floats` floats each, split across `threads` threads (each
// first-touches its own part), repeated until `min_seconds` have passed; GB/s of the best repetition.
//   triad: a[i] = b[i] + s·c[i], counting 12 bytes per element, STREAM's convention (the write-allocate
//          read of a is not counted; our kernels' byte counts do not count it either);
//   read:  the sum of b and c, 8 bytes per element: what loads alone reach, the decode GEMV's regime.
// The default size, 3 × 256 MB, is beyond main_memory_min_bytes: main memory.
class Stream {
 public:
  explicit Stream(std::size_t floats = main_memory_stream_floats)
      : n_(floats), a_(new float[floats]), b_(new float[floats]), c_(new float[floats]) {}

  double triad_gbps(std::size_t threads, double min_seconds = 0.3) {
    touch(threads);
    const float s = 0.5f;
    float* a = a_.get();
    const float* b = b_.get();
    const float* c = c_.get();
    const double t = repeat(threads, min_seconds, [&](std::size_t lo, std::size_t hi) {
      for (std::size_t i = lo; i < hi; ++i) a[i] = b[i] + s * c[i];
    });
    return 12.0 * double(n_) / t / 1e9;
  }

  template <simd::VectorBackend B = simd::Default>
  double read_gbps(std::size_t threads, double min_seconds = 0.3) {
    touch(threads);
    const float* b = b_.get();
    const float* c = c_.get();
    const double t = repeat(threads, min_seconds, [&](std::size_t lo, std::size_t hi) {
      constexpr std::size_t L = B::lanes;
      auto s0 = B::zero(), s1 = B::zero(), s2 = B::zero(), s3 = B::zero();
      std::size_t i = lo;
      for (; i + 2 * L <= hi; i += 2 * L) {
        s0 = B::add(s0, B::load(b + i));
        s1 = B::add(s1, B::load(c + i));
        s2 = B::add(s2, B::load(b + i + L));
        s3 = B::add(s3, B::load(c + i + L));
      }
      float sum = B::reduce_add(B::add(B::add(s0, s1), B::add(s2, s3)));
      for (; i < hi; ++i) sum += b[i] + c[i];
      volatile float sink = sum;  // keeps the loads
      (void)sink;
    });
    return 8.0 * double(n_) / t / 1e9;
  }

 private:
  std::pair<std::size_t, std::size_t> part(std::size_t p, std::size_t threads) const {
    // Parts rounded to 64 floats so no two threads share a cache line.
    auto edge = [&](std::size_t q) { return q == threads ? n_ : (n_ * q / threads) / 64 * 64; };
    return {edge(p), edge(p + 1)};
  }
  void touch(std::size_t threads) {
    run_on_threads(threads, [&](std::size_t p) {
      auto [lo, hi] = part(p, threads);
      for (std::size_t i = lo; i < hi; ++i) a_[i] = 0.0f, b_[i] = 1.0f, c_[i] = 2.0f;
    });
  }
  // Small arrays are swept many times per timed repetition so the clock's resolution does not matter.
  template <class F>
  double repeat(std::size_t threads, double min_seconds, F&& sweep) {
    const std::size_t sweeps = std::max<std::size_t>(1, (std::size_t(1) << 24) / n_);
    return best_seconds(
               [&] {
                 run_on_threads(threads, [&](std::size_t p) {
                   auto [lo, hi] = part(p, threads);
                   for (std::size_t k = 0; k < sweeps; ++k) sweep(lo, hi);
                 });
               },
               min_seconds, 5) /
           double(sweeps);
  }

  std::size_t n_;
  std::unique_ptr<float[]> a_, b_, c_;
};

// The three levels' bandwidths on 1 and 2 threads, for the roofline of working sets of any size.
struct Bandwidths {
  double read[3][3] = {};   // [threads][level]
  double triad[3][3] = {};
  static Bandwidths measure(double min_seconds = 0.15) {
    Bandwidths b;
    const std::size_t l2_floats = cache_bytes(2) / 4 / 3 / 2;     // three arrays in half of one core's L2
    const std::size_t l3_floats = cache_bytes(3) / 4 / 3 / 2;     // in half of L3
    const std::size_t sizes[3] = {l2_floats, l3_floats, main_memory_stream_floats};
    for (int level = 0; level < 3; ++level)
      for (std::size_t t : {1, 2}) {
        // L2 is per core: each thread gets arrays of its own size.
        Stream s(level == 0 ? sizes[0] * t : sizes[level]);
        b.read[t][level] = s.read_gbps(t, min_seconds);
        b.triad[t][level] = s.triad_gbps(t, min_seconds);
      }
    return b;
  }
  // The fastest streaming rate measured where `bytes` would live: an optimistic rate, so bytes / rate is
  // a floor no kernel moving those bytes can beat.
  double best(double bytes, std::size_t threads) const {
    const std::size_t t = std::min<std::size_t>(std::max<std::size_t>(threads, 1), 2);
    const int level = int(level_of(bytes, t));
    return std::max(read[t][level], triad[t][level]);
  }
};

}  // namespace griffin::bench
