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

}  // namespace griffin::simd
