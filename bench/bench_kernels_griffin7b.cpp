// The kernel benchmarks of one preset (see kernel_benchmarks.hpp); one file per preset so they build in parallel.
#include "kernel_benchmarks.hpp"

namespace griffin::bench {
void register_griffin7b_kernels() { register_kernel_benchmarks<presets::Griffin7B>(); }
}  // namespace griffin::bench
