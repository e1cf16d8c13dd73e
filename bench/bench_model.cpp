// griffin_bench_model: end-to-end prefill and decode of a RecurrentGemma-2B-shaped model with random
// weights made in memory (make_random_weights), for each weight type × static/dynamic config × backend
// × thread count, registered from one list.
//
// The model has RecurrentGemma-2B's width, heads, MLP, vocabulary and R R A pattern but only
// GRIFFIN_BENCH_DEPTH layers (default 3: two recurrent, one local attention), so that f32 weights fit
// and generate in seconds. Layers are identical in cost, so per-layer throughput carries over to the 26
// layers of the real model; the embedding/logits cost (a [256000, 2560] matrix) is there in full.
//
// Counters: tokens (per second), bytes (weights and KV read per second: for decode the roofline
// numerator), FLOP (per second), roofline (fraction of max(FLOP/peak, bytes/triad) reached), weights_GB,
// peak_rss_GB (getrusage ru_maxrss after the run: the process peak so far, so the weight types run from
// the smallest, int8, to the largest, f32).
//
//   griffin_bench_model --benchmark_filter='decode/bf16/.*/highway'
#include <benchmark/benchmark.h>

#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "griffin/model.hpp"
#include "griffin/random_weights.hpp"
#include "kernel_benchmarks.hpp"
#include "machine.hpp"
#include "models.hpp"

#ifndef GRIFFIN_BENCH_DEPTH
#define GRIFFIN_BENCH_DEPTH 3
#endif

namespace griffin::bench {
namespace {

using BenchConfig = RecurrentGemma2BLayers<GRIFFIN_BENCH_DEPTH>;
constexpr const char* bench_model_name = "RecurrentGemma-2B-width";

// One set of weights alive at a time (the types run one after another).
std::shared_ptr<const Weights> weights_for(WeightType type) {
  static WeightType held = WeightType::f32;
  static std::shared_ptr<const Weights> weights;
  if (!weights || held != type) {
    weights.reset();
    weights = std::make_shared<const Weights>(make_random_weights(make_preset<BenchConfig>(type), type, 42));
    held = type;
  }
  return weights;
}

std::vector<int> random_tokens(std::size_t n, std::size_t vocab) {
  const auto r = random_floats(n, 0.5f, 99);
  std::vector<int> t(n);
  for (std::size_t i = 0; i < n; ++i) t[i] = int(std::size_t((r[i] + 0.5f) * float(vocab - 1)) % vocab);
  return t;
}

template <class Config>
void set_model_counters(benchmark::State& st, const Config& config, const Weights& w) {
  st.counters["weights_GB"] = weight_bytes_per_step(config, w) / 1e9;
  st.counters["peak_rss_GB"] = peak_rss_bytes() / 1e9;
  st.counters["layers"] = double(w.layers.size());
}

// A prompt of T tokens into a fresh state, logits for the last one.
struct Prefill {
  static constexpr const char* name = "prefill";
  template <class B>
  static void args(benchmark::internal::Benchmark* b) {
    b->ArgNames({"T", "threads"});
    for (long threads : {1, 2})
      for (long T : std::is_same_v<B, simd::Scalar> ? std::vector<long>{64} : std::vector<long>{64, 512})
        b->Args({T, threads});
  }
  template <class B, class Config>
  static void run(benchmark::State& st, const Config& config, WeightType type) {
    const std::size_t T = std::size_t(st.range(0)), threads = std::size_t(st.range(1));
    const auto weights = weights_for(type);
    const Model<Config, B> model(config, weights, threads);
    auto state = model.new_state(1);
    const auto tokens = random_tokens(T, config.sizes.vocab_size);
    std::vector<float> logits(config.sizes.vocab_size);
    const double flops = layer_flops_per_token(config) * double(T) + logits_flops_per_row(config);
    measure(st, {double(T), weight_bytes_per_step(config, *weights), flops}, threads, [&] {
      state.reset();
      model.prefill(state, tokens, logits, LogitsRows::last);
    });
    set_model_counters(st, config, *weights);
  }
};

// One token after a 64-token prompt (the local-attention ring fills as the iterations go on).
struct Decode {
  static constexpr const char* name = "decode";
  template <class B>
  static void args(benchmark::internal::Benchmark* b) {
    b->ArgNames({"B", "threads"});
    for (long threads : {1, 2}) b->Args({1, threads});
  }
  template <class B, class Config>
  static void run(benchmark::State& st, const Config& config, WeightType type) {
    const std::size_t batch = std::size_t(st.range(0)), threads = std::size_t(st.range(1));
    const auto weights = weights_for(type);
    const Model<Config, B> model(config, weights, threads);
    auto state = model.new_state(batch);
    model.prefill(state, random_tokens(64 * batch, config.sizes.vocab_size), {}, LogitsRows::none);
    const auto step = random_tokens(batch, config.sizes.vocab_size);
    std::vector<float> logits(batch * config.sizes.vocab_size);
    const double bytes = weight_bytes_per_step(config, *weights) + kv_bytes(state);
    const double flops = (layer_flops_per_token(config) + logits_flops_per_row(config)) * double(batch);
    measure(st, {double(batch), bytes, flops}, threads, [&] { model.decode(state, step, logits); });
    set_model_counters(st, config, *weights);
  }
};

template <class Phase, WeightType WT, bool Static, class B>
void register_model() {
  const std::string name = std::string(Phase::name) + "/" + weight_suffix(WT) + "/" + bench_model_name + "-" +
                           std::to_string(GRIFFIN_BENCH_DEPTH) + "L" + (Static ? "/static/" : "/dynamic/") + B::name;
  benchmark::RegisterBenchmark(name.c_str(),
                               [](benchmark::State& st) {
                                 if constexpr (Static)
                                   Phase::template run<B>(st, make_preset<BenchConfig>(WT), WT);
                                 else
                                   Phase::template run<B>(st, dynamic_twin(make_preset<BenchConfig>(WT)), WT);
                               })
      ->Apply(Phase::template args<B>)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
}

template <class Phase, WeightType WT, class... B>
void register_on_backends(std::tuple<B...>*) {
  (register_model<Phase, WT, true, B>(), ...);
  (register_model<Phase, WT, false, B>(), ...);
}

template <WeightType WT, class... Phase>
void register_phases(std::tuple<Phase...>*) {
  (register_on_backends<Phase, WT>(static_cast<simd::AllBackends*>(nullptr)), ...);
}

// The one list: weight types from the smallest to the largest (so peak_rss_GB grows with them), then
// phase, config kind and backend.
template <WeightType WT>
void register_weight_type() {
  register_phases<WT>(static_cast<std::tuple<Prefill, Decode>*>(nullptr));
}

}  // namespace
}  // namespace griffin::bench

int main(int argc, char** argv) {
  using namespace griffin::bench;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  measure_limits();
  benchmark::AddCustomContext("model", std::string(bench_model_name) + ", " + std::to_string(GRIFFIN_BENCH_DEPTH) +
                                           " layers (R R A ...), random weights");
  register_weight_type<griffin::WeightType::int8>();
  register_weight_type<griffin::WeightType::bf16>();
  register_weight_type<griffin::WeightType::f32>();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
