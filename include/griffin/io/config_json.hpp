// Reading a Hugging Face RecurrentGemma config.json into a DynamicConfig (spec "Checkpoint layout").
// Strict: an unknown key, a missing required key, a value of the wrong type or an absurd size is an error
// naming the file, the key and the value, so a typo never silently becomes a default.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "griffin/config.hpp"
#include "griffin/io/error.hpp"
#include "griffin/io/json.hpp"
#include "griffin/io/mapped_file.hpp"

namespace griffin::io {

namespace detail {

// clang-format off
// The keys read into the config.
inline constexpr std::array<std::string_view, 25> config_keys_used = {
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "head_dim", "lru_width", "attention_window_size", "conv1d_width",
    "logits_soft_cap", "rms_norm_eps", "partial_rotary_factor", "rope_theta", "block_types", "_block_types",
    "hidden_activation", "bos_token_id", "eos_token_id", "pad_token_id", "torch_dtype", "dtype",
    "embeddings_scale_by_sqrt_dim", "attention_bias", "tie_word_embeddings"};

// Keys that Hugging Face writes but that do not change inference: accepted and ignored (model_type,
// attention_bias and tie_word_embeddings are also checked, below).
inline constexpr std::array<std::string_view, 14> config_keys_ignored = {
    "architectures", "model_type", "transformers_version", "_name_or_path", "final_w_init_variance_scale",
    "w_init_variance_scale", "use_cache", "attention_dropout", "output_hidden_states", "output_attentions",
    "return_dict", "initializer_range", "max_position_embeddings", "torchscript"};
// clang-format on

// Sizes above this are rejected outright (every buffer index stays in int32), and a model whose sizes
// imply more than max_config_parameters weights is rejected before anything is allocated.
inline constexpr std::uint64_t max_config_size = 2147483647;  // 2^31 - 1
inline constexpr double max_config_parameters = 1e12;

class ConfigReader {
 public:
  ConfigReader(const nlohmann::json& j, const std::string& file) : j_(j), file_(file) {}

  [[noreturn]] void fail(std::string_view key, const std::string& what) const {
    throw ConfigError(file_ + ": " + std::string(key) + ": " + what);
  }

  const nlohmann::json* find(std::string_view key) const {
    auto it = j_.find(key);
    return it == j_.end() ? nullptr : &*it;
  }
  const nlohmann::json& require(std::string_view key) const {
    if (const auto* v = find(key)) return *v;
    throw ConfigError(file_ + ": missing required key \"" + std::string(key) + "\"");
  }

  // A positive integer no larger than max_config_size.
  std::size_t size(std::string_view key, const nlohmann::json& v) const {
    if (v.is_number_unsigned()) {
      auto n = v.get<std::uint64_t>();
      if (n == 0) fail(key, "must be positive, got 0");
      if (n > max_config_size)
        fail(key, std::to_string(n) + " is larger than the limit of " + std::to_string(max_config_size));
      return static_cast<std::size_t>(n);
    }
    if (v.is_number_integer()) fail(key, "must be positive, got " + json_excerpt(v));
    fail(key, "expected a positive integer, got " + json_excerpt(v));
  }
  std::size_t required_size(std::string_view key) const { return size(key, require(key)); }
  // Absent (or, where `null_is_default`, null) gives `fallback`.
  std::size_t optional_size(std::string_view key, std::size_t fallback, bool null_is_default = false) const {
    const auto* v = find(key);
    if (!v || (null_is_default && v->is_null())) return fallback;
    return size(key, *v);
  }

  // A finite number (integer or float).
  float number(std::string_view key, float fallback) const {
    const auto* v = find(key);
    if (!v) return fallback;
    if (!v->is_number()) fail(key, "expected a number, got " + json_excerpt(*v));
    const double d = v->get<double>();
    if (!std::isfinite(d) || std::abs(d) > std::numeric_limits<float>::max())
      fail(key, "expected a finite float32 number, got " + json_excerpt(*v));
    return static_cast<float>(d);
  }

  // A token id in [0, vocab_size).
  int token_id(std::string_view key, int fallback, std::size_t vocab_size) const {
    const auto* v = find(key);
    if (!v) return fallback;
    if (!v->is_number_integer()) fail(key, "expected a token id (an integer), got " + json_excerpt(*v));
    if (v->is_number_unsigned() && v->get<std::uint64_t>() < vocab_size)
      return static_cast<int>(v->get<std::uint64_t>());
    fail(key, "token id " + json_excerpt(*v) + " is outside the vocabulary [0, " + std::to_string(vocab_size) + ")");
  }

  bool boolean(std::string_view key, bool fallback) const {
    const auto* v = find(key);
    if (!v) return fallback;
    if (!v->is_boolean()) fail(key, "expected true or false, got " + json_excerpt(*v));
    return v->get<bool>();
  }

  const std::string* string(std::string_view key) const {
    const auto* v = find(key);
    if (!v) return nullptr;
    if (!v->is_string()) fail(key, "expected a string, got " + json_excerpt(*v));
    return &v->get_ref<const std::string&>();
  }

  DynamicPattern pattern(std::string_view key, const nlohmann::json& v) const {
    if (!v.is_array()) fail(key, "expected an array of block types, got " + json_excerpt(v));
    if (v.empty()) fail(key, "must list at least one block type");
    DynamicPattern p;
    for (std::size_t i = 0; i < v.size(); ++i) {
      const std::string item = std::string(key) + "[" + std::to_string(i) + "]";
      if (!v[i].is_string()) fail(item, "expected a block type string, got " + json_excerpt(v[i]));
      try {
        p.blocks.push_back(parse_block_type(v[i].get_ref<const std::string&>()));
      } catch (const ConfigError& e) {
        throw ConfigError(file_ + ": " + e.what());
      }
    }
    return p;
  }

 private:
  const nlohmann::json& j_;
  const std::string& file_;
};

// A rough weight count (embedding + per-layer linears), in double so absurd sizes cannot overflow.
inline double approximate_parameters(const DynamicConfig& c) {
  const double V = double(c.vocab_size), D = double(c.width), E = double(c.lru_width), H = double(c.num_heads),
               Dh = double(c.head_dim), F = double(c.mlp_width), K = double(c.conv_width);
  const double mlp = 3 * D * F;
  const double recurrent = 3 * D * E + 2 * E * E / H + K * E;
  const double attention = 2 * D * H * Dh + 2 * D * Dh * double(c.num_kv_heads);
  return V * D + double(c.depth) * (mlp + std::max(recurrent, attention));
}

}  // namespace detail

// Parses config.json text. `display_name` (usually the path) starts every message. Throws LoadError if the
// text is not JSON (or repeats a key) and ConfigError for everything else.
inline DynamicConfig parse_config_json(std::string_view json_text, std::string display_name) {
  const nlohmann::json j = detail::parse_json_unique_keys(json_text, display_name, "key");
  if (!j.is_object()) throw ConfigError(display_name + ": expected a JSON object, got " + detail::json_excerpt(j));

  for (const auto& item : j.items()) {
    const std::string& key = item.key();  // not a structured binding: clang 14 cannot capture those
    auto known = [&](const auto& list) { return std::find(list.begin(), list.end(), key) != list.end(); };
    if (!known(detail::config_keys_used) && !known(detail::config_keys_ignored))
      throw ConfigError(display_name + ": unknown key \"" + key + "\"");
  }

  const detail::ConfigReader r(j, display_name);
  DynamicConfig c;

  c.vocab_size = Size<dynamic>(r.required_size("vocab_size"));
  c.width = Size<dynamic>(r.required_size("hidden_size"));
  const std::size_t intermediate = r.required_size("intermediate_size");
  if (intermediate % 2 != 0)
    r.fail("intermediate_size", std::to_string(intermediate) + " is odd; the MLP width is half of it");
  c.mlp_width = Size<dynamic>(intermediate / 2);
  c.depth = Size<dynamic>(r.required_size("num_hidden_layers"));
  c.num_heads = Size<dynamic>(r.required_size("num_attention_heads"));
  c.num_kv_heads = Size<dynamic>(r.optional_size("num_key_value_heads", 1));
  if (!r.find("head_dim") && c.width % c.num_heads != 0)
    r.fail("head_dim", "absent, and hidden_size " + std::to_string(c.width) +
                           " is not divisible by num_attention_heads " + std::to_string(c.num_heads));
  c.head_dim = Size<dynamic>(r.optional_size("head_dim", c.width / c.num_heads, true));
  c.lru_width = Size<dynamic>(r.optional_size("lru_width", c.width, true));
  c.attention_window = Size<dynamic>(r.optional_size("attention_window_size", 2048));
  c.conv_width = Size<dynamic>(r.optional_size("conv1d_width", 4));

  const auto* block_types = r.find("block_types");
  const auto* old_block_types = r.find("_block_types");
  if (!block_types && !old_block_types) r.require("block_types");
  if (block_types) c.pattern = r.pattern("block_types", *block_types);
  if (old_block_types) {
    DynamicPattern old = r.pattern("_block_types", *old_block_types);
    if (block_types && old.blocks != c.pattern.blocks)
      r.fail("_block_types", detail::json_excerpt(*old_block_types) + " disagrees with block_types " +
                                 detail::json_excerpt(*block_types));
    c.pattern = std::move(old);
  }

  Hyperparameters& h = c.hyper;
  if (const auto* cap = r.find("logits_soft_cap"); cap && cap->is_null())
    h.logits_soft_cap = 0.0f;  // null = no cap
  else
    h.logits_soft_cap = r.number("logits_soft_cap", 30.0f);  // the Hugging Face default
  h.rms_norm_eps = r.number("rms_norm_eps", 1e-6f);
  h.partial_rotary_factor = r.number("partial_rotary_factor", 0.5f);
  h.rope_theta = r.number("rope_theta", 10000.0f);
  h.embeddings_scale_by_sqrt_dim = r.boolean("embeddings_scale_by_sqrt_dim", true);
  h.bos_token_id = r.token_id("bos_token_id", 2, c.vocab_size);
  h.eos_token_id = r.token_id("eos_token_id", 1, c.vocab_size);
  h.pad_token_id = r.token_id("pad_token_id", 0, c.vocab_size);

  // Every tanh-approximated GeLU has the same formula (spec "MLP"); the exact erf GeLU is another function.
  if (const auto* act = r.string("hidden_activation");
      act && *act != "gelu_pytorch_tanh" && *act != "gelu_tanh" && *act != "gelu_new")
    r.fail("hidden_activation", "\"" + *act + "\" is not supported (expected \"gelu_pytorch_tanh\")");

  // Newer transformers write "dtype" where older ones wrote "torch_dtype".
  std::optional<WeightType> weight_type;
  for (std::string_view key : {"torch_dtype", "dtype"}) {
    const std::string* s = r.string(key);
    if (!s) continue;
    WeightType t;
    if (*s == "float32" || *s == "float16")
      t = WeightType::f32;  // f16 weights are widened on load
    else if (*s == "bfloat16")
      t = WeightType::bf16;
    else
      r.fail(key, "\"" + *s + "\" is not supported (expected \"float32\", \"bfloat16\" or \"float16\")");
    if (weight_type && *weight_type != t) r.fail(key, "\"" + *s + "\" disagrees with torch_dtype");
    weight_type = t;
  }
  c.weight_type = weight_type.value_or(WeightType::f32);

  if (const std::string* type = r.string("model_type"); type && *type != "recurrent_gemma")
    r.fail("model_type", "\"" + *type + "\" is not \"recurrent_gemma\"");
  if (r.boolean("attention_bias", false))
    r.fail("attention_bias", "true is not supported (q, k, v projections have no bias)");
  if (!r.boolean("tie_word_embeddings", true))
    r.fail("tie_word_embeddings", "false is not supported (the logits use the embedding table)");

  if (const double n = detail::approximate_parameters(c); n > detail::max_config_parameters) {
    char approx[32];
    std::snprintf(approx, sizeof approx, "%.3g", n);
    throw ConfigError(display_name + ": the sizes imply about " + approx +
                      " parameters, more than the limit of 1e12 (vocab_size " + std::to_string(c.vocab_size) +
                      ", hidden_size " + std::to_string(c.width) + ", lru_width " + std::to_string(c.lru_width) +
                      ", intermediate_size " + std::to_string(intermediate) + ", num_hidden_layers " +
                      std::to_string(c.depth) + ")");
  }
  try {
    c.validate();
  } catch (const ConfigError& e) {
    throw ConfigError(display_name + ": " + e.what());
  }
  return c;
}

// Reads and parses a config.json file. Throws LoadError if it cannot be read.
inline DynamicConfig read_config_json(const std::filesystem::path& path) {
  MappedFile file = MappedFile::open(path);
  constexpr std::size_t max_bytes = 16u * 1024u * 1024u;  // a config is a few hundred bytes
  if (file.size() > max_bytes)
    throw LoadError(path.string() + ": " + std::to_string(file.size()) + " bytes is too large for a config.json");
  return parse_config_json(std::string_view(reinterpret_cast<const char*>(file.data()), file.size()), path.string());
}

}  // namespace griffin::io
