// Saving a State to bytes or a file and restoring it, and forking states: copying one sequence into another
// state, broadcasting a batch-1 state to B sequences. A restored or forked state continues bit-identically to
// the original, so a prompt is read once and continued many times. The state's contents come from
// State::visit_buffers and go back through State::restore; this header holds only the file format.
//
// Snapshot format (little-endian), version 2:
//   magic "GRIFSNAP" · u32 version · u32 reserved(0)
//   shape: u32 field count · per size of the field table (config.hpp), in its order: u8 name length · name ·
//          u64 value · then u8 block[depth]
//   u64 batch · per sequence: i64 position · per layer: recurrent → f32 rg_lru[E] · f32 conv[(K-1)·E]
//                                            attention → u64 capacity, slots, count, head · f32 keys[slots·Dh] ·
//                                                        f32 values[slots·Dh] · i32 positions[slots]
//   u64 V' · f32 logits[B·V'] (the next-token logits kept with the state, V' = 0 when none)
//   u32 length · model id bytes (identifies the checkpoint; empty = not recorded)
//   u64 FNV-1a hash of everything before it
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstdio>
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
inline constexpr std::uint32_t snapshot_version = 2;

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
  // `count` elements of T, checked against what remains before anything is allocated.
  template <class T>
  std::vector<T> get_vector(std::size_t count, const char* what) {
    if (count > remaining() / sizeof(T)) need(remaining() + 1, what);
    std::vector<T> v(count);
    get_array(std::span<T>(v), what);
    return v;
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
  std::string difference;
  visit_sizes([&](const SizeField& f) {
    const std::size_t a = saved.sizes.*f.member, b = model.sizes.*f.member;
    if (difference.empty() && a != b)
      difference = std::string(f.json_key) + " is " + std::to_string(a) + " in the snapshot but " + std::to_string(b) +
                   " in the model";
  });
  if (!difference.empty()) return difference;
  for (std::size_t i = 0; i < saved.blocks.size() && i < model.blocks.size(); ++i)
    if (saved.blocks[i] != model.blocks[i])
      return "layer " + std::to_string(i) + " is " + std::string(block_type_name(saved.blocks[i])) +
             " in the snapshot but " + std::string(block_type_name(model.blocks[i])) + " in the model";
  return "the shapes differ";
}

inline StateShape read_shape(SnapshotReader& r) {
  StateShape shape;
  std::size_t fields = 0;
  visit_sizes([&](const SizeField&) { ++fields; });
  const auto count = r.get<std::uint32_t>("the state shape");
  if (count != fields)
    throw SnapshotError("griffin snapshot: corrupted (" + std::to_string(count) + " shape fields, expected " +
                        std::to_string(fields) + ")");
  constexpr std::size_t sane = std::size_t(1) << 32;
  visit_sizes([&](const SizeField& f) {
    const auto length = r.get<std::uint8_t>("a shape field's name");
    std::string name(length, '\0');
    r.get_array(std::span<char>(name.data(), length), "a shape field's name");
    if (name != f.name)
      throw SnapshotError("griffin snapshot: corrupted (shape field \"" + name + "\" where \"" + std::string(f.name) +
                          "\" belongs)");
    const auto v = r.get<std::uint64_t>("the state shape");
    if (v == 0 || v > sane)
      throw SnapshotError("griffin snapshot: corrupted (" + name + " is " + std::to_string(v) + ")");
    shape.sizes.*f.member = std::size_t(v);
  });
  if (shape.sizes.depth > r.remaining()) throw SnapshotError("griffin snapshot: truncated (the block pattern is cut off)");
  for (std::size_t i = 0; i < shape.sizes.depth; ++i) {
    const auto b = r.get<std::uint8_t>("the block pattern");
    if (b > static_cast<std::uint8_t>(BlockType::global_attention))
      throw SnapshotError("griffin snapshot: corrupted (layer " + std::to_string(i) + " has block type " +
                          std::to_string(b) + ")");
    shape.blocks.push_back(static_cast<BlockType>(b));
  }
  return shape;
}

// One attention layer's ring as stored, checked against the cache it goes into.
inline void read_ring(SnapshotReader& r, KvCache& cache, const std::string& where) {
  KvCache::Ring ring;
  ring.capacity = static_cast<std::size_t>(r.get<std::uint64_t>("a KV cache"));
  ring.slots = static_cast<std::size_t>(r.get<std::uint64_t>("a KV cache"));
  ring.count = static_cast<std::size_t>(r.get<std::uint64_t>("a KV cache"));
  ring.head = static_cast<std::size_t>(r.get<std::uint64_t>("a KV cache"));
  const std::size_t Dh = cache.head_dim();
  if (ring.capacity != cache.capacity())
    throw SnapshotError("griffin snapshot: corrupted (" + where + ": KV capacity " + std::to_string(ring.capacity) + ")");
  if (ring.slots > r.remaining() / (2 * Dh * 4 + 4))
    throw SnapshotError("griffin snapshot: truncated (" + where + ": " + std::to_string(ring.slots) + " KV slots)");
  const auto keys = r.get_vector<float>(ring.slots * Dh, "KV keys");
  const auto values = r.get_vector<float>(ring.slots * Dh, "KV values");
  const auto positions = r.get_vector<int>(ring.slots, "KV positions");
  ring.keys = keys, ring.values = values, ring.positions = positions;
  try {
    cache.assign(ring);
  } catch (const std::invalid_argument&) {
    throw SnapshotError("griffin snapshot: corrupted or truncated (" + where + ": " + std::to_string(ring.count) +
                        " keys in " + std::to_string(ring.slots) + " slots, oldest at " + std::to_string(ring.head) + ")");
  }
}

}  // namespace detail

// Serialises a state (and optionally next-token logits [B, V] and a model id) into bytes.
inline std::vector<std::byte> save_snapshot(const State& state, std::span<const float> logits = {},
                                            std::string_view model_id = {}) {
  const StateShape& shape = state.shape();
  const std::size_t B = state.batch_size(), V = shape.sizes.vocab_size;
  if (!logits.empty() && logits.size() != B * V)
    throw SnapshotError("griffin snapshot: logits must be [batch, vocab] = " + std::to_string(B * V) + " floats, got " +
                        std::to_string(logits.size()));
  detail::SnapshotWriter w;
  w.put_array(std::span<const char>(snapshot_magic));
  w.put(snapshot_version);
  w.put(std::uint32_t{0});
  std::uint32_t fields = 0;
  visit_sizes([&](const SizeField&) { ++fields; });
  w.put(fields);
  visit_sizes([&](const SizeField& f) {
    w.put(static_cast<std::uint8_t>(f.name.size()));
    w.put_array(std::span<const char>(f.name.data(), f.name.size()));
    w.put(static_cast<std::uint64_t>(shape.sizes.*f.member));
  });
  for (BlockType b : shape.blocks) w.put(static_cast<std::uint8_t>(b));
  w.put(static_cast<std::uint64_t>(B));
  for (std::size_t b = 0; b < B; ++b) {
    w.put(state.position(b));
    state.visit_buffers(b, [&](const SequenceLayer<false>& l) {
      if (l.type == BlockType::recurrent) {
        w.put_array(l.rg_lru);
        w.put_array(l.conv);
        return;
      }
      const KvCache::Ring ring = l.kv->ring();  // in slot order, so the ring layout is kept exactly
      for (std::size_t v : {ring.capacity, ring.slots, ring.count, ring.head}) w.put(static_cast<std::uint64_t>(v));
      w.put_array(ring.keys);
      w.put_array(ring.values);
      w.put_array(ring.positions);
    });
  }
  w.put(static_cast<std::uint64_t>(logits.empty() ? 0 : V));
  w.put_array(logits);
  w.put(static_cast<std::uint32_t>(model_id.size()));
  w.put_array(std::span<const char>(model_id.data(), model_id.size()));
  w.put(detail::fnv1a(w.bytes()));
  return std::move(w.bytes());
}

// Restores a snapshot, checking every field. With `expected` (the model's state shape, from
// model.new_state().shape()) a snapshot of another model is refused naming the field that differs; with
// `expected_model_id` a snapshot recorded for another checkpoint is refused.
inline Snapshot load_snapshot(std::span<const std::byte> bytes, const StateShape* expected = nullptr,
                              std::string_view expected_model_id = {}) {
  detail::SnapshotReader r(bytes);
  char magic[8];
  r.get_array(std::span<char>(magic), "the magic");
  if (std::memcmp(magic, snapshot_magic, 8) != 0)
    throw SnapshotError("griffin snapshot: not a griffin state snapshot (the file does not start with \"GRIFSNAP\")");
  const auto version = r.get<std::uint32_t>("the version");
  if (version != snapshot_version)
    throw SnapshotError("griffin snapshot: version " + std::to_string(version) +
                        " is not supported (this build reads version " + std::to_string(snapshot_version) + ")");
  (void)r.get<std::uint32_t>("the reserved field");
  // The checksum first, so a corrupted file is reported as such rather than as a strange field.
  if (bytes.size() < 24 + 8) throw SnapshotError("griffin snapshot: truncated");
  std::uint64_t stored_hash;
  std::memcpy(&stored_hash, bytes.data() + bytes.size() - 8, 8);
  if (stored_hash != detail::fnv1a(bytes.first(bytes.size() - 8)))
    throw SnapshotError("griffin snapshot: corrupted or truncated (the checksum does not match the contents)");

  const StateShape shape = detail::read_shape(r);
  if (expected && !(shape == *expected))
    throw SnapshotError("griffin snapshot: saved from another model: " + detail::shape_difference(shape, *expected));
  const auto batch = static_cast<std::size_t>(r.get<std::uint64_t>("the batch size"));
  if (batch == 0 || batch > r.remaining() / 8)
    throw SnapshotError("griffin snapshot: corrupted or truncated (batch size " + std::to_string(batch) + ")");

  Snapshot snap{State(shape, batch), {}, {}};
  for (std::size_t b = 0; b < batch; ++b) {
    const auto position = r.get<std::int64_t>("the positions");
    if (position < 0) throw SnapshotError("griffin snapshot: corrupted (a negative position)");
    snap.state.restore(b, position, [&](const SequenceLayer<true>& l) {
      if (l.type == BlockType::recurrent) {
        r.get_array(l.rg_lru, "a recurrent layer's RG-LRU state");
        r.get_array(l.conv, "a recurrent layer's Conv1D state");
      } else {
        detail::read_ring(r, *l.kv, "layer " + std::to_string(l.layer) + ", sequence " + std::to_string(b));
      }
    });
  }
  const auto V = static_cast<std::size_t>(r.get<std::uint64_t>("the logits size"));
  if (V != 0) {
    if (V != shape.sizes.vocab_size)
      throw SnapshotError("griffin snapshot: corrupted (logits of " + std::to_string(V) + " tokens)");
    snap.logits = r.get_vector<float>(batch * V, "the logits");
  }
  const auto id_size = r.get<std::uint32_t>("the model id");
  if (id_size > r.remaining()) throw SnapshotError("griffin snapshot: truncated in the model id");
  snap.model_id.resize(id_size);
  r.get_array(std::span<char>(snap.model_id.data(), id_size), "the model id");
  (void)r.get<std::uint64_t>("the checksum");
  if (r.remaining() != 0)
    throw SnapshotError("griffin snapshot: " + std::to_string(r.remaining()) + " unexpected bytes after the checksum");
  if (!expected_model_id.empty() && !snap.model_id.empty() && snap.model_id != expected_model_id)
    throw SnapshotError("griffin snapshot: saved from another checkpoint (model id " + snap.model_id +
                        ", this model is " + std::string(expected_model_id) + ")");
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

// The model id snapshots record: identifies a checkpoint directory without reading its weights, from
// config.json plus each safetensors file's size and header (which holds every tensor's name, dtype, shape
// and offsets). "kjv-griffin-" and 16 hex digits.
inline std::string checkpoint_id(const std::filesystem::path& dir) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  auto mix = [&](const std::string& bytes) { h = detail::fnv1a(std::as_bytes(std::span(bytes.data(), bytes.size())), h); };
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().filename() == "config.json" || e.path().extension() == ".safetensors") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const std::filesystem::path& f : files) {
    std::ifstream in(f, std::ios::binary);
    mix(f.filename().string() + ":" + std::to_string(std::filesystem::file_size(f)));
    std::string head(f.extension() == ".safetensors" ? 8 : std::filesystem::file_size(f), '\0');
    in.read(head.data(), static_cast<std::streamsize>(head.size()));
    if (f.extension() == ".safetensors" && in) {
      std::uint64_t n = 0;
      std::memcpy(&n, head.data(), 8);
      std::string header(std::min<std::uint64_t>(n, 100u << 20), '\0');
      in.read(header.data(), static_cast<std::streamsize>(header.size()));
      head += header;
    }
    mix(head);
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  const std::filesystem::path name = dir.filename().empty() ? dir.parent_path().filename() : dir.filename();  // "dir/"
  return name.string() + "-" + hex;
}

// ---- Forks ----

// Copies sequence `from_seq` of `from` over sequence `to_seq` of `to` (states of the same model).
inline void copy_sequence(const State& from, std::size_t from_seq, State& to, std::size_t to_seq) {
  if (!(from.shape() == to.shape()))
    throw std::invalid_argument("griffin::copy_sequence: the states belong to different models");
  if (from_seq >= from.batch_size() || to_seq >= to.batch_size())
    throw std::invalid_argument("griffin::copy_sequence: sequence index outside the batch");
  std::vector<SequenceLayer<false>> source;
  from.visit_buffers(from_seq, [&](const SequenceLayer<false>& l) { source.push_back(l); });
  to.restore(to_seq, from.position(from_seq), [&](const SequenceLayer<true>& l) {
    const SequenceLayer<false>& s = source[l.layer];
    std::copy(s.rg_lru.begin(), s.rg_lru.end(), l.rg_lru.begin());
    std::copy(s.conv.begin(), s.conv.end(), l.conv.begin());
    if (l.kv) l.kv->assign(s.kv->ring());
  });
}

// A batch-1 state holding a copy of sequence `seq` of `state`.
inline State extract_sequence(const State& state, std::size_t seq) {
  State one(state.shape(), 1);
  copy_sequence(state, seq, one, 0);
  return one;
}

// A state of `batch` sequences, each a copy of the single sequence of `one` (e.g. a prompt read once, then
// continued `batch` ways).
inline State broadcast(const State& one, std::size_t batch) {
  if (one.batch_size() != 1) throw std::invalid_argument("griffin::broadcast: the source state must hold one sequence");
  State many(one.shape(), batch);
  for (std::size_t b = 0; b < batch; ++b) copy_sequence(one, 0, many, b);
  return many;
}

}  // namespace griffin
