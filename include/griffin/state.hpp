// The per-sequence state of a model: for B sequences, each recurrent layer's RG-LRU state h [E] and the
// last K-1 Conv1D inputs, each attention layer's keys and values (a ring of the last W for local
// attention, everything for global attention), and each sequence's position.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "griffin/aligned.hpp"
#include "griffin/config.hpp"
#include "griffin/kernels/attention.hpp"

namespace griffin {

// Keys and values of one sequence in one attention layer. With a finite capacity it is a ring holding the
// most recent `capacity` keys; with capacity = dynamic it grows (global attention). Storage grows with the
// keys actually appended (doubling, up to the capacity), so a state costs what its sequences have used, not
// what a config's attention_window_size claims.
class KvCache {
 public:
  KvCache() = default;
  KvCache(std::size_t head_dim, std::size_t capacity) : head_dim_(head_dim), capacity_(capacity) {}

  std::size_t size() const { return count_; }
  std::size_t capacity() const { return capacity_; }
  std::size_t head_dim() const { return head_dim_; }

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

  // Raw access for snapshots: the slots in storage order plus the bookkeeping.
  std::size_t slots() const { return slots_; }
  std::size_t head() const { return head_; }
  std::vector<float>& key_storage() { return keys_; }
  std::vector<float>& value_storage() { return values_; }
  std::vector<int>& position_storage() { return positions_; }
  const std::vector<float>& key_storage() const { return keys_; }
  const std::vector<float>& value_storage() const { return values_; }
  const std::vector<int>& position_storage() const { return positions_; }
  // Sets the number of slots (at most the capacity) before a snapshot fills them and calls restore().
  void resize_slots(std::size_t slots) { reserve(slots); }
  void restore(std::size_t count, std::size_t head) {
    count_ = count;
    head_ = head;
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

// The state of one layer for all B sequences of a State.
struct LayerState {
  BlockType type = BlockType::recurrent;
  CacheLineVector<float> rg_lru;   // [B, E]; threads split it by channels (griffin/aligned.hpp)
  CacheLineVector<float> conv;     // [B, K-1, E], oldest row first
  std::vector<KvCache> kv;         // [B]
};

// Describes the model a state was made for, so a state is never used with another model.
struct StateShape {
  std::size_t vocab_size = 0, width = 0, lru_width = 0, head_dim = 0, conv_width = 0, attention_window = 0,
              depth = 0;
  std::vector<BlockType> blocks;
  bool operator==(const StateShape&) const = default;
};

// Scratch memory for the forward pass: the residual stream, each block's intermediates. Kept by the State
// so that a prefill or decode step allocates nothing once the buffers have grown to its chunk size (a
// fresh multi-megabyte buffer per layer costs page faults and zeroing every time). Contents never carry
// meaning between calls, so copying a State starts the copy with an empty workspace.
class Workspace {
 public:
  enum Buffer : std::size_t {
    residual, normed, block_out,                                  // model: [B·T, D]
    branch, lru_input, conv_out, input_gate, recurrence_gate,     // recurrent block: [B·T, E]
    queries, keys, values, attention_out,                         // attention block
    mlp_gate, mlp_up,                                             // MLP: [B·T, F]
    buffer_count
  };
  Workspace() = default;
  Workspace(const Workspace&) {}
  Workspace& operator=(const Workspace&) { return *this; }
  Workspace(Workspace&&) noexcept = default;
  Workspace& operator=(Workspace&&) noexcept = default;

  // n floats of buffer b, grown if needed (old contents are not meaningful).
  std::span<float> get(Buffer b, std::size_t n) {
    auto& v = buffers_[b];
    if (v.size() < n) v.resize(n);
    return {v.data(), n};
  }
  void release() {
    for (auto& v : buffers_) CacheLineVector<float>().swap(v);
  }

 private:
  // Cache-line aligned: threads split each buffer by columns (griffin/aligned.hpp).
  std::array<CacheLineVector<float>, buffer_count> buffers_;
};

class State {
 public:
  State() = default;
  State(StateShape shape, std::size_t batch) : shape_(std::move(shape)), positions_(batch, 0) {
    if (batch == 0) throw std::invalid_argument("griffin::State: batch size must be at least 1");
    layers_.resize(shape_.depth);
    for (std::size_t i = 0; i < shape_.depth; ++i) {
      auto& l = layers_[i];
      l.type = shape_.blocks[i];
      if (l.type == BlockType::recurrent) {
        l.rg_lru.assign(batch * shape_.lru_width, 0.0f);
        l.conv.assign(batch * (shape_.conv_width - 1) * shape_.lru_width, 0.0f);
      } else {
        const std::size_t cap = l.type == BlockType::global_attention ? dynamic : shape_.attention_window;
        l.kv.assign(batch, KvCache(shape_.head_dim, cap));
      }
    }
  }

  std::size_t batch_size() const { return positions_.size(); }
  // The number of tokens sequence b has consumed; the next token's position.
  std::int64_t position(std::size_t b = 0) const { return positions_.at(b); }
  const StateShape& shape() const { return shape_; }
  std::vector<LayerState>& layers() { return layers_; }
  const std::vector<LayerState>& layers() const { return layers_; }
  std::vector<std::int64_t>& positions() { return positions_; }
  const std::vector<std::int64_t>& positions() const { return positions_; }
  // Scratch for the model's forward pass (see Workspace).
  Workspace& workspace() { return workspace_; }

  // Back to position 0 with zero state (keeps the memory).
  void reset() {
    for (auto& l : layers_) {
      std::fill(l.rg_lru.begin(), l.rg_lru.end(), 0.0f);
      std::fill(l.conv.begin(), l.conv.end(), 0.0f);
      for (auto& c : l.kv) c.clear();
    }
    std::fill(positions_.begin(), positions_.end(), 0);
  }

 private:
  StateShape shape_;
  std::vector<std::int64_t> positions_;
  std::vector<LayerState> layers_;
  Workspace workspace_;
};

}  // namespace griffin
