// The model description (griffin/config.hpp, extent.hpp, presets.hpp): sizes as compile-time or run-time
// extents, the field table that lists every size and hyperparameter once, run-time validation naming the
// field by its config.json key, and convert_config between dynamic and static configs.
#include <doctest/doctest.h>

#include <cstddef>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "griffin/config.hpp"
#include "griffin/extent.hpp"
#include "griffin/presets.hpp"

using namespace griffin;

// ---- Extents ----

TEST_CASE("a compile-time Size is its constant; a run-time one carries its value; both convert to size_t") {
  constexpr Size<4> four;
  const Size<dynamic> seven(7);
  static_assert(Size<4>::is_static && !Size<dynamic>::is_static);
  static_assert(four.value() == 4 && std::size_t(four) == 4);
  CHECK(seven.value() == 7);
  CHECK(std::size_t(seven) == 7);
  CHECK(Size<4>(9).value() == 4);  // a static size ignores a run-time value
  CHECK(static_extent<Size<4>> == 4);
  CHECK(static_extent<Size<dynamic>> == dynamic);

  // Quotients and products are static when both sides are.
  const auto q = extent_quotient(Size<192>{}, Size<4>{});
  static_assert(std::is_same_v<decltype(q), const Size<48>>);
  const auto q_dynamic = extent_quotient(Size<192>{}, Size<dynamic>(4));
  static_assert(std::is_same_v<decltype(q_dynamic), const Size<dynamic>>);
  CHECK(q_dynamic.value() == 48);
  const auto p = extent_product(Size<4>{}, Size<48>{});
  static_assert(std::is_same_v<decltype(p), const Size<192>>);
  CHECK(extent_product(Size<dynamic>(4), Size<48>{}).value() == 192);

  // A kernel is instantiated for a constant only up to its limit.
  static_assert(std::is_same_v<decltype(kernel_extent(Size<1024>{})), Size<1024>>);
  static_assert(std::is_same_v<decltype(kernel_extent(Size<2048>{})), Size<dynamic>>);
  CHECK(kernel_extent(Size<2048>{}).value() == 2048);
  static_assert(std::is_same_v<decltype(kernel_extent<64>(Size<65>{})), Size<dynamic>>);
}

TEST_CASE("a config's extent<&Shape::field>() is a constant where its Shape fixes the field") {
  using PartlyStatic = ModelConfig<Shape{.width = 128, .lru_width = 192}, DynamicPattern>;
  PartlyStatic c;
  c.sizes.num_heads = 4;
  static_assert(std::is_same_v<decltype(c.extent<&Shape::width>()), Size<128>>);
  static_assert(std::is_same_v<decltype(c.extent<&Shape::num_heads>()), Size<dynamic>>);
  CHECK(c.extent<&Shape::num_heads>().value() == 4);
  // A config holds every size at run time, the static ones as their constants.
  CHECK(c.sizes.width == 128);
  CHECK(c.sizes.lru_width == 192);
  CHECK(c.sizes.vocab_size == dynamic);
  static_assert(presets::KjvGriffin::fully_static);
  static_assert(!PartlyStatic::fully_static);
  CHECK(presets::KjvGriffin{}.sizes == presets::kjv_griffin);
}

// ---- The field table ----

TEST_CASE("the field table lists every member of Shape and of Hyperparameters exactly once") {
  // Every size set through the table, then read back member by member: the structured binding lists all of
  // Shape's members (it stops compiling when one is added), a member the table missed keeps `dynamic`, and
  // one it visited twice leaves another unset.
  Shape s;
  std::size_t next = 1;
  std::set<std::string_view> names, keys;
  visit_sizes([&](const SizeField& f) { s.*f.member = next++; });
  const auto [vocab_size, width, lru_width, num_heads, head_dim, num_kv_heads, mlp_width, conv_width, attention_window,
              depth] = s;
  CHECK(std::vector<std::size_t>{vocab_size, width, lru_width, num_heads, head_dim, num_kv_heads, mlp_width, conv_width,
                                 attention_window, depth} == std::vector<std::size_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10});

  // Hyperparameters: every field moved away from its default through the table.
  Hyperparameters h;
  const Hyperparameters defaults;
  visit_fields([&](const auto& f) {
    using F = std::remove_cvref_t<decltype(f)>;
    CHECK(keys.insert(f.json_key).second);  // config.json keys are distinct
    if constexpr (std::is_same_v<F, SizeField>) {
      CHECK(names.insert(f.name).second);
    } else if constexpr (std::is_same_v<F, NumberField>) {
      CHECK(f.fallback == defaults.*f.member);  // the default config.json gives is the struct's
      h.*f.member = -1.0f;
    } else if constexpr (std::is_same_v<F, FlagField>) {
      CHECK(f.fallback == defaults.*f.member);
      h.*f.member = !(h.*f.member);
    } else {
      static_assert(std::is_same_v<F, TokenField>);
      CHECK(f.fallback == defaults.*f.member);
      h.*f.member = -1;
    }
  });
  const auto [soft_cap, eps, theta, rotary, scale_embeddings, bos, eos, pad] = h;
  CHECK(std::vector<float>{soft_cap, eps, theta, rotary} == std::vector<float>(4, -1.0f));
  CHECK(scale_embeddings != defaults.embeddings_scale_by_sqrt_dim);
  CHECK(std::vector<int>{bos, eos, pad} == std::vector<int>(3, -1));
  CHECK(keys.size() == 10 + 8);
}

TEST_CASE("size_field_label names a size by its config.json key, then griffin's name") {
  std::vector<std::string> labels;
  visit_sizes([&](const SizeField& f) { labels.push_back(size_field_label(f)); });
  CHECK(labels == std::vector<std::string>{"vocab_size", "hidden_size (width)", "lru_width",
                                           "num_attention_heads (num_heads)", "head_dim",
                                           "num_key_value_heads (num_kv_heads)", "intermediate_size/2 (mlp_width)",
                                           "conv1d_width (conv_width)", "attention_window_size (attention_window)",
                                           "num_hidden_layers (depth)"});
}

// ---- Validation ----

namespace {
constexpr Shape small{.vocab_size = 256, .width = 64, .lru_width = 64, .num_heads = 4, .head_dim = 16,
                      .num_kv_heads = 1, .mlp_width = 128, .conv_width = 4, .attention_window = 32, .depth = 3};
const std::vector<BlockType> griffin_blocks{BlockType::recurrent, BlockType::recurrent, BlockType::local_attention};

// make_dynamic_config with one size or hyperparameter changed.
template <class Edit>
DynamicConfig edited(Edit edit, std::vector<BlockType> blocks = griffin_blocks) {
  Shape s = small;
  Hyperparameters h;
  edit(s, h);
  return make_dynamic_config(s, std::move(blocks), h);
}
}  // namespace

TEST_CASE("make_dynamic_config validates, naming the field by its config.json key") {
  CHECK_NOTHROW(make_dynamic_config(small, griffin_blocks));
  const DynamicConfig c = make_dynamic_config(small, griffin_blocks, presets::paper_hyper, WeightType::bf16);
  CHECK(c.sizes == small);
  CHECK(c.weight_type == WeightType::bf16);
  CHECK(c.hyper.logits_soft_cap == 0.0f);
  CHECK(c.block_type(4) == BlockType::recurrent);  // the pattern repeats to the depth
  CHECK(c.block_type(5) == BlockType::local_attention);
  CHECK(c.rope_dims() == 8);

  CHECK_THROWS_WITH_AS(edited([](Shape& s, Hyperparameters&) { s.width = 0; }),
                       doctest::Contains("hidden_size (width) must be positive"), ConfigError);
  CHECK_THROWS_WITH_AS(edited([](Shape& s, Hyperparameters&) { s.mlp_width = dynamic; }),
                       doctest::Contains("intermediate_size/2 (mlp_width) is not set"), ConfigError);
  CHECK_THROWS_WITH_AS(edited([](Shape& s, Hyperparameters&) { s.lru_width = 66; }),
                       doctest::Contains("lru_width must be divisible by num_attention_heads"), ConfigError);
  CHECK_THROWS_WITH_AS(edited([](Shape& s, Hyperparameters&) { s.num_kv_heads = 3; }),
                       doctest::Contains("num_attention_heads must be divisible by num_key_value_heads"), ConfigError);
  CHECK_THROWS_WITH_AS(edited([](Shape& s, Hyperparameters&) { s.num_kv_heads = 4; }),
                       doctest::Contains("num_key_value_heads must be 1"), ConfigError);
  CHECK_THROWS_WITH_AS(edited([](Shape& s, Hyperparameters&) { s.head_dim = 18; }),
                       doctest::Contains("head_dim must be divisible by 4"), ConfigError);
  CHECK_THROWS_WITH_AS(edited([](Shape& s, Hyperparameters& h) { s.head_dim = 12, h.partial_rotary_factor = 0.25f; }),
                       doctest::Contains("partial_rotary_factor gives 3 rotated dims of head_dim 12"), ConfigError);
  CHECK_THROWS_WITH_AS(edited([](Shape&, Hyperparameters& h) { h.rms_norm_eps = 0; }),
                       doctest::Contains("rms_norm_eps must be positive"), ConfigError);
  CHECK_THROWS_WITH_AS(edited([](Shape&, Hyperparameters& h) { h.logits_soft_cap = -1; }),
                       doctest::Contains("logits_soft_cap must be >= 0 (0 = none)"), ConfigError);
  CHECK_THROWS_WITH_AS(edited([](Shape&, Hyperparameters& h) { h.partial_rotary_factor = 1.5f; }),
                       doctest::Contains("partial_rotary_factor must be between 0 and 1, got 1.5"), ConfigError);
  CHECK_THROWS_WITH_AS(edited([](Shape&, Hyperparameters& h) { h.eos_token_id = 256; }),
                       doctest::Contains("eos_token_id: token id 256 is outside the vocabulary [0, 256)"), ConfigError);
  CHECK_THROWS_WITH_AS(edited([](Shape&, Hyperparameters&) {}, {}), doctest::Contains("block_types must list at least one"),
                       ConfigError);
  // The attention rules do not apply to a model without attention (Hawk).
  CHECK_NOTHROW(edited([](Shape& s, Hyperparameters&) { s.head_dim = 18; }, {BlockType::recurrent}));
}

TEST_CASE("a static config refuses a run-time size other than its constant") {
  presets::KjvGriffin c;
  CHECK_NOTHROW(c.validate());
  c.sizes.width = 100;
  CHECK_THROWS_WITH_AS(c.validate(),
                       doctest::Contains("width: the compile-time config says 192 but the run-time value is 100"),
                       ConfigError);
}

TEST_CASE("convert_config fills a static config from a dynamic one and refuses a mismatch, naming the field") {
  const DynamicConfig kjv = make_dynamic_config(presets::kjv_griffin, griffin_blocks);
  const auto fixed = convert_config<presets::KjvGriffin>(kjv);
  CHECK(fixed.sizes == kjv.sizes);
  const auto back = convert_config<DynamicConfig>(fixed);
  CHECK(back.sizes == kjv.sizes);
  CHECK(back.pattern.blocks == griffin_blocks);

  Shape wider = presets::kjv_griffin;
  wider.width = 256;
  wider.lru_width = 256;
  CHECK_THROWS_WITH_AS(convert_config<presets::KjvGriffin>(make_dynamic_config(wider, griffin_blocks)),
                       doctest::Contains("hidden_size (width): the compile-time config says 192 but the checkpoint has 256"),
                       ConfigError);
  CHECK_THROWS_WITH_AS(convert_config<presets::KjvGriffin>(make_dynamic_config(presets::kjv_griffin, {BlockType::recurrent})),
                       doctest::Contains("block_types: layer 2 is \"attention\" in the compile-time config but "
                                         "\"recurrent\" in the checkpoint"),
                       ConfigError);
  // A Hawk checkpoint may carry any window: no layer reads it.
  using SmallHawk = ModelConfig<Shape{.vocab_size = 256, .width = 64, .lru_width = 64, .num_heads = 4, .head_dim = 16,
                                      .num_kv_heads = 1, .mlp_width = 128, .conv_width = 4, .attention_window = 2048,
                                      .depth = 3},
                                HawkPattern>;
  const auto hawk = convert_config<SmallHawk>(make_dynamic_config(small, {BlockType::recurrent}));
  CHECK(hawk.sizes.attention_window == 2048);
}
