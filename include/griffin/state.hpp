// The per-sequence state of a model: for B sequences, each recurrent layer's RG-LRU state h [E] and the last
// K-1 Conv1D inputs, each attention layer's keys and values (kv_cache.hpp), and each sequence's position;
// plus the scratch memory a forward pass works in.
//
// A State hands out no mutable insides. Callers read a sequence through rg_lru(), conv() and kv(), and change
// one only through restore(); snapshots and forks are written with visit_buffers() and restore(). The model
// (its blocks) reaches the layers through detail::StateAccess.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "griffin/aligned.hpp"
#include "griffin/config.hpp"
#include "griffin/kv_cache.hpp"

namespace griffin {

// The state of one layer for all B sequences of a State.
struct LayerState {
  BlockType type = BlockType::recurrent;
  CacheLineVector<float> rg_lru;   // [B, E]; threads split it by channels (griffin/aligned.hpp)
  CacheLineVector<float> conv;     // [B, K-1, E], oldest row first
  std::vector<KvCache> kv;         // [B]
};

// Describes the model a state was made for, so a state is never used with another model.
struct StateShape {
  Shape sizes;
  std::vector<BlockType> blocks;  // one per layer
  bool operator==(const StateShape&) const = default;

  template <class Config>
  static StateShape of(const Config& config) {
    StateShape s{config.sizes, {}};
    for (std::size_t i = 0; i < config.sizes.depth; ++i) s.blocks.push_back(config.block_type(i));
    return s;
  }
};

// Scratch memory for the forward pass: the residual stream and each block's intermediates, laid out from the
// model's sizes once (floats per token row of each buffer) in one cache-line-aligned arena. A state made for
// B sequences holds room for B rows, so decode steps allocate nothing; a longer prefill chunk grows it once.
// Contents never carry meaning between calls, so a copied State starts with an empty workspace.
class Workspace {
 public:
  enum Buffer : std::size_t {
    residual, normed, block_out,                                  // model: [rows, D]
    branch, lru_input, conv_out, input_gate, recurrence_gate,     // recurrent block: [rows, E]
    queries, keys, values, attention_out, rope_angles,            // attention block: H·Dh, Dh, Dh, H·Dh, R
    mlp_gate, mlp_up,                                             // MLP: [rows, F]
    buffer_count
  };
  Workspace() = default;
  explicit Workspace(const Shape& s) {
    const std::size_t rope_dims = s.head_dim;  // at most the whole head
    const std::size_t D = s.width, E = s.lru_width, HD = s.num_heads * s.head_dim, Dh = s.head_dim, F = s.mlp_width;
    width_ = {D, D, D, E, E, E, E, E, HD, Dh, Dh, HD, rope_dims, F, F};
    for (std::size_t b = 0; b < buffer_count; ++b) per_row_[b] = (width_[b] + 15) / 16 * 16;  // cache-line starts
  }
  Workspace(const Workspace& o) : width_(o.width_), per_row_(o.per_row_) {}
  Workspace& operator=(const Workspace& o) {
    width_ = o.width_;
    per_row_ = o.per_row_;
    rows_ = 0;
    arena_ = {};
    return *this;
  }
  Workspace(Workspace&&) noexcept = default;
  Workspace& operator=(Workspace&&) noexcept = default;

  // Room for chunks of `rows` token rows (allocates only when it grows).
  void reserve(std::size_t rows) {
    if (rows <= rows_) return;
    std::size_t total = 0;
    for (std::size_t n : per_row_) total += n * rows;
    arena_ = CacheLineArray<float>(total);
    positions_.assign(rows, 0);
    identity_.resize(rows);
    for (std::size_t i = 0; i < rows; ++i) identity_[i] = i;
    rows_ = rows;
  }
  // Buffer b for `rows` rows: rows × its width floats, contiguous (old contents are not meaningful).
  std::span<float> get(Buffer b, std::size_t rows) {
    reserve(rows);
    std::size_t offset = 0;
    for (std::size_t i = 0; i < b; ++i) offset += per_row_[i] * rows_;
    return {arena_.data() + offset, width_[b] * rows};
  }
  std::span<int> positions(std::size_t rows) {
    reserve(rows);
    return {positions_.data(), rows};
  }
  // The sequence indices 0 … n-1, for a forward pass over every sequence of the state.
  std::span<const std::size_t> all_sequences(std::size_t n) {
    reserve(n);
    return {identity_.data(), n};
  }
  std::size_t capacity_rows() const { return rows_; }

 private:
  std::array<std::size_t, buffer_count> width_{}, per_row_{};  // floats per row: used, and with its padding
  std::size_t rows_ = 0;
  CacheLineArray<float> arena_;
  std::vector<int> positions_;
  std::vector<std::size_t> identity_;
};

// One layer of one sequence, as visit_buffers shows it (read-only) and restore fills it.
template <bool Mutable>
struct SequenceLayer {
  template <class T>
  using span = std::span<std::conditional_t<Mutable, T, const T>>;
  std::size_t layer = 0;
  BlockType type = BlockType::recurrent;
  span<float> rg_lru, conv;  // recurrent layers: h [E] and the last K-1 Conv1D inputs [K-1, E]
  std::conditional_t<Mutable, KvCache*, const KvCache*> kv = nullptr;  // attention layers
};

namespace detail {
struct StateAccess;
}

class State {
 public:
  State() = default;
  State(StateShape shape, std::size_t batch)
      : shape_(std::move(shape)), positions_(batch, 0), workspace_(shape_.sizes) {
    if (batch == 0) throw std::invalid_argument("griffin::State: batch size must be at least 1");
    const Shape& s = shape_.sizes;
    layers_.resize(s.depth);
    for (std::size_t i = 0; i < s.depth; ++i) {
      auto& l = layers_[i];
      l.type = shape_.blocks[i];
      if (l.type == BlockType::recurrent) {
        l.rg_lru.assign(batch * s.lru_width, 0.0f);
        l.conv.assign(batch * (s.conv_width - 1) * s.lru_width, 0.0f);
      } else {
        const std::size_t cap = l.type == BlockType::global_attention ? dynamic : s.attention_window;
        l.kv.assign(batch, KvCache(s.head_dim, cap));
      }
    }
    workspace_.reserve(batch);
  }

  // A copy holds the same sequences; its scratch starts with room for decode steps.
  State(const State& o) : shape_(o.shape_), positions_(o.positions_), layers_(o.layers_), workspace_(o.workspace_) {
    workspace_.reserve(batch_size());
  }
  State& operator=(const State& o) {
    if (this != &o) *this = State(o);
    return *this;
  }
  State(State&&) noexcept = default;
  State& operator=(State&&) noexcept = default;

  std::size_t batch_size() const { return positions_.size(); }
  const StateShape& shape() const { return shape_; }
  // The number of tokens sequence b has consumed; the next token's position.
  std::int64_t position(std::size_t b = 0) const { return positions_[check(b)]; }

  // Sequence b's state in layer `layer` (read-only views).
  std::span<const float> rg_lru(std::size_t layer, std::size_t b) const {
    const std::size_t E = shape_.sizes.lru_width;
    return std::span<const float>(recurrent(layer).rg_lru).subspan(check(b) * E, E);
  }
  std::span<const float> conv(std::size_t layer, std::size_t b) const {
    const std::size_t n = (shape_.sizes.conv_width - 1) * shape_.sizes.lru_width;
    return std::span<const float>(recurrent(layer).conv).subspan(check(b) * n, n);
  }
  const KvCache& kv(std::size_t layer, std::size_t b) const {
    const LayerState& l = layers_.at(layer);
    if (l.type == BlockType::recurrent)
      throw std::invalid_argument("griffin::State: layer " + std::to_string(layer) + " is recurrent: it has no KV cache");
    return l.kv[check(b)];
  }
  // Bytes of state memory held (recurrent rows and KV storage as allocated).
  std::size_t storage_bytes() const {
    std::size_t n = 0;
    for (const auto& l : layers_) {
      n += (l.rg_lru.size() + l.conv.size()) * sizeof(float);
      for (const auto& c : l.kv) n += c.storage_bytes();
    }
    return n;
  }

  // Calls f(SequenceLayer<false>) for every layer of sequence b, in order: what snapshots store and forks copy.
  template <class F>
  void visit_buffers(std::size_t b, F&& f) const {
    check(b);
    for (std::size_t i = 0; i < layers_.size(); ++i) f(sequence_layer<false>(*this, i, b));
  }
  // Overwrites sequence b: its position, then every layer through fill(SequenceLayer<true>), in the order
  // visit_buffers gives them. fill writes the spans and assigns the KV cache. If fill throws, the layers before
  // it are already overwritten and the position is not: restore the sequence again or reset the state.
  template <class F>
  void restore(std::size_t b, std::int64_t position, F&& fill) {
    check(b);
    if (position < 0) throw std::invalid_argument("griffin::State: a position is at least 0, got " + std::to_string(position));
    for (std::size_t i = 0; i < layers_.size(); ++i) fill(sequence_layer<true>(*this, i, b));
    positions_[b] = position;
  }

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
  friend struct detail::StateAccess;

  std::size_t check(std::size_t b) const {
    if (b >= positions_.size())
      throw std::out_of_range("griffin::State: sequence " + std::to_string(b) + " is outside the batch of " +
                              std::to_string(positions_.size()));
    return b;
  }
  const LayerState& recurrent(std::size_t layer) const {
    const LayerState& l = layers_.at(layer);
    if (l.type != BlockType::recurrent)
      throw std::invalid_argument("griffin::State: layer " + std::to_string(layer) + " is an attention layer");
    return l;
  }
  template <bool Mutable, class Self>
  static SequenceLayer<Mutable> sequence_layer(Self& self, std::size_t i, std::size_t b) {
    auto& l = self.layers_[i];
    SequenceLayer<Mutable> s{i, l.type, {}, {}, nullptr};
    if (l.type == BlockType::recurrent) {
      const std::size_t E = self.shape_.sizes.lru_width, C = (self.shape_.sizes.conv_width - 1) * E;
      s.rg_lru = {l.rg_lru.data() + b * E, E};
      s.conv = {l.conv.data() + b * C, C};
    } else {
      s.kv = &l.kv[b];
    }
    return s;
  }

  StateShape shape_;
  std::vector<std::int64_t> positions_;
  std::vector<LayerState> layers_;
  Workspace workspace_;
};

namespace detail {
// What the model and its blocks need of a state: its layers and scratch, and moving positions on.
struct StateAccess {
  static LayerState& layer(State& s, std::size_t i) { return s.layers_[i]; }
  static Workspace& workspace(State& s) { return s.workspace_; }
  static void advance(State& s, std::size_t b, std::int64_t tokens) { s.positions_[b] += tokens; }
};
}  // namespace detail

}  // namespace griffin
