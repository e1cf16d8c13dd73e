// Shared by the tests: where the data is, reading golden tensors, comparing arrays, random inputs, weight
// matrices from row-major values.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <span>
#include <vector>

#include "griffin/io/safetensors.hpp"
#include "griffin/kernels/linear.hpp"
#include "griffin/matrix.hpp"
#include "griffin/simd/default.hpp"

namespace griffin::test {
// On an AVX-512 build the default xsimd and Highway backends are 16 lanes; their 8-lane AVX2 forms are
// tested too, so one build covers both widths (on an AVX2 build these are the same types again).
using Xsimd8 = simd::BasicXsimd<xsimd::fma3<xsimd::avx2>>;
using Highway8 = simd::BasicHighway<hwy::HWY_NAMESPACE::CappedTag<float, 8>>;
}  // namespace griffin::test

// Every backend, for TEST_CASE_TEMPLATE.
#define GRIFFIN_TEST_BACKENDS \
  ::griffin::simd::Scalar, ::griffin::simd::Xsimd, ::griffin::simd::Highway, ::griffin::test::Xsimd8, ::griffin::test::Highway8

namespace griffin::test {

inline std::filesystem::path data_dir() { return GRIFFIN_TEST_DATA; }

// A golden file held open for the duration of a test.
class Golden {
 public:
  explicit Golden(const std::filesystem::path& path) : file_(io::SafetensorsFile::open(path)) {}
  std::vector<float> f32(const std::string& name) const { return io::to_f32(view(name)); }
  std::vector<int> i32(const std::string& name) const { return io::to_i32(view(name)); }
  const std::vector<std::size_t>& shape(const std::string& name) const { return view(name).shape; }
  bool has(const std::string& name) const { return file_.find(name) != nullptr; }

 private:
  const io::TensorView& view(const std::string& name) const {
    const io::TensorView* t = file_.find(name);
    REQUIRE_MESSAGE(t != nullptr, "golden tensor missing: " << name);
    return *t;
  }
  io::SafetensorsFile file_;
};

inline float max_abs_diff(std::span<const float> a, std::span<const float> b) {
  REQUIRE(a.size() == b.size());
  float m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const float d = std::abs(a[i] - b[i]);
    if (!(d <= m)) m = std::isnan(d) ? INFINITY : d;
  }
  return m;
}

// a and b hold the same bits (NaN equal to the same NaN, unlike operator==): for outputs compared with
// buffers that were filled with NaN to show what a kernel left unwritten.
inline bool same_bits(std::span<const float> a, std::span<const float> b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size_bytes()) == 0;
}

// n values uniform in [lo, hi), the same for the same seed.
inline std::vector<float> random_floats(std::size_t n, std::uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// A [rows, cols] weight matrix stored as `type` from row-major float values (bf16 rounds them, int8
// quantises each row).
inline Matrix matrix_from_rows(WeightType type, std::span<const float> values, std::size_t rows, std::size_t cols) {
  REQUIRE(values.size() == rows * cols);
  return Matrix::from_rows(type, rows, cols, [&](std::size_t r, std::span<float> row) {
    std::copy_n(values.begin() + std::ptrdiff_t(r * cols), cols, row.begin());
  });
}

// y = x · Wᵀ + b through kernels::linear for `tokens` row-major rows, whatever W's storage type.
template <simd::VectorBackend B>
void linear(const float* x, std::size_t tokens, const Matrix& w, const float* bias, float* y) {
  w.visit([&](auto view) { kernels::linear<B>(x, tokens, view, bias, y); });
}

}  // namespace griffin::test
