// Shared by the tests: where the data is, reading golden tensors, comparing arrays.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <span>
#include <vector>

#include "griffin/io/safetensors.hpp"
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

}  // namespace griffin::test
