// The safetensors format (griffin/io/safetensors.hpp and safetensors_write.hpp, with the dtypes of
// griffin/dtype.hpp): a golden file, a write/read round trip, the converters, and every kind of malformed
// file the parser must refuse (each generated here, never a hand-edited binary).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "griffin/dtype.hpp"
#include "griffin/io/error.hpp"
#include "griffin/io/safetensors.hpp"
#include "griffin/io/safetensors_write.hpp"
#include "scratch_files.hpp"

namespace fs = std::filesystem;
using griffin::DType;
using griffin::io::LoadError;
using griffin::io::SafetensorsFile;
using griffin::io::TensorToWrite;
using griffin::test::as_bytes;
using griffin::test::read_text;
using griffin::test::scratch;
using griffin::test::write_file;
using griffin::test::write_text;
using Shape = std::vector<std::size_t>;

namespace {

const fs::path data_dir = GRIFFIN_TEST_DATA;

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

// ---- A golden file ----

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
