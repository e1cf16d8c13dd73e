// Reading config.json (griffin/io/config_json.hpp): the golden configs, defaults and alternative
// spellings, every malformed config refused with the key and value named, and every field of the field
// table (griffin/config.hpp) read from its key and written back under it.
#include <doctest/doctest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "griffin/config.hpp"
#include "griffin/io/config_json.hpp"
#include "griffin/io/error.hpp"
#include "scratch_files.hpp"

namespace fs = std::filesystem;
using griffin::BlockType;
using griffin::ConfigError;
using griffin::DynamicConfig;
using griffin::io::LoadError;
using griffin::test::read_text;
using griffin::test::scratch;

namespace {

const fs::path data_dir = GRIFFIN_TEST_DATA;

// The tiny-griffin config as JSON, for the malformed-config cases to edit one key at a time.
nlohmann::json base_config() { return nlohmann::json::parse(read_text(data_dir / "tiny-griffin" / "config.json")); }
DynamicConfig parse_edited(const nlohmann::json& j) {
  return griffin::io::parse_config_json(j.dump(), "bad/config.json");
}

}  // namespace

TEST_CASE("tiny-griffin config.json parses to the right values") {
  const DynamicConfig c = griffin::io::read_config_json(data_dir / "tiny-griffin" / "config.json");
  CHECK(c.sizes.vocab_size == 512);
  CHECK(c.sizes.width == 128);
  CHECK(c.sizes.mlp_width == 384);
  CHECK(c.sizes.depth == 6);
  CHECK(c.sizes.num_heads == 4);
  CHECK(c.sizes.num_kv_heads == 1);
  CHECK(c.sizes.head_dim == 32);
  CHECK(c.sizes.lru_width == 192);
  CHECK(c.sizes.attention_window == 24);
  CHECK(c.sizes.conv_width == 4);
  CHECK(c.pattern.blocks ==
        std::vector<BlockType>{BlockType::recurrent, BlockType::recurrent, BlockType::local_attention});
  CHECK(c.hyper.logits_soft_cap == 30.0f);
  CHECK(c.hyper.rms_norm_eps == 1e-6f);
  CHECK(c.hyper.partial_rotary_factor == 0.5f);
  CHECK(c.hyper.rope_theta == 10000.0f);
  CHECK(c.hyper.embeddings_scale_by_sqrt_dim);
  CHECK(c.hyper.bos_token_id == 2);
  CHECK(c.hyper.eos_token_id == 1);
  CHECK(c.hyper.pad_token_id == 0);
  CHECK(c.weight_type == griffin::WeightType::f32);
  CHECK(c.rope_dims() == 16);
}

TEST_CASE("the other golden configs parse to the right values") {
  const auto hawk = griffin::io::read_config_json(data_dir / "tiny-hawk-bf16" / "config.json");
  CHECK(hawk.pattern.blocks == std::vector<BlockType>{BlockType::recurrent});
  CHECK(hawk.weight_type == griffin::WeightType::bf16);
  CHECK(hawk.sizes.vocab_size == 300);
  CHECK(hawk.sizes.width == 64);
  CHECK(hawk.sizes.lru_width == 64);
  CHECK(hawk.sizes.mlp_width == 192);
  CHECK(hawk.sizes.depth == 4);
  CHECK(hawk.sizes.num_heads == 2);
  CHECK_FALSE(hawk.has_attention());

  const auto mqa = griffin::io::read_config_json(data_dir / "tiny-mqa" / "config.json");
  CHECK(mqa.pattern.blocks == std::vector<BlockType>{BlockType::local_attention});
  CHECK(mqa.sizes.attention_window == 4096);
  CHECK(mqa.hyper.logits_soft_cap == 0.0f);
  CHECK_FALSE(mqa.hyper.embeddings_scale_by_sqrt_dim);
  CHECK(mqa.sizes.num_heads == 3);
  CHECK(mqa.sizes.head_dim == 32);
  CHECK(mqa.sizes.mlp_width == 288);

  const auto kjv = griffin::io::read_config_json(data_dir / "kjv-griffin" / "config.json");
  CHECK(kjv.sizes.width == 192);
  CHECK(kjv.sizes.head_dim == 48);
  CHECK(kjv.sizes.mlp_width == 576);
  CHECK(kjv.sizes.attention_window == 64);
  CHECK(kjv.hyper.bos_token_id == 10);
  CHECK(kjv.hyper.eos_token_id == 0);
  CHECK(kjv.weight_type == griffin::WeightType::bf16);
}

TEST_CASE("config.json defaults and alternative spellings") {
  nlohmann::json j = base_config();
  for (const char* key :
       {"num_key_value_heads", "head_dim", "lru_width", "conv1d_width", "logits_soft_cap", "rms_norm_eps",
        "partial_rotary_factor", "rope_theta", "torch_dtype", "hidden_activation", "attention_window_size"})
    j.erase(key);
  j["_block_types"] = j["block_types"];
  j.erase("block_types");
  j["transformers_version"] = "4.40.0";
  j["use_cache"] = true;
  const auto c = parse_edited(j);
  CHECK(c.sizes.num_kv_heads == 1);
  CHECK(c.sizes.head_dim == 32);    // hidden_size / num_attention_heads
  CHECK(c.sizes.lru_width == 128);  // hidden_size
  CHECK(c.sizes.conv_width == 4);
  CHECK(c.sizes.attention_window == 2048);
  CHECK(c.hyper.logits_soft_cap == 30.0f);
  CHECK(c.weight_type == griffin::WeightType::f32);
  CHECK(c.pattern.period() == 3);

  nlohmann::json both = base_config();
  both["_block_types"] = both["block_types"];
  CHECK(parse_edited(both).pattern.period() == 3);

  nlohmann::json null_cap = base_config();
  null_cap["logits_soft_cap"] = nullptr;
  CHECK(parse_edited(null_cap).hyper.logits_soft_cap == 0.0f);

  nlohmann::json f16 = base_config();
  f16["torch_dtype"] = "float16";
  CHECK(parse_edited(f16).weight_type == griffin::WeightType::f32);
}

TEST_CASE("malformed config.json is refused with the key and value named") {
  auto with = [](const char* key, nlohmann::json value) {
    nlohmann::json j = base_config();
    j[key] = std::move(value);
    return j;
  };
  auto without = [](const char* key) {
    nlohmann::json j = base_config();
    j.erase(key);
    return j;
  };

  SUBCASE("unknown key") {
    CHECK_THROWS_WITH_AS(parse_edited(with("foo", 1)), doctest::Contains("bad/config.json: unknown key \"foo\""),
                         ConfigError);
  }
  SUBCASE("missing required keys") {
    for (const char* key : {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                            "num_attention_heads", "block_types"}) {
      CAPTURE(key);
      CHECK_THROWS_WITH_AS(
          parse_edited(without(key)),
          doctest::Contains(("bad/config.json: missing required key \"" + std::string(key) + "\"").c_str()),
          ConfigError);
    }
  }
  SUBCASE("wrong types") {
    CHECK_THROWS_WITH_AS(parse_edited(with("hidden_size", "128")),
                         doctest::Contains("bad/config.json: hidden_size: expected a positive integer, got \"128\""),
                         ConfigError);
    CHECK_THROWS_WITH_AS(parse_edited(with("vocab_size", 512.0)),
                         doctest::Contains("vocab_size: expected a positive integer, got 512.0"), ConfigError);
    CHECK_THROWS_WITH_AS(parse_edited(with("num_hidden_layers", true)),
                         doctest::Contains("num_hidden_layers: expected a positive integer, got true"), ConfigError);
    CHECK_THROWS_WITH_AS(parse_edited(with("rope_theta", "10000")),
                         doctest::Contains("rope_theta: expected a number, got \"10000\""), ConfigError);
    CHECK_THROWS_WITH_AS(parse_edited(with("block_types", "recurrent")),
                         doctest::Contains("block_types: expected an array of block types"), ConfigError);
    CHECK_THROWS_WITH_AS(parse_edited(with("embeddings_scale_by_sqrt_dim", 1)),
                         doctest::Contains("embeddings_scale_by_sqrt_dim: expected true or false, got 1"), ConfigError);
  }
  SUBCASE("zero, negative and enormous sizes") {
    CHECK_THROWS_WITH_AS(parse_edited(with("hidden_size", 0)),
                         doctest::Contains("hidden_size: must be positive, got 0"), ConfigError);
    CHECK_THROWS_WITH_AS(parse_edited(with("num_attention_heads", -4)),
                         doctest::Contains("num_attention_heads: must be positive, got -4"), ConfigError);
    CHECK_THROWS_WITH_AS(parse_edited(with("vocab_size", 1000000000000ull)),
                         doctest::Contains("vocab_size: 1000000000000 is larger than the limit of 2147483647"),
                         ConfigError);
    CHECK_THROWS_WITH_AS(parse_edited(with("vocab_size", 1e12)),
                         doctest::Contains("vocab_size: expected a positive integer, got 1000000000000.0"),
                         ConfigError);
    // Each size is allowed on its own, but together they describe a model of 10^15 weights.
    nlohmann::json huge = with("vocab_size", 2000000000);
    huge["hidden_size"] = 1048576;
    huge["lru_width"] = 1048576;
    huge["head_dim"] = 262144;
    CHECK_THROWS_WITH_AS(parse_edited(huge), doctest::Contains("more than the limit of 1e12 (vocab_size 2000000000"),
                         ConfigError);
  }
  SUBCASE("odd intermediate_size") {
    CHECK_THROWS_WITH_AS(parse_edited(with("intermediate_size", 767)),
                         doctest::Contains("bad/config.json: intermediate_size: 767 is odd"), ConfigError);
  }
  SUBCASE("block types") {
    CHECK_THROWS_WITH_AS(parse_edited(with("block_types", {"recurrent", "mamba"})),
                         doctest::Contains("bad/config.json: block_types: unknown block type \"mamba\""), ConfigError);
    CHECK_THROWS_WITH_AS(parse_edited(with("block_types", nlohmann::json::array())),
                         doctest::Contains("block_types: must list at least one block type"), ConfigError);
    CHECK_THROWS_WITH_AS(parse_edited(with("_block_types", {"recurrent"})),
                         doctest::Contains("_block_types: [\"recurrent\"] disagrees with block_types"), ConfigError);
  }
  SUBCASE("unsupported choices") {
    CHECK_THROWS_WITH_AS(parse_edited(with("hidden_activation", "gelu")),
                         doctest::Contains("hidden_activation: \"gelu\" is not supported"), ConfigError);
    CHECK_THROWS_WITH_AS(parse_edited(with("torch_dtype", "int8")),
                         doctest::Contains("torch_dtype: \"int8\" is not supported"), ConfigError);
    CHECK_THROWS_WITH_AS(parse_edited(with("model_type", "gemma")),
                         doctest::Contains("model_type: \"gemma\" is not \"recurrent_gemma\""), ConfigError);
    CHECK_THROWS_WITH_AS(parse_edited(with("attention_bias", true)),
                         doctest::Contains("attention_bias: true is not supported"), ConfigError);
    CHECK_THROWS_WITH_AS(parse_edited(with("tie_word_embeddings", false)),
                         doctest::Contains("tie_word_embeddings: false is not supported"), ConfigError);
    CHECK_THROWS_WITH_AS(parse_edited(with("bos_token_id", 512)),
                         doctest::Contains("bos_token_id: token id 512 is outside the vocabulary [0, 512)"),
                         ConfigError);
  }
  SUBCASE("semantic checks name the file") {
    CHECK_THROWS_WITH_AS(parse_edited(with("lru_width", 190)),
                         doctest::Contains("bad/config.json: lru_width must be divisible by num_attention_heads"),
                         ConfigError);
    CHECK_THROWS_WITH_AS(parse_edited(with("rms_norm_eps", 0)),
                         doctest::Contains("bad/config.json: rms_norm_eps must be positive"), ConfigError);
    // Found by fuzz_config: a negative factor made rope_dims() convert -16 to an unsigned size.
    CHECK_THROWS_WITH_AS(parse_edited(with("partial_rotary_factor", -0.5)),
                         doctest::Contains("bad/config.json: partial_rotary_factor must be between 0 and 1, got -0.5"),
                         ConfigError);
    CHECK_THROWS_WITH_AS(parse_edited(with("partial_rotary_factor", 1.5)),
                         doctest::Contains("partial_rotary_factor must be between 0 and 1, got 1.5"), ConfigError);
  }
  SUBCASE("not JSON, not an object, a repeated key") {
    CHECK_THROWS_WITH_AS(griffin::io::parse_config_json("{\"vocab_size\": 12", "bad/config.json"),
                         doctest::Contains("bad/config.json: invalid JSON"), LoadError);
    CHECK_THROWS_WITH_AS(griffin::io::parse_config_json("[1, 2]", "bad/config.json"),
                         doctest::Contains("bad/config.json: expected a JSON object, got [1,2]"), ConfigError);
    CHECK_THROWS_WITH_AS(griffin::io::parse_config_json("{\"vocab_size\": 12, \"vocab_size\": 13}", "bad/config.json"),
                         doctest::Contains("bad/config.json: duplicate key \"vocab_size\""), LoadError);
  }
  SUBCASE("a file that does not exist") {
    CHECK_THROWS_WITH_AS(griffin::io::read_config_json(scratch("config") / "nope.json"),
                         doctest::Contains("nope.json: cannot open"), LoadError);
  }
}

// ---- The field table (griffin/config.hpp's visit_fields) is what the reader reads ----

namespace {

using griffin::FlagField;
using griffin::NumberField;
using griffin::SizeField;
using griffin::TokenField;

// A value for `field`'s key other than tiny-griffin's (or its default), that still describes a valid model:
// sizes doubled, numbers halved, flags flipped, token ids moved. num_key_value_heads has no other valid value.
template <class Field>
nlohmann::json other_value(const Field& f, const nlohmann::json& base) {
  const std::string key(f.json_key);
  if constexpr (std::is_same_v<Field, SizeField>) {
    return base.at(key).get<std::size_t>() * 2;
  } else if constexpr (std::is_same_v<Field, NumberField>) {
    return double(float(base.value(key, double(f.fallback))) * 0.5f);  // a float, as the field holds it
  } else if constexpr (std::is_same_v<Field, FlagField>) {
    return !base.value(key, f.fallback);
  } else {
    return base.value(key, f.fallback) + 3;
  }
}

bool changeable(const SizeField& f) { return f.json_key != "num_key_value_heads"; }
template <class Field>
bool changeable(const Field&) {
  return true;
}

// The field's value in a config, as config.json spells it (a size times its json_factor).
template <class Field>
nlohmann::json value_in(const Field& f, const DynamicConfig& c) {
  if constexpr (std::is_same_v<Field, SizeField>) return c.sizes.*f.member * f.json_factor;
  else if constexpr (std::is_same_v<Field, NumberField>) return double(c.hyper.*f.member);
  else return c.hyper.*f.member;
}

// Every field of two configs, by key, that differs.
std::vector<std::string> differing_fields(const DynamicConfig& a, const DynamicConfig& b) {
  std::vector<std::string> keys;
  griffin::visit_fields([&](const auto& f) {
    if (value_in(f, a) != value_in(f, b)) keys.emplace_back(f.json_key);
  });
  return keys;
}

}  // namespace

TEST_CASE("every field of the table is read from its config.json key, and from nothing else") {
  const nlohmann::json base = base_config();
  const DynamicConfig original = parse_edited(base);
  griffin::visit_fields([&](const auto& f) {
    const std::string key(f.json_key);
    CAPTURE(key);
    nlohmann::json j = base;
    if (!changeable(f)) {
      // The one value it may hold is checked: another is refused, naming the key.
      j[key] = 2;
      CHECK_THROWS_WITH_AS(parse_edited(j), doctest::Contains("num_key_value_heads must be 1"), ConfigError);
      return;
    }
    j[key] = other_value(f, base);
    const DynamicConfig c = parse_edited(j);
    CHECK(value_in(f, c) == j[key]);
    // No other field moved.
    CHECK(differing_fields(c, original) == std::vector<std::string>{key});
    // A misspelt key is refused, never read as the default.
    nlohmann::json typo = base;
    typo[key + "s"] = j[key];
    CHECK_THROWS_WITH_AS(parse_edited(typo), doctest::Contains(("unknown key \"" + key + "s\"").c_str()), ConfigError);
  });
}

TEST_CASE("a size config.json holds a multiple of (json_factor) refuses a value that is not one") {
  std::size_t factor_fields = 0;
  griffin::visit_sizes([&](const SizeField& f) {
    if (f.json_factor == 1) return;
    ++factor_fields;
    const std::string key(f.json_key);
    CAPTURE(key);
    nlohmann::json j = base_config();
    const std::size_t odd = j.at(key).get<std::size_t>() + 1;
    j[key] = odd;
    const std::string message = key + ": " + std::to_string(odd) + " is odd";
    CHECK_THROWS_WITH_AS(parse_edited(j), doctest::Contains(message.c_str()), ConfigError);
  });
  CHECK(factor_fields == 1);  // intermediate_size = 2 × mlp_width
}

TEST_CASE("every field written back under its key, as griffin info lists them, reads back the same config") {
  // Every field away from tiny-griffin's values and from the defaults at once, so a field the listing
  // missed would come back as its default (or tiny-griffin's value) and differ.
  nlohmann::json changed = base_config();
  const nlohmann::json base = changed;
  griffin::visit_fields([&](const auto& f) {
    if (changeable(f)) changed[std::string(f.json_key)] = other_value(f, base);
  });
  const DynamicConfig c = parse_edited(changed);
  DynamicConfig defaults;
  std::vector<std::string> at_default;
  griffin::visit_fields([&](const auto& f) {
    if constexpr (!std::is_same_v<std::remove_cvref_t<decltype(f)>, SizeField>)
      if (value_in(f, c) == value_in(f, defaults)) at_default.emplace_back(f.json_key);
  });
  CHECK(at_default.empty());

  nlohmann::json listed = nlohmann::json::object();
  griffin::visit_fields([&](const auto& f) { listed[std::string(f.json_key)] = value_in(f, c); });
  listed["block_types"] = base.at("block_types");
  const DynamicConfig back = parse_edited(listed);
  CHECK(back.sizes == c.sizes);
  CHECK(differing_fields(back, c).empty());
  CHECK(back.pattern.blocks == c.pattern.blocks);
}
