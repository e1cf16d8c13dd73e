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

// Keys that Hugging Face writes but that do not change inference: accepted and ignored (model_type,
// attention_bias and tie_word_embeddings are also checked, below).
inline constexpr std::array<std::string_view, 14> config_keys_ignored = {
    "architectures", "model_type", "transformers_version", "_name_or_path", "final_w_init_variance_scale",
    "w_init_variance_scale", "use_cache", "attention_dropout", "output_hidden_states", "output_attentions",
    "return_dict", "initializer_range", "max_position_embeddings", "torchscript"};

// Keys read besides the field table's: the pattern, the activation, the dtype and two checked flags.
inline constexpr std::array<std::string_view, 7> config_keys_special = {
    "block_types", "_block_types", "hidden_activation", "torch_dtype", "dtype", "attention_bias", "tie_word_embeddings"};

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
inline double approximate_parameters(const Shape& s) {
  const double V = double(s.vocab_size), D = double(s.width), E = double(s.lru_width), H = double(s.num_heads),
               Dh = double(s.head_dim), F = double(s.mlp_width), K = double(s.conv_width);
  const double mlp = 3 * D * F;
  const double recurrent = 3 * D * E + 2 * E * E / H + K * E;
  const double attention = 2 * D * H * Dh + 2 * D * Dh * double(s.num_kv_heads);
  return V * D + double(s.depth) * (mlp + std::max(recurrent, attention));
}

// Reads one field of the table into `c`: its key, or the default the table gives when it is absent.
class FieldReader {
 public:
  FieldReader(const ConfigReader& r, DynamicConfig& c) : r_(r), c_(c) {}

  void operator()(const SizeField& f) const {
    const nlohmann::json* v = r_.find(f.json_key);
    std::size_t& size = c_.sizes.*f.member;
    if (v && !(f.null_is_default && v->is_null())) {
      const std::size_t n = r_.size(f.json_key, *v);
      if (n % f.json_factor != 0)
        r_.fail(f.json_key, std::to_string(n) + (f.json_factor == 2 ? " is odd" : " is not a multiple of " +
                                                  std::to_string(f.json_factor)) +
                                "; " + std::string(f.name) + " is 1/" + std::to_string(f.json_factor) + " of it");
      size = n / f.json_factor;
      return;
    }
    const SizeDefault& d = f.fallback;
    switch (d.kind) {
      case SizeDefault::required: r_.require(f.json_key); break;
      case SizeDefault::constant: size = d.value; break;
      case SizeDefault::same_as: size = c_.sizes.*d.of; break;
      case SizeDefault::quotient: {
        const std::size_t a = c_.sizes.*d.of, b = c_.sizes.*d.by;
        if (a % b != 0)
          r_.fail(f.json_key, "absent, and " + key_of(d.of) + " " + std::to_string(a) + " is not divisible by " +
                                  key_of(d.by) + " " + std::to_string(b));
        size = a / b;
        break;
      }
    }
  }
  void operator()(const NumberField& f) const {
    if (const auto* v = r_.find(f.json_key); v && v->is_null() && f.null_is_zero) c_.hyper.*f.member = 0.0f;
    else c_.hyper.*f.member = r_.number(f.json_key, f.fallback);
  }
  void operator()(const FlagField& f) const { c_.hyper.*f.member = r_.boolean(f.json_key, f.fallback); }
  void operator()(const TokenField& f) const {
    c_.hyper.*f.member = r_.token_id(f.json_key, f.fallback, c_.sizes.vocab_size);
  }

 private:
  static std::string key_of(std::size_t Shape::*member) {
    std::string key;
    visit_sizes([&](const SizeField& f) {
      if (f.member == member) key = f.json_key;
    });
    return key;
  }
  const ConfigReader& r_;
  DynamicConfig& c_;
};

}  // namespace detail

// Parses config.json text. `display_name` (usually the path) starts every message. Throws LoadError if the
// text is not JSON (or repeats a key) and ConfigError for everything else.
inline DynamicConfig parse_config_json(std::string_view json_text, std::string display_name) {
  const nlohmann::json j = detail::parse_json_unique_keys(json_text, display_name, "key");
  if (!j.is_object()) throw ConfigError(display_name + ": expected a JSON object, got " + detail::json_excerpt(j));

  std::vector<std::string_view> known(detail::config_keys_ignored.begin(), detail::config_keys_ignored.end());
  known.insert(known.end(), detail::config_keys_special.begin(), detail::config_keys_special.end());
  visit_fields([&](const auto& field) { known.push_back(field.json_key); });
  for (const auto& item : j.items()) {
    const std::string& key = item.key();  // not a structured binding: clang 14 cannot capture those
    if (std::find(known.begin(), known.end(), key) == known.end())
      throw ConfigError(display_name + ": unknown key \"" + key + "\"");
  }

  const detail::ConfigReader r(j, display_name);
  DynamicConfig c;
  visit_fields(detail::FieldReader(r, c));

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

  if (const double n = detail::approximate_parameters(c.sizes); n > detail::max_config_parameters) {
    char approx[32];
    std::snprintf(approx, sizeof approx, "%.3g", n);
    std::string sizes;
    visit_sizes([&](const SizeField& f) {
      sizes += (sizes.empty() ? "" : ", ") + std::string(f.json_key) + " " +
               std::to_string(c.sizes.*f.member * f.json_factor);
    });
    throw ConfigError(display_name + ": the sizes imply about " + approx + " parameters, more than the limit of 1e12 (" +
                      sizes + ")");
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
