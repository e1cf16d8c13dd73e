// Every kernel × backend × static/dynamic config × preset shape, registered from one list.
//
// A kernel benchmark is a type with a `name`, an `args` function for ->Apply and a
// `run<Backend>(state, config)` template; `register_kernel_benchmarks<Preset>()` registers each one of
// `KernelList` on each backend of simd::AllBackends, once with the compile-time preset and once with its
// run-time twin (the config read from config.json), under the name kernel/preset/static|dynamic/backend.
// Sizes reach the kernels through the config's extents, so the static runs see compile-time constants where
// kernel_extent keeps them (sizes up to 1024: the presets' head dim, block width and Conv1D taps); the
// presets' widths are larger and reach the linears at run time, so those run the same code in both.
//
// Every benchmark reports, per second of real time: `tokens` (rows processed), `bytes` (what the kernel
// must read and write at least once, STREAM's convention), `FLOP` (multiply-adds × 2 where that is the
// work; 0 for element-wise kernels dominated by exp/tanh), and `roofline`: the fraction of the time floor
// max(FLOP / FMA peak, bytes / bandwidth) it reaches. The limits are measured at start-up on as many
// threads as the benchmark uses; the bandwidth is the best of our read and triad loops at the memory
// level the bytes fit in (L2, L3 or main memory; see machine.hpp), so 1.0 is the best possible.
#pragma once

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "griffin/blocks/linear_layer.hpp"
#include "griffin/config.hpp"
#include "griffin/kernels/activations.hpp"
#include "griffin/kernels/attention.hpp"
#include "griffin/kernels/conv1d.hpp"
#include "griffin/kernels/embedding.hpp"
#include "griffin/kernels/linear.hpp"
#include "griffin/kernels/rg_lru.hpp"
#include "griffin/kernels/rms_norm.hpp"
#include "griffin/kernels/rope.hpp"
#include "griffin/simd/default.hpp"
#include "griffin/threads.hpp"
#include "griffin/weights.hpp"
#include "machine.hpp"
#include "models.hpp"

namespace griffin::bench {

namespace gb = benchmark;

// The machine's limits, measured once before the benchmarks run.
struct Limits {
  double fma_gflops[3] = {0, 0, 0};  // index = threads (1 or 2)
  Bandwidths bandwidth;
};
inline Limits& limits() {
  static Limits l;
  return l;
}

inline void measure_limits() {
  Limits& l = limits();
  for (std::size_t t : {1, 2}) l.fma_gflops[t] = fma_peak_gflops(t);
  l.bandwidth = Bandwidths::measure();
  for (std::size_t t : {1, 2})
    for (int level = 0; level < 3; ++level) {
      const std::string key = std::string(level_name(MemoryLevel(level))) + "_" + std::to_string(t) + "t";
      gb::AddCustomContext("read_" + key, std::to_string(l.bandwidth.read[t][level]) + " GB/s");
      gb::AddCustomContext("triad_" + key, std::to_string(l.bandwidth.triad[t][level]) + " GB/s");
    }
  for (std::size_t t : {1, 2})
    gb::AddCustomContext("fma_peak_" + std::to_string(t) + "t", std::to_string(l.fma_gflops[t]) + " GFLOP/s");
  gb::AddCustomContext("cpu_model", cpu_model_name());
  gb::AddCustomContext("default_backend", simd::Default::name);
}

// What one iteration must do.
struct Work {
  double tokens = 0;
  double bytes = 0;
  double flops = 0;
};

// Runs the timed loop and sets the counters from the work of one iteration.
template <class F>
void measure(gb::State& st, Work work, std::size_t threads, F&& body) {
  const double t0 = now_seconds();
  for (auto _ : st) {
    body();
    gb::ClobberMemory();
  }
  const double elapsed = now_seconds() - t0;
  using C = gb::Counter;
  st.counters["tokens"] = C(work.tokens, C::kIsIterationInvariantRate);
  st.counters["bytes"] = C(work.bytes, C::kIsIterationInvariantRate);
  st.counters["FLOP"] = C(work.flops, C::kIsIterationInvariantRate);
  const Limits& l = limits();
  const std::size_t t = std::min<std::size_t>(threads, 2);
  if (l.fma_gflops[t] > 0 && elapsed > 0) {
    const double floor_s =
        std::max(work.flops / (l.fma_gflops[t] * 1e9), work.bytes / (l.bandwidth.best(work.bytes, t) * 1e9));
    st.counters["roofline"] = C(floor_s * double(st.iterations()) / elapsed);
  }
}

inline std::vector<int> positions_from(int first, std::size_t n) {
  std::vector<int> p(n);
  for (std::size_t i = 0; i < n; ++i) p[i] = first + int(i);
  return p;
}

constexpr const char* weight_suffix(WeightType t) {
  return t == WeightType::f32 ? "f32" : t == WeightType::bf16 ? "bf16" : "int8";
}

// ---- The kernels ----

struct RmsNorm {
  static constexpr const char* name = "rms_norm";
  static void args(gb::internal::Benchmark* b) { b->ArgName("T")->Arg(1)->Arg(128); }
  template <class B, class Config>
  static void run(gb::State& st, const Config& c) {
    const std::size_t T = std::size_t(st.range(0));
    const auto D = kernel_extent(c.template extent<&Shape::width>());
    auto x = random_floats(T * D, 1.0f, 1), w = random_floats(D, 0.1f, 2);
    std::vector<float> y(T * D);
    measure(st, {double(T), 4.0 * (2.0 * T * D + D), 4.0 * T * D}, 1,
            [&] { kernels::rms_norm_rows<B>(x.data(), w.data(), 1e-6f, T, D, y.data()); });
  }
};

// The MLP's gate projection [F, D], the largest matrix of a layer, through the same threaded linear
// the model calls: from 8 tokens on that is the packed GEMM (prefill), below it the GEMV (decode).
template <WeightType WT, bool Prefill>
struct Linear {
  static constexpr const char* name = Prefill ? (WT == WeightType::f32    ? "linear_prefill_f32"
                                                 : WT == WeightType::bf16 ? "linear_prefill_bf16"
                                                                          : "linear_prefill_int8")
                                              : (WT == WeightType::f32    ? "gemv_decode_f32"
                                                 : WT == WeightType::bf16 ? "gemv_decode_bf16"
                                                                          : "gemv_decode_int8");
  static void args(gb::internal::Benchmark* b) {
    b->ArgNames({"T", "threads"});
    for (long threads : {1, 2})
      for (long t : Prefill ? std::vector<long>{128} : std::vector<long>{1, 4}) b->Args({t, threads});
  }
  template <class B, class Config>
  static void run(gb::State& st, const Config& c) {
    const std::size_t T = std::size_t(st.range(0)), threads = std::size_t(st.range(1));
    const auto D = kernel_extent(c.template extent<&Shape::width>());
    const auto F = kernel_extent(c.template extent<&Shape::mlp_width>());
    // Decode streams weights that are not in cache: enough copies to cycle through 2 × L3 per sweep, and
    // at least main_memory_min_bytes (machine.hpp).
    std::vector<Matrix> w;
    w.push_back(random_matrix(F, D, WT));
    while (!Prefill && double(w.size() * w[0].size_bytes()) < main_memory_set_bytes(2.0))
      w.push_back(random_matrix(F, D, WT, w.size() + 1));
    auto x = random_floats(T * D, 1.0f, 3);
    std::vector<float> bias(F, 0.01f), y(T * F);
    ThreadPool pool(threads);
    const double bytes = double(w[0].size_bytes()) + 4.0 * (T * (D + F) + F);
    // One sweep over every copy first: the first read of freshly made memory is many times slower (page
    // faults; docs/performance.md, Design notes), and a short run visits each copy only once.
    const auto shape = blocks::linear_shape(F, D);
    for (const Matrix& m : w)
      blocks::parallel_linear<B>(pool, x.data(), T, m, bias.data(), y.data(), std::nullopt, std::nullopt, shape);
    std::size_t next = 0;
    measure(st, {double(T), bytes, 2.0 * T * D * F}, threads, [&] {
      blocks::parallel_linear<B>(pool, x.data(), T, w[next++ % w.size()], bias.data(), y.data(), std::nullopt,
                                 std::nullopt, shape);
    });
  }
};

struct Conv1d {
  static constexpr const char* name = "conv1d";
  static void args(gb::internal::Benchmark* b) { b->ArgName("T")->Arg(1)->Arg(512); }
  template <class B, class Config>
  static void run(gb::State& st, const Config& c) {
    const std::size_t T = std::size_t(st.range(0)), E = c.sizes.lru_width;
    const auto K = kernel_extent(c.template extent<&Shape::conv_width>());
    auto u = random_floats(T * E, 1.0f, 4), taps = random_floats(K * E, 0.05f, 5), bias = random_floats(E, 0.1f, 6);
    auto state = random_floats((K - 1) * E, 1.0f, 7);
    std::vector<float> y(T * E);
    const auto pos = positions_from(100, T);  // mid-sequence: every tap sees a token
    measure(st, {double(T), 4.0 * (2.0 * T * E + K * E + E + 2.0 * (K - 1) * E), 2.0 * K * T * E}, 1, [&] {
      kernels::conv1d<B>(u.data(), T, E, K, taps.data(), bias.data(), pos.data(), state.data(), y.data());
    });
  }
};

// The scan alone (gates already computed): reads x and both gate pre-activations, writes y.
struct RgLruScan {
  static constexpr const char* name = "rg_lru_scan";
  static void args(gb::internal::Benchmark* b) { b->ArgName("T")->Arg(1)->Arg(512); }
  template <class B, class Config>
  static void run(gb::State& st, const Config& c) {
    const std::size_t T = std::size_t(st.range(0)), E = c.sizes.lru_width;
    auto x = random_floats(T * E, 1.0f, 8), gx = random_floats(T * E, 2.0f, 9), ga = random_floats(T * E, 2.0f, 10);
    auto scale = random_floats(E, 0.5f, 11);
    for (auto& s : scale) s = -0.4f - std::abs(s);
    std::vector<float> h(E, 0.0f), y(T * E);
    const auto pos = positions_from(100, T);
    measure(st, {double(T), 4.0 * (4.0 * T * E + 3.0 * E), 0.0}, 1, [&] {
      kernels::rg_lru_scan<B>(x.data(), gx.data(), ga.data(), scale.data(), pos.data(), T, E, h.data(), y.data());
    });
  }
};

// Both block-diagonal gate linears of the RG-LRU ([H, E/H, E/H] each).
struct RgLruGates {
  static constexpr const char* name = "rg_lru_gates";
  static void args(gb::internal::Benchmark* b) { b->ArgName("T")->Arg(1)->Arg(128); }
  template <class B, class Config>
  static void run(gb::State& st, const Config& c) {
    const std::size_t T = std::size_t(st.range(0)), E = c.sizes.lru_width, H = c.sizes.num_heads;
    const auto bw = kernel_extent(extent_quotient(c.template extent<&Shape::lru_width>(), c.template extent<&Shape::num_heads>()));
    auto x = random_floats(T * E, 1.0f, 12);
    auto wi = random_floats(H * bw * bw, 0.05f, 13), wa = random_floats(H * bw * bw, 0.05f, 14);
    std::vector<float> bias(E, 0.0f), gi(T * E), ga(T * E);
    measure(st, {double(T), 4.0 * (2.0 * H * bw * bw + 3.0 * T * E), 4.0 * T * E * bw}, 1, [&] {
      kernels::block_diagonal_linear<B>(x.data(), E, T, bw, wi.data(), bias.data(), gi.data(), 0, H);
      kernels::block_diagonal_linear<B>(x.data(), E, T, bw, wa.data(), bias.data(), ga.data(), 0, H);
    });
  }
};

// A prefill chunk of T tokens attending to itself: causal, within the preset's local window.
struct AttentionPrefill {
  static constexpr const char* name = "attention_prefill";
  static void args(gb::internal::Benchmark* b) { b->ArgName("T")->Arg(512); }
  template <class B, class Config>
  static void run(gb::State& st, const Config& c) {
    const std::size_t T = std::size_t(st.range(0)), H = c.sizes.num_heads, W = c.sizes.attention_window;
    const auto Dh = kernel_extent(c.template extent<&Shape::head_dim>());
    auto q = random_floats(T * H * Dh, 1.0f, 15), k = random_floats(T * Dh, 1.0f, 16), v = random_floats(T * Dh, 1.0f, 17);
    std::vector<float> out(T * H * Dh);
    const auto pos = positions_from(0, T);
    const kernels::KeySegment seg{k.data(), v.data(), pos.data(), nullptr, T};
    const kernels::QueryRows queries{q.data(), pos.data(), nullptr, T};
    double visible = 0;
    for (std::size_t t = 0; t < T; ++t) visible += double(std::min(t, W) + 1);
    measure(st, {double(T), 4.0 * (2.0 * T * H * Dh + 2.0 * T * Dh + T), 4.0 * H * Dh * visible}, 1, [&] {
      kernels::mqa_attention<B>(queries, std::span(&seg, 1), H, Dh, W, out.data(), 0, T * H);
    });
  }
};

// One decode query over n cached keys (global attention, so all n are visible).
struct AttentionDecode {
  static constexpr const char* name = "attention_decode";
  static void args(gb::internal::Benchmark* b) { b->ArgName("keys")->Arg(2048)->Arg(8192); }
  template <class B, class Config>
  static void run(gb::State& st, const Config& c) {
    const std::size_t n = std::size_t(st.range(0)), H = c.sizes.num_heads;
    const auto Dh = kernel_extent(c.template extent<&Shape::head_dim>());
    auto q = random_floats(H * Dh, 1.0f, 18), k = random_floats(n * Dh, 1.0f, 19), v = random_floats(n * Dh, 1.0f, 20);
    std::vector<float> out(H * Dh);
    const auto pos = positions_from(0, n);
    const int qpos = int(n);
    const kernels::KeySegment seg{k.data(), v.data(), pos.data(), nullptr, n};
    const kernels::QueryRows query{q.data(), &qpos, nullptr, 1};
    measure(st, {1.0, 4.0 * (2.0 * n * Dh + n + 2.0 * H * Dh), 4.0 * H * Dh * n}, 1, [&] {
      kernels::mqa_attention<B>(query, std::span(&seg, 1), H, Dh, dynamic, out.data(), 0, H);
    });
  }
};

// T embedding rows gathered from the full [V, D] table (only the rows used are ever touched).
template <WeightType WT>
struct Embedding {
  static constexpr const char* name = WT == WeightType::f32 ? "embedding_f32" : "embedding_bf16";
  static void args(gb::internal::Benchmark* b) { b->ArgName("T")->Arg(64); }
  template <class B, class Config>
  static void run(gb::State& st, const Config& c) {
    using W = std::conditional_t<WT == WeightType::f32, float, bf16>;
    const std::size_t T = std::size_t(st.range(0)), V = c.sizes.vocab_size, D = c.sizes.width;
    // Raw bytes in panels, left uninitialised (bf16's constructor would zero all V × D): untouched pages cost
    // nothing, so only the panels holding the tokens' rows are written.
    std::unique_ptr<std::byte[]> storage(new std::byte[panel_count(V) * panel_width * D * sizeof(W)]);
    const PanelMatrix<W> view{reinterpret_cast<const W*>(storage.get()), Size<dynamic>(V), Size<dynamic>(D)};
    std::vector<int> tokens(T);
    const auto r = random_floats(T, 0.5f, 21);
    for (std::size_t t = 0; t < T; ++t) {
      tokens[t] = int(std::size_t((r[t] + 0.5f) * float(V - 1)) % V);
      std::fill_n(const_cast<W*>(view.panel(std::size_t(tokens[t]) / panel_width)), panel_width * D, W{});
    }
    std::vector<float> y(T * D);
    measure(st, {double(T), double(T * D) * (sizeof(W) + 4.0), double(T * D)}, 1, [&] {
      for (std::size_t t = 0; t < T; ++t) kernels::embed(view, tokens[t], 50.5f, y.data() + t * D);
    });
  }
};

// The logits soft cap over one token's V logits.
struct SoftCap {
  static constexpr const char* name = "soft_cap";
  static void args(gb::internal::Benchmark* b) { b->ArgName("T")->Arg(1); }
  template <class B, class Config>
  static void run(gb::State& st, const Config& c) {
    const std::size_t n = std::size_t(st.range(0)) * c.sizes.vocab_size;
    auto x = random_floats(n, 40.0f, 22);
    measure(st, {double(st.range(0)), 8.0 * n, 0.0}, 1, [&] { kernels::soft_cap<B>(x.data(), n, 30.0f); });
  }
};

struct GatedGelu {
  static constexpr const char* name = "gated_gelu";
  static void args(gb::internal::Benchmark* b) { b->ArgName("T")->Arg(1)->Arg(128); }
  template <class B, class Config>
  static void run(gb::State& st, const Config& c) {
    const std::size_t T = std::size_t(st.range(0)), F = c.sizes.mlp_width;
    auto gate = random_floats(T * F, 2.0f, 23), up = random_floats(T * F, 1.0f, 24);
    std::vector<float> y(T * F);
    measure(st, {double(T), 12.0 * T * F, 0.0}, 1,
            [&] { kernels::gated_gelu<B>(gate.data(), up.data(), T * F, y.data()); });
  }
};

struct Rope {
  static constexpr const char* name = "rope";
  static void args(gb::internal::Benchmark* b) { b->ArgName("T")->Arg(128); }
  template <class B, class Config>
  static void run(gb::State& st, const Config& c) {
    const std::size_t T = std::size_t(st.range(0)), H = c.sizes.num_heads, Dh = c.sizes.head_dim, R = c.rope_dims();
    auto q = random_floats(T * H * Dh, 1.0f, 25);
    std::vector<float> cos_sin(R);
    kernels::rope_angles(1000, R, 10000.0f, cos_sin.data());
    measure(st, {double(T), 8.0 * T * H * Dh, 6.0 * T * H * R / 2}, 1, [&] {
      for (std::size_t t = 0; t < T; ++t) kernels::rope<B>(q.data() + t * H * Dh, H, Dh, R, cos_sin.data());
    });
  }
};

// ---- The one list ----

using KernelList =
    std::tuple<RmsNorm, Linear<WeightType::f32, true>, Linear<WeightType::bf16, true>, Linear<WeightType::int8, true>,
               Linear<WeightType::f32, false>, Linear<WeightType::bf16, false>, Linear<WeightType::int8, false>, Conv1d,
               RgLruScan, RgLruGates, AttentionPrefill, AttentionDecode, Embedding<WeightType::f32>,
               Embedding<WeightType::bf16>, SoftCap, GatedGelu, Rope>;
// Hawk-7B has Griffin-7B's shapes, so it adds no kernel shape of its own.
using PresetList = std::tuple<presets::RecurrentGemma2B, presets::RecurrentGemma9B, presets::Griffin7B>;

template <class K, class Preset, bool Static, class B>
void register_kernel() {
  const std::string name = std::string(K::name) + "/" + preset_name<Preset> + (Static ? "/static/" : "/dynamic/") + B::name;
  gb::RegisterBenchmark(name.c_str(),
                        [](gb::State& st) {
                          if constexpr (Static)
                            K::template run<B>(st, make_preset<Preset>());
                          else
                            K::template run<B>(st, dynamic_twin(make_preset<Preset>()));
                        })
      ->Apply(K::args)
      ->UseRealTime()
      ->Unit(gb::kMicrosecond);
}

// One kernel on every backend: static then dynamic.
template <class K, class Preset, class... B>
void register_on_backends(std::tuple<B...>*) {
  (register_kernel<K, Preset, true, B>(), ...);
  (register_kernel<K, Preset, false, B>(), ...);
}

template <class Preset, class... K>
void register_kernels(std::tuple<K...>*) {
  (register_on_backends<K, Preset>(static_cast<simd::AllBackends*>(nullptr)), ...);
}

// Every kernel of KernelList for one preset (one translation unit per preset, so they build in parallel).
template <class Preset>
void register_kernel_benchmarks() {
  register_kernels<Preset>(static_cast<KernelList*>(nullptr));
}

}  // namespace griffin::bench
