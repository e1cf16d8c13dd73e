// Model directories (griffin/io/checkpoint.hpp): the golden ones in tests/data hold the spec's tensors and
// the documented golden outputs, and a sharded directory's index must agree with its shards exactly.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "griffin/config.hpp"
#include "griffin/dtype.hpp"
#include "griffin/io/checkpoint.hpp"
#include "griffin/io/config_json.hpp"
#include "griffin/io/error.hpp"
#include "griffin/io/safetensors.hpp"
#include "griffin/io/safetensors_write.hpp"
#include "scratch_files.hpp"

namespace fs = std::filesystem;
using griffin::BlockType;
using griffin::DType;
using griffin::DynamicConfig;
using griffin::io::Checkpoint;
using griffin::io::LoadError;
using griffin::io::SafetensorsFile;
using griffin::io::TensorToWrite;
using griffin::test::as_bytes;
using griffin::test::scratch;
using griffin::test::write_text;
using Shape = std::vector<std::size_t>;

namespace {

const fs::path data_dir = GRIFFIN_TEST_DATA;

// What the spec's checkpoint table says a model with this config holds.
std::map<std::string, Shape> expected_tensors(const DynamicConfig& c) {
  const griffin::Shape& s = c.sizes;
  const std::size_t V = s.vocab_size, D = s.width, E = s.lru_width, H = s.num_heads, Dh = s.head_dim, F = s.mlp_width,
                    K = s.conv_width, KV = s.num_kv_heads;
  std::map<std::string, Shape> m{{"model.embed_tokens.weight", {V, D}}, {"model.final_norm.weight", {D}}};
  for (std::size_t i = 0; i < c.sizes.depth; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    m[p + "temporal_pre_norm.weight"] = {D};
    m[p + "channel_pre_norm.weight"] = {D};
    const std::string t = p + "temporal_block.";
    if (c.block_type(i) == BlockType::recurrent) {
      for (const char* lin : {"linear_x", "linear_y"}) {
        m[t + lin + ".weight"] = {E, D};
        m[t + lin + ".bias"] = {E};
      }
      m[t + "linear_out.weight"] = {D, E};
      m[t + "linear_out.bias"] = {D};
      m[t + "conv_1d.weight"] = {E, 1, K};
      m[t + "conv_1d.bias"] = {E};
      for (const char* gate : {"input_gate", "recurrent_gate"}) {
        m[t + "rg_lru." + gate + "_weight"] = {H, E / H, E / H};
        m[t + "rg_lru." + gate + "_bias"] = {H, E / H};
      }
      m[t + "rg_lru.recurrent_param"] = {E};
    } else {
      m[t + "q_proj.weight"] = {H * Dh, D};
      m[t + "k_proj.weight"] = {KV * Dh, D};
      m[t + "v_proj.weight"] = {KV * Dh, D};
      m[t + "o_proj.weight"] = {D, H * Dh};
      m[t + "o_proj.bias"] = {D};
    }
    for (const char* lin : {"gate_proj", "up_proj"}) {
      m[p + "mlp_block." + lin + ".weight"] = {F, D};
      m[p + "mlp_block." + lin + ".bias"] = {F};
    }
    m[p + "mlp_block.down_proj.weight"] = {D, F};
    m[p + "mlp_block.down_proj.bias"] = {D};
  }
  return m;
}

struct ModelCase {
  const char* dir;
  DType dtype;
  std::size_t tensor_count;
};
constexpr ModelCase model_cases[] = {{"tiny-griffin", DType::f32, 112},
                                     {"tiny-hawk-bf16", DType::bf16, 86},
                                     {"tiny-mqa", DType::f32, 41},
                                     {"kjv-griffin", DType::bf16, 112}};

}  // namespace

// ---- The golden model directories ----

TEST_CASE("every golden checkpoint opens and holds the spec's tensors") {
  for (const ModelCase& mc : model_cases) {
    CAPTURE(mc.dir);
    const DynamicConfig config = griffin::io::read_config_json(data_dir / mc.dir / "config.json");
    const Checkpoint ckpt = Checkpoint::open(data_dir / mc.dir);
    const auto expected = expected_tensors(config);
    CHECK(ckpt.names().size() == mc.tensor_count);
    CHECK(expected.size() == mc.tensor_count);
    for (const auto& [name, shape] : expected) {
      CAPTURE(name);
      const auto* t = ckpt.find(name);
      REQUIRE(t != nullptr);
      CHECK(t->shape == shape);
      CHECK(t->dtype == mc.dtype);
      CHECK(t->size_bytes == t->element_count() * griffin::dtype_size(mc.dtype));
    }
    CHECK(ckpt.find("lm_head.weight") == nullptr);
    CHECK(ckpt.metadata().at("format") == "pt");
    // Weights are finite and not all zero, whatever their storage type.
    const auto norm = griffin::io::to_f32(ckpt.get("model.final_norm.weight"));
    CHECK(std::all_of(norm.begin(), norm.end(), [](float x) { return std::isfinite(x); }));
    CHECK(std::any_of(norm.begin(), norm.end(), [](float x) { return x != 0.0f; }));
  }
}

TEST_CASE("the sharded checkpoint is read through its index") {
  const Checkpoint ckpt = Checkpoint::open(data_dir / "tiny-griffin");
  CHECK(ckpt.shards().size() == 2);
  CHECK(ckpt.get("model.embed_tokens.weight").file.ends_with("model-00001-of-00002.safetensors"));
  CHECK(ckpt.get("model.final_norm.weight").file.ends_with("model-00002-of-00002.safetensors"));
  CHECK_THROWS_WITH_AS(ckpt.get("lm_head.weight"), doctest::Contains("missing tensor \"lm_head.weight\""), LoadError);
}

TEST_CASE("kjv-griffin carries its tokenizer in the metadata") {
  const Checkpoint ckpt = Checkpoint::open(data_dir / "kjv-griffin");
  CHECK(ckpt.metadata().at("tokenizer") == "bytes");
}

TEST_CASE("golden output files open with the documented tensors") {
  for (const ModelCase& mc : model_cases) {
    CAPTURE(mc.dir);
    const DynamicConfig config = griffin::io::read_config_json(data_dir / mc.dir / "config.json");
    const auto golden = SafetensorsFile::open(data_dir / mc.dir / "golden.safetensors");
    const auto* tokens = golden.find("tokens");
    const auto* logits = golden.find("logits");
    const auto* decode = golden.find("decode_logits");
    const auto* prefill = golden.find("prefill_len");
    REQUIRE(tokens);
    REQUIRE(logits);
    REQUIRE(decode);
    REQUIRE(prefill);
    CHECK(tokens->dtype == DType::i32);
    CHECK(logits->dtype == DType::f32);
    REQUIRE(tokens->shape.size() == 2);
    const std::size_t B = tokens->shape[0], T = tokens->shape[1];
    CHECK(logits->shape == Shape{B, T, config.sizes.vocab_size});
    const auto p = griffin::io::to_i32(*prefill);
    REQUIRE(p.size() == 1);
    CHECK(decode->shape == Shape{B, T - static_cast<std::size_t>(p[0]), config.sizes.vocab_size});
    for (std::int32_t tok : griffin::io::to_i32(*tokens)) CHECK(static_cast<std::size_t>(tok) < config.sizes.vocab_size);
  }
}

// ---- Checkpoint directories ----

TEST_CASE("checkpoint directories: shards, index and their disagreements") {
  const std::vector<float> a(4, 1.0f), b(2, 2.0f);
  const std::vector<TensorToWrite> shard1{{"a", DType::f32, {4}, as_bytes(a)}};
  const std::vector<TensorToWrite> shard2{{"b", DType::f32, {2}, as_bytes(b)}};
  auto make_dir = [&](const std::string& name, const std::string& index) {
    const fs::path dir = scratch("ckpt-" + name);
    griffin::io::write_safetensors(dir / "s1.safetensors", shard1, {{"format", "pt"}});
    griffin::io::write_safetensors(dir / "s2.safetensors", shard2, {{"format", "pt"}, {"extra", "x"}});
    write_text(dir / "model.safetensors.index.json", index);
    return dir;
  };

  SUBCASE("a consistent index") {
    const fs::path dir = make_dir("good", R"({"metadata": {"total_size": 24},
        "weight_map": {"a": "s1.safetensors", "b": "s2.safetensors"}})");
    const auto ckpt = Checkpoint::open(dir);
    CHECK(ckpt.names() == std::vector<std::string>{"a", "b"});
    CHECK(griffin::io::to_f32(ckpt.get("b")) == b);
    CHECK(ckpt.metadata() == std::map<std::string, std::string>{{"format", "pt"}, {"extra", "x"}});
    CHECK(ckpt.dir() == dir);
  }
  SUBCASE("the index names a shard that is missing") {
    const fs::path dir = make_dir("missing-shard", R"({"weight_map": {"a": "s1.safetensors", "b": "s3.safetensors"}})");
    CHECK_THROWS_WITH_AS(Checkpoint::open(dir),
                         doctest::Contains("model.safetensors.index.json: shard \"s3.safetensors\" named by weight_map "
                                           "does not exist"),
                         LoadError);
  }
  SUBCASE("the index names a tensor absent from its shard") {
    const fs::path dir = make_dir("absent-tensor", R"({"weight_map": {"a": "s1.safetensors", "b": "s1.safetensors"}})");
    CHECK_THROWS_WITH_AS(Checkpoint::open(dir),
                         doctest::Contains("tensor \"b\" is not in shard \"s1.safetensors\" where weight_map puts it"),
                         LoadError);
  }
  SUBCASE("a shard holds a tensor the index does not list") {
    const fs::path dir = make_dir("unlisted", R"({"weight_map": {"a": "s1.safetensors"}})");
    griffin::io::write_safetensors(dir / "s1.safetensors",
                                   std::vector<TensorToWrite>{shard1[0], {"stray", DType::f32, {2}, as_bytes(b)}});
    CHECK_THROWS_WITH_AS(Checkpoint::open(dir),
                         doctest::Contains("shard \"s1.safetensors\" holds tensor \"stray\", which weight_map does not "
                                           "list"),
                         LoadError);
  }
  SUBCASE("the index is malformed") {
    CHECK_THROWS_WITH_AS(Checkpoint::open(make_dir("no-map", R"({"metadata": {}})")),
                         doctest::Contains("model.safetensors.index.json: missing weight_map"), LoadError);
    CHECK_THROWS_WITH_AS(Checkpoint::open(make_dir("traversal", R"({"weight_map": {"a": "../s1.safetensors"}})")),
                         doctest::Contains("names shard \"../s1.safetensors\", which is not a plain file name"),
                         LoadError);
    CHECK_THROWS_WITH_AS(Checkpoint::open(make_dir("not-json", "{\"weight_map\": ")),
                         doctest::Contains("model.safetensors.index.json: invalid JSON"), LoadError);
    CHECK_THROWS_WITH_AS(
        Checkpoint::open(make_dir("dup", R"({"weight_map": {"a": "s1.safetensors", "a": "s2.safetensors"}})")),
        doctest::Contains("duplicate key \"a\" in \"weight_map\""), LoadError);
  }
  SUBCASE("a directory with no weights") {
    const fs::path dir = scratch("ckpt-empty");
    CHECK_THROWS_WITH_AS(Checkpoint::open(dir),
                         doctest::Contains("no model.safetensors or model.safetensors.index.json in"), LoadError);
  }
  SUBCASE("a single model.safetensors") {
    const fs::path dir = scratch("ckpt-single");
    griffin::io::write_safetensors(dir / "model.safetensors", shard1);
    const auto ckpt = Checkpoint::open(dir);
    CHECK(ckpt.names() == std::vector<std::string>{"a"});
    CHECK(ckpt.metadata().empty());
    CHECK_THROWS_WITH_AS(ckpt.get("b"), doctest::Contains("missing tensor \"b\""), LoadError);
  }
}
