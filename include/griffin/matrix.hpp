// A large weight matrix as the model keeps it: [rows, cols] (nn.Linear's [out, in]) in panels of
// panel_width rows, each k-major (kernels/matrix_view.hpp), stored as f32, bf16 or int8 with one scale per
// row. Made once from rows given in float (a checkpoint's tensor, or random values), or copied panel-wise
// from row-major data already in the storage type; shared read-only afterwards.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <span>
#include <stdexcept>
#include <thread>
#include <vector>

#include "griffin/aligned.hpp"
#include "griffin/config.hpp"
#include "griffin/dtype.hpp"
#include "griffin/kernels/matrix_view.hpp"

namespace griffin {

namespace detail {
struct OneRange {
  template <class Body>
  void operator()(std::size_t n, Body&& body) const {
    body(std::size_t(0), n);
  }
};
}  // namespace detail

// Splits [0, n) over `threads` threads of its own for Matrix::from_rows (making a big matrix: loading or
// drawing one); the matrix does not depend on the split.
struct ParallelRanges {
  std::size_t threads = 1;
  // As many threads as the hardware has for a matrix of `elements` weights, one below a million.
  static ParallelRanges for_work(std::size_t elements) {
    return {elements < (std::size_t(1) << 20) ? 1 : std::max<std::size_t>(1, std::thread::hardware_concurrency())};
  }
  template <class Body>
  void operator()(std::size_t n, Body&& body) const {
    const std::size_t parts = std::min(threads, n);
    if (parts <= 1) {
      body(std::size_t(0), n);
      return;
    }
    std::vector<std::exception_ptr> errors(parts);
    std::vector<std::thread> others;
    const auto part = [&](std::size_t t) {
      try {
        body(n * t / parts, n * (t + 1) / parts);
      } catch (...) {
        errors[t] = std::current_exception();
      }
    };
    for (std::size_t t = 1; t < parts; ++t) others.emplace_back(part, t);
    part(0);
    for (auto& th : others) th.join();
    for (const auto& e : errors)
      if (e) std::rethrow_exception(e);
  }
};

class Matrix {
 public:
  Matrix() = default;

  // A [rows, cols] matrix stored as `type` from rows given in float: fill_row(r, row) writes row r into `row`
  // (cols floats); it is rounded to bf16 or quantised to int8 (kernels::quantize_int8_row) a panel of rows at
  // a time, so no float copy of the whole matrix is held. for_ranges(panels, body) calls body(p0, p1) over
  // ranges covering the panels, possibly on several threads at once; the default is one range.
  template <class FillRow, class ForRanges = detail::OneRange>
  static Matrix from_rows(WeightType type, std::size_t rows, std::size_t cols, FillRow fill_row,
                          ForRanges for_ranges = {}) {
    Matrix m(type, rows, cols);
    for_ranges(m.panels(), [&](std::size_t p0, std::size_t p1) {
      std::vector<float> block(panel_width * cols);  // one panel's rows, row-major
      std::vector<std::int8_t> quantized(cols);
      for (std::size_t p = p0; p < p1; ++p) {
        const std::size_t r0 = p * panel_width, n = std::min(panel_width, rows - r0);
        std::fill(block.begin(), block.end(), 0.0f);
        for (std::size_t j = 0; j < n; ++j) fill_row(r0 + j, std::span<float>(block.data() + j * cols, cols));
        if (type == WeightType::int8)
          for (std::size_t j = 0; j < n; ++j) {
            m.scales_[r0 + j] = kernels::quantize_int8_row(block.data() + j * cols, cols, quantized.data());
            std::copy(quantized.begin(), quantized.end(), block.begin() + std::ptrdiff_t(j * cols));
          }
        m.write_panel(p, block.data());
      }
    });
    return m;
  }

  // A [rows, cols] matrix from row-major `values` already in the storage type (f32 or bf16: an exact copy,
  // laid out in panels); for_ranges as above.
  template <class ForRanges = detail::OneRange>
  static Matrix from_row_major(WeightType type, const void* values, std::size_t rows, std::size_t cols,
                               ForRanges for_ranges = {}) {
    if (type == WeightType::int8) throw std::invalid_argument("griffin::Matrix: int8 needs its row scales (from_rows)");
    Matrix m(type, rows, cols);
    const auto copy = [&]<class T>(const T* in) {
      T* out = reinterpret_cast<T*>(m.storage_.data());
      for_ranges(m.panels(), [&](std::size_t p0, std::size_t p1) {
        for (std::size_t p = p0; p < p1; ++p) {
          const std::size_t r0 = p * panel_width, n = std::min(panel_width, rows - r0);
          T* panel = out + p * cols * panel_width;
          const T* block = in + r0 * cols;
          for (std::size_t k = 0; k < cols; ++k) {
            for (std::size_t j = 0; j < n; ++j) panel[k * panel_width + j] = block[j * cols + k];
            for (std::size_t j = n; j < panel_width; ++j) panel[k * panel_width + j] = T{};  // rows past the end
          }
        }
      });
    };
    if (type == WeightType::f32) copy(static_cast<const float*>(values));
    else copy(static_cast<const std::uint16_t*>(values));  // bf16 bits
    return m;
  }

  WeightType type() const { return type_; }
  std::size_t rows() const { return rows_; }
  std::size_t cols() const { return cols_; }
  std::size_t panels() const { return panel_count(rows_); }
  // Bytes a matmul streams: the stored panels (the last one padded), plus the row scales for int8.
  std::size_t size_bytes() const { return storage_.size() + scales_.size() * sizeof(float); }

  // Element (r, c) as the matmul multiplies it (int8 times its row's scale).
  float at(std::size_t r, std::size_t c) const {
    const std::size_t i = (r / panel_width * cols_ + c) * panel_width + r % panel_width;
    switch (type_) {
      case WeightType::f32: return reinterpret_cast<const float*>(storage_.data())[i];
      case WeightType::bf16: return bf16_to_f32(reinterpret_cast<const bf16*>(storage_.data())[i]);
      case WeightType::int8: return float(reinterpret_cast<const std::int8_t*>(storage_.data())[i]) * scales_[r];
    }
    return 0.0f;
  }

  // Calls f with the typed panel view (Rows and Cols: the extents the caller knows at compile time): one
  // branch per matmul, not per element.
  template <std::size_t Rows = dynamic, std::size_t Cols = dynamic, class F>
  decltype(auto) visit(F&& f) const {
    const auto view = [&]<class W>(W*) {
      return PanelMatrix<W, Rows, Cols>{reinterpret_cast<const W*>(storage_.data()), Size<Rows>(rows_), Size<Cols>(cols_),
                                        scales_.empty() ? nullptr : scales_.data()};
    };
    if (type_ == WeightType::f32) return f(view(static_cast<float*>(nullptr)));
    if (type_ == WeightType::int8) return f(view(static_cast<std::int8_t*>(nullptr)));
    return f(view(static_cast<bf16*>(nullptr)));
  }

 private:
  Matrix(WeightType type, std::size_t rows, std::size_t cols) : type_(type), rows_(rows), cols_(cols) {
    storage_ = CacheLineArray<std::byte>(panels() * panel_width * cols * element_bytes());
    if (type == WeightType::int8) scales_.assign(panels() * panel_width, 0.0f);
  }
  std::size_t element_bytes() const { return type_ == WeightType::f32 ? 4 : type_ == WeightType::bf16 ? 2 : 1; }

  // Panel p from its rows in float, row-major [panel_width][cols] (int8: already quantised values).
  void write_panel(std::size_t p, const float* block) {
    const std::size_t first = p * cols_ * panel_width;
    for (std::size_t k = 0; k < cols_; ++k)
      for (std::size_t j = 0; j < panel_width; ++j) {
        const float v = block[j * cols_ + k];
        const std::size_t i = first + k * panel_width + j;
        switch (type_) {
          case WeightType::f32: reinterpret_cast<float*>(storage_.data())[i] = v; break;
          case WeightType::bf16: reinterpret_cast<bf16*>(storage_.data())[i] = f32_to_bf16(v); break;
          case WeightType::int8: reinterpret_cast<std::int8_t*>(storage_.data())[i] = static_cast<std::int8_t>(v); break;
        }
      }
  }

  WeightType type_ = WeightType::f32;
  std::size_t rows_ = 0, cols_ = 0;
  CacheLineArray<std::byte> storage_;   // panels × cols × panel_width elements, written in full when made
  CacheLineVector<float> scales_;       // int8 only: one per row, padded to whole panels
};

}  // namespace griffin
