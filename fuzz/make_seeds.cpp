// Writes the fuzzers' seed corpus from the golden checkpoints in tests/data:
//   fuzz_make_seeds tests/data fuzz/corpus
// safetensors seeds: each golden file's tensors (names, dtypes, ranks, metadata) with every dimension
// shrunk to 1 or 2, so the headers are realistic and the files a few KB; a golden header with its data
// cut short; and small files exercising each dtype, empty and scalar tensors, unaligned offsets.
// config seeds: each golden config.json and a few variants (old key spellings, nulls, defaults only).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "griffin/dtype.hpp"
#include "griffin/io/safetensors.hpp"
#include "griffin/io/safetensors_write.hpp"

namespace fs = std::filesystem;
using namespace griffin::io;
using griffin::DType;
using griffin::dtype_size;

namespace {

void write(const fs::path& p, const void* data, std::size_t size) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
  if (!out) throw std::runtime_error("cannot write " + p.string());
  std::printf("%8zu  %s\n", size, p.string().c_str());
}
void write(const fs::path& p, const std::vector<std::byte>& bytes) { write(p, bytes.data(), bytes.size()); }
void write(const fs::path& p, const std::string& text) { write(p, text.data(), text.size()); }

// The file's tensors with each dimension cut to at most 2 (data: a repeating pattern).
std::vector<std::byte> shrunk(const SafetensorsFile& file) {
  std::vector<std::vector<std::byte>> storage;
  std::vector<TensorToWrite> tensors;
  for (const TensorView& t : file.tensors()) {
    std::vector<std::size_t> shape = t.shape;
    for (auto& d : shape) d = std::min<std::size_t>(d, 2);
    std::size_t n = dtype_size(t.dtype);
    for (auto d : shape) n *= d;
    storage.emplace_back(t.data, t.data + std::min(n, t.size_bytes));
    storage.back().resize(n, std::byte{0x3f});
    tensors.push_back({t.name, t.dtype, shape, storage.back()});
  }
  return serialize_safetensors(tensors, file.metadata());
}

// A golden file's exact header followed by only `keep` bytes of its data.
std::vector<std::byte> header_with_short_data(const fs::path& p, std::size_t keep) {
  std::ifstream in(p, std::ios::binary);
  std::vector<char> chars{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  const auto file = SafetensorsFile::open(p);
  const std::size_t end = std::min(chars.size(), 8 + file.header_size() + keep);
  std::vector<std::byte> out(end);
  std::memcpy(out.data(), chars.data(), end);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s <tests/data> <fuzz/corpus>\n", argv[0]);
    return 2;
  }
  const fs::path data = argv[1], corpus = argv[2];
  const fs::path st = corpus / "safetensors", cfg = corpus / "config";
  fs::create_directories(st);
  fs::create_directories(cfg);

  for (const char* model : {"tiny-griffin", "tiny-hawk-bf16", "tiny-mqa", "kjv-griffin"}) {
    for (const auto& entry : fs::directory_iterator(data / model)) {
      if (entry.path().extension() != ".safetensors") continue;
      const std::string stem = std::string(model) + "-" + entry.path().stem().string();
      write(st / (stem + ".safetensors"), shrunk(SafetensorsFile::open(entry.path())));
    }
    write(cfg / (std::string(model) + ".json"), [&] {
      std::ifstream in(data / model / "config.json");
      return std::string{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    }());
  }
  write(st / "kernels-shrunk.safetensors", shrunk(SafetensorsFile::open(data / "kernels" / "kernels.safetensors")));
  write(st / "tiny-mqa-short-data.safetensors", header_with_short_data(data / "tiny-mqa" / "model.safetensors", 64));

  // Small files, one feature each.
  const std::vector<float> f32{1.5f, -2.0f, 0.0f, 3e38f};
  const std::vector<std::uint16_t> halves{0x3C00, 0x7C00, 0x0001, 0xFE00};  // F16 / BF16 bit patterns
  const std::vector<std::int64_t> i64{1, -1, 1ll << 40};
  const std::vector<std::int32_t> i32{7, -7};
  const std::vector<std::uint8_t> u8{1, 2, 3};
  auto bytes = [](const auto& v) { return std::as_bytes(std::span(v)); };
  const std::vector<TensorToWrite> every_dtype{
      {"f32", DType::f32, {2, 2}, bytes(f32)},      {"bf16", DType::bf16, {4}, bytes(halves)},
      {"f16", DType::f16, {2, 2}, bytes(halves)},   {"i64", DType::i64, {3}, bytes(i64)},
      {"i32", DType::i32, {2}, bytes(i32)},         {"u8", DType::u8, {3}, bytes(u8)},
      {"scalar", DType::f32, {}, bytes(std::span(f32).first(1))},
      {"empty", DType::f32, {0, 5}, {}}};
  write(st / "every-dtype.safetensors", serialize_safetensors(every_dtype, {{"format", "pt"}, {"note", "seed"}}));
  write(st / "empty-header.safetensors", serialize_safetensors(std::vector<TensorToWrite>{}));
  // Unaligned: a 1-byte tensor first, so the F32 after it starts at an odd offset.
  const std::vector<TensorToWrite> unaligned{{"a", DType::u8, {1}, bytes(std::span(u8).first(1))},
                                             {"b", DType::f32, {2}, bytes(std::span(f32).first(2))}};
  write(st / "unaligned.safetensors", serialize_safetensors(unaligned));

  // Nesting just inside the depth limit (64), for the fuzzer to push past it.
  const std::string nested = std::string(60, '[') + std::string(60, ']');
  const std::string deep_header = "{\"__metadata__\":{\"format\":\"pt\"},\"w\":" + nested + "}";
  std::string deep(8, '\0');
  for (int i = 0; i < 8; ++i) deep[std::size_t(i)] = char((deep_header.size() >> (8 * i)) & 0xff);
  write(st / "deep-nesting.safetensors", deep + deep_header);
  write(cfg / "deep-nesting.json", "{\"vocab_size\":512,\"block_types\":" + nested + "}");

  // config.json variants.
  const nlohmann::json base = nlohmann::json::parse(std::ifstream(data / "tiny-griffin" / "config.json"));
  nlohmann::json old = base;
  old["_block_types"] = old["block_types"];
  old.erase("block_types");
  old["logits_soft_cap"] = nullptr;
  old["head_dim"] = nullptr;
  write(cfg / "old-spellings.json", old.dump());
  const nlohmann::json minimal = {{"vocab_size", 300},         {"hidden_size", 64},
                                  {"intermediate_size", 384},  {"num_hidden_layers", 2},
                                  {"num_attention_heads", 2},  {"block_types", {"recurrent", "global_attention"}}};
  write(cfg / "minimal.json", minimal.dump());
  nlohmann::json types = base;
  types["dtype"] = "bfloat16";
  types["torch_dtype"] = "bfloat16";
  types["embeddings_scale_by_sqrt_dim"] = false;
  types["tie_word_embeddings"] = true;
  types["rms_norm_eps"] = 1e-5;
  write(cfg / "bf16-variants.json", types.dump(1));
  return 0;
}
