// The kernel benchmarks of one preset (see kernel_benchmarks.hpp); one file per preset so they build in parallel.
#include "kernel_benchmarks.hpp"

namespace griffin::bench {
void register_recurrentgemma9b_kernels() { register_kernel_benchmarks<presets::RecurrentGemma9B>(); }
}  // namespace griffin::bench
