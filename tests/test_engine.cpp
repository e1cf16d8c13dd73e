// The serving engine: continuous batching gives every request exactly what generate() gives it alone (tokens,
// text and next-token logits bit for bit), whatever else is in the batch and however requests come and go;
// long prompts are read in chunks between decode steps; the prefix cache resumes a conversation reading only
// its new tokens; cancellation, a full queue and shutdown behave as documented.
#include <doctest/doctest.h>

#include <future>
#include <random>
#include <set>
#include <thread>

#include "griffin/generation/generate.hpp"
#include "griffin/griffin.hpp"
#include "griffin/serving/engine.hpp"
#include "test_support.hpp"

using namespace griffin;
using serving::Engine;
using serving::EngineOptions;
using serving::Request;

namespace {
// Token ids as text ("<17>"), so the tiny models (vocab 512) have a tokenizer whose text is exact.
class IdTokenizer final : public Tokenizer {
 public:
  std::string_view name() const override { return "ids"; }
  std::size_t vocab_size() const override { return 512; }
  std::vector<int> encode(std::string_view) const override { return {}; }
  std::string decode(std::span<const int> tokens) const override {
    std::string s;
    for (int t : tokens) {
      s += '<';
      s += std::to_string(t);
      s += '>';
    }
    return s;
  }
};

std::vector<int> random_tokens(std::size_t n, unsigned seed, unsigned vocab = 512) {
  std::mt19937 rng(seed);
  std::vector<int> t(n);
  for (auto& v : t) v = int(rng() % vocab);
  return t;
}

template <class M>
Generation alone(const M& model, const Tokenizer& tokenizer, const std::vector<int>& prompt, const GenerateOptions& o) {
  State s = model.new_state();
  return generate(model, s, tokenizer, prompt, o);
}

void check_same(const Generation& got, const Generation& want) {
  CHECK(got.tokens == want.tokens);
  CHECK(got.text == want.text);
  CHECK(got.stop == want.stop);
  CHECK(test::same_bits(got.logits, want.logits));
}
}  // namespace

TEST_CASE("every request gets what generate() gives it alone, while requests join and leave the batch") {
  const auto model = load_model(test::data_dir() / "tiny-griffin");  // window 24: prompts wrap the local KV ring
  IdTokenizer tokenizer;
  // 12 requests through 3 slots: most wait, and each joins when another finishes. Lengths, chunking,
  // temperatures, stop tokens and max_tokens all differ, so sequences finish at different steps.
  std::vector<Request> requests;
  for (unsigned i = 0; i < 12; ++i) {
    Request r;
    r.prompt = random_tokens(3 + 11 * i % 47, 100 + i);
    r.options.max_tokens = 4 + 5 * (i % 4);
    r.options.sampling = {.temperature = i % 3 == 0 ? 0.0f : 0.9f, .top_k = i % 2 ? 0u : 50u, .seed = 1000 + i};
    r.options.prefill_chunk = i % 2 ? 7 : 512;
    if (i % 5 == 1) r.options.stop_tokens = {int(i * 37 % 512)};
    r.stream_text = i % 2 == 0;
    requests.push_back(std::move(r));
  }
  std::vector<Generation> expected;
  for (const auto& r : requests) expected.push_back(alone(model, tokenizer, r.prompt, r.options));

  Engine engine(model, tokenizer, EngineOptions{.max_batch = 3, .max_queue = 64, .cache_bytes = 0});
  std::vector<serving::TicketPtr> tickets;
  for (auto& r : requests) tickets.push_back(engine.submit(r));
  for (std::size_t i = 0; i < tickets.size(); ++i) {
    CAPTURE(i);
    std::string streamed;
    if (requests[i].stream_text) {
      std::string piece;
      while (tickets[i]->next_text(piece, std::chrono::seconds(60)) == serving::Ticket::Next::text) streamed += piece;
    }
    const serving::Completion& c = tickets[i]->wait();
    CHECK(c.error.empty());
    check_same(c.generation, expected[i]);
    if (requests[i].stream_text) CHECK(streamed == expected[i].text);
    CHECK(c.generation.stats.prompt_tokens == requests[i].prompt.size());
    CHECK(c.cached_tokens == 0);
  }
  engine.shutdown();
  const auto stats = engine.stats();
  CHECK(stats.completed == 12);
  CHECK(stats.batch == 0);
  std::size_t generated = 0, prompt = 0;
  for (std::size_t i = 0; i < expected.size(); ++i) generated += expected[i].tokens.size(), prompt += requests[i].prompt.size();
  CHECK(stats.generated_tokens == generated);
  CHECK(stats.prefill_tokens == prompt);
  // Fewer steps than tokens: sequences decoded together.
  CHECK(stats.decode_steps < generated);
}

TEST_CASE("requests submitted from many threads at once each get their own result") {
  const auto model = load_model(test::data_dir() / "tiny-hawk-bf16");  // vocab 300
  IdTokenizer tokenizer;
  Engine engine(model, tokenizer, EngineOptions{.max_batch = 8, .max_queue = 64, .cache_bytes = 1u << 20});
  constexpr std::size_t n = 24;
  const std::vector<int> shared_prompt = random_tokens(20, 7, 300);
  std::vector<std::future<std::pair<Generation, Generation>>> results;
  for (std::size_t i = 0; i < n; ++i)
    results.push_back(std::async(std::launch::async, [&, i] {
      Request r;
      // Every third request repeats one prompt with its own seed (a cache hit once it has been read).
      r.prompt = i % 3 == 0 ? shared_prompt : random_tokens(5 + i, unsigned(i), 300);
      r.options.max_tokens = 10;
      r.options.sampling = {.temperature = 1.0f, .seed = 50 + i};
      const Generation want = alone(model, tokenizer, r.prompt, r.options);
      return std::pair{engine.submit(r)->wait().generation, want};
    }));
  for (std::size_t i = 0; i < n; ++i) {
    CAPTURE(i);
    auto [got, want] = results[i].get();
    check_same(got, want);
  }
  CHECK(engine.stats().cache.hits >= 1);
}

TEST_CASE("a long prompt is read in chunks between the decode steps of a running stream") {
  const auto model = load_model(test::data_dir() / "tiny-griffin");
  IdTokenizer tokenizer;
  Engine engine(model, tokenizer, EngineOptions{.max_batch = 2, .cache_bytes = 0});
  std::promise<void> long_submitted;
  auto submitted = long_submitted.get_future();
  std::vector<std::uint64_t> prefilled_at_token;  // the engine's prefill count when each token of A came out
  Request a;
  a.prompt = random_tokens(4, 1);
  a.options.max_tokens = 40;
  a.options.sampling.temperature = 0;
  a.on_token = [&](int, std::string_view) {
    if (prefilled_at_token.empty()) submitted.wait();  // B is queued before A's second step
    prefilled_at_token.push_back(engine.stats().prefill_tokens);
    return true;
  };
  Request b;
  b.prompt = random_tokens(200, 2);
  b.options.prefill_chunk = 16;  // 13 chunks
  b.options.max_tokens = 3;
  auto ta = engine.submit(a);
  // A's first token is being produced (its callback waits) when B arrives.
  while (engine.stats().prefill_tokens < a.prompt.size()) std::this_thread::yield();
  auto tb = engine.submit(b);
  long_submitted.set_value();
  ta->wait();
  tb->wait();
  // While B read its 200 tokens, A kept producing tokens: A saw many partial prefill counts, one chunk apart.
  std::set<std::uint64_t> partial;
  for (auto p : prefilled_at_token)
    if (p > a.prompt.size() && p < a.prompt.size() + b.prompt.size()) partial.insert(p);
  CHECK(partial.size() >= 10);
  CHECK(ta->wait().generation.tokens == alone(model, tokenizer, a.prompt, a.options).tokens);
  check_same(tb->wait().generation, alone(model, tokenizer, b.prompt, b.options));
}

TEST_CASE("the prefix cache resumes a conversation reading only the new tokens, with generate()'s result") {
  const auto model = load_model(test::data_dir() / "tiny-griffin");
  IdTokenizer tokenizer;
  Engine engine(model, tokenizer, EngineOptions{.max_batch = 2, .cache_bytes = 64u << 20});
  GenerateOptions o;
  o.max_tokens = 8;
  o.sampling = {.temperature = 0.7f, .seed = 3};
  const std::vector<int> turn1 = random_tokens(30, 11);
  const serving::Completion first = engine.submit(Request{turn1, o})->wait();
  CHECK(first.cached_tokens == 0);

  // The same prompt again (another seed): its state after the prompt is reused, nothing is read.
  GenerateOptions o2 = o;
  o2.sampling.seed = 4;
  const serving::Completion again = engine.submit(Request{turn1, o2})->wait();
  CHECK(again.cached_tokens == turn1.size());
  check_same(again.generation, alone(model, tokenizer, turn1, o2));

  // The next turn: the first prompt, its reply, and more. Only the new tokens are read, and the result is
  // generate() continuing from the state after the first reply.
  std::vector<int> turn2 = turn1;
  turn2.insert(turn2.end(), first.generation.tokens.begin(), first.generation.tokens.end());
  const std::vector<int> more = random_tokens(9, 12);
  turn2.insert(turn2.end(), more.begin(), more.end());
  const auto before = engine.stats().prefill_tokens;
  const serving::Completion second = engine.submit(Request{turn2, o})->wait();
  CHECK(second.cached_tokens == turn1.size() + first.generation.tokens.size());
  CHECK(engine.stats().prefill_tokens - before == more.size());
  State s = model.new_state();
  generate(model, s, tokenizer, turn1, o);
  check_same(second.generation, generate(model, s, tokenizer, more, o));
  const auto cache = engine.stats().cache;
  CHECK(cache.hits == 2);
  CHECK(cache.misses == 1);
  CHECK(cache.hit_tokens == second.cached_tokens + turn1.size());
  CHECK(cache.bytes > 0);
  CHECK(cache.bytes <= cache.budget);
}

TEST_CASE("the prefix cache keeps to its byte budget, evicting the least recently used") {
  const auto model = load_model(test::data_dir() / "tiny-griffin");
  State one = model.new_state();
  model.prefill(one, random_tokens(40, 1));
  const std::size_t entry = one.storage_bytes() + 512 * sizeof(float) + 10 * sizeof(int);
  serving::PrefixCache cache(2 * entry + entry / 2);  // room for two entries
  std::vector<float> logits(512);
  const auto key = [](int k) { return std::vector<int>(10, k); };
  CHECK(cache.insert(key(1), one, logits));
  CHECK(cache.insert(key(2), one, logits));
  CHECK(cache.find_prefix(key(1)) != nullptr);  // 1 is now the most recently used
  CHECK(cache.insert(key(3), one, logits));     // evicts 2
  CHECK(cache.find_prefix(key(2)) == nullptr);
  CHECK(cache.find_prefix(key(1)) != nullptr);
  CHECK(cache.find_prefix(key(3)) != nullptr);
  const auto s = cache.stats();
  CHECK(s.entries == 2);
  CHECK(s.evictions == 1);
  CHECK(s.bytes <= s.budget);
  // The longest cached prefix wins; a longer key does not match a shorter prompt.
  std::vector<int> longer = key(3);
  longer.push_back(5);
  CHECK(cache.insert(longer, one, logits));
  std::vector<int> prompt = longer;
  prompt.push_back(9);
  REQUIRE(cache.find_prefix(prompt) != nullptr);
  CHECK(cache.find_prefix(prompt)->tokens == longer);
  CHECK(cache.find_prefix(key(3))->tokens == key(3));
  serving::PrefixCache tiny(entry / 2);
  CHECK_FALSE(tiny.insert(key(1), one, logits));  // larger than the whole budget
}

TEST_CASE("cancelling frees the slot at the next step; the others are not disturbed") {
  const auto model = load_model(test::data_dir() / "tiny-griffin");
  IdTokenizer tokenizer;
  Engine engine(model, tokenizer, EngineOptions{.max_batch = 1, .cache_bytes = 0});
  Request endless{random_tokens(5, 1), {}};
  endless.options.max_tokens = 100000;
  endless.stream_text = true;
  Request next{random_tokens(6, 2), {}};
  next.options.max_tokens = 5;
  auto t1 = engine.submit(endless);
  auto t2 = engine.submit(next);  // waits: the only slot is taken
  std::string piece;
  REQUIRE(t1->next_text(piece, std::chrono::seconds(60)) == serving::Ticket::Next::text);
  t1->cancel();
  const auto& c1 = t1->wait();
  CHECK(c1.generation.stop == StopReason::callback);
  CHECK(c1.generation.tokens.size() < 100000);
  check_same(t2->wait().generation, alone(model, tokenizer, next.prompt, next.options));
  // A queued request cancelled before it starts completes with no tokens.
  auto t3 = engine.submit(endless);
  auto t4 = engine.submit(next);
  t4->cancel();
  t3->cancel();
  CHECK(t4->wait().generation.tokens.empty());
  t3->wait();
  CHECK(engine.stats().cancelled == 3);
}

TEST_CASE("a full queue refuses, shutdown finishes what was accepted and then refuses") {
  const auto model = load_model(test::data_dir() / "tiny-griffin");
  IdTokenizer tokenizer;
  Engine engine(model, tokenizer, EngineOptions{.max_batch = 1, .max_queue = 1, .cache_bytes = 0});
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> started{false};
  Request holder{random_tokens(4, 1), {}};
  holder.options.max_tokens = 3;
  holder.on_token = [&](int, std::string_view) {
    started = true;
    released.wait();  // holds the only slot until the queue has been filled
    return true;
  };
  Request r{random_tokens(4, 2), {}};
  r.options.max_tokens = 3;
  auto t1 = engine.submit(holder);
  while (!started) std::this_thread::yield();
  auto t2 = engine.submit(r);  // the one queue place
  CHECK_THROWS_AS(engine.submit(r), serving::QueueFull);
  CHECK(engine.stats().queued == 1);
  release.set_value();
  std::thread stopper([&] { engine.shutdown(); });
  stopper.join();
  CHECK(t1->done());
  CHECK(t2->done());
  CHECK(t2->wait().generation.tokens.size() == 3);
  CHECK_THROWS_AS(engine.submit(r), serving::ShuttingDown);
  CHECK(engine.stats().refused == 2);
}

TEST_CASE("bad requests are refused at submit, naming what is wrong") {
  const auto model = load_model(test::data_dir() / "tiny-griffin");
  IdTokenizer tokenizer;
  Engine engine(model, tokenizer);
  CHECK_THROWS_WITH_AS(engine.submit(Request{{}, {}}), doctest::Contains("empty prompt"), InputError);
  CHECK_THROWS_WITH_AS(engine.submit(Request{{1, 512}, {}}), doctest::Contains("id 512"), InputError);
  CHECK_THROWS_WITH_AS(engine.submit(Request{{1, -1}, {}}), doctest::Contains("outside the vocabulary"), InputError);
  Request hot{{1, 2}, {}};
  hot.options.sampling.temperature = -1;
  CHECK_THROWS_WITH_AS(engine.submit(hot), doctest::Contains("temperature"), std::invalid_argument);
  Request stop{{1, 2}, {}};
  stop.options.stop_strings = {""};
  CHECK_THROWS_WITH_AS(engine.submit(stop), doctest::Contains("stop string"), std::invalid_argument);
  CHECK(engine.stats().submitted == 0);
}

TEST_CASE("the engine on the demo model gives generate()'s text, and a plain chat is one line per turn") {
  const auto model = load_model(test::data_dir() / "kjv-griffin");
  ByteTokenizer tokenizer;
  const std::vector<ChatMessage> messages{{"user", "In the beginning God created the heaven and the earth."}};
  const ChatPrompt chat = render_chat(tokenizer, messages);
  CHECK(tokenizer.decode(chat.tokens) == "In the beginning God created the heaven and the earth.\n");
  CHECK(chat.stop_strings == std::vector<std::string>{"\n"});
  GenerateOptions o;
  o.max_tokens = 120;
  o.sampling = {.temperature = 0.8f, .seed = 2024};
  o.stop_strings = chat.stop_strings;
  Engine engine(model, tokenizer, EngineOptions{.max_batch = 4});
  const Generation got = engine.submit(Request{chat.tokens, o})->wait().generation;
  check_same(got, alone(model, tokenizer, chat.tokens, o));
  CHECK(got.text.find('\n') == std::string::npos);
  CHECK_THROWS_WITH_AS(render_chat(tokenizer, std::vector<ChatMessage>{{"robot", "x"}}), doctest::Contains("role"),
                       std::invalid_argument);
}
