// An element-wise pass over a buffer (the GeLU of the recurrent block's branch, the MLP's gated GeLU) as the
// blocks run it: split between the pool's threads at whole vectors, and not split when it is small.
#pragma once

#include <cstddef>

#include "griffin/simd/backend.hpp"
#include "griffin/threads.hpp"

namespace griffin::blocks {

// Calls body(begin, end) on parts of [0, n) that start at whole vectors of Backend. An element past the last
// whole vector of a part takes a kernel's one-lane path, whose tanh is not the vector one: parts cut
// anywhere else (by rows, say) would make a few outputs depend on the thread count wherever a row is not
// whole vectors. `work_per_element` sizes the parts (ThreadPool::grain_for).
template <simd::VectorBackend Backend, class Body>
void parallel_elementwise(ThreadPool& pool, std::size_t n, std::size_t work_per_element, Body&& body) {
  pool.parallel_for(n, pool.grain_for(n, work_per_element, 64 * Backend::lanes), body);
}

}  // namespace griffin::blocks
