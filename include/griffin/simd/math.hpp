// 2^y, 2^y - 1 and the sigmoid written once over the vector policy, for the RG-LRU's gates and decay.
//
// The libraries' general exp (B::exp) costs about 30 vector operations, and the RG-LRU evaluates three
// exponentials per channel and token: with it the scan is bound by its arithmetic, well short of its
// streaming floor (docs/performance.md, "Design notes"). These split y = n + f with n = round(y) and
// f = y - n (exact, |f| ≤ 1/2), take 2^f from a short polynomial and 2^n exactly from its exponent bits:
// about 12 operations, within 3e-7 relative error (tests/test_simd_backends.cpp). Base 2 saves the two-part
// ln 2 reduction a natural exp needs; the RG-LRU computes its decay in base 2 from the start.
#pragma once

#include "griffin/simd/backend.hpp"

namespace griffin::simd {

namespace detail {
inline constexpr float log2_e = 1.44269504088896341f;
// Where 2^n stays a normal float.
inline constexpr float exp2_lowest = -126.0f;
inline constexpr float exp2_highest = 127.0f;

// y, already within [-126, 127] (or NaN), split as n + f with n = round(y), |f| ≤ 1/2 (exact), and 2^n.
template <VectorBackend B>
struct SplitExponent {
  typename B::vec f, two_n;
};
template <VectorBackend B>
SplitExponent<B> split_in_range(typename B::vec y) {
  const auto n = B::round(y);
  return {B::sub(y, n), B::pow2(n)};
}
// The same for any y, clamped to [-126, 127] first.
template <VectorBackend B>
SplitExponent<B> split_exponent(typename B::vec y) {
  return split_in_range<B>(B::max(B::min(y, B::set(exp2_highest)), B::set(exp2_lowest)));  // NaN stays NaN
}

// Polynomials on |f| ≤ 1/2, each fitted by a Remez exchange to the error that matters for its use:
// 2^f = 1 + f · P4(f), degree 4, for the relative error of 2^f (9.2e-8 before rounding to float);
// 2^f - 1 = f · P5(f), degree 5, for the relative error of 2^f - 1, which stays small as f → 0 (1.1e-8).
template <VectorBackend B>
typename B::vec exp2_p4(typename B::vec f) {
  auto p = B::fma(B::set(1.326472720e-03f), f, B::set(9.671512640e-03f));
  p = B::fma(p, f, B::set(5.550733743e-02f));
  p = B::fma(p, f, B::set(2.402224209e-01f));
  return B::fma(p, f, B::set(6.931469776e-01f));
}
template <VectorBackend B>
typename B::vec exp2m1_p5(typename B::vec f) {
  auto p = B::fma(B::set(1.540351276e-04f), f, B::set(1.339073548e-03f));
  p = B::fma(p, f, B::set(9.618237494e-03f));
  p = B::fma(p, f, B::set(5.550357434e-02f));
  p = B::fma(p, f, B::set(2.402264979e-01f));
  return B::fma(p, f, B::set(6.931471879e-01f));
}
}  // namespace detail

// 2^y, saturating at 2^-126 and 2^127 (1.2e-38 and 1.7e38) instead of reaching 0 and infinity.
template <VectorBackend B>
typename B::vec exp2_saturating(typename B::vec y) {
  const auto [f, two_n] = detail::split_exponent<B>(y);
  return B::fma(two_n, B::mul(f, detail::exp2_p4<B>(f)), two_n);  // 2^n · (1 + f·P4(f))
}

namespace detail {
// 2^n · (1 + q) - 1 with q = 2^f - 1: exactly q where n = 0.
template <VectorBackend B>
typename B::vec exp2m1_of(SplitExponent<B> y) {
  return B::fma(y.two_n, B::mul(y.f, exp2m1_p5<B>(y.f)), B::sub(y.two_n, B::set(1.0f)));
}
}  // namespace detail

// 2^y - 1, accurate near 0 (relative error ~1e-7 as y → 0), saturating like exp2_saturating.
template <VectorBackend B>
typename B::vec exp2m1_saturating(typename B::vec y) {
  return detail::exp2m1_of<B>(detail::split_exponent<B>(y));
}

// The same for y ≤ 0 only (the RG-LRU's log2 of its decay, a ≤ 1), one clamp cheaper: only the lower end
// of the range can be reached. Equal to exp2m1_saturating there; y > 0 is outside its contract.
template <VectorBackend B>
typename B::vec exp2m1_nonpositive(typename B::vec y) {
  return detail::exp2m1_of<B>(detail::split_in_range<B>(B::max(y, B::set(detail::exp2_lowest))));  // NaN stays NaN
}

// numerator / (1 + e^-z) = numerator · σ(z); the division takes the numerator so σ is never rounded on
// its own. e^-z is 2^(-z·log2 e), and rounding that product costs σ a relative error of up to |z|·1e-7
// where σ is tiny (z ≪ 0) and nothing where σ is near 1. For z < -88, σ(z) is σ(-88) ≈ 6e-39 instead,
// below float resolution of anything it meets.
template <VectorBackend B>
typename B::vec times_sigmoid(typename B::vec numerator, typename B::vec z) {
  const auto e_minus_z = exp2_saturating<B>(B::mul(z, B::set(-detail::log2_e)));
  return B::div(numerator, B::add(B::set(1.0f), e_minus_z));
}

}  // namespace griffin::simd
