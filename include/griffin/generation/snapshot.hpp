// Saving a State to bytes or a file and restoring it, and forking states: copying one sequence into a
// batch-1 state, broadcasting a batch-1 state to B sequences. A restored or forked state continues
// bit-identically to the original, so a prompt is read once and continued many times.
//
// Snapshot format (little-endian), version 1:
//   magic "GRIFSNAP" · u32 version · u32 reserved(0)
//   shape: u64 vocab_size, width, lru_width, head_dim, conv_width, attention_window, depth · u8 block[depth]
//   u64 batch · i64 position[batch]
//   per layer: recurrent → f32 rg_lru[B·E] · f32 conv[B·(K-1)·E]
//              attention → per sequence: u64 capacity, slots, count, head · f32 keys[slots·Dh] ·
//                          f32 values[slots·Dh] · i32 positions[slots]
//   u64 V' · f32 logits[B·V'] (the next-token logits kept with the state, V' = 0 when none)
//   u32 length · model id bytes (identifies the checkpoint; empty = not recorded)
//   u64 FNV-1a hash of everything before it
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "griffin/config.hpp"
#include "griffin/state.hpp"

namespace griffin {

static_assert(std::endian::native == std::endian::little, "griffin snapshots are written on little-endian machines");

// Anything wrong with a snapshot: not one, another version, truncated, corrupted, or for another model.
struct SnapshotError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A state together with what is needed to continue from it: the logits for the next token (so sampling
// resumes without re-running the last token) and an identifier of the checkpoint it belongs to.
struct Snapshot {
  State state;
  std::vector<float> logits;  // [B, V], or empty
  std::string model_id;
};

inline constexpr char snapshot_magic[8] = {'G', 'R', 'I', 'F', 'S', 'N', 'A', 'P'};
inline constexpr std::uint32_t snapshot_version = 1;

namespace detail {

inline std::uint64_t fnv1a(std::span<const std::byte> bytes, std::uint64_t h = 0xcbf29ce484222325ull) {
  for (std::byte b : bytes) h = (h ^ static_cast<std::uint64_t>(b)) * 0x100000001b3ull;
  return h;
}

class SnapshotWriter {
 public:
  template <class T>
  void put(T v) {
    static_assert(std::is_trivially_copyable_v<T>);
    const auto* p = reinterpret_cast<const std::byte*>(&v);
    out_.insert(out_.end(), p, p + sizeof(T));
  }
  template <class T>
  void put_array(std::span<const T> values) {
    const auto* p = reinterpret_cast<const std::byte*>(values.data());
    out_.insert(out_.end(), p, p + values.size_bytes());
  }
  std::vector<std::byte>& bytes() { return out_; }

 private:
  std::vector<std::byte> out_;
};

class SnapshotReader {
 public:
  explicit SnapshotReader(std::span<const std::byte> in) : in_(in) {}
  template <class T>
  T get(const char* what) {
    T v;
    need(sizeof(T), what);
    std::memcpy(&v, in_.data() + at_, sizeof(T));
    at_ += sizeof(T);
    return v;
  }
  template <class T>
  void get_array(std::span<T> out, const char* what) {
    need(out.size_bytes(), what);
    std::memcpy(out.data(), in_.data() + at_, out.size_bytes());
    at_ += out.size_bytes();
  }
  std::size_t offset() const { return at_; }
  std::size_t remaining() const { return in_.size() - at_; }

 private:
  void need(std::size_t n, const char* what) const {
    if (in_.size() - at_ < n)
      throw SnapshotError("griffin snapshot: truncated: " + std::string(what) + " needs " + std::to_string(n) +
                          " bytes at offset " + std::to_string(at_) + " but only " + std::to_string(in_.size() - at_) +
                          " remain (of " + std::to_string(in_.size()) + ")");
  }
  std::span<const std::byte> in_;
  std::size_t at_ = 0;
};

// Says which field of two shapes differs, for "this snapshot is for another model".
inline std::string shape_difference(const StateShape& saved, const StateShape& model) {
  auto field = [](const char* name, std::size_t a, std::size_t b) -> std::string {
    if (a == b) return {};
    return std::string(name) + " is " + std::to_string(a) + " in the snapshot but " + std::to_string(b) + " in the model";
  };
  for (auto s : {field("vocab_size", saved.vocab_size, model.vocab_size), field("hidden_size", saved.width, model.width),
                 field("lru_width", saved.lru_width, model.lru_width), field("head_dim", saved.head_dim, model.head_dim),
                 field("conv1d_width", saved.conv_width, model.conv_width),
                 field("attention_window_size", saved.attention_window, model.attention_window),
                 field("num_hidden_layers", saved.depth, model.depth)})
    if (!s.empty()) return s;
  for (std::size_t i = 0; i < saved.blocks.size() && i < model.blocks.size(); ++i)
    if (saved.blocks[i] != model.blocks[i])
      return "layer " + std::to_string(i) + " is " + std::string(block_type_name(saved.blocks[i])) + " in the snapshot but " +
             std::string(block_type_name(model.blocks[i])) + " in the model";
  return "the shapes differ";
}

}  // namespace detail

// Serialises a state (and optionally next-token logits [B, V] and a model id) into bytes.
inline std::vector<std::byte> save_snapshot(const State& state, std::span<const float> logits = {},
                                            std::string_view model_id = {}) {
  const StateShape& shape = state.shape();
  const std::size_t B = state.batch_size();
  if (!logits.empty() && logits.size() != B * shape.vocab_size)
    throw SnapshotError("griffin snapshot: logits must be [batch, vocab] = " + std::to_string(B * shape.vocab_size) +
                        " floats, got " + std::to_string(logits.size()));
  detail::SnapshotWriter w;
  w.put_array(std::span<const char>(snapshot_magic));
  w.put(snapshot_version);
  w.put(std::uint32_t{0});
  for (std::size_t v : {shape.vocab_size, shape.width, shape.lru_width, shape.head_dim, shape.conv_width,
                        shape.attention_window, shape.depth})
    w.put(static_cast<std::uint64_t>(v));
  for (BlockType b : shape.blocks) w.put(static_cast<std::uint8_t>(b));
  w.put(static_cast<std::uint64_t>(B));
  for (std::int64_t p : state.positions()) w.put(p);
  for (const LayerState& l : state.layers()) {
    if (l.type == BlockType::recurrent) {
      w.put_array(std::span<const float>(l.rg_lru));
      w.put_array(std::span<const float>(l.conv));
    } else {
      for (const KvCache& c : l.kv) {
        const std::size_t used = c.slots();  // storage in slot order, so the ring layout is kept exactly
        w.put(static_cast<std::uint64_t>(c.capacity()));
        w.put(static_cast<std::uint64_t>(used));
        w.put(static_cast<std::uint64_t>(c.size()));
        w.put(static_cast<std::uint64_t>(c.head()));
        w.put_array(std::span<const float>(c.key_storage().data(), used * shape.head_dim));
        w.put_array(std::span<const float>(c.value_storage().data(), used * shape.head_dim));
        w.put_array(std::span<const int>(c.position_storage().data(), used));
      }
    }
  }
  w.put(static_cast<std::uint64_t>(logits.empty() ? 0 : shape.vocab_size));
  w.put_array(logits);
  w.put(static_cast<std::uint32_t>(model_id.size()));
  w.put_array(std::span<const char>(model_id.data(), model_id.size()));
  w.put(detail::fnv1a(w.bytes()));
  return std::move(w.bytes());
}

// Restores a snapshot, checking every field. With `expected` (the model's state shape, from
// model.new_state().shape()) a snapshot of another model is refused naming the field that differs;
// with `expected_model_id` a snapshot recorded for another checkpoint is refused.
inline Snapshot load_snapshot(std::span<const std::byte> bytes, const StateShape* expected = nullptr,
                              std::string_view expected_model_id = {}) {
  detail::SnapshotReader r(bytes);
  char magic[8];
  r.get_array(std::span<char>(magic), "the magic");
  if (std::memcmp(magic, snapshot_magic, 8) != 0)
    throw SnapshotError("griffin snapshot: not a griffin state snapshot (the file does not start with \"GRIFSNAP\")");
  const auto version = r.get<std::uint32_t>("the version");
  if (version != snapshot_version)
    throw SnapshotError("griffin snapshot: version " + std::to_string(version) + " is not supported (this build reads version " +
                        std::to_string(snapshot_version) + ")");
  (void)r.get<std::uint32_t>("the reserved field");
  if (bytes.size() < 8) throw SnapshotError("griffin snapshot: truncated");
  // The checksum first, so a corrupted file is reported as such rather than as a strange field.
  std::uint64_t stored_hash;
  std::memcpy(&stored_hash, bytes.data() + bytes.size() - 8, 8);

  StateShape shape;
  for (std::size_t* f : {&shape.vocab_size, &shape.width, &shape.lru_width, &shape.head_dim, &shape.conv_width,
                         &shape.attention_window, &shape.depth})
    *f = static_cast<std::size_t>(r.get<std::uint64_t>("the state shape"));
  constexpr std::size_t sane = std::size_t(1) << 32;
  for (std::size_t v : {shape.vocab_size, shape.width, shape.lru_width, shape.head_dim, shape.conv_width, shape.depth})
    if (v == 0 || v > sane) throw SnapshotError("griffin snapshot: corrupted (a state size is " + std::to_string(v) + ")");
  if (shape.depth > r.remaining()) throw SnapshotError("griffin snapshot: truncated (the block pattern is cut off)");
  for (std::size_t i = 0; i < shape.depth; ++i) {
    const auto b = r.get<std::uint8_t>("the block pattern");
    if (b > static_cast<std::uint8_t>(BlockType::global_attention))
      throw SnapshotError("griffin snapshot: corrupted (layer " + std::to_string(i) + " has block type " + std::to_string(b) + ")");
    shape.blocks.push_back(static_cast<BlockType>(b));
  }
  if (expected && !(shape == *expected))
    throw SnapshotError("griffin snapshot: saved from another model: " + detail::shape_difference(shape, *expected));
  const auto batch = static_cast<std::size_t>(r.get<std::uint64_t>("the batch size"));
  if (batch == 0 || batch > r.remaining() / 8)
    throw SnapshotError("griffin snapshot: corrupted or truncated (batch size " + std::to_string(batch) + ")");

  Snapshot snap{State(shape, batch), {}, {}};
  State& state = snap.state;
  for (std::size_t b = 0; b < batch; ++b) {
    state.positions()[b] = r.get<std::int64_t>("the positions");
    if (state.positions()[b] < 0) throw SnapshotError("griffin snapshot: corrupted (a negative position)");
  }
  const std::size_t Dh = shape.head_dim;
  for (std::size_t i = 0; i < shape.depth; ++i) {
    LayerState& l = state.layers()[i];
    if (l.type == BlockType::recurrent) {
      r.get_array(std::span<float>(l.rg_lru), "a recurrent layer's RG-LRU state");
      r.get_array(std::span<float>(l.conv), "a recurrent layer's Conv1D state");
      continue;
    }
    for (std::size_t b = 0; b < batch; ++b) {
      const auto capacity = static_cast<std::size_t>(r.get<std::uint64_t>("a KV cache"));
      const auto slots = static_cast<std::size_t>(r.get<std::uint64_t>("a KV cache"));
      const auto count = static_cast<std::size_t>(r.get<std::uint64_t>("a KV cache"));
      const auto head = static_cast<std::size_t>(r.get<std::uint64_t>("a KV cache"));
      const std::string where = "layer " + std::to_string(i) + ", sequence " + std::to_string(b);
      const std::size_t want_capacity = l.type == BlockType::global_attention ? dynamic : shape.attention_window;
      if (capacity != want_capacity)
        throw SnapshotError("griffin snapshot: corrupted (" + where + ": KV capacity " + std::to_string(capacity) + ")");
      if (count > slots || (slots > 0 && head >= slots) || (slots == 0 && head != 0) ||
          (capacity != dynamic && (slots > capacity || (slots < capacity && head != 0))) ||
          slots > r.remaining() / (2 * Dh * 4 + 4))
        throw SnapshotError("griffin snapshot: corrupted or truncated (" + where + ": " + std::to_string(count) +
                            " keys in " + std::to_string(slots) + " slots, oldest at " + std::to_string(head) + ")");
      KvCache& c = l.kv[b];
      if (capacity == dynamic) {
        // A growing cache never wraps: its entries are in order, so appending them rebuilds it exactly.
        std::vector<float> k(slots * Dh), v(slots * Dh);
        std::vector<int> p(slots);
        r.get_array(std::span<float>(k), "KV keys");
        r.get_array(std::span<float>(v), "KV values");
        r.get_array(std::span<int>(p), "KV positions");
        if (head != 0) throw SnapshotError("griffin snapshot: corrupted (" + where + ": a global cache with a ring head)");
        if (count) c.append(k.data(), v.data(), p.data(), count);
      } else {
        c.resize_slots(slots);  // a ring fills its slots lazily: a young one has fewer than its capacity
        r.get_array(std::span<float>(c.key_storage().data(), slots * Dh), "KV keys");
        r.get_array(std::span<float>(c.value_storage().data(), slots * Dh), "KV values");
        r.get_array(std::span<int>(c.position_storage().data(), slots), "KV positions");
        c.restore(count, head);
      }
    }
  }
  const auto V = static_cast<std::size_t>(r.get<std::uint64_t>("the logits size"));
  if (V != 0) {
    if (V != shape.vocab_size) throw SnapshotError("griffin snapshot: corrupted (logits of " + std::to_string(V) + " tokens)");
    if (V * batch > r.remaining() / 4) throw SnapshotError("griffin snapshot: truncated in the logits");
    snap.logits.resize(batch * V);
    r.get_array(std::span<float>(snap.logits), "the logits");
  }
  const auto id_size = r.get<std::uint32_t>("the model id");
  if (id_size > r.remaining()) throw SnapshotError("griffin snapshot: truncated in the model id");
  snap.model_id.resize(id_size);
  r.get_array(std::span<char>(snap.model_id.data(), id_size), "the model id");
  const std::size_t hashed = r.offset();
  const auto hash = r.get<std::uint64_t>("the checksum");
  if (r.remaining() != 0)
    throw SnapshotError("griffin snapshot: " + std::to_string(r.remaining()) + " unexpected bytes after the checksum");
  if (hash != detail::fnv1a(bytes.first(hashed)) || hash != stored_hash)
    throw SnapshotError("griffin snapshot: corrupted (the checksum does not match the contents)");
  if (!expected_model_id.empty() && !snap.model_id.empty() && snap.model_id != expected_model_id)
    throw SnapshotError("griffin snapshot: saved from another checkpoint (model id " + snap.model_id + ", this model is " +
                        std::string(expected_model_id) + ")");
  return snap;
}

inline void write_snapshot(const std::filesystem::path& path, const State& state, std::span<const float> logits = {},
                           std::string_view model_id = {}) {
  const std::vector<std::byte> bytes = save_snapshot(state, logits, model_id);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw SnapshotError(path.string() + ": cannot open for writing");
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw SnapshotError(path.string() + ": write failed");
}

inline Snapshot read_snapshot(const std::filesystem::path& path, const StateShape* expected = nullptr,
                              std::string_view expected_model_id = {}) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw SnapshotError(path.string() + ": cannot open");
  std::vector<char> data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  try {
    return load_snapshot(std::as_bytes(std::span(data)), expected, expected_model_id);
  } catch (const SnapshotError& e) {
    throw SnapshotError(path.string() + ": " + e.what());
  }
}

// ---- Forks ----

// Copies sequence `from_seq` of `from` over sequence `to_seq` of `to` (states of the same model).
inline void copy_sequence(const State& from, std::size_t from_seq, State& to, std::size_t to_seq) {
  if (!(from.shape() == to.shape()))
    throw std::invalid_argument("griffin::copy_sequence: the states belong to different models");
  if (from_seq >= from.batch_size() || to_seq >= to.batch_size())
    throw std::invalid_argument("griffin::copy_sequence: sequence index outside the batch");
  const StateShape& s = from.shape();
  const std::size_t E = s.lru_width, C = (s.conv_width - 1) * s.lru_width;
  for (std::size_t i = 0; i < s.depth; ++i) {
    const LayerState& a = from.layers()[i];
    LayerState& b = to.layers()[i];
    if (a.type == BlockType::recurrent) {
      std::copy_n(a.rg_lru.begin() + static_cast<std::ptrdiff_t>(from_seq * E), E,
                  b.rg_lru.begin() + static_cast<std::ptrdiff_t>(to_seq * E));
      std::copy_n(a.conv.begin() + static_cast<std::ptrdiff_t>(from_seq * C), C,
                  b.conv.begin() + static_cast<std::ptrdiff_t>(to_seq * C));
    } else {
      b.kv[to_seq] = a.kv[from_seq];
    }
  }
  to.positions()[to_seq] = from.positions()[from_seq];
}

// A batch-1 state holding a copy of sequence `seq` of `state`.
inline State extract_sequence(const State& state, std::size_t seq) {
  State one(state.shape(), 1);
  copy_sequence(state, seq, one, 0);
  return one;
}

// A state of `batch` sequences, each a copy of the single sequence of `one` (e.g. a prompt read once,
// then continued `batch` ways).
inline State broadcast(const State& one, std::size_t batch) {
  if (one.batch_size() != 1) throw std::invalid_argument("griffin::broadcast: the source state must hold one sequence");
  State many(one.shape(), batch);
  for (std::size_t b = 0; b < batch; ++b) copy_sequence(one, 0, many, b);
  return many;
}

}  // namespace griffin
