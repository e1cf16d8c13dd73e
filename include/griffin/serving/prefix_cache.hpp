// A cache of states keyed by the tokens they have read. A Griffin state has a fixed size (a Transformer's
// would grow with the text), so keeping a finished conversation costs a bounded copy and resuming it is O(1):
// a prompt that extends a cached token sequence (the same chat with one more turn, or the same prompt again)
// restores the cached state and reads only the tokens after it.
//
// Entries are batch-1 States with their next-token logits. The cache holds at most `budget` bytes of state
// (State::storage_bytes plus the logits) and evicts the least recently used entry first. Not thread-safe: the
// serving engine uses it from its one worker thread.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <list>
#include <span>
#include <vector>

#include "griffin/state.hpp"

namespace griffin::serving {

struct PrefixCacheStats {
  std::uint64_t hits = 0, misses = 0;  // lookups that found a prefix, and that did not
  std::uint64_t hit_tokens = 0;        // prompt tokens not read again thanks to hits
  std::uint64_t inserts = 0, evictions = 0;
  std::size_t entries = 0, bytes = 0, budget = 0;
};

class PrefixCache {
 public:
  struct Entry {
    std::vector<int> tokens;     // every token the state has read, from position 0
    State state;                 // batch 1
    std::vector<float> logits;   // the next-token logits after the last token [V]
    std::size_t bytes = 0;
  };

  explicit PrefixCache(std::size_t budget_bytes) { stats_.budget = budget_bytes; }

  // The entry with the longest token sequence that is a prefix of `prompt` (it may equal it), or null.
  // A hit becomes the most recently used entry. The pointer is valid until the next insert.
  const Entry* find_prefix(std::span<const int> prompt) {
    auto best = entries_.end();
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      const auto& t = it->tokens;
      if (t.size() > prompt.size() || (best != entries_.end() && t.size() <= best->tokens.size())) continue;
      if (std::equal(t.begin(), t.end(), prompt.begin())) best = it;
    }
    if (best == entries_.end()) {
      ++stats_.misses;
      return nullptr;
    }
    ++stats_.hits;
    stats_.hit_tokens += best->tokens.size();
    entries_.splice(entries_.begin(), entries_, best);
    return &entries_.front();
  }

  // Keeps `state` (batch 1, having read exactly `tokens`) and its next-token logits. An entry for the same
  // tokens is replaced; an entry larger than the whole budget is not kept. Evicts least recently used entries
  // until the budget holds. Returns whether the entry was kept.
  bool insert(std::vector<int> tokens, State state, std::vector<float> logits) {
    if (tokens.empty() || state.batch_size() != 1) return false;
    const std::size_t bytes = state.storage_bytes() + logits.size() * sizeof(float) + tokens.size() * sizeof(int);
    if (bytes > stats_.budget) return false;
    for (auto it = entries_.begin(); it != entries_.end(); ++it)
      if (it->tokens == tokens) {
        stats_.bytes -= it->bytes;
        entries_.erase(it);
        break;
      }
    while (!entries_.empty() && stats_.bytes + bytes > stats_.budget) {
      stats_.bytes -= entries_.back().bytes;
      entries_.pop_back();
      ++stats_.evictions;
    }
    entries_.push_front(Entry{std::move(tokens), std::move(state), std::move(logits), bytes});
    stats_.bytes += bytes;
    ++stats_.inserts;
    return true;
  }

  PrefixCacheStats stats() const {
    PrefixCacheStats s = stats_;
    s.entries = entries_.size();
    return s;
  }
  void clear() {
    entries_.clear();
    stats_.bytes = 0;
  }

 private:
  std::list<Entry> entries_;  // most recently used first
  PrefixCacheStats stats_;
};

}  // namespace griffin::serving
