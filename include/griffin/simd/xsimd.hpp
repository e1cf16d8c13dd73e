// The xsimd backend: one `xsimd::batch<float, Arch>` per vector. `Xsimd` uses xsimd::default_arch, the
// widest instruction set the compiler targets (8 lanes with -mavx2, 16 with AVX-512); BasicXsimd<Arch>
// pins another one, e.g. BasicXsimd<xsimd::fma3<xsimd::avx2>> on an AVX-512 machine.
#pragma once

#include <algorithm>
#include <cstddef>

#include <xsimd/xsimd.hpp>

#include "griffin/simd/backend.hpp"

// GCC 12's AVX-512 headers self-initialise their "undefined" registers (`__m512 __Y = __Y;`), which it
// then reports as uninitialised wherever xsimd's exp/tanh inline them into kernels.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define GRIFFIN_DETAIL_XSIMD_DIAGNOSTICS_PUSHED
#endif

namespace griffin::simd {

// xsimd 8.1 has no bf16 widening, no horizontal max and no transpose, and its AVX-512 fma is an unfused
// a * b + c, so those four use x86 intrinsics when Arch's register type allows and portable code otherwise.
template <class Arch = xsimd::default_arch>
struct BasicXsimd {
  static constexpr const char* name = "xsimd";
  using vec = xsimd::batch<float, Arch>;
  static constexpr std::size_t lanes = vec::size;

  static vec zero() { return vec(0.0f); }
  static vec set(float s) { return vec(s); }
  static vec load(const float* p) { return vec::load_unaligned(p); }
  static void store(float* p, vec v) { v.store_unaligned(p); }
  static vec add(vec a, vec b) { return a + b; }
  static vec sub(vec a, vec b) { return a - b; }
  static vec mul(vec a, vec b) { return a * b; }
  static vec div(vec a, vec b) { return a / b; }
  // Exactly std::max(a, b) = a < b ? b : a and std::min(a, b) = b < a ? b : a, NaN and signed zero
  // included, as Scalar gives. x86 max/min return their second operand when unordered, so swapping the
  // operands is that in one instruction; NEON's differ on NaN.
  static vec max(vec a, vec b) { return pick<true>(a, b); }
  static vec min(vec a, vec b) { return pick<false>(a, b); }
  static vec sqrt(vec a) { return xsimd::sqrt(a); }
  static vec round(vec a) { return xsimd::nearbyint(a); }
  // Adding 1.5·2^23 + 127 puts n + 127 in the low mantissa bits (exactly, for integral |n| < 2^22); shifted
  // up by 23 they are the biased exponent of 2^n, and the bit that held the 1.5 falls off the top.
  static vec pow2(vec n) {
    using ints = xsimd::batch<std::int32_t, Arch>;
    return xsimd::bitwise_cast<vec>(xsimd::bitwise_cast<ints>(n + vec(pow2_magic)) << 23);
  }
  static vec exp(vec a) { return xsimd::exp(a); }
  static vec expm1(vec a) { return xsimd::expm1(a); }
  static vec tanh(vec a) { return xsimd::tanh(a); }
  static float reduce_add(vec a) { return xsimd::hadd(a); }

  static vec load_bf16(const bf16* p) {
    // A bfloat16 is the top half of a float32: zero-extend each 16-bit pattern and shift it up.
#if defined(__AVX512F__)
    if constexpr (register_bytes == 64) {
      const __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
      return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits), 16));
    }
#endif
#if defined(__AVX2__)
    if constexpr (register_bytes == 32) {
      const __m128i bits = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
      return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(bits), 16));
    }
#endif
#if defined(__SSE2__)
    if constexpr (register_bytes == 16) {
      // Interleaving a zero below each 16-bit pattern is the zero-extend and the shift in one step.
      const __m128i bits = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
      return _mm_castsi128_ps(_mm_unpacklo_epi16(_mm_setzero_si128(), bits));
    }
#endif
    alignas(Arch::alignment()) float widened[lanes];
    for (std::size_t i = 0; i < lanes; ++i) widened[i] = bf16_to_f32(p[i]);
    return vec::load_aligned(widened);
  }

  static vec load_i8(const std::int8_t* p) {
    // Sign-extend to int32, then convert (exact: |q| <= 128).
#if defined(__AVX512F__)
    if constexpr (register_bytes == 64)
      return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
#endif
#if defined(__AVX2__)
    if constexpr (register_bytes == 32)
      return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
#endif
    alignas(Arch::alignment()) float widened[lanes];
    for (std::size_t i = 0; i < lanes; ++i) widened[i] = static_cast<float>(p[i]);
    return vec::load_aligned(widened);
  }

  static vec fma(vec a, vec b, vec c) {
#if defined(__AVX512F__)
    if constexpr (register_bytes == 64) return _mm512_fmadd_ps(a, b, c);
#endif
    return xsimd::fma(a, b, c);
  }

  static float reduce_max(vec a) {
    // Halve the register until one lane is left.
#if defined(__AVX512F__)
    if constexpr (register_bytes == 64) {
      const __m256 high = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1));
      return max_of_lanes(_mm256_max_ps(_mm512_castps512_ps256(a), high));
    }
#endif
#if defined(__AVX__)
    if constexpr (register_bytes == 32) return max_of_lanes(a);
#endif
#if defined(__SSE__)
    if constexpr (register_bytes == 16) return max_of_lanes(a);
#endif
    alignas(Arch::alignment()) float values[lanes];
    a.store_aligned(values);
    return *std::max_element(values, values + lanes);
  }

#if defined(__AVX__)
  // Eight rows of eight floats transposed in 256-bit registers (see simd::transpose_rows): xsimd 8.1 has
  // no transpose, so this is the AVX shuffle sequence itself.
  static void transpose8(const float* const* rows, float* dst, std::size_t stride) {
    __m256 r[8];
    for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(rows[i]);
    const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    const __m256 u[8] = {_mm256_shuffle_ps(t0, t2, 0x44), _mm256_shuffle_ps(t0, t2, 0xee),
                         _mm256_shuffle_ps(t1, t3, 0x44), _mm256_shuffle_ps(t1, t3, 0xee),
                         _mm256_shuffle_ps(t4, t6, 0x44), _mm256_shuffle_ps(t4, t6, 0xee),
                         _mm256_shuffle_ps(t5, t7, 0x44), _mm256_shuffle_ps(t5, t7, 0xee)};
    // In row order: with a stride below 8 each store's last floats are the next row's, which overwrites them.
    for (int i = 0; i < 4; ++i) _mm256_storeu_ps(dst + std::size_t(i) * stride, _mm256_permute2f128_ps(u[i], u[i + 4], 0x20));
    for (int i = 0; i < 4; ++i)
      _mm256_storeu_ps(dst + std::size_t(i + 4) * stride, _mm256_permute2f128_ps(u[i], u[i + 4], 0x31));
  }
#endif

 private:
  // a < b ? b : a (Greater) or b < a ? b : a.
  template <bool Greater>
  static vec pick(vec a, vec b) {
#if defined(__SSE2__)
    if constexpr (Greater) return xsimd::max(b, a);
    else return xsimd::min(b, a);
#else
    return xsimd::select(Greater ? a < b : b < a, b, a);
#endif
  }
  // On x86 the register's size says which of __m128, __m256 and __m512 it is.
  static constexpr std::size_t register_bytes = sizeof(typename vec::register_type);
  static constexpr float pow2_magic = 12583039.0f;  // 1.5·2^23 + 127

#if defined(__AVX__)
  static float max_of_lanes(__m256 v) {
    return max_of_lanes(_mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1)));
  }
#endif
#if defined(__SSE__)
  static float max_of_lanes(__m128 v) {
    v = _mm_max_ps(v, _mm_movehl_ps(v, v));
    v = _mm_max_ss(v, _mm_shuffle_ps(v, v, 1));
    return _mm_cvtss_f32(v);
  }
#endif
};

using Xsimd = BasicXsimd<>;
static_assert(VectorBackend<Xsimd>);

}  // namespace griffin::simd

#if defined(GRIFFIN_DETAIL_XSIMD_DIAGNOSTICS_PUSHED)
#pragma GCC diagnostic pop
#undef GRIFFIN_DETAIL_XSIMD_DIAGNOSTICS_PUSHED
#endif
