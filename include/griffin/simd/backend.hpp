// The narrow vector policy every kernel is written against. A backend is a type with static functions
// over its vector type `vec` of `lanes` floats; the kernels never name an instruction set, so choosing a
// backend is one template argument (simd::Scalar, simd::Xsimd, simd::Highway).
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>

#include "griffin/dtype.hpp"

namespace griffin::simd {

template <class B>
concept VectorBackend = requires(typename B::vec v, const float* p, float* q, const bf16* pb, const std::int8_t* pi,
                                 float s) {
  { B::name } -> std::convertible_to<const char*>;
  { B::lanes } -> std::convertible_to<std::size_t>;
  { B::zero() } -> std::same_as<typename B::vec>;
  { B::set(s) } -> std::same_as<typename B::vec>;
  { B::load(p) } -> std::same_as<typename B::vec>;         // unaligned load of `lanes` floats
  { B::load_bf16(pb) } -> std::same_as<typename B::vec>;   // `lanes` bfloat16 widened to float
  { B::load_i8(pi) } -> std::same_as<typename B::vec>;     // `lanes` int8 converted to float (exact)
  B::store(q, v);                                          // unaligned store
  { B::add(v, v) } -> std::same_as<typename B::vec>;
  { B::sub(v, v) } -> std::same_as<typename B::vec>;
  { B::mul(v, v) } -> std::same_as<typename B::vec>;
  { B::div(v, v) } -> std::same_as<typename B::vec>;
  { B::max(v, v) } -> std::same_as<typename B::vec>;
  { B::min(v, v) } -> std::same_as<typename B::vec>;
  { B::fma(v, v, v) } -> std::same_as<typename B::vec>;    // a * b + c
  { B::sqrt(v) } -> std::same_as<typename B::vec>;
  { B::round(v) } -> std::same_as<typename B::vec>;       // to the nearest integer, ties to even
  { B::pow2(v) } -> std::same_as<typename B::vec>;        // 2^n, exact, for integral n in [-126, 127]
  { B::exp(v) } -> std::same_as<typename B::vec>;
  { B::expm1(v) } -> std::same_as<typename B::vec>;       // exp(v) - 1, accurate near 0
  { B::tanh(v) } -> std::same_as<typename B::vec>;
  { B::reduce_add(v) } -> std::convertible_to<float>;
  { B::reduce_max(v) } -> std::convertible_to<float>;
};

// Hints that the cache line holding p will be read (or written) soon; no-ops where the compiler has no
// builtin for them. `Locality` is __builtin_prefetch's: 3 into every cache level, 1 into the outer ones.
namespace detail {
template <int ForWrite, int Locality>
inline void prefetch_hint(const void* p) {
#if defined(__GNUC__) || defined(__clang__)
  __builtin_prefetch(p, ForWrite, Locality);
#else
  (void)p;
#endif
}
}  // namespace detail
inline void prefetch(const void* p) { detail::prefetch_hint<0, 3>(p); }
// Into L2 and beyond only: for lines needed further ahead than L1's few outstanding misses can cover.
inline void prefetch_to_outer_cache(const void* p) { detail::prefetch_hint<0, 1>(p); }
inline void prefetch_for_write(void* p) { detail::prefetch_hint<1, 3>(p); }

// Tells the core that this thread is spinning on a flag (x86's PAUSE, Arm's YIELD): the sibling hyperthread
// gets the pipeline, and leaving the loop does not flush it. A no-op elsewhere.
inline void spin_pause() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

// Copies `count` rows (at most 8) of `cols` floats into column-major order: element j of rows[i] goes to
// dst[j · stride + i]. The matmul packs its row-major operands into k-major panels this way. A backend
// whose policy has transpose8(rows, dst, stride) (an 8 × 8 block in registers, writing 8 floats per
// output row, so the caller leaves room past count) takes eight columns at a time; the rest, and every
// backend without it, go element by element.
template <VectorBackend B>
void transpose_rows(const float* const* rows, std::size_t count, std::size_t cols, float* dst, std::size_t stride) {
  std::size_t j = 0;
  if constexpr (requires(const float* const* r, float* d, std::size_t s) { B::transpose8(r, d, s); }) {
    if (count == 8)
      for (; j + 8 <= cols; j += 8) {
        const float* block[8];
        for (std::size_t i = 0; i < 8; ++i) block[i] = rows[i] + j;
        B::transpose8(block, dst + j * stride, stride);
      }
  }
  for (; j < cols; ++j)
    for (std::size_t i = 0; i < count; ++i) dst[j * stride + i] = rows[i][j];
}

}  // namespace griffin::simd
