// The model description: its sizes (each a compile-time constant or a run-time value, like std::extents),
// the block pattern spelled as a type, and the scalars that never size a buffer.
//
// Every size and hyperparameter is listed once, in the field table `visit_fields` (in the manner of
// gemma.cpp's VisitFields). Validation, config.json, `griffin info`, a state's shape and a snapshot's
// fingerprint all visit it, so a field added there reaches every one of them.
#pragma once

#include <array>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "griffin/block_pattern.hpp"
#include "griffin/extent.hpp"

namespace griffin {

// How the large matrices (embedding, linears) are kept in memory. Small tensors are always f32. int8 is
// symmetric per output row (one f32 scale per row), quantised at load time.
enum class WeightType : std::uint8_t { f32, bf16, int8 };

constexpr std::string_view weight_type_name(WeightType t) {
  return t == WeightType::f32 ? "f32" : t == WeightType::bf16 ? "bf16" : "int8";
}

// The sizes of a model; each is a number or `dynamic`. Used as a template argument, so a preset reads
// like the paper's table: Shape{.vocab_size = 256000, .width = 2560, ...}.
struct Shape {
  std::size_t vocab_size = dynamic;
  std::size_t width = dynamic;             // D, the residual stream
  std::size_t lru_width = dynamic;         // E, the RG-LRU and Conv1D channels
  std::size_t num_heads = dynamic;         // H
  std::size_t head_dim = dynamic;          // Dh
  std::size_t num_kv_heads = dynamic;      // 1 for every released model (multi-query attention)
  std::size_t mlp_width = dynamic;         // F = intermediate_size / 2
  std::size_t conv_width = dynamic;        // K
  std::size_t attention_window = dynamic;  // W: a query at position p sees keys p - W ... p
  std::size_t depth = dynamic;             // number of residual blocks
  constexpr bool operator==(const Shape&) const = default;
};

inline constexpr Shape dynamic_shape{};

// Scalars that never shape a buffer: kept at run time in every config.
struct Hyperparameters {
  float logits_soft_cap = 30.0f;  // 0 = none
  float rms_norm_eps = 1e-6f;
  float rope_theta = 10000.0f;
  float partial_rotary_factor = 0.5f;
  bool embeddings_scale_by_sqrt_dim = true;
  int bos_token_id = 2;
  int eos_token_id = 1;
  int pad_token_id = 0;
};

// ---- The field table ----

// What config.json means when a size's key is absent: the size is required, a constant, another size, or
// the quotient of two sizes (head_dim = hidden_size / num_attention_heads).
struct SizeDefault {
  enum Kind : std::uint8_t { required, constant, same_as, quotient } kind = required;
  std::size_t value = 0;
  std::size_t Shape::*of = nullptr;
  std::size_t Shape::*by = nullptr;
};

struct SizeField {
  std::size_t Shape::*member;
  std::string_view name;        // griffin's (Shape's) name
  std::string_view json_key;    // config.json's
  std::size_t json_factor;      // config.json holds json_factor × the size (intermediate_size = 2 × mlp_width)
  SizeDefault fallback;
  bool null_is_default;         // a JSON null means the default too
  std::string_view meaning;
};

// The range a float hyperparameter must lie in.
enum class Range : std::uint8_t { positive, non_negative, unit_interval };

struct NumberField {
  float Hyperparameters::*member;
  std::string_view json_key;
  float fallback;
  Range range;
  bool null_is_zero;  // logits_soft_cap: null means no cap
  std::string_view meaning;
};

struct FlagField {
  bool Hyperparameters::*member;
  std::string_view json_key;
  bool fallback;
  std::string_view meaning;
};

struct TokenField {  // a token id in [0, vocab_size)
  int Hyperparameters::*member;
  std::string_view json_key;
  int fallback;
  std::string_view meaning;
};

// Calls v(field) for every field of a model description, in this order (later defaults refer only to
// earlier sizes; snapshots store the sizes in this order).
template <class Visitor>
constexpr void visit_fields(Visitor&& v) {
  using D = SizeDefault;
  v(SizeField{&Shape::vocab_size, "vocab_size", "vocab_size", 1, {}, false, "tokens in the vocabulary"});
  v(SizeField{&Shape::width, "width", "hidden_size", 1, {}, false, "D, the residual stream"});
  v(SizeField{&Shape::lru_width, "lru_width", "lru_width", 1, {D::same_as, 0, &Shape::width}, true,
              "E, the RG-LRU and Conv1D channels"});
  v(SizeField{&Shape::num_heads, "num_heads", "num_attention_heads", 1, {}, false,
              "H, attention heads and RG-LRU gate blocks"});
  v(SizeField{&Shape::head_dim, "head_dim", "head_dim", 1, {D::quotient, 0, &Shape::width, &Shape::num_heads}, true,
              "Dh, the width of an attention head"});
  v(SizeField{&Shape::num_kv_heads, "num_kv_heads", "num_key_value_heads", 1, {D::constant, 1}, false,
              "key/value heads (1: multi-query attention)"});
  v(SizeField{&Shape::mlp_width, "mlp_width", "intermediate_size", 2, {}, false, "F, the MLP's hidden width"});
  v(SizeField{&Shape::conv_width, "conv_width", "conv1d_width", 1, {D::constant, 4}, false, "K, the Conv1D taps"});
  v(SizeField{&Shape::attention_window, "attention_window", "attention_window_size", 1, {D::constant, 2048}, false,
              "W, the keys before a query that local attention sees"});
  v(SizeField{&Shape::depth, "depth", "num_hidden_layers", 1, {}, false, "residual blocks"});
  v(NumberField{&Hyperparameters::logits_soft_cap, "logits_soft_cap", 30.0f, Range::non_negative, true,
                "logits = cap · tanh(logits / cap); 0: none"});
  v(NumberField{&Hyperparameters::rms_norm_eps, "rms_norm_eps", 1e-6f, Range::positive, false, "RMSNorm epsilon"});
  v(NumberField{&Hyperparameters::rope_theta, "rope_theta", 10000.0f, Range::positive, false, "RoPE base"});
  v(NumberField{&Hyperparameters::partial_rotary_factor, "partial_rotary_factor", 0.5f, Range::unit_interval, false,
                "the part of each head RoPE rotates"});
  v(FlagField{&Hyperparameters::embeddings_scale_by_sqrt_dim, "embeddings_scale_by_sqrt_dim", true,
              "embeddings scaled by sqrt(width)"});
  v(TokenField{&Hyperparameters::bos_token_id, "bos_token_id", 2, "beginning of sequence"});
  v(TokenField{&Hyperparameters::eos_token_id, "eos_token_id", 1, "end of sequence"});
  v(TokenField{&Hyperparameters::pad_token_id, "pad_token_id", 0, "padding"});
}

// Calls f(size_field) for the sizes only.
template <class F>
constexpr void visit_sizes(F&& f) {
  visit_fields([&](const auto& field) {
    if constexpr (std::is_same_v<std::remove_cvref_t<decltype(field)>, SizeField>) f(field);
  });
}

// How messages name a size, config.json's key first: "hidden_size (width)", "intermediate_size/2 (mlp_width)".
inline std::string size_field_label(const SizeField& f) {
  std::string s(f.json_key);
  if (f.json_factor != 1) (s += '/') += std::to_string(f.json_factor);  // not "/" + …: GCC 12 -Wrestrict
  if (f.json_key != f.name) s += " (" + std::string(f.name) + ")";
  return s;
}

namespace detail {
// A float as the fewest digits that read back to it (-0.5, not -0.500000), for error messages.
inline std::string shortest(float value) {
  char text[32];
  const auto end = std::to_chars(text, text + sizeof text, value).ptr;
  return std::string(text, end);
}

constexpr bool known(std::size_t v) { return v != dynamic; }

// The rules between sizes, each with the message a run-time check gives. A size still `dynamic` (unknown
// at compile time) satisfies every rule, so the same predicates serve the compile-time checks.
struct ShapeRule {
  bool (*holds)(const Shape&, bool has_attention);
  std::string_view message;
};
inline constexpr ShapeRule shape_rules[] = {
    {[](const Shape& s, bool) { return !known(s.lru_width) || !known(s.num_heads) || s.lru_width % s.num_heads == 0; },
     "lru_width must be divisible by num_attention_heads (RG-LRU gate blocks)"},
    {[](const Shape& s, bool a) {
       return !a || !known(s.num_heads) || !known(s.num_kv_heads) || s.num_heads % s.num_kv_heads == 0;
     },
     "num_attention_heads must be divisible by num_key_value_heads"},
    {[](const Shape& s, bool a) { return !a || !known(s.num_kv_heads) || s.num_kv_heads == 1; },
     "num_key_value_heads must be 1 (multi-query attention; every released model has one KV head)"},
    {[](const Shape& s, bool a) { return !a || !known(s.head_dim) || s.head_dim % 4 == 0; },
     "head_dim must be divisible by 4 (RoPE rotates half of each head in two halves)"},
};

template <Shape S>
constexpr bool all_static_sizes_positive() {
  bool ok = true;
  visit_sizes([&](const SizeField& f) { ok = ok && S.*f.member != 0; });
  return ok;
}
template <Shape S>
constexpr bool all_sizes_static() {
  bool ok = true;
  visit_sizes([&](const SizeField& f) { ok = ok && S.*f.member != dynamic; });
  return ok;
}
}  // namespace detail

// Compile-time checks of a static shape, one named concept per rule so the compiler's message says which
// field is wrong. Attention rules apply whatever the pattern: a static shape is checked without it.
template <Shape S>
concept AllStaticSizesPositive = detail::all_static_sizes_positive<S>();
template <Shape S>
concept LruWidthDivisibleByHeads = detail::shape_rules[0].holds(S, true);
template <Shape S>
concept SingleKvHead = detail::shape_rules[2].holds(S, true);
template <Shape S>
concept HeadDimSplitsForRope = detail::shape_rules[3].holds(S, true);

template <Shape S>
constexpr void check_static_shape() {
  static_assert(AllStaticSizesPositive<S>, "griffin::Shape: every size must be positive (or griffin::dynamic)");
  static_assert(LruWidthDivisibleByHeads<S>,
                "griffin::Shape: lru_width must be divisible by num_heads (the RG-LRU gates are block-diagonal)");
  static_assert(HeadDimSplitsForRope<S>, "griffin::Shape: head_dim must be divisible by 4 (RoPE on half the head)");
  static_assert(SingleKvHead<S>, "griffin::Shape: num_kv_heads must be 1 (multi-query attention)");
}

// A complete model description. `S` fixes some or all sizes at compile time, `PatternT` is a Pattern<...>
// or DynamicPattern. `sizes` holds every size at run time (a compile-time one holds its constant, which
// validate() checks); kernels take them through extent<&Shape::field>(), a constant where S has one.
template <Shape S = dynamic_shape, class PatternT = DynamicPattern>
struct ModelConfig {
  static_assert((check_static_shape<S>(), true));
  static constexpr Shape static_shape = S;
  using pattern_type = PatternT;
  static constexpr bool fully_static = detail::all_sizes_static<S>() && PatternT::is_static;

  Shape sizes = S;
  PatternT pattern{};
  Hyperparameters hyper{};
  WeightType weight_type = WeightType::f32;

  template <std::size_t Shape::*Field>
  constexpr auto extent() const {
    if constexpr (S.*Field != dynamic) return Size<S.*Field>{};
    else return Size<dynamic>(sizes.*Field);
  }

  BlockType block_type(std::size_t layer) const { return pattern.at(layer); }
  bool has_attention() const {
    for (std::size_t i = 0; i < pattern.period() && i < sizes.depth; ++i)
      if (block_type(i) != BlockType::recurrent) return true;
    return false;
  }
  // Number of rotated dims per head (R in the spec).
  std::size_t rope_dims() const {
    return static_cast<std::size_t>(static_cast<float>(sizes.head_dim) * hyper.partial_rotary_factor);
  }

  // Run-time check, for configs read from files or built by hand. Throws ConfigError naming the field.
  void validate() const {
    if (pattern.period() == 0) throw ConfigError("block_types must list at least one block type");
    visit_fields([&](const auto& field) { check_field(field); });
    const bool attention = has_attention();
    for (const auto& rule : detail::shape_rules)
      if (!rule.holds(sizes, attention)) throw ConfigError(std::string(rule.message));
    const std::size_t r = rope_dims();
    if (attention && (r % 2 != 0 || r > sizes.head_dim))
      throw ConfigError("partial_rotary_factor gives " + std::to_string(r) + " rotated dims of head_dim " +
                        std::to_string(sizes.head_dim) + "; it must be an even number no larger than head_dim");
  }

 private:
  void check_field(const SizeField& f) const {
    const std::size_t v = sizes.*f.member;
    if (v == dynamic) throw ConfigError(size_field_label(f) + " is not set");
    if (v == 0) throw ConfigError(size_field_label(f) + " must be positive");
    if (S.*f.member != dynamic && v != S.*f.member)
      throw ConfigError(std::string(f.name) + ": the compile-time config says " + std::to_string(S.*f.member) +
                        " but the run-time value is " + std::to_string(v));
  }
  void check_field(const NumberField& f) const {
    const float v = hyper.*f.member;
    const std::string key(f.json_key);
    // NaN fails every comparison, so each test is written to fail on it.
    if (f.range == Range::positive && !(v > 0.0f)) throw ConfigError(key + " must be positive");
    if (f.range == Range::non_negative && !(v >= 0.0f))
      throw ConfigError(key + " must be >= 0" + (f.null_is_zero ? " (0 = none)" : ""));
    if (f.range == Range::unit_interval && !(v >= 0.0f && v <= 1.0f))
      throw ConfigError(key + " must be between 0 and 1, got " + detail::shortest(v));
  }
  void check_field(const FlagField&) const {}
  void check_field(const TokenField& f) const {
    const int v = hyper.*f.member;
    if (v < 0 || std::size_t(v) >= sizes.vocab_size)
      throw ConfigError(std::string(f.json_key) + ": token id " + std::to_string(v) + " is outside the vocabulary [0, " +
                        std::to_string(sizes.vocab_size) + ")");
  }
};

// A config whose every size is read at run time: what the loader returns for any config.json.
using DynamicConfig = ModelConfig<dynamic_shape, DynamicPattern>;

// A config whose every static size is filled in; dynamic sizes are left for the caller (or the loader).
template <Shape S, class PatternT>
constexpr ModelConfig<S, PatternT> make_config(Hyperparameters hyper = {}, WeightType weights = WeightType::f32) {
  ModelConfig<S, PatternT> c{};
  c.hyper = hyper;
  c.weight_type = weights;
  return c;
}

// A run-time config of the given sizes and pattern, validated.
inline DynamicConfig make_dynamic_config(const Shape& sizes, std::vector<BlockType> pattern, Hyperparameters hyper = {},
                                         WeightType weights = WeightType::f32) {
  DynamicConfig c;
  c.sizes = sizes;
  c.pattern.blocks = std::move(pattern);
  c.hyper = hyper;
  c.weight_type = weights;
  c.validate();
  return c;
}

// Copies the run-time values of `from` into a config of another (static or dynamic) type, checking every
// compile-time size of the target against them. Throws ConfigError naming the field and both values.
template <class To, class From>
To convert_config(const From& from) {
  To to{};
  const bool attention = from.has_attention();
  visit_sizes([&](const SizeField& f) {
    const std::size_t want = To::static_shape.*f.member, have = from.sizes.*f.member;
    // The window only matters when some block is local attention; a Hawk checkpoint may carry any value.
    const bool unused = f.member == &Shape::attention_window && !attention;
    if (want != dynamic && want != have && !unused)
      throw ConfigError(size_field_label(f) + ": the compile-time config says " + std::to_string(want) +
                        " but the checkpoint has " + std::to_string(have));
    to.sizes.*f.member = want != dynamic ? want : have;
  });
  using ToPattern = typename To::pattern_type;
  if constexpr (ToPattern::is_static) {
    for (std::size_t i = 0; i < from.sizes.depth; ++i)
      if (to.pattern.at(i) != from.pattern.at(i))
        throw ConfigError("block_types: layer " + std::to_string(i) + " is \"" +
                          std::string(block_type_name(to.pattern.at(i))) + "\" in the compile-time config but \"" +
                          std::string(block_type_name(from.pattern.at(i))) + "\" in the checkpoint");
  } else {
    to.pattern.blocks.clear();
    for (std::size_t i = 0; i < from.pattern.period(); ++i) to.pattern.blocks.push_back(from.pattern.at(i));
  }
  to.hyper = from.hyper;
  to.weight_type = from.weight_type;
  to.validate();
  return to;
}

}  // namespace griffin

#include "griffin/presets.hpp"
