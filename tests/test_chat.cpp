// Chat: turns read only their own tokens because the state keeps the conversation; the state after two
// turns is the state of reading the whole transcript at once. Gemma's turn template for tokenizers with
// <start_of_turn>/<end_of_turn> (a SentencePiece model trained here), plain continuation otherwise.
#include <doctest/doctest.h>

#include <unistd.h>

#include <fstream>
#include <sstream>

#include "griffin/generation/chat.hpp"
#include "griffin/griffin.hpp"
#include "griffin/generation/load_tokenizer.hpp"
#include "test_support.hpp"

#ifdef GRIFFIN_WITH_SENTENCEPIECE
#include <sentencepiece_trainer.h>
#endif

using namespace griffin;

TEST_CASE("plain chat with the byte-level demo: the model continues the line") {
  const auto model = load_model(test::data_dir() / "kjv-griffin");
  ByteTokenizer bytes;
  GenerateOptions options;
  options.max_tokens = 200;
  options.sampling.temperature = 0;
  Chat chat(model, bytes, options);
  CHECK_FALSE(chat.uses_turn_template());
  CHECK(chat.turn_tokens("And") == std::vector<int>{'A', 'n', 'd'});
  const Generation first = chat.say("And God said");
  CHECK(first.text.rfind(", I will send thee a man", 0) == 0);
  CHECK(first.text.find('\n') == std::string::npos);  // a reply ends at the end of the line
  if (first.tokens.size() < 200) CHECK(first.stop == StopReason::stop_string);
  const std::int64_t after_first = chat.state().position();
  const Generation second = chat.say("And Moses");
  CHECK(second.stats.prompt_tokens == 9);  // only the new line was read
  CHECK(chat.state().position() == after_first + 9 + std::int64_t(second.tokens.size()));
}

#ifdef GRIFFIN_WITH_SENTENCEPIECE
namespace {
// A SentencePiece model with Gemma's turn markers, trained on heldout.txt, beside a copy of a tiny model.
std::filesystem::path gemma_like_checkpoint() {
  const auto dir = std::filesystem::temp_directory_path() / ("griffin-test-chat-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto status = sentencepiece::SentencePieceTrainer::Train(std::unordered_map<std::string, std::string>{
      {"input", (test::data_dir() / "kjv-griffin" / "heldout.txt").string()},
      {"model_prefix", (dir / "tokenizer").string()},
      {"vocab_size", "400"},
      {"model_type", "bpe"},
      {"byte_fallback", "true"},
      {"user_defined_symbols", "<start_of_turn>,<end_of_turn>"},
      // As Gemma's tokenizer: text kept as it is (newlines included, via byte pieces), no dummy prefix.
      {"normalization_rule_name", "identity"},
      {"remove_extra_whitespaces", "false"},
      {"add_dummy_prefix", "false"},
      {"minloglevel", "2"},
  });
  REQUIRE_MESSAGE(status.ok(), status.ToString());
  return dir;
}
}  // namespace

TEST_CASE("Gemma turn template: two turns keep the state, equal to reading the transcript at once") {
  const auto dir = gemma_like_checkpoint();
  const SentencePieceTokenizer tokenizer(dir / "tokenizer.model");
  const auto model = load_model(test::data_dir() / "tiny-griffin");  // vocab 512 ≥ the tokenizer's 400
  GenerateOptions options;
  options.max_tokens = 12;
  options.sampling = {.temperature = 0.9f, .seed = 5};
  Chat chat(model, tokenizer, options);
  REQUIRE(chat.uses_turn_template());
  const int start_turn = tokenizer.token_id("<start_of_turn>"), end_turn = tokenizer.token_id("<end_of_turn>");

  const std::vector<int> turn1 = chat.turn_tokens("Who was Paul?");
  CHECK(turn1.front() == tokenizer.bos_id());
  CHECK(turn1[1] == start_turn);
  CHECK(tokenizer.decode(turn1) == "<start_of_turn>user\nWho was Paul?<end_of_turn>\n<start_of_turn>model\n");
  const Generation reply1 = chat.say("Who was Paul?");
  for (int t : reply1.tokens) CHECK(t < 400);  // never a token the tokenizer cannot decode

  const std::vector<int> turn2 = chat.turn_tokens("And then?");
  CHECK(turn2.front() != tokenizer.bos_id());
  // A reply cut short by max_tokens is closed before the next user turn.
  if (reply1.stop == StopReason::stop_token) CHECK(turn2.front() != end_turn);
  else CHECK(turn2.front() == end_turn);
  const Generation reply2 = chat.say("And then?");
  CHECK(reply2.stats.prompt_tokens == turn2.size());  // the second turn read only its own tokens

  std::vector<int> transcript = turn1;
  for (const auto* part : {&reply1.tokens, &turn2, &reply2.tokens}) transcript.insert(transcript.end(), part->begin(), part->end());
  State whole = model.new_state();
  const std::vector<float> logits = model.prefill(whole, transcript);
  CHECK(whole.position() == chat.state().position());
  CHECK(test::max_abs_diff(logits, reply2.logits) < 1e-5f);  // one prefill vs prefill + decode steps
  std::filesystem::remove_all(dir);
}
#endif
