// Reading checkpoints: the golden safetensors files and config.json, a write/read round trip, and every
// kind of malformed file the loader must refuse (each generated here, never a hand-edited binary).
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "griffin/config.hpp"
#include "griffin/dtype.hpp"
#include "griffin/io/config_json.hpp"
#include "griffin/io/checkpoint.hpp"
#include "griffin/io/error.hpp"
#include "griffin/io/safetensors.hpp"
#include "griffin/io/safetensors_write.hpp"

namespace fs = std::filesystem;
using griffin::BlockType;
using griffin::ConfigError;
using griffin::DynamicConfig;
using griffin::io::Checkpoint;
using griffin::DType;
using griffin::io::LoadError;
using griffin::io::SafetensorsFile;
using griffin::io::TensorToWrite;
using Shape = std::vector<std::size_t>;

namespace {

const fs::path data_dir = GRIFFIN_TEST_DATA;

// A scratch directory for this process, removed at exit.
struct ScratchDir {
  fs::path path = fs::temp_directory_path() / ("griffin-test-io-" + std::to_string(::getpid()));
  ScratchDir() { fs::create_directories(path); }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};
fs::path scratch(const std::string& name) {
  static ScratchDir dir;
  fs::path p = dir.path / name;
  fs::create_directories(p);
  return p;
}

void write_file(const fs::path& p, const void* data, std::size_t size) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
  REQUIRE(out.good());
}
void write_text(const fs::path& p, const std::string& text) { write_file(p, text.data(), text.size()); }
std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

template <class T>
std::span<const std::byte> as_bytes(const std::vector<T>& v) {
  return std::as_bytes(std::span<const T>(v));
}

// A safetensors image from a header text (unpadded) and `data_bytes` bytes of data; `declared_length`
// overrides the 8-byte header length.
std::vector<std::byte> raw_file(const std::string& header, std::size_t data_bytes,
                                std::optional<std::uint64_t> declared_length = std::nullopt) {
  std::uint64_t n = declared_length.value_or(header.size());
  std::vector<std::byte> out(8 + header.size() + data_bytes, std::byte{0});
  for (int i = 0; i < 8; ++i) out[static_cast<std::size_t>(i)] = static_cast<std::byte>((n >> (8 * i)) & 0xff);
  std::memcpy(out.data() + 8, header.data(), header.size());
  return out;
}
void parse_raw(const std::string& header, std::size_t data_bytes) {
  auto bytes = raw_file(header, data_bytes);
  (void)SafetensorsFile::parse(bytes, "bad.safetensors");
}
// One tensor entry of a header.
std::string entry(const std::string& name, const std::string& dtype, const std::string& shape,
                  const std::string& offsets) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":" + offsets + "}";
}

// What the spec's checkpoint table says a model with this config holds.
std::map<std::string, Shape> expected_tensors(const DynamicConfig& c) {
  const std::size_t V = c.vocab_size, D = c.width, E = c.lru_width, H = c.num_heads, Dh = c.head_dim, F = c.mlp_width,
                    K = c.conv_width, KV = c.num_kv_heads;
  std::map<std::string, Shape> m{{"model.embed_tokens.weight", {V, D}}, {"model.final_norm.weight", {D}}};
  for (std::size_t i = 0; i < c.depth; ++i) {
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

// The tiny-griffin config as JSON, for the malformed-config cases to edit one key at a time.
nlohmann::json base_config() { return nlohmann::json::parse(read_text(data_dir / "tiny-griffin" / "config.json")); }
DynamicConfig parse_edited(const nlohmann::json& j) {
  return griffin::io::parse_config_json(j.dump(), "bad/config.json");
}

}  // namespace

// ---- dtypes ----

TEST_CASE("dtypes round-trip through their safetensors names") {
  for (DType t : griffin::all_dtypes) {
    CHECK(griffin::dtype_from_name(griffin::dtype_name(t)) == t);
    CHECK(griffin::dtype_size(t) >= 1);
  }
  CHECK(griffin::dtype_size(DType::bf16) == 2);
  CHECK(griffin::dtype_size(DType::i64) == 8);
  CHECK(griffin::io::parse_dtype("BF16", "x") == DType::bf16);
  CHECK_THROWS_WITH_AS(griffin::io::parse_dtype("Q4_K", "f: tensor \"w\""),
                       doctest::Contains("f: tensor \"w\": unknown dtype \"Q4_K\""), LoadError);
}

// ---- The golden checkpoints ----

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
    CHECK(logits->shape == Shape{B, T, config.vocab_size});
    const auto p = griffin::io::to_i32(*prefill);
    REQUIRE(p.size() == 1);
    CHECK(decode->shape == Shape{B, T - static_cast<std::size_t>(p[0]), config.vocab_size});
    for (std::int32_t tok : griffin::io::to_i32(*tokens)) CHECK(static_cast<std::size_t>(tok) < config.vocab_size);
  }
}

TEST_CASE("the kernel golden file opens") {
  const auto k = SafetensorsFile::open(data_dir / "kernels" / "kernels.safetensors");
  CHECK(k.tensors().size() == 37);
  CHECK(k.metadata().empty());
  REQUIRE(k.find("segment_pos"));
  CHECK(k.find("segment_pos")->shape == Shape{2, 50});
  CHECK(griffin::io::to_i32(*k.find("attn.window")) == std::vector<std::int32_t>{16});
  CHECK(k.find("rglru.input_gate_weight")->shape == Shape{4, 24, 24});
  CHECK(k.find("conv1d.weight")->shape == Shape{96, 1, 4});
  // tensors() lists them in file order
  for (std::size_t i = 1; i < k.tensors().size(); ++i) CHECK(k.tensors()[i - 1].data < k.tensors()[i].data);
}

// ---- config.json ----

TEST_CASE("tiny-griffin config.json parses to the right values") {
  const DynamicConfig c = griffin::io::read_config_json(data_dir / "tiny-griffin" / "config.json");
  CHECK(c.vocab_size == 512);
  CHECK(c.width == 128);
  CHECK(c.mlp_width == 384);
  CHECK(c.depth == 6);
  CHECK(c.num_heads == 4);
  CHECK(c.num_kv_heads == 1);
  CHECK(c.head_dim == 32);
  CHECK(c.lru_width == 192);
  CHECK(c.attention_window == 24);
  CHECK(c.conv_width == 4);
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
  CHECK(hawk.vocab_size == 300);
  CHECK(hawk.width == 64);
  CHECK(hawk.lru_width == 64);
  CHECK(hawk.mlp_width == 192);
  CHECK(hawk.depth == 4);
  CHECK(hawk.num_heads == 2);
  CHECK_FALSE(hawk.has_attention());

  const auto mqa = griffin::io::read_config_json(data_dir / "tiny-mqa" / "config.json");
  CHECK(mqa.pattern.blocks == std::vector<BlockType>{BlockType::local_attention});
  CHECK(mqa.attention_window == 4096);
  CHECK(mqa.hyper.logits_soft_cap == 0.0f);
  CHECK_FALSE(mqa.hyper.embeddings_scale_by_sqrt_dim);
  CHECK(mqa.num_heads == 3);
  CHECK(mqa.head_dim == 32);
  CHECK(mqa.mlp_width == 288);

  const auto kjv = griffin::io::read_config_json(data_dir / "kjv-griffin" / "config.json");
  CHECK(kjv.width == 192);
  CHECK(kjv.head_dim == 48);
  CHECK(kjv.mlp_width == 576);
  CHECK(kjv.attention_window == 64);
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
  CHECK(c.num_kv_heads == 1);
  CHECK(c.head_dim == 32);    // hidden_size / num_attention_heads
  CHECK(c.lru_width == 128);  // hidden_size
  CHECK(c.conv_width == 4);
  CHECK(c.attention_window == 2048);
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

// ---- Writing and reading back ----

TEST_CASE("safetensors round trip: F32, BF16, F16, I32, I64, empty and scalar tensors") {
  const std::vector<float> f32{1.0f, -2.5f, 3.25f, 1e-3f, -0.0f, 65504.0f};
  std::vector<griffin::bf16> bf16;
  for (float x : {1.0f, -2.5f, 0.15625f, 3e38f}) bf16.push_back(griffin::f32_to_bf16(x));
  // 1, -2, the nearest half to 1/3, the smallest subnormal, infinity
  const std::vector<std::uint16_t> f16{0x3C00, 0xC000, 0x3555, 0x0001, 0x7C00};
  const std::vector<std::int32_t> i32{0, -1, 2147483647, -2147483647 - 1, 42, 7};
  const std::vector<std::int64_t> i64{5, -6, 2147483647};
  const std::vector<float> scalar{0.5f};
  const std::vector<float> none;

  const std::vector<TensorToWrite> tensors{
      {"f32", DType::f32, {2, 3}, as_bytes(f32)},    {"bf16", DType::bf16, {4}, as_bytes(bf16)},
      {"f16", DType::f16, {5}, as_bytes(f16)},       {"i32", DType::i32, {3, 2}, as_bytes(i32)},
      {"i64", DType::i64, {3}, as_bytes(i64)},       {"scalar", DType::f32, {}, as_bytes(scalar)},
      {"empty", DType::f32, {0, 3}, as_bytes(none)},
  };
  const std::map<std::string, std::string> metadata{{"format", "pt"}, {"note", "round trip"}};
  const fs::path path = scratch("roundtrip") / "t.safetensors";
  griffin::io::write_safetensors(path, tensors, metadata);

  const auto file = SafetensorsFile::open(path);
  CHECK(file.path() == path);
  CHECK(file.metadata() == metadata);
  CHECK(file.tensors().size() == tensors.size());
  CHECK((8 + file.header_size()) % 8 == 0);
  for (const auto& t : tensors) {
    CAPTURE(t.name);
    const auto* v = file.find(t.name);
    REQUIRE(v);
    CHECK(v->dtype == t.dtype);
    CHECK(v->shape == t.shape);
    CHECK(v->size_bytes == t.bytes.size());
    CHECK(std::equal(t.bytes.begin(), t.bytes.end(), v->bytes().begin(), v->bytes().end()));
  }
  CHECK(griffin::io::to_f32(*file.find("f32")) == f32);
  CHECK(griffin::io::to_f32(*file.find("bf16")) ==
        std::vector<float>{1.0f, -2.5f, 0.15625f, griffin::round_to_bf16(3e38f)});
  const auto halves = griffin::io::to_f32(*file.find("f16"));
  CHECK(halves[0] == 1.0f);
  CHECK(halves[1] == -2.0f);
  CHECK(halves[2] == 0.333251953125f);
  CHECK(halves[3] == std::ldexp(1.0f, -24));
  CHECK(std::isinf(halves[4]));
  CHECK(griffin::io::to_i32(*file.find("i32")) == i32);
  CHECK(griffin::io::to_i32(*file.find("i64")) == std::vector<std::int32_t>{5, -6, 2147483647});
  CHECK(griffin::io::to_f32(*file.find("scalar")) == scalar);
  CHECK(file.find("scalar")->element_count() == 1);
  CHECK(griffin::io::to_f32(*file.find("empty")).empty());

  // The in-memory writer produces the same bytes, and the parser reads them without a file.
  const auto image = griffin::io::serialize_safetensors(tensors, metadata);
  const std::string on_disk = read_text(path);
  REQUIRE(image.size() == on_disk.size());
  CHECK(std::memcmp(image.data(), on_disk.data(), image.size()) == 0);
  const auto parsed = SafetensorsFile::parse(image, "memory");
  CHECK(parsed.path().empty());
  CHECK(griffin::io::to_f32(*parsed.find("f32")) == f32);
}

TEST_CASE("tensors at unaligned offsets are read with memcpy") {
  const float values[2] = {1.5f, -2.0f};
  auto image = raw_file("{" + entry("a", "I8", "[1]", "[0,1]") + "," + entry("b", "F32", "[2]", "[1,9]") + "}", 9);
  const std::size_t data_start = image.size() - 9;
  image[data_start] = std::byte{7};
  std::memcpy(image.data() + data_start + 1, values, sizeof values);
  const auto f = SafetensorsFile::parse(image, "unaligned");
  CHECK(griffin::io::to_f32(*f.find("b")) == std::vector<float>{1.5f, -2.0f});
}

TEST_CASE("conversions refuse what they cannot convert") {
  const std::vector<std::int32_t> ints{1, 2};
  const std::vector<std::int64_t> wide{1, 1ll << 40};
  const std::vector<TensorToWrite> tensors{{"ints", DType::i32, {2}, as_bytes(ints)},
                                           {"wide", DType::i64, {2}, as_bytes(wide)}};
  const auto image = griffin::io::serialize_safetensors(tensors);
  const auto f = SafetensorsFile::parse(image, "conv.safetensors");
  CHECK_THROWS_WITH_AS(griffin::io::to_f32(*f.find("ints")),
                       doctest::Contains("conv.safetensors: tensor \"ints\": dtype I32 cannot be read as float32"),
                       LoadError);
  CHECK_THROWS_WITH_AS(griffin::io::to_i32(*f.find("wide")),
                       doctest::Contains("tensor \"wide\": element 1 is 1099511627776, outside the int32 range"),
                       LoadError);
  std::vector<float> small(1);
  CHECK_THROWS_WITH_AS(griffin::io::read_f32(*f.find("ints"), small),
                       doctest::Contains("has 2 elements but the destination holds 1"), LoadError);
}

TEST_CASE("a range of a tensor converts to the same floats as the whole tensor, and no further") {
  const std::vector<float> f32{1.0f, -2.5f, 3.25f, 1e-3f, -7.0f, 0.5f};
  std::vector<griffin::bf16> bf(f32.size());
  for (std::size_t i = 0; i < f32.size(); ++i) bf[i] = griffin::f32_to_bf16(f32[i]);
  const std::vector<TensorToWrite> tensors{{"f", DType::f32, {2, 3}, as_bytes(f32)},
                                           {"b", DType::bf16, {2, 3}, as_bytes(bf)}};
  const auto image = griffin::io::serialize_safetensors(tensors);
  const auto file = SafetensorsFile::parse(image, "range.safetensors");
  for (const char* name : {"f", "b"}) {
    CAPTURE(name);
    const auto& t = *file.find(name);
    const std::vector<float> whole = griffin::io::to_f32(t);
    std::vector<float> row(3);
    for (std::size_t r = 0; r < 2; ++r) {
      griffin::io::read_f32(t, r * 3, row);
      CHECK(row == std::vector<float>(whole.begin() + std::ptrdiff_t(r * 3), whole.begin() + std::ptrdiff_t(r * 3 + 3)));
    }
    CHECK_THROWS_WITH_AS(griffin::io::read_f32(t, 4, row), doctest::Contains("has 6 elements, not 4 + 3"), LoadError);
    CHECK_THROWS_WITH_AS(griffin::io::read_f32(t, 7, std::span<float>()), doctest::Contains("has 6 elements, not 7 + 0"),
                         LoadError);
  }
}

TEST_CASE("the writer refuses inconsistent tensors") {
  const std::vector<float> three(3);
  const std::vector<TensorToWrite> wrong_size{{"w", DType::f32, {2, 2}, as_bytes(three)}};
  CHECK_THROWS_WITH_AS(griffin::io::serialize_safetensors(wrong_size),
                       doctest::Contains("tensor \"w\" has shape [2, 2] of F32 (16 bytes) but 12 bytes were given"),
                       std::invalid_argument);
  const std::vector<TensorToWrite> twice{{"w", DType::f32, {3}, as_bytes(three)},
                                         {"w", DType::f32, {3}, as_bytes(three)}};
  CHECK_THROWS_WITH_AS(griffin::io::serialize_safetensors(twice), doctest::Contains("duplicate tensor \"w\""),
                       std::invalid_argument);
}

// ---- Malformed safetensors ----

TEST_CASE("malformed safetensors are refused with the problem named") {
  const std::string ok = entry("w", "F32", "[2,2]", "[0,16]");

  SUBCASE("shorter than the length prefix") {
    const std::vector<std::byte> tiny(5);
    CHECK_THROWS_WITH_AS(SafetensorsFile::parse(tiny, "bad.safetensors"),
                         doctest::Contains("bad.safetensors: file is 5 bytes, shorter than the 8-byte header length"),
                         LoadError);
  }
  SUBCASE("header length past the end") {
    const auto image = raw_file("{}", 0, 1000);
    CHECK_THROWS_WITH_AS(SafetensorsFile::parse(image, "bad.safetensors"),
                         doctest::Contains("header length 1000 is past the end of the file (10 bytes"), LoadError);
  }
  SUBCASE("huge header length") {
    const auto image = raw_file("{}", 0, std::uint64_t{1} << 62);
    CHECK_THROWS_WITH_AS(SafetensorsFile::parse(image, "bad.safetensors"),
                         doctest::Contains("header length 4611686018427387904 exceeds the limit of 104857600"),
                         LoadError);
  }
  SUBCASE("header that is not JSON or not an object") {
    CHECK_THROWS_WITH_AS(parse_raw("{\"w\": {\"dtype\": \"F32\",", 16),
                         doctest::Contains("bad.safetensors: invalid JSON"), LoadError);
    CHECK_THROWS_WITH_AS(parse_raw("[1,2,3]", 0), doctest::Contains("header is not a JSON object but [1,2,3]"),
                         LoadError);
    CHECK_THROWS_WITH_AS(parse_raw("{\"w\": 3}", 0), doctest::Contains("tensor \"w\" is not an object but 3"),
                         LoadError);
  }
  SUBCASE("data truncated") {
    CHECK_THROWS_WITH_AS(parse_raw("{" + ok + "}", 12),
                         doctest::Contains("bad.safetensors: tensor \"w\": data_offsets [0, 16] ends past the data "
                                           "section, which is 12 bytes"),
                         LoadError);
  }
  SUBCASE("offsets out of range") {
    CHECK_THROWS_WITH_AS(parse_raw("{" + entry("w", "F32", "[2]", "[1000,1008]") + "}", 16),
                         doctest::Contains("data_offsets [1000, 1008] ends past the data section, which is 16 bytes"),
                         LoadError);
    CHECK_THROWS_WITH_AS(parse_raw("{" + entry("w", "F32", "[2]", "[18446744073709551615,7]") + "}", 16),
                         doctest::Contains("has end < begin"), LoadError);
    CHECK_THROWS_WITH_AS(parse_raw("{" + entry("w", "F32", "[2]", "[0,8,16]") + "}", 16),
                         doctest::Contains("data_offsets must be an array of 2 integers [begin, end] but is [0,8,16]"),
                         LoadError);
    CHECK_THROWS_WITH_AS(parse_raw("{" + entry("w", "F32", "[2]", "[-8,0]") + "}", 16),
                         doctest::Contains("tensor \"w\": data_offsets[0] is negative: -8"), LoadError);
    CHECK_THROWS_WITH_AS(parse_raw("{" + entry("w", "F32", "[2]", "[0,8.0]") + "}", 16),
                         doctest::Contains("data_offsets[1] is not a non-negative integer but 8.0"), LoadError);
  }
  SUBCASE("end before begin") {
    CHECK_THROWS_WITH_AS(parse_raw("{" + entry("w", "F32", "[2]", "[16,8]") + "}", 16),
                         doctest::Contains("tensor \"w\": data_offsets [16, 8] has end < begin"), LoadError);
  }
  SUBCASE("overlapping tensors") {
    CHECK_THROWS_WITH_AS(
        parse_raw("{" + entry("a", "F32", "[4]", "[0,16]") + "," + entry("b", "F32", "[4]", "[8,24]") + "}", 24),
        doctest::Contains("tensors \"a\" [0, 16) and \"b\" [8, 24) overlap"), LoadError);
    CHECK_THROWS_WITH_AS(
        parse_raw("{" + entry("a", "F32", "[4]", "[0,16]") + "," + entry("b", "F32", "[4]", "[0,16]") + "}", 16),
        doctest::Contains("overlap"), LoadError);
  }
  SUBCASE("shape and byte size disagree") {
    CHECK_THROWS_WITH_AS(parse_raw("{" + entry("w", "F32", "[2,3]", "[0,16]") + "}", 16),
                         doctest::Contains("tensor \"w\": shape [2, 3] of F32 needs 24 bytes but data_offsets [0, 16] "
                                           "hold 16"),
                         LoadError);
    CHECK_THROWS_WITH_AS(parse_raw("{" + entry("w", "BF16", "[4294967296,4294967296]", "[0,16]") + "}", 16),
                         doctest::Contains("is too large (its byte size overflows)"), LoadError);
    CHECK_THROWS_WITH_AS(parse_raw("{" + entry("w", "F32", "[2,-2]", "[0,16]") + "}", 16),
                         doctest::Contains("tensor \"w\": shape[1] is negative: -2"), LoadError);
    CHECK_THROWS_WITH_AS(parse_raw("{" + entry("w", "F32", "\"2x2\"", "[0,16]") + "}", 16),
                         doctest::Contains("tensor \"w\": shape is not an array but \"2x2\""), LoadError);
  }
  SUBCASE("unknown dtype") {
    CHECK_THROWS_WITH_AS(parse_raw("{" + entry("w", "Q4_0", "[2,2]", "[0,16]") + "}", 16),
                         doctest::Contains("bad.safetensors: tensor \"w\": unknown dtype \"Q4_0\""), LoadError);
  }
  SUBCASE("entries with missing or extra fields") {
    CHECK_THROWS_WITH_AS(parse_raw("{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 16),
                         doctest::Contains("tensor \"w\": missing dtype"), LoadError);
    CHECK_THROWS_WITH_AS(parse_raw("{\"w\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}", 16),
                         doctest::Contains("tensor \"w\": dtype is not a string but 7"), LoadError);
    CHECK_THROWS_WITH_AS(parse_raw("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"scale\":2}}", 16),
                         doctest::Contains("tensor \"w\": unknown key \"scale\""), LoadError);
  }
  SUBCASE("duplicate names") {
    CHECK_THROWS_WITH_AS(parse_raw("{" + ok + "," + entry("w", "F32", "[2,2]", "[16,32]") + "}", 32),
                         doctest::Contains("bad.safetensors: duplicate tensor \"w\""), LoadError);
    CHECK_THROWS_WITH_AS(
        parse_raw("{\"w\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4),
        doctest::Contains("duplicate key \"dtype\" in \"w\""), LoadError);
  }
  SUBCASE("metadata that is not string to string") {
    CHECK_THROWS_WITH_AS(parse_raw("{\"__metadata__\":{\"format\":1}," + ok + "}", 16),
                         doctest::Contains("__metadata__ \"format\" is not a string but 1"), LoadError);
    CHECK_THROWS_WITH_AS(parse_raw("{\"__metadata__\":[]," + ok + "}", 16),
                         doctest::Contains("__metadata__ is not an object but []"), LoadError);
  }
  SUBCASE("files on disk: empty, truncated, missing") {
    const fs::path dir = scratch("malformed");
    write_text(dir / "empty.safetensors", "");
    CHECK_THROWS_WITH_AS(SafetensorsFile::open(dir / "empty.safetensors"),
                         doctest::Contains("empty.safetensors: file is 0 bytes"), LoadError);

    const std::vector<float> w(4, 1.0f);
    const std::vector<TensorToWrite> tensors{{"w", DType::f32, {2, 2}, as_bytes(w)}};
    const auto image = griffin::io::serialize_safetensors(tensors);
    write_file(dir / "truncated.safetensors", image.data(), image.size() - 4);
    CHECK_THROWS_WITH_AS(SafetensorsFile::open(dir / "truncated.safetensors"),
                         doctest::Contains("truncated.safetensors: tensor \"w\": data_offsets [0, 16] ends past the "
                                           "data section, which is 12 bytes"),
                         LoadError);
    CHECK_THROWS_WITH_AS(SafetensorsFile::open(dir / "absent.safetensors"),
                         doctest::Contains("absent.safetensors: cannot open"), LoadError);
    CHECK_THROWS_WITH_AS(SafetensorsFile::open(dir), doctest::Contains("not a regular file"), LoadError);
  }
  SUBCASE("an empty header is a valid file with no tensors") {
    const auto image = raw_file("{}      ", 0);
    const auto f = SafetensorsFile::parse(image, "empty-header");
    CHECK(f.tensors().empty());
    CHECK(f.find("w") == nullptr);
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
