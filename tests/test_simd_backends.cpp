// Every vector backend against the C++ standard library, lane by lane: loads (f32, bf16, int8) and the IEEE
// operations bit for bit, exp/expm1/tanh within the tolerances stated below, and the edge values kernels rely
// on (overflow to inf, underflow to 0, saturation of tanh, NaN in NaN out); transpose_rows (simd/backend.hpp),
// with which the gemm packs its operands, against a plain loop. Then simd/math.hpp's saturating exp, expm1
// and sigmoid, built from the policy, on every backend against long double.
#include <doctest/doctest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "griffin/simd/default.hpp"
#include "griffin/simd/math.hpp"

namespace {

using namespace griffin;
using namespace griffin::simd;

static_assert(VectorBackend<Scalar>);
static_assert(VectorBackend<Xsimd>);
static_assert(VectorBackend<Highway>);
static_assert(VectorBackend<Default>);

// Kernels compute in float (one rounding is 6e-8 relative) from bfloat16 weights (4e-3 relative), so 2e-6,
// about 16 float ulps, leaves room for a polynomial approximation while staying far below anything a
// model's output could show.
constexpr double kRelTol = 2e-6;
constexpr double kTanhAbsTol = 2e-6;

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kMin = std::numeric_limits<float>::min();  // smallest normal float

// The default backends, plus their 8-lane variants when the default vector is wider (an AVX-512 build),
// so one build also exercises the AVX2-width code paths.
template <class F>
void for_each_tested_backend(F&& f) {
  for_each_backend(f);
#if XSIMD_WITH_FMA3_AVX2
  if constexpr (Xsimd::lanes > 8) f.template operator()<BasicXsimd<xsimd::fma3<xsimd::avx2>>>();
#endif
  if constexpr (Highway::lanes > 8) f.template operator()<BasicHighway<hn::CappedTag<float, 8>>>();
}

template <class B>
std::string label() {
  return std::string(B::name) + " x" + std::to_string(B::lanes);
}

// Applies op to whole vectors of the inputs, the last one zero-padded, so that every lane position
// sees distinct values and an input length that is not a multiple of lanes is covered too.
template <class B, class Op, class... Inputs>
std::vector<float> map_lanes(Op op, const std::vector<float>& first, const Inputs&... rest) {
  const std::size_t n = first.size();
  std::vector<float> out(n);
  for (std::size_t i = 0; i < n; i += B::lanes) {
    const std::size_t count = std::min(B::lanes, n - i);
    const auto load = [&](const std::vector<float>& in) {
      float lanes[B::lanes] = {};
      std::copy_n(in.data() + i, count, lanes);
      return B::load(lanes);
    };
    float result[B::lanes];
    B::store(result, op(load(first), load(rest)...));
    std::copy_n(result, count, out.data() + i);
  }
  return out;
}

// Scalar's fma is std::fma. The SIMD ones round once where the target has FMA instructions; Highway's
// SSSE3/SSE4 targets compute a * b + c even on FMA hardware, and then only a contracting compiler fuses.
template <class B>
constexpr bool fma_is_fused() {
  if constexpr (std::is_same_v<B, Scalar>) return true;
  if constexpr (std::string_view(B::name) == "highway") return HWY_NATIVE_FMA;
#if defined(__FMA__) || defined(__AVX512F__)
  return true;
#else
  return false;
#endif
}

bool same_bits(float a, float b) {
  return (std::isnan(a) && std::isnan(b)) || std::bit_cast<std::uint32_t>(a) == std::bit_cast<std::uint32_t>(b);
}

// Signed zeros, subnormals, extremes, infinities, NaN, then random values over many magnitudes.
std::vector<float> spread() {
  std::vector<float> v = {0.0f, -0.0f, 1.0f, -1.0f, 2.0f, 0.5f, 3.0f, -7.0f, 0.1f, -0.1f, 3.14159265f,
                          1e-3f, -1e-3f, 1e30f, -1e30f, std::numeric_limits<float>::max(),
                          std::numeric_limits<float>::lowest(), kMin, -kMin, 1e-40f, -1e-40f,
                          std::numeric_limits<float>::denorm_min(), kInf, -kInf, kNaN};
  std::mt19937 rng(1234);
  std::uniform_real_distribution<float> mantissa(-1.0f, 1.0f);
  std::uniform_int_distribution<int> exponent(-40, 40);
  while (v.size() < 1003) v.push_back(std::ldexp(mantissa(rng), exponent(rng)));  // 1003: leaves a tail
  return v;
}

std::vector<float> rotated(std::vector<float> v, std::size_t by) {
  std::rotate(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(by % v.size()), v.end());
  return v;
}

std::vector<float> grid(double from, double to, double step) {
  std::vector<float> v;
  for (double x = from; x <= to; x += step) v.push_back(static_cast<float>(x));
  return v;
}

double relative_error(float got, double want) {
  return want == 0.0 ? std::abs(double(got)) : std::abs(double(got) - want) / std::abs(want);
}

}  // namespace

TEST_CASE("zero, set, load and store move exactly lanes floats, unaligned") {
  for_each_tested_backend([]<class B>() {
    SUBCASE(label<B>().c_str()) {
      constexpr std::size_t L = B::lanes;
      std::vector<float> in(L + 2), out(L + 2, -5.0f);
      for (std::size_t i = 0; i < in.size(); ++i) in[i] = 0.25f * static_cast<float>(i) - 1.0f;
      B::store(out.data() + 1, B::load(in.data() + 1));  // +1: not vector-aligned
      CHECK(out[0] == -5.0f);
      CHECK(out[L + 1] == -5.0f);
      for (std::size_t i = 1; i <= L; ++i) CHECK(out[i] == in[i]);

      float lanes[L];
      B::store(lanes, B::zero());
      for (float x : lanes) CHECK(same_bits(x, 0.0f));
      B::store(lanes, B::set(-2.5f));
      for (float x : lanes) CHECK(x == -2.5f);
    }
  });
}

TEST_CASE("load_bf16 widens every bfloat16 bit pattern exactly") {
  // All 65536 patterns cover both signs, subnormals, infinities and NaN payloads, which must survive.
  std::vector<bf16> all(65536 + 1 + 64);
  for (std::uint32_t bits = 0; bits < 65536; ++bits) all[bits + 1].bits = static_cast<std::uint16_t>(bits);
  for_each_tested_backend([&]<class B>() {
    SUBCASE(label<B>().c_str()) {
      std::size_t mismatches = 0;
      for (std::size_t i = 1; i < 65536 + 1; i += B::lanes) {  // from element 1: not vector-aligned
        float lanes[B::lanes];
        B::store(lanes, B::load_bf16(all.data() + i));
        for (std::size_t k = 0; k < B::lanes; ++k) {
          const std::uint32_t want = std::uint32_t{all[i + k].bits} << 16;
          if (std::bit_cast<std::uint32_t>(lanes[k]) != want) ++mismatches;
        }
      }
      CHECK(mismatches == 0);
    }
  });
}

TEST_CASE("load_i8 converts every int8 value exactly") {
  std::vector<std::int8_t> all(256 + 64);
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<std::int8_t>(int(i % 256) - 128);
  for_each_tested_backend([&]<class B>() {
    SUBCASE(label<B>().c_str()) {
      std::size_t mismatches = 0;
      for (std::size_t i = 1; i + B::lanes <= all.size(); i += B::lanes) {  // from element 1: not vector-aligned
        float lanes[B::lanes];
        B::store(lanes, B::load_i8(all.data() + i));
        for (std::size_t l = 0; l < B::lanes; ++l) mismatches += lanes[l] != float(all[i + l]);
      }
      CHECK(mismatches == 0);
    }
  });
}

TEST_CASE("add, sub, mul, div and sqrt round exactly as IEEE float does") {
  const std::vector<float> a = spread(), b = rotated(spread(), 7);
  for_each_tested_backend([&]<class B>() {
    SUBCASE(label<B>().c_str()) {
      const auto sum = map_lanes<B>([](auto x, auto y) { return B::add(x, y); }, a, b);
      const auto difference = map_lanes<B>([](auto x, auto y) { return B::sub(x, y); }, a, b);
      const auto product = map_lanes<B>([](auto x, auto y) { return B::mul(x, y); }, a, b);
      const auto quotient = map_lanes<B>([](auto x, auto y) { return B::div(x, y); }, a, b);
      const auto root = map_lanes<B>([](auto x) { return B::sqrt(x); }, a);
      for (std::size_t i = 0; i < a.size(); ++i) {
        CAPTURE(a[i]);
        CAPTURE(b[i]);
        CHECK(same_bits(sum[i], a[i] + b[i]));
        CHECK(same_bits(difference[i], a[i] - b[i]));
        CHECK(same_bits(product[i], a[i] * b[i]));
        CHECK(same_bits(quotient[i], a[i] / b[i]));
        CHECK(same_bits(root[i], std::sqrt(a[i])));
      }
    }
  });
}

TEST_CASE("max and min return what std::max and std::min return, NaN and signed zero included") {
  const std::vector<float> a = {kNaN, 1.0f, kNaN, 0.0f, -0.0f, -kInf, 3.0f, -2.0f, 5.0f},
                           b = {1.0f, kNaN, kNaN, -0.0f, 0.0f, 7.0f, kInf, -3.0f, 5.0f};
  for_each_tested_backend([&]<class B>() {
    SUBCASE(label<B>().c_str()) {
      const auto larger = map_lanes<B>([](auto x, auto y) { return B::max(x, y); }, a, b);
      const auto smaller = map_lanes<B>([](auto x, auto y) { return B::min(x, y); }, a, b);
      for (std::size_t i = 0; i < a.size(); ++i) {
        CAPTURE(a[i]);
        CAPTURE(b[i]);
        CHECK(same_bits(larger[i], std::max(a[i], b[i])));
        CHECK(same_bits(smaller[i], std::min(a[i], b[i])));
      }
    }
  });
}

TEST_CASE("round goes to the nearest integer, ties to even, exactly as std::nearbyint") {
  std::vector<float> x = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 0.49999997f, -0.49999997f, 126.5f, -125.5f,
                          0.0f, -0.0f, 8388607.5f, 1e30f, -1e30f, kInf, -kInf, kNaN};
  const auto more = grid(-130.0, 130.0, 0.0137);
  x.insert(x.end(), more.begin(), more.end());
  for_each_tested_backend([&]<class B>() {
    SUBCASE(label<B>().c_str()) {
      const auto got = map_lanes<B>([](auto v) { return B::round(v); }, x);
      for (std::size_t i = 0; i < x.size(); ++i) {
        CAPTURE(x[i]);
        CHECK(same_bits(got[i], std::nearbyint(x[i])));
      }
    }
  });
}

TEST_CASE("pow2 is 2^n exactly for every integral n from -126 to 127") {
  std::vector<float> n;
  for (int k = -126; k <= 127; ++k) n.push_back(static_cast<float>(k));
  n.push_back(-0.0f);
  for_each_tested_backend([&]<class B>() {
    SUBCASE(label<B>().c_str()) {
      const auto got = map_lanes<B>([](auto v) { return B::pow2(v); }, n);
      for (std::size_t i = 0; i < n.size(); ++i) {
        CAPTURE(n[i]);
        CHECK(same_bits(got[i], std::ldexp(1.0f, static_cast<int>(n[i]))));
      }
    }
  });
}

TEST_CASE("fma rounds once") {
  // (1 + 2^-12)(1 - 2^-12) - 1 is -2^-24 when fused and 0 when the product is rounded first.
  std::vector<float> a = {1.0f + 0x1p-12f}, b = {1.0f - 0x1p-12f}, c = {-1.0f};
  std::mt19937 rng(99);
  std::uniform_real_distribution<float> value(-10.0f, 10.0f);
  while (a.size() < 1003) {
    a.push_back(value(rng));
    b.push_back(value(rng));
    c.push_back(value(rng));
  }
  for_each_tested_backend([&]<class B>() {
    SUBCASE(label<B>().c_str()) {
      const auto got = map_lanes<B>([](auto x, auto y, auto z) { return B::fma(x, y, z); }, a, b, c);
      constexpr bool fused = fma_is_fused<B>();
      for (std::size_t i = 0; i < a.size(); ++i) {
        CAPTURE(i);
        const float want = std::fma(a[i], b[i], c[i]);
        if (fused) {
          CHECK(same_bits(got[i], want));
        } else {
          CHECK(std::abs(got[i] - want) <= 0x1p-23f * (std::abs(a[i] * b[i]) + std::abs(c[i])));
        }
      }
    }
  });
}

TEST_CASE("exp is within 2e-6 relative error on [-87, 88], 0 below and inf above the float range") {
  const std::vector<float> x = grid(-87.0, 88.0, 1e-3);
  const std::vector<float> subnormal_range = grid(-104.0, -87.0, 1e-2);
  const std::vector<float> near_overflow = grid(88.0, 88.72, 1e-3);
  const std::vector<float> edges = {0.0f, -104.0f, -1e4f, -1e30f, -kInf, 89.0f, 100.0f, 178.0f, 200.0f,
                                    1e4f, 1e30f, kInf, kNaN};
  for_each_tested_backend([&]<class B>() {
    SUBCASE(label<B>().c_str()) {
      const auto op = [](auto v) { return B::exp(v); };
      const auto got = map_lanes<B>(op, x);
      double worst = 0.0;
      for (std::size_t i = 0; i < x.size(); ++i) worst = std::max(worst, relative_error(got[i], std::exp(double(x[i]))));
      CHECK(worst < kRelTol);

      // The results here are subnormal; xsimd flushes those below ~1.1e-38 to 0, an error under kMin.
      const auto tiny = map_lanes<B>(op, subnormal_range);
      for (std::size_t i = 0; i < tiny.size(); ++i) CHECK(std::abs(tiny[i] - std::exp(double(subnormal_range[i]))) < kMin);

      // xsimd overflows to inf from 88.376 (its maxlog), short of float's true limit 88.7228.
      const auto high = map_lanes<B>(op, near_overflow);
      for (std::size_t i = 0; i < high.size(); ++i) {
        CAPTURE(near_overflow[i]);
        CHECK((std::isinf(high[i]) || relative_error(high[i], std::exp(double(near_overflow[i]))) < kRelTol));
      }

      // Highway's own Exp wraps to NaN or 0 above ~177 and maps NaN to 0; our wrapper must not.
      const auto edge = map_lanes<B>(op, edges);
      CHECK(edge[0] == 1.0f);
      for (std::size_t i = 1; i <= 4; ++i) CHECK(same_bits(edge[i], 0.0f));
      for (std::size_t i = 5; i <= 11; ++i) CHECK(edge[i] == kInf);
      CHECK(std::isnan(edge[12]));
    }
  });
}

TEST_CASE("expm1 is within 2e-6 relative error, near 0 as well as on [-87, 88]") {
  // The RG-LRU takes sqrt(-expm1(2 log a)) with log a close to 0, where only relative accuracy helps.
  std::vector<float> x = grid(-87.0, 88.0, 1e-3);
  for (double e = -40.0; e <= 0.0; e += 0.01) {
    x.push_back(static_cast<float>(std::pow(10.0, e)));
    x.push_back(-static_cast<float>(std::pow(10.0, e)));
  }
  const std::vector<float> edges = {-104.0f, -1e4f, -kInf, 89.0f, 200.0f, 1e4f, kInf, kNaN};
  for_each_tested_backend([&]<class B>() {
    SUBCASE(label<B>().c_str()) {
      const auto op = [](auto v) { return B::expm1(v); };
      const auto got = map_lanes<B>(op, x);
      double worst = 0.0;
      for (std::size_t i = 0; i < x.size(); ++i) worst = std::max(worst, relative_error(got[i], std::expm1(double(x[i]))));
      CHECK(worst < kRelTol);

      const auto edge = map_lanes<B>(op, edges);
      for (std::size_t i = 0; i <= 2; ++i) CHECK(edge[i] == -1.0f);
      for (std::size_t i = 3; i <= 6; ++i) CHECK(edge[i] == kInf);
      CHECK(std::isnan(edge[7]));
    }
  });
}

TEST_CASE("tanh is within 2e-6 absolute error on [-20, 20], odd, and exactly +-1 far out") {
  const std::vector<float> x = grid(-20.0, 20.0, 1e-4);
  // Logit soft-capping divides by the cap first, so small arguments must keep their relative accuracy.
  std::vector<float> small;
  for (double e = -30.0; e <= -0.3; e += 0.01) small.push_back(static_cast<float>(std::pow(10.0, e)));
  const std::vector<float> edges = {20.0f, 100.0f, 1e10f, kInf, -20.0f, -100.0f, -1e10f, -kInf, kNaN, -0.0f};
  for_each_tested_backend([&]<class B>() {
    SUBCASE(label<B>().c_str()) {
      const auto op = [](auto v) { return B::tanh(v); };
      const auto got = map_lanes<B>(op, x);
      double worst = 0.0;
      for (std::size_t i = 0; i < x.size(); ++i) worst = std::max(worst, std::abs(got[i] - std::tanh(double(x[i]))));
      CHECK(worst < kTanhAbsTol);
      for (std::size_t i = 0; i < x.size(); ++i) {
        const float mirror = got[x.size() - 1 - i];  // the grid is symmetric up to rounding of its points
        if (x[x.size() - 1 - i] == -x[i]) CHECK(same_bits(mirror, -got[i]));
      }

      const auto tiny = map_lanes<B>(op, small);
      double worst_relative = 0.0;
      for (std::size_t i = 0; i < small.size(); ++i)
        worst_relative = std::max(worst_relative, relative_error(tiny[i], std::tanh(double(small[i]))));
      CHECK(worst_relative < kRelTol);

      const auto edge = map_lanes<B>(op, edges);
      for (std::size_t i = 0; i <= 3; ++i) CHECK(edge[i] == 1.0f);
      for (std::size_t i = 4; i <= 7; ++i) CHECK(edge[i] == -1.0f);
      CHECK(std::isnan(edge[8]));
      CHECK(same_bits(edge[9], -0.0f));
    }
  });
}

TEST_CASE("reduce_add and reduce_max are exact on small integers, whichever lane holds the maximum") {
  for_each_tested_backend([]<class B>() {
    SUBCASE(label<B>().c_str()) {
      constexpr std::size_t L = B::lanes;
      float lanes[L];
      for (std::size_t at = 0; at < L; ++at) {
        CAPTURE(at);
        for (std::size_t k = 0; k < L; ++k) lanes[k] = -static_cast<float>(k + 1);  // all negative
        lanes[at] = 3.0f;
        float want_sum = 3.0f;
        for (std::size_t k = 0; k < L; ++k) want_sum += k == at ? 0.0f : lanes[k];
        CHECK(B::reduce_add(B::load(lanes)) == want_sum);
        CHECK(B::reduce_max(B::load(lanes)) == 3.0f);

        for (std::size_t k = 0; k < L; ++k) lanes[k] = -kInf;
        lanes[at] = -1.0f;
        CHECK(B::reduce_max(B::load(lanes)) == -1.0f);
      }
      CHECK(B::reduce_add(B::set(1.0f)) == static_cast<float>(L));
      CHECK(B::reduce_max(B::set(-kInf)) == -kInf);
    }
  });
}

TEST_CASE("transpose_rows writes element j of row i at dst[j · stride + i], for any count and length") {
  // Row i holds 1000·i + j + 1: every element distinct and non-zero.
  std::vector<std::vector<float>> data(8);
  for (std::size_t i = 0; i < 8; ++i)
    for (std::size_t j = 0; j < 40; ++j) data[i].push_back(float(1000 * i + j + 1));
  const float* rows[8];
  for (std::size_t i = 0; i < 8; ++i) rows[i] = data[i].data() + 1;  // from element 1: not vector-aligned
  constexpr float untouched = -1.0f;
  for_each_tested_backend([&]<class B>() {
    SUBCASE(label<B>().c_str()) {
      // Fewer rows than eight go one element at a time; eight rows take the 8 × 8 blocks a backend may have,
      // then a tail of columns (lengths around and past multiples of 8).
      for (std::size_t count = 1; count <= 8; ++count)
        for (std::size_t cols : {std::size_t(1), std::size_t(7), std::size_t(8), std::size_t(9), std::size_t(17),
                                 std::size_t(33)})
          for (std::size_t stride : {count, std::size_t(8), std::size_t(11)}) {
            if (stride < count || (count == 8 && stride < 8)) continue;
            CAPTURE(count);
            CAPTURE(cols);
            CAPTURE(stride);
            std::vector<float> dst(cols * stride + 8, untouched);  // the 8 × 8 stores write 8 floats per column
            transpose_rows<B>(rows, count, cols, dst.data(), stride);
            std::size_t wrong = 0, clobbered = 0;
            for (std::size_t j = 0; j < cols; ++j)
              for (std::size_t i = 0; i < stride; ++i) {
                if (i < count) wrong += dst[j * stride + i] != rows[i][j];
                else if (count < 8) clobbered += dst[j * stride + i] != untouched;  // positions past the rows stay
              }
            CHECK(wrong == 0);
            CHECK(clobbered == 0);
          }
      // As the gemm packs a panel of 6 rows: eight rows transposed into a stride of 6, each column's last two
      // floats overwritten by the next column, the last column's two landing in the 8 floats of slack.
      for (std::size_t cols : {std::size_t(1), std::size_t(5), std::size_t(8), std::size_t(16), std::size_t(21)}) {
        CAPTURE(cols);
        std::vector<float> dst(cols * 6 + 8, untouched);
        transpose_rows<B>(rows, 8, cols, dst.data(), 6);
        std::size_t wrong = 0;
        for (std::size_t j = 0; j < cols; ++j)
          for (std::size_t i = 0; i < 6; ++i) wrong += dst[j * 6 + i] != rows[i][j];
        CHECK(wrong == 0);
        for (std::size_t s = cols * 6 + 2; s < dst.size(); ++s) CHECK(dst[s] == untouched);
      }
    }
  });
}

namespace {
// simd/math.hpp's 2^y: a polynomial good to 1.1e-8 and a few roundings.
constexpr double kExp2RelTol = 3e-7;
}  // namespace

TEST_CASE("the saturating 2^y is accurate over the float range and saturates beyond it") {
  const std::vector<float> y = grid(-126.0, 127.0, 1.7e-3);
  const std::vector<float> edges = {-126.5f, -200.0f, -1e30f, -kInf, 127.5f, 200.0f, 1e30f, kInf, kNaN};
  for_each_tested_backend([&]<class B>() {
    SUBCASE(label<B>().c_str()) {
      const auto got = map_lanes<B>([](auto v) { return exp2_saturating<B>(v); }, y);
      double worst = 0.0;
      for (std::size_t i = 0; i < y.size(); ++i) worst = std::max(worst, relative_error(got[i], std::exp2(double(y[i]))));
      CHECK(worst < kExp2RelTol);

      const auto edge = map_lanes<B>([](auto v) { return exp2_saturating<B>(v); }, edges);
      for (std::size_t i = 0; i <= 3; ++i) CHECK(edge[i] == 0x1p-126f);
      for (std::size_t i = 4; i <= 7; ++i) CHECK(edge[i] == 0x1p127f);
      CHECK(std::isnan(edge[8]));
    }
  });
}

TEST_CASE("the saturating 2^y - 1 keeps its relative accuracy as y -> 0, where the RG-LRU needs it") {
  std::vector<float> y = grid(-126.0, 127.0, 1.7e-3);
  for (double e = -37.0; e <= 0.0; e += 0.01) {  // down to the normal floats' end; subnormals lose digits anyway
    y.push_back(static_cast<float>(std::pow(10.0, e)));
    y.push_back(-static_cast<float>(std::pow(10.0, e)));
  }
  const std::vector<float> edges = {0.0f, -0.0f, -127.0f, -1e30f, -kInf, kNaN};
  for_each_tested_backend([&]<class B>() {
    SUBCASE(label<B>().c_str()) {
      const auto got = map_lanes<B>([](auto v) { return exp2m1_saturating<B>(v); }, y);
      double worst = 0.0;
      for (std::size_t i = 0; i < y.size(); ++i)
        worst = std::max(worst, relative_error(got[i], std::expm1(double(y[i]) * std::log(2.0))));
      CHECK(worst < kExp2RelTol);
      const auto edge = map_lanes<B>([](auto v) { return exp2m1_saturating<B>(v); }, edges);
      CHECK(same_bits(edge[0], 0.0f));
      for (std::size_t i = 2; i <= 4; ++i) CHECK(edge[i] == -1.0f);
      CHECK(std::isnan(edge[5]));
    }
  });
}

TEST_CASE("2^y - 1 for y <= 0 only is the saturating one there, bit for bit") {
  std::vector<float> y = grid(-130.0, 0.0, 1.3e-3);
  for (double e = -45.0; e <= 0.0; e += 0.01) y.push_back(-static_cast<float>(std::pow(10.0, e)));
  y.insert(y.end(), {0.0f, -0.0f, -1e30f, -kInf, kNaN, -std::numeric_limits<float>::denorm_min()});
  for_each_tested_backend([&]<class B>() {
    SUBCASE(label<B>().c_str()) {
      const auto got = map_lanes<B>([](auto v) { return exp2m1_nonpositive<B>(v); }, y);
      const auto want = map_lanes<B>([](auto v) { return exp2m1_saturating<B>(v); }, y);
      std::size_t differ = 0;
      for (std::size_t i = 0; i < y.size(); ++i) differ += !same_bits(got[i], want[i]);
      CHECK(differ == 0);
    }
  });
}

TEST_CASE("times_sigmoid is numerator · σ(z), finite for every finite input") {
  const std::vector<float> z = grid(-88.0, 88.0, 1.1e-3);
  const std::vector<float> ones(z.size(), 1.0f);
  const std::vector<float> edge_z = {-1e30f, 1e30f, -kInf, kInf, 0.0f, 0.0f, kNaN};
  const std::vector<float> edge_num = {1.0f, 3.0f, 1.0f, -2.0f, 1e30f, std::numeric_limits<float>::max(), 1.0f};
  for_each_tested_backend([&]<class B>() {
    SUBCASE(label<B>().c_str()) {
      const auto op = [](auto num, auto v) { return times_sigmoid<B>(num, v); };
      const auto got = map_lanes<B>(op, ones, z);
      std::size_t outside = 0;
      for (std::size_t i = 0; i < z.size(); ++i) {
        const double want = 1.0 / (1.0 + std::exp(-double(z[i])));
        // Rounding -z·log2(e) before the exponential: |z|·1e-7 relative, which matters only where σ is tiny.
        outside += relative_error(got[i], want) > kExp2RelTol + 1e-7 * std::abs(z[i]);
        outside += std::abs(got[i] - want) > kExp2RelTol;
      }
      CHECK(outside == 0);
      const auto edge = map_lanes<B>(op, edge_num, edge_z);
      CHECK((edge[0] > 0.0f && edge[0] < 1e-38f));  // σ(-88) stands in for anything smaller
      CHECK(edge[1] == 3.0f);
      CHECK((edge[2] > 0.0f && edge[2] < 1e-38f));
      CHECK(edge[3] == -2.0f);
      CHECK(edge[4] == 5e29f);
      CHECK(edge[5] == std::numeric_limits<float>::max() / 2);
      CHECK(std::isnan(edge[6]));
    }
  });
}
