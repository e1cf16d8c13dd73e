// griffin_bench_kernels: Google Benchmark over every kernel × backend × static/dynamic config × preset
// (kernel_benchmarks.hpp). The FMA peak and triad bandwidth the `roofline` counter divides by are
// measured first and printed in the context block.
//
//   griffin_bench_kernels --benchmark_filter='linear_prefill_bf16/RecurrentGemma-2B/.*/highway'
//   griffin_bench_kernels --benchmark_min_time=0.05 --benchmark_format=json > kernels.json
#include <benchmark/benchmark.h>

#include <cstdio>
#include <string>

#include "kernel_benchmarks.hpp"
#include "machine.hpp"

namespace griffin::bench {
void register_recurrentgemma2b_kernels();
void register_recurrentgemma9b_kernels();
void register_griffin7b_kernels();
}  // namespace griffin::bench

int main(int argc, char** argv) {
  using namespace griffin::bench;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  measure_limits();
  register_recurrentgemma2b_kernels();
  register_recurrentgemma9b_kernels();
  register_griffin7b_kernels();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
