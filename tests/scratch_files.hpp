// Shared by the io tests (test_safetensors, test_checkpoint, test_config_json): a scratch directory for the
// files they write, removed at exit, and writing or reading a whole file.
#pragma once

#include <doctest/doctest.h>
#include <unistd.h>

#include <cstddef>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <span>
#include <string>
#include <system_error>
#include <vector>

namespace griffin::test {

// A scratch directory for this process, removed at exit.
struct ScratchDir {
  std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("griffin-test-io-" + std::to_string(::getpid()));
  ScratchDir() { std::filesystem::create_directories(path); }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};
// A fresh subdirectory `name` of the scratch directory.
inline std::filesystem::path scratch(const std::string& name) {
  static ScratchDir dir;
  std::filesystem::path p = dir.path / name;
  std::filesystem::create_directories(p);
  return p;
}

inline void write_file(const std::filesystem::path& p, const void* data, std::size_t size) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
  REQUIRE(out.good());
}
inline void write_text(const std::filesystem::path& p, const std::string& text) {
  write_file(p, text.data(), text.size());
}
inline std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The bytes of a vector, as a tensor to write.
template <class T>
std::span<const std::byte> as_bytes(const std::vector<T>& v) {
  return std::as_bytes(std::span<const T>(v));
}

}  // namespace griffin::test
