// A size that is a compile-time constant or a run-time value, as std::extents' static and dynamic extents:
// Size<N> folds into the code that reads it (loops over it unroll, buffers sized by it are arrays), and
// Size<dynamic> carries the value. Both answer value() and convert to std::size_t, so one kernel serves both.
#pragma once

#include <cstddef>
#include <limits>

namespace griffin {

// A size that is not known until run time (std::dynamic_extent plays the same role for std::extents).
inline constexpr std::size_t dynamic = std::numeric_limits<std::size_t>::max();

template <std::size_t N>
class Size {
 public:
  static constexpr bool is_static = true;
  static constexpr std::size_t static_value = N;
  constexpr Size() = default;
  constexpr explicit Size(std::size_t) {}  // the run-time value of a static size is its constant
  static constexpr std::size_t value() { return N; }
  constexpr operator std::size_t() const { return N; }
};

template <>
class Size<dynamic> {
 public:
  static constexpr bool is_static = false;
  static constexpr std::size_t static_value = dynamic;
  constexpr Size() = default;
  constexpr explicit Size(std::size_t v) : value_(v) {}
  constexpr std::size_t value() const { return value_; }
  constexpr operator std::size_t() const { return value_; }

 private:
  std::size_t value_ = 0;
};

// The static value of an extent type (dynamic for Size<dynamic>).
template <class E>
inline constexpr std::size_t static_extent = E::static_value;

// a / b as an extent: static when both are.
template <std::size_t A, std::size_t B>
constexpr auto extent_quotient(Size<A> a, Size<B> b) {
  if constexpr (A != dynamic && B != dynamic) return Size<A / B>{};
  else return Size<dynamic>(a.value() / b.value());
}
template <std::size_t A, std::size_t B>
constexpr auto extent_product(Size<A> a, Size<B> b) {
  if constexpr (A != dynamic && B != dynamic) return Size<A * B>{};
  else return Size<dynamic>(a.value() * b.value());
}

// The extent a kernel is instantiated for: a compile-time size up to `Limit` stays a constant (its loops
// unroll and its tiling is chosen at compile time); a larger one would gain nothing from it and only
// instantiate another copy of the kernel, so it is passed at run time.
template <std::size_t Limit = 1024, std::size_t N>
constexpr auto kernel_extent(Size<N> s) {
  if constexpr (N != dynamic && N <= Limit) return s;
  else return Size<dynamic>(s.value());
}

}  // namespace griffin
