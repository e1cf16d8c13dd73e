// The serving engine: one model, many sequences, continuous batching. Requests are submitted from any thread
// and queue; one worker thread admits them into free slots of a running batch between model steps, so a
// finished sequence leaves and a waiting one joins without the batch draining. Each worker iteration runs at
// most one prefill chunk (of the oldest request still reading its prompt) and then one decode step for every
// sequence that is generating: a long prompt delays each running stream by one chunk at a time, never by its
// whole length.
//
// Results are exactly what generate() gives for the same prompt, options and seed, whatever else is in the
// batch: a sequence's prompt is read in the same chunks generate() uses (its GenerateOptions::prefill_chunk,
// counted from the first token not yet read), one sequence per prefill call, and a decode step computes each
// row of a batch bit for bit as it would alone (tests/test_engine.cpp checks both). Sampling, stop tokens and
// stop strings are generate()'s own code (detail::Sequence).
//
// With a prefix cache (EngineOptions::cache_bytes > 0) the state after each prompt and after each finished
// generation is kept; a prompt that extends a kept token sequence restores it and reads only the rest. The
// result is then what generate() gives continuing from that state (as `griffin generate --load-state` does).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "griffin/generation/generate.hpp"
#include "griffin/generation/snapshot.hpp"
#include "griffin/generation/tokenizer.hpp"
#include "griffin/serving/prefix_cache.hpp"
#include "griffin/state.hpp"

namespace griffin::serving {

struct EngineOptions {
  std::size_t max_batch = 8;            // sequences in the running batch (slots); the rest wait in the queue
  std::size_t max_queue = 64;           // waiting requests; submit() refuses more with QueueFull
  std::size_t cache_bytes = 256u << 20; // prefix cache budget; 0 turns the cache off
};

// submit() when the queue is full (a server answers 429).
struct QueueFull : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// submit() after shutdown() (a server answers 503).
struct ShuttingDown : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Request {
  Request() = default;
  Request(std::vector<int> prompt_tokens, GenerateOptions generate_options)
      : prompt(std::move(prompt_tokens)), options(std::move(generate_options)) {}

  std::vector<int> prompt;  // token ids as the model reads them (BOS included where the tokenizer has one)
  GenerateOptions options;  // the seed is options.sampling.seed
  bool stream_text = false; // keep each token's text for Ticket::next_text
  TokenCallback on_token;   // optional; called on the worker thread (keep it short); false stops the sequence
};

struct Completion {
  Generation generation;            // tokens, text, stop reason, next-token logits, stats
  std::size_t cached_tokens = 0;    // prompt tokens restored from the prefix cache instead of read
  double queued_seconds = 0;        // from submit() to admission into the batch
  double first_token_seconds = 0;   // from submit() to the first generated token (0 if none)
  double total_seconds = 0;         // from submit() to completion
  std::string error;                // set when the engine failed the request (the model threw)
};

// A submitted request: wait for it, read its text as it comes, or cancel it (its slot is freed at the next
// step). Shared between the submitter and the worker.
class Ticket {
 public:
  enum class Next { text, done, timeout };

  // Waits up to `timeout` for text. `text`: `piece` holds the next piece (only with Request::stream_text);
  // `done`: the request is complete and every piece was taken.
  template <class Rep, class Period>
  Next next_text(std::string& piece, std::chrono::duration<Rep, Period> timeout) {
    std::unique_lock lock(mutex_);
    if (!changed_.wait_for(lock, timeout, [&] { return !pieces_.empty() || done_; })) return Next::timeout;
    if (pieces_.empty()) return Next::done;
    piece = std::move(pieces_.front());
    pieces_.pop_front();
    return Next::text;
  }
  const Completion& wait() {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return done_; });
    return completion_;
  }
  bool done() const {
    std::lock_guard lock(mutex_);
    return done_;
  }
  // Stops generation at the next step; the completion then has StopReason::callback.
  void cancel() { cancelled_.store(true); }
  bool cancelled() const { return cancelled_.load(); }

 private:
  template <class M>
  friend class Engine;

  void push_text(std::string piece) {
    if (piece.empty()) return;
    {
      std::lock_guard lock(mutex_);
      pieces_.push_back(std::move(piece));
    }
    changed_.notify_all();
  }
  void complete(Completion c) {
    {
      std::lock_guard lock(mutex_);
      completion_ = std::move(c);
      done_ = true;
    }
    changed_.notify_all();
  }

  Request request_;
  std::chrono::steady_clock::time_point submitted_;
  std::atomic<bool> cancelled_{false};
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::string> pieces_;
  bool done_ = false;
  Completion completion_;
};
using TicketPtr = std::shared_ptr<Ticket>;

// Counters since the engine started, and what it is doing now.
struct EngineStats {
  std::uint64_t submitted = 0, completed = 0, cancelled = 0, failed = 0, refused = 0;
  std::uint64_t prompt_tokens = 0;     // prompt tokens of completed requests (cached ones included)
  std::uint64_t prefill_tokens = 0;    // prompt tokens read by the model
  std::uint64_t generated_tokens = 0;
  std::uint64_t decode_steps = 0;
  double prefill_seconds = 0, decode_seconds = 0;  // model time in prefill chunks and in decode steps
  std::size_t batch = 0, queued = 0, max_batch = 0;
  PrefixCacheStats cache;
  double prefill_tokens_per_second() const { return prefill_seconds > 0 ? double(prefill_tokens) / prefill_seconds : 0; }
  double decode_tokens_per_second() const { return decode_seconds > 0 ? double(generated_tokens) / decode_seconds : 0; }
};

template <class M>
class Engine {
 public:
  // The tokenizer must outlive the engine. The model is copied with its own thread pool of the same size (it
  // shares the weights), so the caller may go on using `model` from its own thread.
  Engine(M model, const Tokenizer& tokenizer, EngineOptions options = {})
      : model_(model.with_threads(model.threads())), tokenizer_(&tokenizer), options_(options),
        cache_(options.cache_bytes) {
    if (options_.max_batch == 0) throw std::invalid_argument("griffin::serving::Engine: max_batch must be at least 1");
    state_ = model_.new_state(options_.max_batch);
    blank_ = model_.new_state(1);
    slots_.resize(options_.max_batch);
    stats_.cache = cache_.stats();
    worker_ = std::thread([this] { run(); });
  }
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;
  // Cancels whatever is still running or queued and stops the worker.
  ~Engine() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
      abandon_ = true;
    }
    wake_.notify_all();
    worker_.join();
  }

  const M& model() const { return model_; }
  const EngineOptions& options() const { return options_; }

  // Checks the request (InputError / std::invalid_argument name what is wrong) and queues it.
  TicketPtr submit(Request request) {
    validate(request);
    auto ticket = std::make_shared<Ticket>();
    ticket->request_ = std::move(request);
    ticket->submitted_ = detail::Clock::now();
    {
      std::lock_guard lock(mutex_);
      if (stopping_) {
        ++stats_.refused;
        throw ShuttingDown("the server is shutting down");
      }
      if (queue_.size() >= options_.max_queue) {
        ++stats_.refused;
        throw QueueFull("too many requests: " + std::to_string(queue_.size()) + " are waiting (the limit is " +
                        std::to_string(options_.max_queue) + ")");
      }
      queue_.push_back(ticket);
      ++stats_.submitted;
    }
    wake_.notify_all();
    return ticket;
  }

  // Refuses new requests, finishes every running and queued one, then returns.
  void shutdown() {
    std::unique_lock lock(mutex_);
    stopping_ = true;
    wake_.notify_all();
    idle_.wait(lock, [&] { return queue_.empty() && busy_slots_ == 0; });
  }

  EngineStats stats() const {
    std::lock_guard lock(mutex_);
    EngineStats s = stats_;
    s.batch = busy_slots_;
    s.queued = queue_.size();
    s.max_batch = options_.max_batch;
    return s;
  }

 private:
  enum class Phase { free, prefill, decode };
  struct Slot {
    TicketPtr ticket;
    Phase phase = Phase::free;
    std::uint64_t order = 0;       // admission order: the oldest prefill goes first
    bool looked_up = false;        // the prefix cache was asked
    std::size_t read = 0;          // prompt tokens in the state
    std::size_t cached = 0;
    std::vector<float> logits;     // next-token logits [V]
    std::optional<detail::Sequence> sequence;
    double queued_seconds = 0, first_token_seconds = 0;

    // A free slot again (a Sequence is not assignable: it refers to its request's options).
    void clear() {
      sequence.reset();
      ticket.reset();
      phase = Phase::free;
      looked_up = false;
      read = cached = 0;
      logits.clear();
      queued_seconds = first_token_seconds = 0;
    }
  };

  void validate(const Request& r) const {
    const std::size_t V = model_.config().sizes.vocab_size;
    if (r.prompt.empty()) throw InputError("griffin: empty prompt");
    for (std::size_t i = 0; i < r.prompt.size(); ++i)
      if (r.prompt[i] < 0 || std::size_t(r.prompt[i]) >= V)
        throw InputError("griffin: prompt token " + std::to_string(i) + " (id " + std::to_string(r.prompt[i]) +
                         ") is outside the vocabulary [0, " + std::to_string(V) + ")");
    r.options.sampling.validate();
    for (const auto& s : r.options.stop_strings)
      if (s.empty()) throw std::invalid_argument("generate: a stop string must not be empty");
  }

  static double since(detail::Clock::time_point t) { return detail::seconds_since(t); }

  // The worker: admit, prefill one chunk, decode one step; sleep when there is nothing to do.
  void run() {
    for (;;) {
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [&] { return stopping_ || !queue_.empty() || busy_slots_ > 0; });
        if (abandon_) {
          for (auto& t : queue_) t->cancel();
          for (auto& s : slots_)
            if (s.ticket) s.ticket->cancel();
        }
        drop_cancelled_queue_entries();
        admit();
        if (stopping_ && queue_.empty() && busy_slots_ == 0) {
          idle_.notify_all();
          return;
        }
      }
      finish_cancelled_slots();
      try {
        prefill_step();
        decode_step();
      } catch (const std::exception& e) {
        fail_all(e.what());
      }
      {
        std::lock_guard lock(mutex_);
        if (queue_.empty() && busy_slots_ == 0) idle_.notify_all();
      }
    }
  }

  // Requires mutex_.
  void drop_cancelled_queue_entries() {
    for (auto it = queue_.begin(); it != queue_.end();) {
      if ((*it)->cancelled()) {
        Completion c;
        c.generation.stop = StopReason::callback;
        c.total_seconds = since((*it)->submitted_);
        (*it)->complete(std::move(c));
        ++stats_.cancelled;
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
  }

  // Requires mutex_.
  void admit() {
    for (std::size_t i = 0; i < slots_.size() && !queue_.empty(); ++i) {
      Slot& s = slots_[i];
      if (s.phase != Phase::free) continue;
      s.clear();
      s.ticket = std::move(queue_.front());
      queue_.pop_front();
      s.phase = Phase::prefill;
      s.order = next_order_++;
      s.queued_seconds = since(s.ticket->submitted_);
      ++busy_slots_;
    }
  }

  void finish_cancelled_slots() {
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      Slot& s = slots_[i];
      if (s.phase == Phase::free || !s.ticket->cancelled()) continue;
      Generation g = s.sequence ? std::move(s.sequence->result) : Generation{};
      g.stop = StopReason::callback;
      finish(i, std::move(g), /*keep=*/false);
    }
  }

  // One chunk of the oldest request still reading its prompt.
  void prefill_step() {
    Slot* s = nullptr;
    std::size_t index = 0;
    for (std::size_t i = 0; i < slots_.size(); ++i)
      if (slots_[i].phase == Phase::prefill && (!s || slots_[i].order < s->order)) s = &slots_[i], index = i;
    if (!s) return;
    const Request& r = s->ticket->request_;
    const std::size_t V = model_.config().sizes.vocab_size;
    if (!s->looked_up) {
      // Asked only now, not at admission: a request admitted together with one of the same prompt finds that
      // prompt's state once the other has read it.
      s->looked_up = true;
      const PrefixCache::Entry* hit = options_.cache_bytes ? cache_.find_prefix(r.prompt) : nullptr;
      if (hit) {
        copy_sequence(hit->state, 0, state_, index);
        s->read = s->cached = hit->tokens.size();
        {
          std::lock_guard lock(mutex_);
          stats_.cache = cache_.stats();
        }
        if (s->read == r.prompt.size()) {
          s->logits = hit->logits;
          start_decoding(index);
          return;
        }
      } else {
        copy_sequence(blank_, 0, state_, index);
        if (options_.cache_bytes) {
          std::lock_guard lock(mutex_);
          stats_.cache = cache_.stats();
        }
      }
    }
    const std::size_t chunk = std::max<std::size_t>(r.options.prefill_chunk, 1);
    const std::size_t n = std::min(chunk, r.prompt.size() - s->read);
    const bool last = s->read + n == r.prompt.size();
    s->logits.resize(V);
    const auto start = detail::Clock::now();
    model_.prefill_sequences(state_, std::span(&index, 1), std::span(r.prompt).subspan(s->read, n), s->logits,
                             last ? LogitsRows::last : LogitsRows::none);
    const double seconds = since(start);
    s->read += n;
    {
      std::lock_guard lock(mutex_);
      stats_.prefill_tokens += n;
      stats_.prefill_seconds += seconds;
    }
    if (last) {
      if (options_.cache_bytes) {
        cache_.insert(r.prompt, extract_sequence(state_, index), s->logits);
        std::lock_guard lock(mutex_);
        stats_.cache = cache_.stats();
      }
      start_decoding(index);
    }
  }

  void start_decoding(std::size_t index) {
    Slot& s = slots_[index];
    const Request& r = s.ticket->request_;
    s.phase = Phase::decode;
    s.sequence.emplace(*tokenizer_, r.prompt, r.options, r.options.sampling.seed);
    if (r.options.max_tokens == 0) {
      Generation g;
      finish(index, std::move(g), false);
    }
  }

  // Samples the next token of every generating sequence and feeds them all to the model in one step.
  void decode_step() {
    const std::size_t V = model_.config().sizes.vocab_size;
    const std::size_t sample_vocab = std::min(V, std::max<std::size_t>(tokenizer_->vocab_size(), 1));
    feed_slots_.clear();
    feed_tokens_.clear();
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      Slot& s = slots_[i];
      if (s.phase != Phase::decode) continue;
      Ticket& t = *s.ticket;
      const Request& r = t.request_;
      auto cb = [&](int token, std::string_view text) {
        if (r.stream_text) t.push_text(std::string(text));
        return !r.on_token || r.on_token(token, text);
      };
      const int token = s.sequence->step(std::span<const float>(s.logits).first(sample_vocab), r.options, cb);
      if (s.sequence->result.tokens.size() == 1) s.first_token_seconds = since(t.submitted_);
      feed_slots_.push_back(i);
      feed_tokens_.push_back(token);
    }
    if (feed_slots_.empty()) return;
    // Every sampled token goes into the state, the last one too, as in generate(): the kept state and the
    // completion's logits then follow the whole text.
    feed_logits_.resize(feed_slots_.size() * V);
    const auto start = detail::Clock::now();
    model_.prefill_sequences(state_, feed_slots_, feed_tokens_, feed_logits_, LogitsRows::last);
    const double seconds = since(start);
    {
      std::lock_guard lock(mutex_);
      stats_.generated_tokens += feed_slots_.size();
      stats_.decode_seconds += seconds;
      ++stats_.decode_steps;
    }
    for (std::size_t j = 0; j < feed_slots_.size(); ++j) {
      const std::size_t i = feed_slots_[j];
      Slot& s = slots_[i];
      std::copy_n(feed_logits_.begin() + static_cast<std::ptrdiff_t>(j * V), V, s.logits.begin());
      if (s.sequence->finished) finish(i, std::move(s.sequence->result), s.sequence->result.stop != StopReason::callback);
    }
  }

  // Completes slot i's request with `g` and frees the slot; keeps its final state in the cache if `keep`.
  void finish(std::size_t i, Generation g, bool keep) {
    Slot& s = slots_[i];
    const Request& r = s.ticket->request_;
    if (keep && options_.cache_bytes && s.phase == Phase::decode && !g.tokens.empty()) {
      std::vector<int> all(r.prompt);
      all.insert(all.end(), g.tokens.begin(), g.tokens.end());
      cache_.insert(std::move(all), extract_sequence(state_, i), s.logits);
    }
    g.logits = s.logits;
    g.stats.prompt_tokens = r.prompt.size();
    g.stats.generated_tokens = g.tokens.size();
    Completion c;
    c.cached_tokens = s.cached;
    c.queued_seconds = s.queued_seconds;
    c.first_token_seconds = s.first_token_seconds;
    c.total_seconds = since(s.ticket->submitted_);
    c.generation = std::move(g);
    const bool cancelled = c.generation.stop == StopReason::callback;
    TicketPtr ticket = std::move(s.ticket);
    s.clear();
    {
      std::lock_guard lock(mutex_);
      --busy_slots_;
      ++stats_.completed;
      if (cancelled) ++stats_.cancelled;
      stats_.prompt_tokens += r.prompt.size();
      stats_.cache = cache_.stats();
    }
    ticket->complete(std::move(c));
  }

  // The model threw (it should not: requests are checked at submit): every running request gets the error.
  void fail_all(const std::string& what) {
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      Slot& s = slots_[i];
      if (s.phase == Phase::free) continue;
      Completion c;
      c.error = what;
      c.generation.stop = StopReason::callback;
      TicketPtr ticket = std::move(s.ticket);
      s.clear();
      {
        std::lock_guard lock(mutex_);
        --busy_slots_;
        ++stats_.failed;
      }
      ticket->complete(std::move(c));
    }
    state_.reset();
  }

  M model_;
  const Tokenizer* tokenizer_;
  EngineOptions options_;
  State state_, blank_;
  PrefixCache cache_;  // worker thread only
  std::vector<Slot> slots_;  // worker thread only
  std::vector<std::size_t> feed_slots_;
  std::vector<int> feed_tokens_;
  std::vector<float> feed_logits_;
  std::uint64_t next_order_ = 0;

  mutable std::mutex mutex_;  // guards queue_, busy_slots_, stats_, stopping_
  std::condition_variable wake_, idle_;
  std::deque<TicketPtr> queue_;
  std::size_t busy_slots_ = 0;
  bool stopping_ = false, abandon_ = false;
  EngineStats stats_;
  std::thread worker_;  // last: starts after everything above exists
};

}  // namespace griffin::serving
