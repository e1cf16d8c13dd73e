// Keys and values of one sequence in one attention layer. With a finite capacity it is a ring holding the most
// recent `capacity` keys; with capacity = dynamic it grows (global attention). Storage grows with the keys
// actually appended (doubling, up to the capacity), so a state costs what its sequences have used, not what
// a config's attention_window_size claims; that growth is the only allocation a decode step can make.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "griffin/extent.hpp"
#include "griffin/kernels/attention.hpp"

namespace griffin {

class KvCache {
 public:
  // The storage as it lies: `slots` rows of keys, values and positions in slot order, `count` of them in
  // use, the oldest at `head` once the ring is full. Snapshots keep exactly this, so a restored ring puts its
  // keys in the same segments and attention adds them in the same order.
  struct Ring {
    std::size_t capacity = 0, slots = 0, count = 0, head = 0;
    std::span<const float> keys, values;  // [slots, head_dim]
    std::span<const int> positions;       // [slots]
  };

  KvCache() = default;
  KvCache(std::size_t head_dim, std::size_t capacity) : head_dim_(head_dim), capacity_(capacity) {}

  std::size_t size() const { return count_; }
  std::size_t capacity() const { return capacity_; }
  std::size_t head_dim() const { return head_dim_; }
  // Bytes of storage held (what the slots allocated so far cost).
  std::size_t storage_bytes() const { return slots_ * (2 * head_dim_ * sizeof(float) + sizeof(int)); }

  // The cached keys, oldest first, as at most two contiguous segments.
  std::size_t segments(kernels::KeySegment* out) const {
    if (count_ == 0) return 0;
    if (count_ < slots_ || head_ == 0) {
      out[0] = segment(0, count_);
      return 1;
    }
    out[0] = segment(head_, slots_ - head_);
    out[1] = segment(0, head_);
    return 2;
  }

  // Appends n keys/values (rows of head_dim) with their positions; a full ring drops the oldest.
  void append(const float* keys, const float* values, const int* positions, std::size_t n) {
    if (capacity_ == dynamic) {
      if (count_ + n > slots_) reserve(std::max(count_ + n, 2 * slots_));
      copy_rows(count_, keys, values, positions, n);
      count_ += n;
      return;
    }
    if (n >= capacity_) {  // only the last `capacity` survive
      keys += (n - capacity_) * head_dim_;
      values += (n - capacity_) * head_dim_;
      positions += n - capacity_;
      n = capacity_;
      head_ = 0;
      count_ = 0;
    }
    // Until the ring is full its entries are in order from slot 0 (head_ is 0), so growing keeps them.
    if (count_ + n > slots_ && slots_ < capacity_) reserve(std::min(capacity_, std::max(count_ + n, 2 * slots_)));
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t slot = (count_ < slots_) ? count_ : head_;
      copy_rows(slot, keys + i * head_dim_, values + i * head_dim_, positions + i, 1);
      if (count_ < slots_) {
        ++count_;
      } else {
        head_ = (head_ + 1) % slots_;
      }
    }
  }

  void clear() { count_ = head_ = 0; }

  Ring ring() const {
    return {capacity_, slots_, count_, head_, {keys_.data(), slots_ * head_dim_}, {values_.data(), slots_ * head_dim_},
            {positions_.data(), slots_}};
  }

  // Takes another ring's contents (a fork, or a snapshot's), checking that they describe a ring of this
  // cache: the same capacity, a count and head within its slots, the buffers of the right sizes.
  void assign(const Ring& r) {
    const bool ring_ok = r.count <= r.slots && (r.slots == 0 ? r.head == 0 : r.head < r.slots) &&
                         (capacity_ == dynamic ? r.head == 0 : r.slots <= capacity_ && (r.slots == capacity_ || r.head == 0));
    if (r.capacity != capacity_ || !ring_ok || r.keys.size() != r.slots * head_dim_ ||
        r.values.size() != r.slots * head_dim_ || r.positions.size() != r.slots)
      throw std::invalid_argument("griffin::KvCache: not a ring of this cache (capacity " + std::to_string(r.capacity) +
                                  ", " + std::to_string(r.count) + " keys in " + std::to_string(r.slots) +
                                  " slots, oldest at " + std::to_string(r.head) + ")");
    reserve(r.slots);
    std::copy(r.keys.begin(), r.keys.end(), keys_.begin());
    std::copy(r.values.begin(), r.values.end(), values_.begin());
    std::copy(r.positions.begin(), r.positions.end(), positions_.begin());
    count_ = r.count;
    head_ = r.head;
  }

 private:
  kernels::KeySegment segment(std::size_t first, std::size_t n) const {
    return {keys_.data() + first * head_dim_, values_.data() + first * head_dim_, positions_.data() + first, nullptr, n};
  }
  void reserve(std::size_t slots) {
    slots_ = slots;
    keys_.resize(slots * head_dim_);
    values_.resize(slots * head_dim_);
    positions_.resize(slots);
  }
  void copy_rows(std::size_t slot, const float* k, const float* v, const int* pos, std::size_t n) {
    std::memcpy(keys_.data() + slot * head_dim_, k, n * head_dim_ * sizeof(float));
    std::memcpy(values_.data() + slot * head_dim_, v, n * head_dim_ * sizeof(float));
    std::memcpy(positions_.data() + slot, pos, n * sizeof(int));
  }

  std::size_t head_dim_ = 0;
  std::size_t capacity_ = 0;
  std::size_t slots_ = 0;
  std::size_t count_ = 0;
  std::size_t head_ = 0;  // oldest entry once the ring is full
  std::vector<float> keys_, values_;
  std::vector<int> positions_;
};

}  // namespace griffin
