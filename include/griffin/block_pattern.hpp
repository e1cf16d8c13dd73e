// The block pattern: which temporal-mixing block each residual layer has, spelled as a type when it is known
// at compile time (Pattern<R, R, A> is Griffin) or read from config.json's block_types.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace griffin {

// Thrown for every configuration that cannot describe a model; the message names the field.
struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
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
  static constexpr std::size_t period() { return blocks.size(); }
  static constexpr BlockType at(std::size_t layer) { return blocks[layer % blocks.size()]; }
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

}  // namespace griffin
