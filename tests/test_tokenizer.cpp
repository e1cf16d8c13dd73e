// Tokenizers: the byte tokenizer, choosing a tokenizer from a checkpoint directory, streaming
// detokenization, and SentencePiece on a tiny model trained here from part of heldout.txt.
#include <doctest/doctest.h>

#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "griffin/generation/load_tokenizer.hpp"
#include "test_support.hpp"

#ifdef GRIFFIN_WITH_SENTENCEPIECE
#include <sentencepiece_trainer.h>
#endif

using namespace griffin;

namespace {
std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Text streamed token by token must equal the text decoded at once.
std::string streamed(const Tokenizer& t, const std::vector<int>& ids) {
  TextStream stream(t);
  std::string out;
  for (int id : ids) out += stream.push(id);
  return out + stream.flush();
}
}  // namespace

TEST_CASE("byte tokenizer: token = byte value, and decode(encode(x)) == x for every byte") {
  ByteTokenizer t;
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(char(b));
  const auto ids = t.encode(all);
  REQUIRE(ids.size() == 256);
  for (int b = 0; b < 256; ++b) CHECK(ids[b] == b);
  CHECK(t.decode(ids) == all);
  CHECK(t.encode("And") == std::vector<int>{65, 110, 100});
  CHECK(t.vocab_size() == 256);
  CHECK_FALSE(t.adds_bos());
  CHECK(t.encode_prompt("Hi") == std::vector<int>{72, 105});
  CHECK(streamed(t, t.encode("naïve — ✓")) == "naïve — ✓");
  CHECK_THROWS_AS(t.decode(std::vector<int>{256}), TokenizerError);
}

TEST_CASE("the tokenizer is chosen by the checkpoint directory") {
  CHECK(detect_tokenizer(test::data_dir() / "kjv-griffin") == TokenizerKind::bytes);
  CHECK(load_tokenizer(test::data_dir() / "kjv-griffin")->name() == "bytes");
  // tiny-griffin has neither a tokenizer.model nor "tokenizer" metadata.
  CHECK_THROWS_WITH_AS(load_tokenizer(test::data_dir() / "tiny-griffin"),
                       doctest::Contains("expected a tokenizer.model file (SentencePiece) or the safetensors metadata"),
                       TokenizerError);
}

#ifdef GRIFFIN_WITH_SENTENCEPIECE
namespace {
// Trains a SentencePiece BPE model on `text` into dir/tokenizer.model.
void train(const std::filesystem::path& dir, const std::string& text, int vocab, bool byte_fallback) {
  std::filesystem::create_directories(dir);
  { std::ofstream(dir / "train.txt", std::ios::binary) << text; }
  const auto status = sentencepiece::SentencePieceTrainer::Train(std::unordered_map<std::string, std::string>{
      {"input", (dir / "train.txt").string()},
      {"model_prefix", (dir / "tokenizer").string()},
      {"vocab_size", std::to_string(vocab)},
      {"model_type", "bpe"},
      {"character_coverage", "1.0"},
      {"byte_fallback", byte_fallback ? "true" : "false"},
      {"normalization_rule_name", "identity"},  // keep the text exactly, so decode(encode(x)) == x
      {"remove_extra_whitespaces", "false"},
      {"minloglevel", "2"},
  });
  REQUIRE_MESSAGE(status.ok(), status.ToString());
  REQUIRE(std::filesystem::exists(dir / "tokenizer.model"));
}

std::filesystem::path temp_dir(const char* name) {
  return std::filesystem::temp_directory_path() / ("griffin-test-" + std::string(name) + "-" + std::to_string(::getpid()));
}
}  // namespace

TEST_CASE("SentencePiece: a tiny model (vocab 100) trained from heldout.txt round-trips text") {
  const std::string text = read_file(test::data_dir() / "kjv-griffin" / "heldout.txt");
  REQUIRE(text.size() > 4000);
  const auto dir = temp_dir("spm100");
  train(dir, text, 100, false);  // the trainer reads it line by line

  // Through the factory: a tokenizer.model in the directory means SentencePiece.
  CHECK(detect_tokenizer(dir) == TokenizerKind::sentencepiece);
  const auto t = load_tokenizer(dir);
  CHECK(t->name() == "sentencepiece");
  CHECK(t->vocab_size() == 100);
  CHECK(t->adds_bos());
  CHECK(t->token_id("<s>") == t->bos_id());
  CHECK(t->token_id("</s>") == t->eos_id());
  CHECK(t->token_id("<no such piece>") == -1);

  // Every line round-trips with fewer pieces than bytes, also when streamed; so does a new sentence.
  std::istringstream lines(text);
  std::size_t pieces = 0, bytes = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.empty()) continue;
    CAPTURE(line);
    const std::vector<int> ids = t->encode(line);
    CHECK(t->decode(ids) == line);
    CHECK(streamed(*t, ids) == line);
    pieces += ids.size();
    bytes += line.size();
  }
  CHECK(pieces < bytes * 3 / 4);
  const std::string fresh = "And the Lord said unto Paul, Let us go up unto the city of peace.";
  CHECK(t->decode(t->encode(fresh)) == fresh);
  CHECK(t->encode_prompt(fresh).front() == t->bos_id());

  // A corrupt model file is refused clearly.
  { std::ofstream(dir / "tokenizer-bad.model") << "not a model"; }
  CHECK_THROWS_AS(SentencePieceTokenizer(dir / "tokenizer-bad.model"), TokenizerError);
  std::filesystem::remove_all(dir);
}

TEST_CASE("SentencePiece with byte fallback: unseen characters round-trip, also streamed piece by piece") {
  const std::string text = read_file(test::data_dir() / "kjv-griffin" / "heldout.txt");
  const auto dir = temp_dir("spm-bytes");
  train(dir, text, 340, true);  // 256 byte pieces + the characters + a few merges
  const SentencePieceTokenizer t(dir / "tokenizer.model");
  const std::string exotic = "Grüße, naïve café — ✓ 日本 and the LORD";
  const std::vector<int> ids = t.encode(exotic);
  bool bytes = false;  // "ü" is not in the training text: it becomes byte pieces such as <0xC3>
  for (int id : ids) bytes = bytes || t.piece(id).rfind("<0x", 0) == 0;
  CHECK(bytes);
  CHECK(t.decode(ids) == exotic);
  CHECK(streamed(t, ids) == exotic);
  std::filesystem::remove_all(dir);
}
#endif
