// Many threads, one set of weights: each thread runs its own State, either through one shared Model
// (whose ThreadPool takes concurrent callers in turn) or through its own Model sharing the weights
// (model.with_threads(n)). Every thread must produce exactly what the same sequence produces when the
// sequences run one after another; the pool splits work by output ranges, so results are bit-identical
// for any thread count. The models split every job they can (min_part_work 0), however small, so the pools'
// workers really run beside the callers' threads. Run under ThreadSanitizer by scripts/sanitize.sh.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "griffin/griffin.hpp"
#include "test_support.hpp"
#include "tiny_random_model.hpp"

using namespace griffin;

namespace {

constexpr std::size_t threads_n = 4;
constexpr std::size_t decode_steps = 12;

// Thread j's prompt: its own tokens and its own length.
std::vector<int> prompt_for(std::size_t j, std::size_t vocab) {
  std::vector<int> p(5 + 9 * j);
  for (std::size_t t = 0; t < p.size(); ++t) p[t] = int((t * 31 + j * 17 + 2) % vocab);
  return p;
}

// Prefill (all rows), then greedy decoding: every logit along the way.
std::vector<float> run_sequence(const Model<>& model, std::size_t j) {
  const std::size_t V = model.config().sizes.vocab_size;
  State s = model.new_state();
  std::vector<float> out = model.prefill(s, prompt_for(j, V), LogitsRows::all);
  std::vector<float> logits(out.end() - std::ptrdiff_t(V), out.end());
  for (std::size_t i = 0; i < decode_steps; ++i) {
    const int next = int(std::max_element(logits.begin(), logits.end()) - logits.begin());
    logits = model.decode(s, std::span<const int>(&next, 1));
    out.insert(out.end(), logits.begin(), logits.end());
  }
  return out;
}

std::vector<std::vector<float>> one_after_another(const Model<>& model) {
  std::vector<std::vector<float>> results;
  for (std::size_t j = 0; j < threads_n; ++j) results.push_back(run_sequence(model, j));
  return results;
}

// Runs sequence j on thread j, all started together; model_for(j) says which Model thread j uses.
template <class ModelFor>
std::vector<std::vector<float>> concurrently(ModelFor&& model_for) {
  std::vector<std::vector<float>> results(threads_n);
  std::vector<std::string> errors(threads_n);
  std::atomic<std::size_t> ready{0};
  std::vector<std::thread> pool;
  for (std::size_t j = 0; j < threads_n; ++j)
    pool.emplace_back([&, j] {
      ready.fetch_add(1);
      while (ready.load() < threads_n) std::this_thread::yield();  // maximise the overlap
      try {
        results[j] = run_sequence(model_for(j), j);
      } catch (const std::exception& e) {
        errors[j] = e.what();
      }
    });
  for (auto& t : pool) t.join();
  for (const auto& e : errors) CHECK(e.empty());
  return results;
}

void check_same(const std::vector<std::vector<float>>& got, const std::vector<std::vector<float>>& want) {
  REQUIRE(got.size() == want.size());
  for (std::size_t j = 0; j < got.size(); ++j) {
    CAPTURE(j);
    REQUIRE(got[j].size() == want[j].size());
    CHECK(got[j] == want[j]);  // bit-identical
  }
}

Model<> golden_model(std::size_t threads) {
  LoadOptions options;
  options.threads = threads;
  options.min_part_work = 0;
  return load_model(test::data_dir() / "tiny-griffin", options);
}

}  // namespace

TEST_CASE("threads sharing one Model (its pool takes callers in turn) match sequential runs") {
  const auto model = golden_model(2);
  const auto reference = one_after_another(model);
  check_same(concurrently([&](std::size_t) -> const Model<>& { return model; }), reference);
}

TEST_CASE("threads with their own Model sharing the weights match sequential runs") {
  const auto model = golden_model(2);
  const auto reference = one_after_another(model);

  SUBCASE("with_threads(1) per thread") {
    std::vector<Model<>> models;
    for (std::size_t j = 0; j < threads_n; ++j) models.push_back(model.with_threads(1));
    for (const auto& m : models) CHECK(&m.weights() == &model.weights());
    check_same(concurrently([&](std::size_t j) -> const Model<>& { return models[j]; }), reference);
  }
  SUBCASE("with_threads(2) per thread: a pool each") {
    std::vector<Model<>> models;
    for (std::size_t j = 0; j < threads_n; ++j) models.push_back(model.with_threads(2));
    check_same(concurrently([&](std::size_t j) -> const Model<>& { return models[j]; }), reference);
  }
  SUBCASE("half shared, half own") {
    const auto own = model.with_threads(1);
    check_same(concurrently([&](std::size_t j) -> const Model<>& { return j % 2 ? own : model; }), reference);
  }
}

TEST_CASE("a refused call on one thread does not disturb the others") {
  const auto model = test::tiny_random_model(test::tiny_random_config(), 2, 7, 0);
  const auto reference = one_after_another(model);
  std::atomic<bool> stop{false};
  std::atomic<std::size_t> refused{0};
  std::thread troublemaker([&] {
    State s = model.new_state();
    const int bad[2] = {3, 1000};
    while (!stop.load()) {
      try {
        model.prefill(s, bad);
      } catch (const InputError&) {
        refused.fetch_add(1);
      }
    }
  });
  const auto got = concurrently([&](std::size_t) -> const Model<>& { return model; });
  // On a fast machine the others may finish before the troublemaker's first call: let it be refused once.
  while (refused.load() == 0) std::this_thread::yield();
  stop = true;
  troublemaker.join();
  check_same(got, reference);
  CHECK(refused.load() > 0);
}

TEST_CASE("one batched state gives what separate states give") {
  // Concurrency inside one call: the pool splits a batch of sequences of different lengths.
  const auto model = golden_model(2);
  const std::size_t V = model.config().sizes.vocab_size;
  State batch = model.new_state(threads_n);
  for (std::size_t j = 0; j < threads_n; ++j) {
    const auto p = prompt_for(j, V);
    std::vector<float> logits(V);
    model.prefill_sequences(batch, std::vector<std::size_t>{j}, p, logits);
    State alone = model.new_state();
    CHECK(test::max_abs_diff(logits, model.prefill(alone, p)) < 1e-5f);
  }
}

TEST_CASE("buffers the threads split by channels start on a cache line") {
  // The pool splits the recurrent state and the workspace at whole cache lines from channel 0; were a
  // buffer not line-aligned, the line at each split would be written by two threads (false sharing, one
  // line passed between the cores on every row of a scan). Not a timing: the addresses themselves.
  const auto model = golden_model(2);
  State state = model.new_state();
  model.prefill(state, prompt_for(1, model.config().sizes.vocab_size));
  const auto on_line = [](const float* p) { return reinterpret_cast<std::uintptr_t>(p) % cache_line_bytes == 0; };
  // The buffers themselves, as the blocks are handed them.
  std::size_t recurrent_layers = 0;
  for (std::size_t i = 0; i < model.config().sizes.depth; ++i) {
    const LayerState& layer = detail::StateAccess::layer(state, i);
    if (layer.type != BlockType::recurrent) continue;
    ++recurrent_layers;
    CHECK(on_line(layer.rg_lru.data()));
    CHECK(on_line(layer.conv.data()));
  }
  CHECK(recurrent_layers > 0);
  Workspace& workspace = detail::StateAccess::workspace(state);
  for (std::size_t b = 0; b < Workspace::buffer_count; ++b)
    CHECK(on_line(workspace.get(Workspace::Buffer(b), 1 + b).data()));
}
