// Memory-mapping a file, so that a safetensors file's tensors are read where they lie instead of being
// copied into memory first. Every failure is a LoadError naming the file and the system's reason.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <system_error>
#include <utility>

#include "griffin/io/error.hpp"

namespace griffin::io {

namespace detail {

inline std::string errno_message(int err) { return std::generic_category().message(err); }

}  // namespace detail

// Drops the pages of a mapped range that lie wholly inside it from this process (they stay in the page cache
// and fault back in if read again): the loader releases each tensor once it is laid out in memory of its own,
// so a model's resident memory is its weights, not its weights plus the checkpoint.
inline void release_pages(std::span<const std::byte> range) {
  const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = (reinterpret_cast<std::uintptr_t>(range.data()) + page - 1) / page * page;
  const auto end = (reinterpret_cast<std::uintptr_t>(range.data()) + range.size()) / page * page;
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

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

}  // namespace griffin::io
