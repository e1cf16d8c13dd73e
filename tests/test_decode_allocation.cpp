// A decode step allocates nothing once the state exists and the first step has run: scratch buffers are sized
// from the config when the state is made (state.hpp's Workspace), the thread pool hands out references, not
// std::functions, and the kernels' per-thread scratch is grown once. The only allocation a decode step may make
// is a KV cache growing towards its window (kv_cache.hpp), so the checks run after the ring is full.
//
// This file replaces the global operator new to count calls, so it is its own test executable.
#include <doctest/doctest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <vector>

#include "griffin/load_model.hpp"
#include "griffin/presets.hpp"
#include "test_support.hpp"

namespace {
std::atomic<long> allocations{0};
}

// The replacements hand malloc's memory to free, which GCC cannot tell from a mismatched pair.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

void* operator new(std::size_t n) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return operator new(n); }
void* operator new(std::size_t n, std::align_val_t a) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  const std::size_t align = std::size_t(a);
  if (void* p = std::aligned_alloc(align, (n + align - 1) / align * align)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n, std::align_val_t a) { return operator new(n, a); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

namespace griffin {

// Decodes `steps` tokens after a prompt long enough to fill every local-attention ring, and returns how many
// allocations the steps made (the first step, which grows the kernels' per-thread scratch, not counted).
template <class M>
long decode_allocations(const M& model, std::size_t batch, std::size_t steps) {
  auto state = model.new_state(batch);
  const std::size_t V = model.config().sizes.vocab_size, window = model.config().sizes.attention_window;
  std::vector<int> prompt(batch * (window + 8));
  for (std::size_t i = 0; i < prompt.size(); ++i) prompt[i] = int((i * 7 + 3) % V);
  model.prefill(state, prompt, {}, LogitsRows::none);
  std::vector<int> tokens(batch, 65);
  std::vector<float> logits(batch * V);
  model.decode(state, tokens, logits);
  const long before = allocations.load();
  for (std::size_t s = 0; s < steps; ++s) {
    model.decode(state, tokens, logits);
    tokens[0] = int((tokens[0] + 1) % V);
  }
  return allocations.load() - before;
}

TEST_CASE("a decode step of the demo model allocates nothing, static or dynamic, on one or two threads") {
  const auto dir = test::data_dir() / "kjv-griffin";
  for (std::size_t threads : {1, 2}) {
    CAPTURE(threads);
    LoadOptions options;
    options.threads = threads;
    options.min_part_work = 0;  // every split the kernels allow: the pool's hand-offs are counted too
    const auto fixed = load_model<presets::KjvGriffin>(dir, options);
    const auto read = load_model<DynamicConfig>(dir, options);
    for (std::size_t batch : {1, 3}) {
      CAPTURE(batch);
      CHECK(decode_allocations(fixed, batch, 20) == 0);
      CHECK(decode_allocations(read, batch, 20) == 0);
    }
  }
}

TEST_CASE("the counter sees an allocation (so the test above can fail)") {
  const long before = allocations.load();
  auto* v = new std::vector<int>(100);
  delete v;
  CHECK(allocations.load() - before >= 2);
}

}  // namespace griffin
