// Writing safetensors files, the layout safetensors.hpp reads. griffin itself only reads checkpoints; the
// writer is for test data, fuzz seeds and griffin_logits' dumps of logits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "griffin/dtype.hpp"
#include "griffin/io/error.hpp"
#include "griffin/io/safetensors.hpp"

namespace griffin::io {

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
