// Reading safetensors files (spec "Checkpoint layout"): an 8-byte little-endian header length N, N bytes
// of JSON naming each tensor's dtype, shape and byte range, then the data. A file is memory-mapped and
// every header entry is validated before any tensor is handed out, so a malformed or hostile file is a
// LoadError naming the file and the field, never an out-of-bounds read. The converters turn a tensor into
// float32 or int32 values; writing is safetensors_write.hpp.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "griffin/dtype.hpp"
#include "griffin/io/error.hpp"
#include "griffin/io/json.hpp"
#include "griffin/io/mapped_file.hpp"

namespace griffin::io {

static_assert(std::endian::native == std::endian::little,
              "griffin::io reads safetensors (little-endian) data in place; big-endian hosts are not supported");

// As dtype_from_name, but an unknown name is a LoadError: "WHERE: unknown dtype "NAME" (...)".
inline DType parse_dtype(std::string_view name, std::string_view where) {
  if (auto t = dtype_from_name(name)) return *t;
  std::string known;
  for (DType t : all_dtypes) known += (known.empty() ? "" : ", ") + std::string(dtype_name(t));
  throw LoadError(std::string(where) + ": unknown dtype \"" + std::string(name) + "\" (expected one of " + known + ")");
}

// ---- Tensors ----

// One tensor inside a mapped file (or a caller's buffer). `data` points at the tensor's first byte and
// MAY BE UNALIGNED for its dtype (safetensors only aligns the data section, not each tensor): read it
// with std::memcpy or the converters below, never by casting to float*.
struct TensorView {
  std::string name;
  DType dtype = DType::f32;
  std::vector<std::size_t> shape;
  const std::byte* data = nullptr;
  std::size_t size_bytes = 0;
  std::string file;  // where it came from, for error messages (empty if unknown)

  std::size_t element_count() const {
    std::size_t n = 1;
    for (std::size_t d : shape) n *= d;  // cannot overflow for views the parser made (it checks)
    return n;
  }
  std::span<const std::byte> bytes() const { return {data, size_bytes}; }
};

namespace detail {

inline std::string shape_string(std::span<const std::size_t> shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// a * b, or nothing if it does not fit in size_t.
inline std::optional<std::size_t> checked_mul(std::size_t a, std::size_t b) {
  std::size_t r;
  if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}

// The byte size of a tensor, or nothing on overflow.
inline std::optional<std::size_t> byte_size(std::span<const std::size_t> shape, DType dtype) {
  std::optional<std::size_t> n = dtype_size(dtype);
  for (std::size_t d : shape)
    if (!(n = checked_mul(*n, d))) return std::nullopt;
  return n;
}

// Where a tensor came from, as the start of a message: "FILE: tensor "NAME"".
inline std::string where(const TensorView& t) {
  return (t.file.empty() ? std::string() : t.file + ": ") + "tensor " + in_quotes(t.name);
}

}  // namespace detail

// ---- One safetensors file ----

class SafetensorsFile {
 public:
  // A header longer than this is rejected before it is parsed (real headers are a few hundred KB).
  static constexpr std::uint64_t max_header_bytes = 100u * 1024u * 1024u;

  // Maps and validates a file. Throws LoadError naming the file.
  static SafetensorsFile open(const std::filesystem::path& path) {
    MappedFile mapped = MappedFile::open(path);
    SafetensorsFile f = parse(mapped.bytes(), path.string());
    f.path_ = path;
    f.mapped_ = std::move(mapped);  // moving a mapping keeps its address, so the views stay valid
    return f;
  }

  // Validates a file held in memory; the views point into `bytes`, which must outlive the result (it is
  // not copied). `display_name` starts every error message.
  static SafetensorsFile parse(std::span<const std::byte> bytes, std::string display_name) {
    SafetensorsFile f;
    f.display_name_ = std::move(display_name);
    f.bytes_ = bytes;
    f.parse_header();
    return f;
  }

  // The tensor called `name`, or nullptr.
  const TensorView* find(std::string_view name) const {
    auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : &tensors_[it->second];
  }
  // All tensors in the order their data lie in the file.
  const std::vector<TensorView>& tensors() const { return tensors_; }
  // The header's "__metadata__" (string to string), empty if absent.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // The file it was opened from (empty for parse()).
  const std::filesystem::path& path() const { return path_; }
  const std::string& display_name() const { return display_name_; }
  // The header length N: the data section starts at byte 8 + N.
  std::size_t header_size() const { return header_size_; }

 private:
  SafetensorsFile() = default;

  [[noreturn]] void fail(const std::string& what) const { throw LoadError(display_name_ + ": " + what); }

  void parse_header() {
    using nlohmann::json;
    const std::size_t file_size = bytes_.size();
    if (file_size < 8) fail("file is " + std::to_string(file_size) + " bytes, shorter than the 8-byte header length");
    std::uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = n << 8 | std::to_integer<std::uint64_t>(bytes_[static_cast<std::size_t>(i)]);
    if (n > max_header_bytes)
      fail("header length " + std::to_string(n) + " exceeds the limit of " + std::to_string(max_header_bytes) +
           " bytes");
    if (n > file_size - 8)
      fail("header length " + std::to_string(n) + " is past the end of the file (" + std::to_string(file_size) +
           " bytes, so at most " + std::to_string(file_size - 8) + ")");
    header_size_ = static_cast<std::size_t>(n);
    const std::byte* data_section = bytes_.data() + 8 + header_size_;
    const std::size_t data_size = file_size - 8 - header_size_;

    std::string_view text(reinterpret_cast<const char*>(bytes_.data() + 8), header_size_);
    json header = detail::parse_json_unique_keys(text, display_name_, "tensor");
    if (!header.is_object()) fail("header is not a JSON object but " + detail::json_excerpt(header));

    for (const auto& [name, entry] : header.items()) {
      if (name == "__metadata__") {
        read_metadata(entry);
        continue;
      }
      tensors_.push_back(read_entry(name, entry, data_section, data_size));
    }

    // Overlap check: sort by start; each non-empty tensor must begin at or after the previous one's end.
    std::sort(tensors_.begin(), tensors_.end(), [](const TensorView& a, const TensorView& b) {
      return a.data != b.data ? a.data < b.data : a.size_bytes < b.size_bytes;
    });
    const TensorView* prev = nullptr;
    for (const TensorView& t : tensors_) {
      if (t.size_bytes == 0) continue;
      if (prev && t.data < prev->data + prev->size_bytes)
        fail("tensors " + detail::in_quotes(prev->name) + " " + range_string(*prev, data_section) + " and " +
             detail::in_quotes(t.name) + " " + range_string(t, data_section) + " overlap");
      prev = &t;
    }
    for (std::size_t i = 0; i < tensors_.size(); ++i) by_name_.emplace(tensors_[i].name, i);
  }

  static std::string range_string(const TensorView& t, const std::byte* data_section) {
    auto begin = static_cast<std::size_t>(t.data - data_section);
    // Appended piecewise, as in detail::in_quotes: "[" + std::to_string(begin) trips the same g++ 12 -Wrestrict
    // false positive.
    std::string s = "[";
    s += std::to_string(begin);
    s += ", ";
    s += std::to_string(begin + t.size_bytes);
    s += ")";
    return s;
  }

  void read_metadata(const nlohmann::json& entry) {
    if (!entry.is_object()) fail("__metadata__ is not an object but " + detail::json_excerpt(entry));
    for (const auto& [key, value] : entry.items()) {
      if (!value.is_string())
        fail("__metadata__ " + detail::in_quotes(key) + " is not a string but " + detail::json_excerpt(value));
      metadata_.emplace(key, value.get<std::string>());
    }
  }

  TensorView read_entry(const std::string& name, const nlohmann::json& entry, const std::byte* data_section,
                        std::size_t data_size) const {
    const std::string what = "tensor " + detail::in_quotes(name);
    if (name.empty()) fail("a tensor has an empty name");
    if (!entry.is_object()) fail(what + " is not an object but " + detail::json_excerpt(entry));
    for (const auto& [key, value] : entry.items())
      if (key != "dtype" && key != "shape" && key != "data_offsets")
        fail(what + ": unknown key " + detail::in_quotes(key) + " (expected dtype, shape, data_offsets)");

    auto field = [&](const char* key) -> const nlohmann::json& {
      auto it = entry.find(key);
      if (it == entry.end()) fail(what + ": missing " + key);
      return *it;
    };
    // A JSON integer >= 0 (nlohmann stores those as unsigned); floats, negatives and others are errors.
    auto count = [&](const nlohmann::json& v, const std::string& field_name) -> std::uint64_t {
      if (v.is_number_unsigned()) return v.get<std::uint64_t>();
      if (v.is_number_integer()) fail(what + ": " + field_name + " is negative: " + detail::json_excerpt(v));
      fail(what + ": " + field_name + " is not a non-negative integer but " + detail::json_excerpt(v));
    };

    TensorView t;
    t.name = name;
    t.file = display_name_;

    const auto& dtype = field("dtype");
    if (!dtype.is_string()) fail(what + ": dtype is not a string but " + detail::json_excerpt(dtype));
    t.dtype = parse_dtype(dtype.get_ref<const std::string&>(), display_name_ + ": " + what);

    const auto& shape = field("shape");
    if (!shape.is_array()) fail(what + ": shape is not an array but " + detail::json_excerpt(shape));
    for (std::size_t i = 0; i < shape.size(); ++i)
      t.shape.push_back(static_cast<std::size_t>(count(shape[i], "shape[" + std::to_string(i) + "]")));

    const auto& offsets = field("data_offsets");
    if (!offsets.is_array() || offsets.size() != 2)
      fail(what + ": data_offsets must be an array of 2 integers [begin, end] but is " + detail::json_excerpt(offsets));
    const std::uint64_t begin = count(offsets[0], "data_offsets[0]");
    const std::uint64_t end = count(offsets[1], "data_offsets[1]");
    const std::string offsets_text = "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "]";
    if (end < begin) fail(what + ": " + offsets_text + " has end < begin");
    if (end > data_size)
      fail(what + ": " + offsets_text + " ends past the data section, which is " + std::to_string(data_size) +
           " bytes");

    const auto expected = detail::byte_size(t.shape, t.dtype);
    if (!expected)
      fail(what + ": shape " + detail::shape_string(t.shape) + " of " + std::string(dtype_name(t.dtype)) +
           " is too large (its byte size overflows)");
    if (*expected != end - begin)
      fail(what + ": shape " + detail::shape_string(t.shape) + " of " + std::string(dtype_name(t.dtype)) + " needs " +
           std::to_string(*expected) + " bytes but " + offsets_text + " hold " + std::to_string(end - begin));
    t.data = data_section + begin;
    t.size_bytes = static_cast<std::size_t>(end - begin);
    return t;
  }

  std::optional<MappedFile> mapped_;
  std::span<const std::byte> bytes_;
  std::filesystem::path path_;
  std::string display_name_;
  std::size_t header_size_ = 0;
  std::vector<TensorView> tensors_;
  std::map<std::string, std::size_t, std::less<>> by_name_;
  std::map<std::string, std::string> metadata_;
};

// ---- Converting tensors ----

// Converts elements [first, first + out.size()) of an F32, BF16 or F16 tensor to float32 into `out`
// (a row at a time lets the loader quantise or round a matrix without a float copy of all of it).
inline void read_f32(const TensorView& t, std::size_t first, std::span<float> out) {
  const std::size_t n = t.element_count();
  if (first > n || out.size() > n - first)
    throw LoadError(detail::where(t) + ": has " + std::to_string(n) + " elements, not " +
                    std::to_string(first) + " + " + std::to_string(out.size()));
  if (t.size_bytes != n * dtype_size(t.dtype))
    throw LoadError(detail::where(t) + ": " + std::to_string(t.size_bytes) + " bytes for " + std::to_string(n) +
                    " elements of " + std::string(dtype_name(t.dtype)));
  const std::size_t count = out.size();
  switch (t.dtype) {
    case DType::f32:
      if (count) std::memcpy(out.data(), t.data + 4 * first, count * sizeof(float));
      return;
    case DType::bf16:
      for (std::size_t i = 0; i < count; ++i) {
        bf16 v;
        std::memcpy(&v.bits, t.data + 2 * (first + i), 2);
        out[i] = bf16_to_f32(v);
      }
      return;
    case DType::f16:
      for (std::size_t i = 0; i < count; ++i) {
        std::uint16_t h;
        std::memcpy(&h, t.data + 2 * (first + i), 2);
        out[i] = f16_to_f32(h);
      }
      return;
    default:
      throw LoadError(detail::where(t) + ": dtype " + std::string(dtype_name(t.dtype)) +
                      " cannot be read as float32 (expected F32, BF16 or F16)");
  }
}

// Converts a whole F32, BF16 or F16 tensor to float32 into `out` (which must hold element_count() values).
inline void read_f32(const TensorView& t, std::span<float> out) {
  const std::size_t n = t.element_count();
  if (out.size() != n)
    throw LoadError(detail::where(t) + ": has " + std::to_string(n) + " elements but the destination holds " +
                    std::to_string(out.size()));
  read_f32(t, 0, out);
}

inline std::vector<float> to_f32(const TensorView& t) {
  std::vector<float> out(t.element_count());
  read_f32(t, out);
  return out;
}

// Reads an I32 tensor, or an I64 one whose every value fits in int32 (token ids, positions).
inline std::vector<std::int32_t> to_i32(const TensorView& t) {
  const std::size_t n = t.element_count();
  if (t.size_bytes != n * dtype_size(t.dtype))
    throw LoadError(detail::where(t) + ": " + std::to_string(t.size_bytes) + " bytes for " + std::to_string(n) +
                    " elements of " + std::string(dtype_name(t.dtype)));
  std::vector<std::int32_t> out(n);
  if (t.dtype == DType::i32) {
    if (n) std::memcpy(out.data(), t.data, n * sizeof(std::int32_t));
  } else if (t.dtype == DType::i64) {
    for (std::size_t i = 0; i < n; ++i) {
      std::int64_t v;
      std::memcpy(&v, t.data + 8 * i, 8);
      if (v < std::numeric_limits<std::int32_t>::min() || v > std::numeric_limits<std::int32_t>::max())
        throw LoadError(detail::where(t) + ": element " + std::to_string(i) + " is " + std::to_string(v) +
                        ", outside the int32 range");
      out[i] = static_cast<std::int32_t>(v);
    }
  } else {
    throw LoadError(detail::where(t) + ": dtype " + std::string(dtype_name(t.dtype)) +
                    " cannot be read as int32 (expected I32 or I64)");
  }
  return out;
}

}  // namespace griffin::io
