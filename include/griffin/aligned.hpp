// Cache-line-aligned storage for the buffers that threads split between them. The pool splits activations
// and the [B, E] recurrent state at channel or head boundaries that are whole cache lines from channel 0;
// malloc aligns large blocks to 16 bytes only, so without this the line at each split would be written by
// both threads, and for the RG-LRU scan's state passed between the cores on every row (docs/performance.md,
// "Design notes").
#pragma once

#include <cstddef>
#include <new>
#include <vector>

namespace griffin {

inline constexpr std::size_t cache_line_bytes = 64;

template <class T>
struct CacheLineAllocator {
  using value_type = T;
  CacheLineAllocator() = default;
  template <class U>
  CacheLineAllocator(const CacheLineAllocator<U>&) noexcept {}

  T* allocate(std::size_t n) {
    if (n > std::size_t(-1) / sizeof(T)) throw std::bad_array_new_length();
    return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(cache_line_bytes)));
  }
  void deallocate(T* p, std::size_t n) noexcept {
    ::operator delete(p, n * sizeof(T), std::align_val_t(cache_line_bytes));
  }
  template <class U>
  bool operator==(const CacheLineAllocator<U>&) const noexcept {
    return true;  // stateless: any one frees what another allocated
  }
};

// A std::vector whose data() starts on a cache line.
template <class T>
using CacheLineVector = std::vector<T, CacheLineAllocator<T>>;

// A fixed-size array of trivial T on a cache line, left uninitialised: for buffers that are written in full
// before they are read (a weight matrix of gigabytes would otherwise be written twice).
template <class T>
class CacheLineArray {
 public:
  CacheLineArray() = default;
  explicit CacheLineArray(std::size_t n) : data_(n ? CacheLineAllocator<T>().allocate(n) : nullptr), size_(n) {}
  CacheLineArray(CacheLineArray&& o) noexcept : data_(o.data_), size_(o.size_) { o.data_ = nullptr, o.size_ = 0; }
  CacheLineArray& operator=(CacheLineArray&& o) noexcept {
    if (this != &o) {
      release();
      data_ = o.data_, size_ = o.size_;
      o.data_ = nullptr, o.size_ = 0;
    }
    return *this;
  }
  CacheLineArray(const CacheLineArray&) = delete;
  CacheLineArray& operator=(const CacheLineArray&) = delete;
  ~CacheLineArray() { release(); }

  T* data() { return data_; }
  const T* data() const { return data_; }
  std::size_t size() const { return size_; }

 private:
  void release() {
    if (data_) CacheLineAllocator<T>().deallocate(data_, size_);
  }
  T* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace griffin
