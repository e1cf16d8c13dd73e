// Reading and writing safetensors files (spec "Checkpoint layout"): an 8-byte little-endian header length
// N, N bytes of JSON naming each tensor's dtype, shape and byte range, then the data. A file is memory-mapped
// and every header entry is validated before any tensor is handed out, so a malformed or hostile file is a
// LoadError naming the file and the field, never an out-of-bounds read.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "griffin/dtype.hpp"

namespace griffin::io {

static_assert(std::endian::native == std::endian::little,
              "griffin::io reads safetensors (little-endian) data in place; big-endian hosts are not supported");

// Every problem with a checkpoint or config file. The message starts with the file (or directory) and
// names the tensor or field, with the expected and the actual value where there are two.
struct LoadError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ---- Element types ----

// The safetensors dtypes. Only f32, bf16 and f16 (weights) and i32/i64 (tokens) are converted by this
// library; the others are recognised so a file holding them still opens.
// clang-format off
enum class DType : std::uint8_t {
  f32, bf16, f16, i32, i64,                                  // read by griffin
  f64, i8, i16, u8, u16, u32, u64, boolean, f8_e4m3, f8_e5m2  // recognised
};

constexpr std::size_t dtype_size(DType t) {
  switch (t) {
    case DType::f64: case DType::i64: case DType::u64: return 8;
    case DType::f32: case DType::i32: case DType::u32: return 4;
    case DType::bf16: case DType::f16: case DType::i16: case DType::u16: return 2;
    case DType::i8: case DType::u8: case DType::boolean: case DType::f8_e4m3: case DType::f8_e5m2: return 1;
  }
  return 0;
}

// The spelling in a safetensors header ("F32", "BF16", ...).
constexpr std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "F32";
    case DType::bf16: return "BF16";
    case DType::f16: return "F16";
    case DType::i32: return "I32";
    case DType::i64: return "I64";
    case DType::f64: return "F64";
    case DType::i8: return "I8";
    case DType::i16: return "I16";
    case DType::u8: return "U8";
    case DType::u16: return "U16";
    case DType::u32: return "U32";
    case DType::u64: return "U64";
    case DType::boolean: return "BOOL";
    case DType::f8_e4m3: return "F8_E4M3";
    case DType::f8_e5m2: return "F8_E5M2";
  }
  return "?";
}
// clang-format on

inline constexpr DType all_dtypes[] = {DType::f32, DType::bf16, DType::f16,     DType::i32,     DType::i64,
                                       DType::f64, DType::i8,   DType::i16,     DType::u8,      DType::u16,
                                       DType::u32, DType::u64,  DType::boolean, DType::f8_e4m3, DType::f8_e5m2};

// The dtype spelled `name` in a header, or nothing if there is none.
constexpr std::optional<DType> dtype_from_name(std::string_view name) {
  for (DType t : all_dtypes)
    if (dtype_name(t) == name) return t;
  return std::nullopt;
}

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

inline std::string in_quotes(std::string_view s) {
  std::string out;  // appended piecewise: "\"" + std::string(s) trips a g++ 12 -Wrestrict false positive
  out.reserve(s.size() + 2);
  out += '"';
  out += s;
  out += '"';
  return out;
}

// Where a tensor came from, as the start of a message: "FILE: tensor "NAME"".
inline std::string where(const TensorView& t) {
  return (t.file.empty() ? std::string() : t.file + ": ") + "tensor " + in_quotes(t.name);
}

// The deepest nesting accepted in a header, an index or a config.json.
inline constexpr int max_json_depth = 64;

// Parses JSON, rejecting duplicate keys in any object (nlohmann keeps the last one silently, which would let
// a header name a tensor twice) and nesting deeper than max_json_depth. `top_level_noun` names the keys of
// the outermost object in messages ("tensor" for a safetensors header, "key" for config.json).
inline nlohmann::json parse_json_unique_keys(std::string_view text, const std::string& display_name,
                                             std::string_view top_level_noun) {
  using nlohmann::json;
  struct Frame {
    std::set<std::string, std::less<>> keys;
    std::string owner;  // the key this object is the value of ("" at top level)
  };
  std::vector<Frame> frames;
  std::string last_key;
  json::parser_callback_t check = [&](int depth, json::parse_event_t event, json& parsed) {
    // Real headers and configs nest three levels; a deeper document is refused while it is parsed, since
    // printing one (json_excerpt) or walking it recurses once per level and would overflow the stack.
    if (depth > max_json_depth)
      throw LoadError(display_name + ": JSON nested more than " + std::to_string(max_json_depth) + " levels deep");
    switch (event) {
      case json::parse_event_t::object_start:
        frames.push_back({{}, frames.empty() ? std::string() : last_key});
        break;
      case json::parse_event_t::object_end:
        if (!frames.empty()) frames.pop_back();
        break;
      case json::parse_event_t::key: {
        const auto& key = parsed.get_ref<const std::string&>();
        if (!frames.back().keys.insert(key).second) {
          if (frames.size() == 1)
            throw LoadError(display_name + ": duplicate " + std::string(top_level_noun) + " " + in_quotes(key));
          throw LoadError(display_name + ": duplicate key " + in_quotes(key) + " in " + in_quotes(frames.back().owner));
        }
        last_key = key;
        break;
      }
      default:
        break;
    }
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), check);
  } catch (const json::exception& e) {
    throw LoadError(display_name + ": invalid JSON: " + e.what());
  }
}

// A JSON value as it would be written, for messages (long values are cut).
inline std::string json_excerpt(const nlohmann::json& v) {
  std::string s = v.dump();
  if (s.size() > 80) s = s.substr(0, 77) + "...";
  return s;
}

inline std::string errno_message(int err) { return std::generic_category().message(err); }

}  // namespace detail

// ---- Memory-mapped files ----

// A whole file mapped read-only. An empty file maps to an empty span (mmap cannot map zero bytes).
class MappedFile {
 public:
  MappedFile() = default;

  static MappedFile open(const std::filesystem::path& path) {
    MappedFile f;
    f.path_ = path;
    const std::string name = path.string();
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw LoadError(name + ": cannot open: " + detail::errno_message(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      int err = errno;
      ::close(fd);
      throw LoadError(name + ": cannot stat: " + detail::errno_message(err));
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd);
      throw LoadError(name + ": not a regular file");
    }
    f.size_ = static_cast<std::size_t>(st.st_size);
    if (f.size_ > 0) {
      void* p = ::mmap(nullptr, f.size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        int err = errno;
        ::close(fd);
        throw LoadError(name + ": cannot map " + std::to_string(f.size_) + " bytes: " + detail::errno_message(err));
      }
      f.addr_ = p;
    }
    ::close(fd);  // the mapping keeps the file alive
    return f;
  }

  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile(MappedFile&& o) noexcept
      : addr_(std::exchange(o.addr_, nullptr)), size_(std::exchange(o.size_, 0)), path_(std::move(o.path_)) {}
  MappedFile& operator=(MappedFile&& o) noexcept {
    if (this != &o) {
      unmap();
      addr_ = std::exchange(o.addr_, nullptr);
      size_ = std::exchange(o.size_, 0);
      path_ = std::move(o.path_);
    }
    return *this;
  }
  ~MappedFile() { unmap(); }

  const std::byte* data() const { return static_cast<const std::byte*>(addr_); }
  std::size_t size() const { return size_; }
  std::span<const std::byte> bytes() const { return {data(), size_}; }
  const std::filesystem::path& path() const { return path_; }

 private:
  void unmap() {
    if (addr_) ::munmap(addr_, size_);
    addr_ = nullptr;
    size_ = 0;
  }

  void* addr_ = nullptr;
  std::size_t size_ = 0;
  std::filesystem::path path_;
};

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
    return "[" + std::to_string(begin) + ", " + std::to_string(begin + t.size_bytes) + ")";
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

// ---- A model directory ----

// The weights of a Hugging Face model directory: one model.safetensors, or the shards that
// model.safetensors.index.json names. Every shard is validated on open, and the index must agree with the
// shards exactly (each listed tensor in its shard, no shard tensor unlisted).
class Checkpoint {
 public:
  static Checkpoint open(const std::filesystem::path& dir) {
    namespace fs = std::filesystem;
    Checkpoint c;
    c.dir_ = dir;
    const fs::path index_path = dir / "model.safetensors.index.json";
    const fs::path single_path = dir / "model.safetensors";
    std::error_code ec;
    if (fs::exists(index_path, ec)) {
      c.open_sharded(index_path);
    } else if (fs::exists(single_path, ec)) {
      c.shards_.push_back(SafetensorsFile::open(single_path));
      for (const TensorView& t : c.shards_.back().tensors()) c.by_name_.emplace(t.name, &t);
    } else {
      throw LoadError(dir.string() + ": no model.safetensors or model.safetensors.index.json in this directory");
    }
    for (const auto& shard : c.shards_)
      for (const auto& [key, value] : shard.metadata()) c.metadata_.emplace(key, value);  // first shard wins
    return c;
  }

  Checkpoint(Checkpoint&&) noexcept = default;
  Checkpoint& operator=(Checkpoint&&) noexcept = default;
  Checkpoint(const Checkpoint&) = delete;  // the views point into the shards' mappings
  Checkpoint& operator=(const Checkpoint&) = delete;

  // The tensor called `name`; LoadError "DIR: missing tensor "NAME"" if there is none.
  const TensorView& get(std::string_view name) const {
    if (const TensorView* t = find(name)) return *t;
    throw LoadError(dir_.string() + ": missing tensor " + detail::in_quotes(name));
  }
  const TensorView* find(std::string_view name) const {
    auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : it->second;
  }
  // Every tensor name, sorted.
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    out.reserve(by_name_.size());
    for (const auto& [name, view] : by_name_) out.push_back(name);
    return out;
  }
  // The shards' __metadata__ merged (where two shards disagree on a key, the first shard by name wins).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::filesystem::path& dir() const { return dir_; }
  const std::vector<SafetensorsFile>& shards() const { return shards_; }

 private:
  Checkpoint() = default;

  void open_sharded(const std::filesystem::path& index_path) {
    namespace fs = std::filesystem;
    const std::string index_name = index_path.string();

    MappedFile mapped = MappedFile::open(index_path);
    if (mapped.size() > SafetensorsFile::max_header_bytes)
      fail_in(index_name, "index is " + std::to_string(mapped.size()) + " bytes, more than the limit of " +
                              std::to_string(SafetensorsFile::max_header_bytes));
    std::string_view text(reinterpret_cast<const char*>(mapped.data()), mapped.size());
    nlohmann::json index = detail::parse_json_unique_keys(text, index_name, "key");
    if (!index.is_object()) fail_in(index_name, "index is not a JSON object but " + detail::json_excerpt(index));
    auto wm = index.find("weight_map");
    if (wm == index.end()) fail_in(index_name, "missing weight_map");
    if (!wm->is_object()) fail_in(index_name, "weight_map is not an object but " + detail::json_excerpt(*wm));
    if (wm->empty()) fail_in(index_name, "weight_map is empty");

    std::map<std::string, std::string> tensor_to_shard;
    std::set<std::string> shard_names;
    for (const auto& [tensor, shard] : wm->items()) {
      if (!shard.is_string())
        fail_in(index_name, "weight_map: tensor " + detail::in_quotes(tensor) + " maps to " +
                                detail::json_excerpt(shard) + ", not a file name");
      const auto& file = shard.get_ref<const std::string&>();
      // A shard is a file beside the index: no directories, so an index cannot reach outside `dir`.
      if (file.empty() || file == "." || file == ".." || file.find('/') != std::string::npos ||
          file.find('\\') != std::string::npos)
        fail_in(index_name, "weight_map: tensor " + detail::in_quotes(tensor) + " names shard " +
                                detail::in_quotes(file) + ", which is not a plain file name");
      tensor_to_shard.emplace(tensor, file);
      shard_names.insert(file);
    }

    std::map<std::string, std::size_t> shard_index;
    for (const std::string& file : shard_names) {
      const fs::path p = dir_ / file;
      std::error_code ec;
      if (!fs::exists(p, ec))
        fail_in(index_name, "shard " + detail::in_quotes(file) + " named by weight_map does not exist (expected " +
                                p.string() + ")");
      shard_index.emplace(file, shards_.size());
      shards_.push_back(SafetensorsFile::open(p));
    }
    // Only now that shards_ is complete are pointers into it stable.
    for (const auto& [tensor, file] : tensor_to_shard) {
      const TensorView* t = shards_[shard_index.at(file)].find(tensor);
      if (!t)
        fail_in(index_name, "tensor " + detail::in_quotes(tensor) + " is not in shard " + detail::in_quotes(file) +
                                " where weight_map puts it");
      by_name_.emplace(tensor, t);
    }
    for (const auto& [file, i] : shard_index)
      for (const TensorView& t : shards_[i].tensors()) {
        auto it = tensor_to_shard.find(t.name);
        if (it == tensor_to_shard.end())
          fail_in(index_name, "shard " + detail::in_quotes(file) + " holds tensor " + detail::in_quotes(t.name) +
                                  ", which weight_map does not list");
        if (it->second != file)
          fail_in(index_name, "tensor " + detail::in_quotes(t.name) + " is in shard " + detail::in_quotes(file) +
                                  " but weight_map puts it in " + detail::in_quotes(it->second));
      }
  }

  [[noreturn]] static void fail_in(const std::string& file, const std::string& what) {
    throw LoadError(file + ": " + what);
  }

  std::filesystem::path dir_;
  std::vector<SafetensorsFile> shards_;
  std::map<std::string, const TensorView*, std::less<>> by_name_;
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

// ---- Writing ----

struct TensorToWrite {
  std::string name;
  DType dtype = DType::f32;
  std::vector<std::size_t> shape;
  std::span<const std::byte> bytes;
};

namespace detail {

// The header (length prefix included, padded with spaces so the data section starts 8-byte aligned) and
// the data section size. Tensors are stored contiguously in the given order, as the reference safetensors
// library requires. Throws std::invalid_argument for a tensor that cannot be written.
inline std::string safetensors_header(std::span<const TensorToWrite> tensors,
                                      const std::map<std::string, std::string>& metadata, std::size_t& data_size) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::size_t offset = 0;
  for (const TensorToWrite& t : tensors) {
    if (t.name.empty() || t.name == "__metadata__")
      throw std::invalid_argument("safetensors: invalid tensor name " + in_quotes(t.name));
    if (header.contains(t.name)) throw std::invalid_argument("safetensors: duplicate tensor " + in_quotes(t.name));
    auto expected = byte_size(t.shape, t.dtype);
    if (!expected || *expected != t.bytes.size())
      throw std::invalid_argument("safetensors: tensor " + in_quotes(t.name) + " has shape " + shape_string(t.shape) +
                                  " of " + std::string(dtype_name(t.dtype)) + " (" +
                                  (expected ? std::to_string(*expected) : std::string("too many")) + " bytes) but " +
                                  std::to_string(t.bytes.size()) + " bytes were given");
    header[t.name] = {{"dtype", std::string(dtype_name(t.dtype))},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + t.bytes.size()}}};
    offset += t.bytes.size();
  }
  data_size = offset;
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {  // a name or metadata value that is not UTF-8
    throw std::invalid_argument(std::string("safetensors: cannot write the header: ") + e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  std::uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) out[static_cast<std::size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xffu);
  return out + text;
}

}  // namespace detail

// A complete safetensors file in memory.
inline std::vector<std::byte> serialize_safetensors(std::span<const TensorToWrite> tensors,
                                                    const std::map<std::string, std::string>& metadata = {}) {
  std::size_t data_size = 0;
  const std::string header = detail::safetensors_header(tensors, metadata, data_size);
  std::vector<std::byte> out(header.size() + data_size);
  std::memcpy(out.data(), header.data(), header.size());
  std::size_t at = header.size();
  for (const TensorToWrite& t : tensors) {
    if (!t.bytes.empty()) std::memcpy(out.data() + at, t.bytes.data(), t.bytes.size());
    at += t.bytes.size();
  }
  return out;
}

// Writes a safetensors file (streamed, so the tensors are not copied). Throws std::invalid_argument for
// a tensor that cannot be written and std::runtime_error if the file cannot be written.
inline void write_safetensors(const std::filesystem::path& path, std::span<const TensorToWrite> tensors,
                              const std::map<std::string, std::string>& metadata = {}) {
  std::size_t data_size = 0;
  const std::string header = detail::safetensors_header(tensors, metadata, data_size);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw std::runtime_error(path.string() + ": cannot open for writing");
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  for (const TensorToWrite& t : tensors)
    out.write(reinterpret_cast<const char*>(t.bytes.data()), static_cast<std::streamsize>(t.bytes.size()));
  out.close();
  if (!out) throw std::runtime_error(path.string() + ": write failed");
}

}  // namespace griffin::io
