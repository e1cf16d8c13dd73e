// The model description: sizes that are compile-time constants or run-time values (like std::extents),
// the block pattern spelled as a type, and the presets of the paper and of RecurrentGemma.
#pragma once

#include <array>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace griffin {

// A size that is not known until run time (std::dynamic_extent plays the same role for std::extents).
inline constexpr std::size_t dynamic = std::numeric_limits<std::size_t>::max();

// Thrown for every configuration that cannot describe a model; the message names the field.
struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A size fixed at compile time (N != dynamic: stores nothing, folds into the kernels) or read at run
// time (N == dynamic). Both answer `value()`, so one code path serves both.
template <std::size_t N>
class Size {
 public:
  static constexpr bool is_static = true;
  constexpr Size() = default;
  constexpr std::size_t value() const { return N; }
  constexpr operator std::size_t() const { return N; }
};

template <>
class Size<dynamic> {
 public:
  static constexpr bool is_static = false;
  constexpr Size() = default;
  constexpr explicit Size(std::size_t v) : value_(v) {}
  constexpr std::size_t value() const { return value_; }
  constexpr operator std::size_t() const { return value_; }

 private:
  std::size_t value_ = 0;
};

// The temporal-mixing block of a residual layer.
enum class BlockType : std::uint8_t {
  recurrent,         // Hawk's RG-LRU block
  local_attention,   // MQA over a sliding window (Griffin)
  global_attention,  // MQA over the whole sequence (the paper's Transformer baseline)
};

constexpr std::string_view block_type_name(BlockType t) {
  switch (t) {
    case BlockType::recurrent: return "recurrent";
    case BlockType::local_attention: return "attention";
    case BlockType::global_attention: return "global_attention";
  }
  return "?";
}

// Parses the Hugging Face spelling ("recurrent", "attention") and our extension ("global_attention").
inline BlockType parse_block_type(std::string_view name) {
  if (name == "recurrent") return BlockType::recurrent;
  if (name == "attention" || name == "local_attention") return BlockType::local_attention;
  if (name == "global_attention") return BlockType::global_attention;
  throw ConfigError("block_types: unknown block type \"" + std::string(name) +
                    "\" (expected \"recurrent\", \"attention\" or \"global_attention\")");
}

// A block pattern fixed at compile time, repeated cyclically to the depth:
// Pattern<BlockType::recurrent, BlockType::recurrent, BlockType::local_attention> is Griffin.
template <BlockType... Blocks>
struct Pattern {
  static_assert(sizeof...(Blocks) > 0, "block pattern: a pattern needs at least one block type");
  static constexpr bool is_static = true;
  static constexpr std::array<BlockType, sizeof...(Blocks)> blocks{Blocks...};
  constexpr std::size_t period() const { return blocks.size(); }
  constexpr BlockType at(std::size_t layer) const { return blocks[layer % blocks.size()]; }
};

// A block pattern read at run time (from config.json's block_types).
struct DynamicPattern {
  static constexpr bool is_static = false;
  std::vector<BlockType> blocks;
  std::size_t period() const { return blocks.size(); }
  BlockType at(std::size_t layer) const { return blocks[layer % blocks.size()]; }
};

using GriffinPattern = Pattern<BlockType::recurrent, BlockType::recurrent, BlockType::local_attention>;
using HawkPattern = Pattern<BlockType::recurrent>;
using MqaPattern = Pattern<BlockType::global_attention>;

// How the large matrices (embedding, linears) are kept in memory. Small tensors are always f32. int8 is
// symmetric per output row (one f32 scale per row), quantised at load time; never read from a file.
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
};

inline constexpr Shape dynamic_shape{};

namespace detail {
// A float as the fewest digits that read back to it (-0.5, not -0.500000), for error messages.
inline std::string shortest(float value) {
  char text[32];
  const auto end = std::to_chars(text, text + sizeof text, value).ptr;
  return std::string(text, end);
}

// The checks shared by the compile-time and run-time validation. Returns the message, empty if valid.
// One function so both paths say the same thing.
constexpr std::string_view shape_problem(std::size_t vocab, std::size_t width, std::size_t lru_width,
                                         std::size_t heads, std::size_t head_dim, std::size_t kv_heads,
                                         std::size_t mlp_width, std::size_t conv_width,
                                         std::size_t window, std::size_t depth, bool has_attention) {
  if (vocab == 0) return "vocab_size must be positive";
  if (width == 0) return "hidden_size (width) must be positive";
  if (lru_width == 0) return "lru_width must be positive";
  if (heads == 0) return "num_attention_heads must be positive";
  if (head_dim == 0) return "head_dim must be positive";
  if (kv_heads == 0) return "num_key_value_heads must be positive";
  if (mlp_width == 0) return "intermediate_size (mlp width) must be positive";
  if (conv_width == 0) return "conv1d_width must be positive";
  if (depth == 0) return "num_hidden_layers (depth) must be positive";
  if (lru_width % heads != 0) return "lru_width must be divisible by num_attention_heads (RG-LRU gate blocks)";
  if (has_attention && heads % kv_heads != 0)
    return "num_attention_heads must be divisible by num_key_value_heads";
  if (has_attention && kv_heads != 1)
    return "num_key_value_heads must be 1 (multi-query attention; every released model has one KV head)";
  if (has_attention && head_dim % 4 != 0)
    return "head_dim must be divisible by 4 (RoPE rotates half of each head in two halves)";
  if (has_attention && window == 0) return "attention_window_size must be positive";
  return {};
}
}  // namespace detail

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

// Compile-time checks of a static shape, one named concept per rule so the compiler's message says
// which field is wrong.
template <Shape S>
concept LruWidthDivisibleByHeads =
    S.lru_width == dynamic || S.num_heads == dynamic || S.lru_width % S.num_heads == 0;
template <Shape S>
concept AllStaticSizesPositive = S.vocab_size != 0 && S.width != 0 && S.lru_width != 0 && S.num_heads != 0 &&
                                 S.head_dim != 0 && S.mlp_width != 0 && S.conv_width != 0 && S.depth != 0 &&
                                 S.num_kv_heads != 0 && S.attention_window != 0;
template <Shape S>
concept HeadDimSplitsForRope = S.head_dim == dynamic || S.head_dim % 4 == 0;
template <Shape S>
concept SingleKvHead = S.num_kv_heads == dynamic || S.num_kv_heads == 1;

// Asserts a static shape field by field, so the compiler's message names what is wrong.
template <Shape S>
constexpr void check_static_shape() {
  static_assert(AllStaticSizesPositive<S>, "griffin::Shape: every size must be positive (or griffin::dynamic)");
  static_assert(LruWidthDivisibleByHeads<S>,
                "griffin::Shape: lru_width must be divisible by num_heads (the RG-LRU gates are block-diagonal)");
  static_assert(HeadDimSplitsForRope<S>, "griffin::Shape: head_dim must be divisible by 4 (RoPE on half the head)");
  static_assert(SingleKvHead<S>, "griffin::Shape: num_kv_heads must be 1 (multi-query attention)");
}

// A complete model description. `S` fixes some or all sizes at compile time, `PatternT` is a Pattern<...>
// or DynamicPattern. Every size is read through the accessor, which returns the constant when there is one.
template <Shape S = dynamic_shape, class PatternT = DynamicPattern>
struct ModelConfig {
  static_assert((check_static_shape<S>(), true));
  static constexpr Shape static_shape = S;
  using pattern_type = PatternT;

  Size<S.vocab_size> vocab_size{};
  Size<S.width> width{};
  Size<S.lru_width> lru_width{};
  Size<S.num_heads> num_heads{};
  Size<S.head_dim> head_dim{};
  Size<S.num_kv_heads> num_kv_heads{};
  Size<S.mlp_width> mlp_width{};
  Size<S.conv_width> conv_width{};
  Size<S.attention_window> attention_window{};
  Size<S.depth> depth{};
  PatternT pattern{};
  Hyperparameters hyper{};
  WeightType weight_type = WeightType::f32;

  static constexpr bool fully_static =
      S.vocab_size != dynamic && S.width != dynamic && S.lru_width != dynamic && S.num_heads != dynamic &&
      S.head_dim != dynamic && S.num_kv_heads != dynamic && S.mlp_width != dynamic &&
      S.conv_width != dynamic && S.attention_window != dynamic && S.depth != dynamic && PatternT::is_static;

  BlockType block_type(std::size_t layer) const { return pattern.at(layer); }
  bool has_attention() const {
    for (std::size_t i = 0; i < pattern.period() && i < depth; ++i)
      if (block_type(i) != BlockType::recurrent) return true;
    return false;
  }
  // Number of rotated dims per head (R in the spec).
  std::size_t rope_dims() const {
    return static_cast<std::size_t>(static_cast<float>(head_dim.value()) * hyper.partial_rotary_factor);
  }

  // Run-time check, for configs read from files. Throws ConfigError naming the field.
  void validate() const {
    if (pattern.period() == 0) throw ConfigError("block_types must list at least one block type");
    auto problem = detail::shape_problem(vocab_size, width, lru_width, num_heads, head_dim, num_kv_heads,
                                         mlp_width, conv_width, attention_window, depth, has_attention());
    if (!problem.empty()) throw ConfigError(std::string(problem));
    // Checked before rope_dims() converts head_dim · factor to a size, which is undefined for a negative
    // or non-finite product.
    if (!(hyper.partial_rotary_factor >= 0.0f && hyper.partial_rotary_factor <= 1.0f))
      throw ConfigError("partial_rotary_factor must be between 0 and 1, got " +
                        detail::shortest(hyper.partial_rotary_factor));
    std::size_t r = rope_dims();
    if (has_attention() && (r % 2 != 0 || r > head_dim))
      throw ConfigError("partial_rotary_factor gives " + std::to_string(r) + " rotated dims of head_dim " +
                        std::to_string(head_dim.value()) + "; it must be an even number no larger than head_dim");
    if (!(hyper.rms_norm_eps > 0.0f)) throw ConfigError("rms_norm_eps must be positive");
    if (!(hyper.logits_soft_cap >= 0.0f)) throw ConfigError("logits_soft_cap must be >= 0 (0 = none)");
    if (!(hyper.rope_theta > 0.0f)) throw ConfigError("rope_theta must be positive");
  }
};

// Builds a config whose every static size is filled in; dynamic sizes are left for the caller (or the
// loader) to set. `make_config<Preset>()` is all a user needs for a fully static preset.
template <Shape S, class PatternT>
constexpr ModelConfig<S, PatternT> make_config(Hyperparameters hyper = {}, WeightType weights = WeightType::f32) {
  check_static_shape<S>();
  ModelConfig<S, PatternT> c{};
  c.hyper = hyper;
  c.weight_type = weights;
  return c;
}

// ---- Presets (the paper's table; spec "Released and paper configurations") ----

namespace presets {

inline constexpr Shape recurrent_gemma_2b{.vocab_size = 256000, .width = 2560, .lru_width = 2560,
                                          .num_heads = 10, .head_dim = 256, .num_kv_heads = 1,
                                          .mlp_width = 7680, .conv_width = 4, .attention_window = 2048,
                                          .depth = 26};
inline constexpr Shape recurrent_gemma_9b{.vocab_size = 256000, .width = 4096, .lru_width = 4096,
                                          .num_heads = 16, .head_dim = 256, .num_kv_heads = 1,
                                          .mlp_width = 12288, .conv_width = 4, .attention_window = 2048,
                                          .depth = 38};
inline constexpr Shape griffin_7b{.vocab_size = 256000, .width = 4096, .lru_width = 5632, .num_heads = 32,
                                  .head_dim = 128, .num_kv_heads = 1, .mlp_width = 12288, .conv_width = 4,
                                  .attention_window = 1024, .depth = 32};
inline constexpr Shape hawk_7b{.vocab_size = 256000, .width = 4096, .lru_width = 5632, .num_heads = 32,
                               .head_dim = 128, .num_kv_heads = 1, .mlp_width = 12288, .conv_width = 4,
                               .attention_window = 1024, .depth = 32};

inline constexpr Hyperparameters recurrent_gemma_hyper{};  // soft cap 30, embeddings scaled
inline constexpr Hyperparameters paper_hyper{.logits_soft_cap = 0.0f, .embeddings_scale_by_sqrt_dim = false};

using RecurrentGemma2B = ModelConfig<recurrent_gemma_2b, GriffinPattern>;
using RecurrentGemma9B = ModelConfig<recurrent_gemma_9b, GriffinPattern>;
using Griffin7B = ModelConfig<griffin_7b, GriffinPattern>;
using Hawk7B = ModelConfig<hawk_7b, HawkPattern>;

}  // namespace presets

// A config whose every size is read at run time: what the loader returns for any config.json.
using DynamicConfig = ModelConfig<dynamic_shape, DynamicPattern>;

// Copies the run-time values of `from` into a config of another (static or dynamic) type, checking
// every compile-time size of the target against them. Throws ConfigError naming the field and both values.
template <class To, class From>
To convert_config(const From& from) {
  To to{};
  auto put = [](auto& field, std::size_t value, const char* name) {
    using F = std::remove_cvref_t<decltype(field)>;
    if constexpr (F::is_static) {
      if (field.value() != value)
        throw ConfigError(std::string(name) + ": the compile-time config says " + std::to_string(field.value()) +
                          " but the checkpoint has " + std::to_string(value));
    } else {
      field = F(value);
    }
  };
  put(to.vocab_size, from.vocab_size, "vocab_size");
  put(to.width, from.width, "hidden_size");
  put(to.lru_width, from.lru_width, "lru_width");
  put(to.num_heads, from.num_heads, "num_attention_heads");
  put(to.head_dim, from.head_dim, "head_dim");
  put(to.num_kv_heads, from.num_kv_heads, "num_key_value_heads");
  put(to.mlp_width, from.mlp_width, "intermediate_size/2 (mlp width)");
  put(to.conv_width, from.conv_width, "conv1d_width");
  put(to.depth, from.depth, "num_hidden_layers");
  // The window only matters when some block is local attention; a Hawk checkpoint may carry any value.
  if constexpr (decltype(to.attention_window)::is_static) {
    if (from.has_attention()) put(to.attention_window, from.attention_window, "attention_window_size");
  } else {
    to.attention_window = Size<dynamic>(from.attention_window);
  }
  using ToPattern = typename To::pattern_type;
  if constexpr (ToPattern::is_static) {
    for (std::size_t i = 0; i < from.depth; ++i)
      if (to.pattern.at(i) != from.pattern.at(i))
        throw ConfigError("block_types: layer " + std::to_string(i) + " is \"" +
                          std::string(block_type_name(to.pattern.at(i))) + "\" in the compile-time config but \"" +
                          std::string(block_type_name(from.pattern.at(i))) + "\" in the checkpoint");
  } else {
    to.pattern.blocks.assign(from.pattern.blocks.begin(), from.pattern.blocks.end());
  }
  to.hyper = from.hyper;
  to.weight_type = from.weight_type;
  to.validate();
  return to;
}

}  // namespace griffin

namespace griffin::presets {
// The small byte-level Griffin shipped in models/kjv-griffin (trained on the King James Bible).
inline constexpr Shape kjv_griffin{.vocab_size = 256, .width = 192, .lru_width = 192, .num_heads = 4,
                                   .head_dim = 48, .num_kv_heads = 1, .mlp_width = 576, .conv_width = 4,
                                   .attention_window = 64, .depth = 6};
using KjvGriffin = ModelConfig<kjv_griffin, GriffinPattern>;
}  // namespace griffin::presets
