// The Highway backend: Highway's static target (the best instruction set the compiler flags allow, no
// run-time dispatch) behind the same narrow policy. `Highway` uses a full vector (8 lanes with AVX2, 16
// with AVX-512); BasicHighway<D> takes any fixed-size float descriptor, e.g. hn::CappedTag<float, 8>.
// Highway 1.0 counts AVX2 as present only with BMI2, F16C, PCLMUL and AES too: `-mavx2 -mfma` alone
// selects its 4-lane SSSE3 target, `-march=x86-64-v3 -maes -mpclmul` (or -march=native) the 8-lane one.
#pragma once

#include <cstddef>
#include <cstdint>

// Highway 1.0.3 (Debian 12's) asks whether AVX3_DL is in the baseline through a macro it never defines,
// so when the compiler flags do make AVX3_DL the best baseline (-march=native on Zen 5 or Sapphire Rapids:
// AVX-512 with AVX-VNNI, VBMI2, VAES, VPCLMULQDQ, BITALG, VPOPCNTDQ) it stops at "best baseline should be
// included in dynamic targets". Opting in is Highway's own switch; with static dispatch it adds no code.
#ifndef HWY_WANT_AVX3_DL
#define HWY_WANT_AVX3_DL 1
#endif
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>

#include "griffin/simd/backend.hpp"

namespace griffin::simd {

namespace hn = hwy::HWY_NAMESPACE;

// Kernels keep vectors in locals and arrays, which sizeless SVE/RVV vectors cannot be.
static_assert(!HWY_HAVE_SCALABLE, "griffin's Highway backend needs a fixed-size static target");

template <class D = hn::ScalableTag<float>>
struct BasicHighway {
  static constexpr const char* name = "highway";
  using vec = hn::Vec<D>;
  static constexpr std::size_t lanes = hn::MaxLanes(D());

  static vec zero() { return hn::Zero(D()); }
  static vec set(float s) { return hn::Set(D(), s); }
  static vec load(const float* p) { return hn::LoadU(D(), p); }
  static void store(float* p, vec v) { hn::StoreU(v, D(), p); }
  static vec add(vec a, vec b) { return hn::Add(a, b); }
  static vec sub(vec a, vec b) { return hn::Sub(a, b); }
  static vec mul(vec a, vec b) { return hn::Mul(a, b); }
  static vec div(vec a, vec b) { return hn::Div(a, b); }
  // Exactly std::max(a, b) = a < b ? b : a and std::min(a, b) = b < a ? b : a, NaN and signed zero
  // included, as Scalar gives. x86 max/min return their second operand when unordered, so swapping the
  // operands is that in one instruction; other targets (NEON, Highway's scalar one) differ on NaN.
  static vec max(vec a, vec b) { return pick<true>(a, b); }
  static vec min(vec a, vec b) { return pick<false>(a, b); }
  // Rounds once where the target has FMA (HWY_NATIVE_FMA); the SSSE3/SSE4 targets round a * b first.
  static vec fma(vec a, vec b, vec c) { return hn::MulAdd(a, b, c); }
  static vec sqrt(vec a) { return hn::Sqrt(a); }
  static vec round(vec a) { return hn::Round(a); }
  // Adding 1.5·2^23 + 127 puts n + 127 in the low mantissa bits (exactly, for integral |n| < 2^22); shifted
  // up by 23 they are the biased exponent of 2^n, and the bit that held the 1.5 falls off the top.
  static vec pow2(vec n) {
    const hn::RebindToSigned<D> di;
    return hn::BitCast(D(), hn::ShiftLeft<23>(hn::BitCast(di, hn::Add(n, hn::Set(D(), 12583039.0f)))));
  }
  static vec tanh(vec a) { return hn::Tanh(D(), a); }
  static float reduce_add(vec a) { return hn::GetLane(hn::SumOfLanes(D(), a)); }
  static float reduce_max(vec a) { return hn::GetLane(hn::MaxOfLanes(D(), a)); }

  // hn::Exp and hn::Expm1 build 2^n with integer arithmetic that wraps above x ~ 177 (exp(178) is NaN,
  // exp(200) is 0), and hn::Exp(NaN) is 0. Clamping at 89, where both already overflow to inf, and
  // passing NaN through give std::exp's edge behaviour: inf above the range, NaN in, NaN out.
  static vec exp(vec a) { return keep_nan(a, hn::Exp(D(), hn::Min(a, hn::Set(D(), 89.0f)))); }
  static vec expm1(vec a) { return keep_nan(a, hn::Expm1(D(), hn::Min(a, hn::Set(D(), 89.0f)))); }

  static vec load_bf16(const bf16* p) {
    // A bfloat16 is the top half of a float32: zero-extend each 16-bit pattern and shift it up.
    const hn::Rebind<std::uint16_t, D> d16;
    const hn::RebindToUnsigned<D> d32;
    const auto bits = hn::PromoteTo(d32, hn::LoadU(d16, &p->bits));
    return hn::BitCast(D(), hn::ShiftLeft<16>(bits));
  }

  static vec load_i8(const std::int8_t* p) {
    const hn::Rebind<std::int8_t, D> d8;
    const hn::RebindToSigned<D> d32;
    return hn::ConvertTo(D(), hn::PromoteTo(d32, hn::LoadU(d8, p)));
  }

 #if HWY_TARGET != HWY_SCALAR && HWY_TARGET != HWY_EMU128 && HWY_CAP_GE256
  // Eight rows of eight floats transposed in 256-bit registers: pairs of rows interleaved, then pairs of
  // pairs (as 64-bit lanes), then the two 128-bit halves exchanged (see simd::transpose_rows).
  static void transpose8(const float* const* rows, float* dst, std::size_t stride) {
    const hn::FixedTag<float, 8> d;
    const hn::Repartition<double, decltype(d)> d64;
    hn::Vec<decltype(d)> r[8], t[8], u[8];
    for (int i = 0; i < 8; ++i) r[i] = hn::LoadU(d, rows[i]);
    for (int i = 0; i < 8; i += 2) {
      t[i] = hn::InterleaveLower(d, r[i], r[i + 1]);
      t[i + 1] = hn::InterleaveUpper(d, r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4)
      for (int j = 0; j < 2; ++j) {
        const auto a = hn::BitCast(d64, t[i + j]), b = hn::BitCast(d64, t[i + j + 2]);
        u[i + 2 * j] = hn::BitCast(d, hn::InterleaveLower(d64, a, b));
        u[i + 2 * j + 1] = hn::BitCast(d, hn::InterleaveUpper(d64, a, b));
      }
    // In row order: with a stride below 8 each store's last floats are the next row's, which overwrites them.
    for (int i = 0; i < 4; ++i) hn::StoreU(hn::ConcatLowerLower(d, u[i + 4], u[i]), d, dst + std::size_t(i) * stride);
    for (int i = 0; i < 4; ++i) hn::StoreU(hn::ConcatUpperUpper(d, u[i + 4], u[i]), d, dst + std::size_t(i + 4) * stride);
  }
#endif

 private:
  // a < b ? b : a (Greater) or b < a ? b : a.
  template <bool Greater>
  static vec pick(vec a, vec b) {
#if HWY_ARCH_X86 && HWY_TARGET != HWY_SCALAR && HWY_TARGET != HWY_EMU128
    if constexpr (Greater) return hn::Max(b, a);
    else return hn::Min(b, a);
#else
    return hn::IfThenElse(Greater ? hn::Lt(a, b) : hn::Lt(b, a), b, a);
#endif
  }
  static vec keep_nan(vec x, vec fx) { return hn::IfThenElse(hn::IsNaN(x), x, fx); }
};

using Highway = BasicHighway<>;
static_assert(VectorBackend<Highway>);

}  // namespace griffin::simd
