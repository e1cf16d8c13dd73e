// The generation loop: read a prompt into a state, then sample one token at a time, streaming its text
// to a callback, until max_tokens, a stop token (EOS) or a stop string. Batched generation runs several
// prompts of different lengths: each group of equal length is prefilled together with
// Model::prefill_sequences, then all sequences decode together, one model step per token (every weight
// is read once per step for the whole batch); finished sequences drop out of the step.
//
// Every sampled token is fed back into the state, including the last one, so after generate() returns
// the state has read the prompt and all generated tokens, and Generation::logits holds the next-token
// logits: generation (or a chat turn) can continue from exactly there, or be saved as a Snapshot.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "griffin/model.hpp"
#include "griffin/generation/sampling.hpp"
#include "griffin/state.hpp"
#include "griffin/generation/tokenizer.hpp"

namespace griffin {

enum class StopReason { max_tokens, stop_token, stop_string, callback };

inline std::string_view stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::max_tokens: return "max_tokens";
    case StopReason::stop_token: return "stop_token";
    case StopReason::stop_string: return "stop_string";
    case StopReason::callback: return "callback";
  }
  return "?";
}

struct GenerateOptions {
  std::size_t max_tokens = 256;
  SamplingOptions sampling;          // in a batch, sequence i samples with seed sampling.seed + i
  std::vector<int> stop_tokens;      // e.g. the tokenizer's EOS or "<end_of_turn>"; the token is not in the text
  std::vector<std::string> stop_strings;  // generation stops when the text contains one; it is cut off
  std::size_t prefill_chunk = 512;   // prompt tokens per prefill call (bounds memory; progress is reported per chunk)
};

// Called once per generated token with the text it completes (possibly empty while a character or a
// possible stop string is held back). Return false to stop.
using TokenCallback = std::function<bool(int token, std::string_view text)>;
// In a batch, the same with the sequence index first.
using BatchTokenCallback = std::function<bool(std::size_t sequence, int token, std::string_view text)>;
// Prompt tokens read so far, of the total.
using ProgressCallback = std::function<void(std::size_t done, std::size_t total)>;

struct GenerationStats {
  std::size_t prompt_tokens = 0, generated_tokens = 0, decode_steps = 0;
  double prefill_seconds = 0, decode_seconds = 0;
  double prefill_tokens_per_second() const { return prefill_seconds > 0 ? double(prompt_tokens) / prefill_seconds : 0; }
  // Generated tokens per second, summed over the sequences of a batch.
  double decode_tokens_per_second() const { return decode_seconds > 0 ? double(generated_tokens) / decode_seconds : 0; }
};

struct Generation {
  std::vector<int> tokens;    // every generated token, the stop token included
  std::string text;           // their text, up to (not including) a stop token or stop string
  StopReason stop = StopReason::max_tokens;
  std::vector<float> logits;  // next-token logits after the last generated token [V]
  GenerationStats stats;
};

namespace detail {

using Clock = std::chrono::steady_clock;
inline double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Holds back text that could be the start of a stop string and finds stop strings once complete.
class StopStrings {
 public:
  explicit StopStrings(const std::vector<std::string>& stops) : stops_(stops) {
    for (const auto& s : stops_)
      if (s.empty()) throw std::invalid_argument("generate: a stop string must not be empty");
  }
  // Adds text; returns what may be shown now. Sets `stopped` when a stop string is complete.
  std::string add(std::string_view piece, bool& stopped) {
    const std::size_t search_from = held_start();
    text_ += piece;
    std::size_t cut = std::string::npos;
    for (const auto& s : stops_) {
      const std::size_t at = text_.find(s, search_from >= s.size() ? search_from - s.size() + 1 : 0);
      if (at != std::string::npos) cut = std::min(cut, at);
    }
    if (cut != std::string::npos) {
      stopped = true;
      text_.resize(std::max(cut, shown_));
      return release(text_.size());
    }
    // Keep back the longest tail that is a proper prefix of a stop string.
    std::size_t hold = 0;
    for (const auto& s : stops_)
      for (std::size_t n = std::min(s.size() - 1, text_.size()); n > hold; --n)
        if (text_.compare(text_.size() - n, n, s, 0, n) == 0) {
          hold = n;
          break;
        }
    return release(text_.size() - hold);
  }
  std::string flush() { return release(text_.size()); }
  const std::string& text() const { return text_; }

 private:
  std::size_t held_start() const { return shown_; }
  std::string release(std::size_t upto) {
    upto = std::max(upto, shown_);
    std::string out = text_.substr(shown_, upto - shown_);
    shown_ = upto;
    return out;
  }
  const std::vector<std::string>& stops_;
  std::string text_;
  std::size_t shown_ = 0;
};

// One sequence being generated: its sampler, detokenizer, stop checks and result.
struct Sequence {
  Sequence(const Tokenizer& tokenizer, std::span<const int> context, const GenerateOptions& options, std::uint64_t seed)
      : sampler([&] {
          SamplingOptions s = options.sampling;
          s.seed = seed;
          return s;
        }()),
        stream(tokenizer, context),
        stops(options.stop_strings) {}

  // Chooses the next token from `logits` and decides whether this is the last one. Returns the token.
  int step(std::span<const float> logits, const GenerateOptions& options, const std::function<bool(int, std::string_view)>& cb) {
    const int token = sampler.sample(logits);
    result.tokens.push_back(token);
    std::string shown;
    bool stopped = false;
    if (std::find(options.stop_tokens.begin(), options.stop_tokens.end(), token) != options.stop_tokens.end()) {
      result.stop = StopReason::stop_token;
      shown = stops.add(stream.flush(), stopped) + stops.flush();
      finished = true;
    } else {
      shown = stops.add(stream.push(token), stopped);
      if (stopped) {
        result.stop = StopReason::stop_string;
        finished = true;
      } else if (result.tokens.size() >= options.max_tokens) {
        result.stop = StopReason::max_tokens;
        shown += stops.add(stream.flush(), stopped);
        if (stopped) result.stop = StopReason::stop_string;
        else shown += stops.flush();
        finished = true;
      }
    }
    result.text = stops.text();
    if (cb && !cb(token, shown) && !finished) {
      result.stop = StopReason::callback;
      finished = true;
    }
    return token;
  }

  Sampler sampler;
  TextStream stream;
  StopStrings stops;
  Generation result;
  bool finished = false;
};

}  // namespace detail

// Reads `tokens` into sequence 0 of `state` (batch 1) in chunks and returns the last token's logits [V].
template <class M>
std::vector<float> prefill_prompt(const M& model, State& state, std::span<const int> tokens, std::size_t chunk = 512,
                                  const ProgressCallback& progress = {}) {
  if (tokens.empty()) throw InputError("griffin: empty prompt");
  if (state.batch_size() != 1) throw InputError("griffin::prefill_prompt: the state must hold one sequence");
  chunk = std::max<std::size_t>(chunk, 1);
  std::vector<float> logits(model.config().sizes.vocab_size);
  for (std::size_t at = 0; at < tokens.size(); at += chunk) {
    const std::size_t n = std::min(chunk, tokens.size() - at);
    const bool last = at + n == tokens.size();
    model.prefill(state, tokens.subspan(at, n), logits, last ? LogitsRows::last : LogitsRows::none);
    if (progress) progress(at + n, tokens.size());
  }
  return logits;
}

// Generates for several sequences at once. Each entry of `start` is a sequence of `state` (distinct
// indices) with its next-token logits [V] and a few preceding tokens (for detokenizing the first
// generated token in context). Sequence i samples with seed options.sampling.seed + i.
template <class M>
std::vector<Generation> continue_batch(const M& model, State& state, const Tokenizer& tokenizer,
                                       std::span<const std::size_t> sequences, std::vector<std::vector<float>> logits,
                                       const std::vector<std::vector<int>>& contexts, const GenerateOptions& options,
                                       const BatchTokenCallback& callback = {}) {
  const std::size_t S = sequences.size(), V = model.config().sizes.vocab_size;
  if (logits.size() != S || contexts.size() != S)
    throw std::invalid_argument("griffin::continue_batch: one logits row and one context per sequence");
  for (const auto& row : logits)
    if (row.size() != V) throw std::invalid_argument("griffin::continue_batch: a logits row is not [vocab_size]");
  std::vector<detail::Sequence> seqs;
  seqs.reserve(S);
  for (std::size_t i = 0; i < S; ++i) seqs.emplace_back(tokenizer, contexts[i], options, options.sampling.seed + i);
  if (options.max_tokens == 0) {
    std::vector<Generation> out(S);
    for (std::size_t i = 0; i < S; ++i) out[i].logits = std::move(logits[i]);
    return out;
  }

  const std::size_t sample_vocab = std::min(V, std::max<std::size_t>(tokenizer.vocab_size(), 1));
  const auto start = detail::Clock::now();
  std::size_t steps = 0;
  std::vector<std::size_t> active(S);
  for (std::size_t i = 0; i < S; ++i) active[i] = i;
  std::vector<std::size_t> feed_seqs;
  std::vector<int> feed_tokens;
  std::vector<float> out_logits;
  while (!active.empty()) {
    feed_seqs.clear();
    feed_tokens.clear();
    for (std::size_t i : active) {
      auto cb = [&](int token, std::string_view text) { return !callback || callback(i, token, text); };
      // Tokens past the tokenizer's vocabulary (padding rows of the embedding) are never sampled.
      const std::span<const float> row = std::span<const float>(logits[i]).first(sample_vocab);
      feed_tokens.push_back(seqs[i].step(row, options, cb));
      feed_seqs.push_back(sequences[i]);
    }
    // Every sampled token goes into the state (the last one too), all sequences in one model step.
    out_logits.resize(feed_seqs.size() * V);
    if (feed_seqs.size() == state.batch_size()) {
      // Same order as the state's sequences? Then it is a plain decode.
      bool in_order = true;
      for (std::size_t j = 0; j < feed_seqs.size(); ++j) in_order = in_order && feed_seqs[j] == j;
      if (in_order) model.decode(state, feed_tokens, out_logits);
      else model.prefill_sequences(state, feed_seqs, feed_tokens, out_logits, LogitsRows::last);
    } else {
      model.prefill_sequences(state, feed_seqs, feed_tokens, out_logits, LogitsRows::last);
    }
    ++steps;
    std::vector<std::size_t> still;
    for (std::size_t j = 0; j < active.size(); ++j) {
      const std::size_t i = active[j];
      std::copy_n(out_logits.begin() + static_cast<std::ptrdiff_t>(j * V), V, logits[i].begin());
      if (!seqs[i].finished) still.push_back(i);
    }
    active.swap(still);
  }
  const double seconds = detail::seconds_since(start);

  std::vector<Generation> out(S);
  for (std::size_t i = 0; i < S; ++i) {
    out[i] = std::move(seqs[i].result);
    out[i].logits = std::move(logits[i]);
    out[i].stats.generated_tokens = out[i].tokens.size();
    out[i].stats.decode_seconds = seconds;
    out[i].stats.decode_steps = steps;
  }
  return out;
}

// Continues sequence 0 of a batch-1 state from its next-token logits (e.g. a restored Snapshot).
template <class M>
Generation continue_generation(const M& model, State& state, const Tokenizer& tokenizer, std::vector<float> logits,
                               std::span<const int> context, const GenerateOptions& options, const TokenCallback& callback = {}) {
  const std::size_t seq = 0;
  std::vector<std::vector<float>> rows;
  rows.push_back(std::move(logits));
  const std::vector<std::vector<int>> contexts{std::vector<int>(context.begin(), context.end())};
  BatchTokenCallback cb;
  if (callback) cb = [&](std::size_t, int token, std::string_view text) { return callback(token, text); };
  return std::move(continue_batch(model, state, tokenizer, std::span(&seq, 1), std::move(rows), contexts, options, cb)[0]);
}

// Reads `prompt` (token ids, BOS included if the model wants one) into a batch-1 state, which may already
// hold earlier text, and generates from it.
template <class M>
Generation generate(const M& model, State& state, const Tokenizer& tokenizer, std::span<const int> prompt,
                    const GenerateOptions& options, const TokenCallback& callback = {},
                    const ProgressCallback& progress = {}) {
  const auto start = detail::Clock::now();
  std::vector<float> logits = prefill_prompt(model, state, prompt, options.prefill_chunk, progress);
  const double prefill_seconds = detail::seconds_since(start);
  Generation g = continue_generation(model, state, tokenizer, std::move(logits), prompt, options, callback);
  g.stats.prompt_tokens = prompt.size();
  g.stats.prefill_seconds = prefill_seconds;
  return g;
}

// Several prompts of any lengths at once, in a state of batch prompts.size() (fresh, or holding earlier
// text for each sequence). Prompts of equal length are prefilled together; then all decode together.
template <class M>
std::vector<Generation> generate_batch(const M& model, State& state, const Tokenizer& tokenizer,
                                       const std::vector<std::vector<int>>& prompts, const GenerateOptions& options,
                                       const BatchTokenCallback& callback = {}, const ProgressCallback& progress = {}) {
  const std::size_t B = prompts.size(), V = model.config().sizes.vocab_size;
  if (B != state.batch_size())
    throw InputError("griffin::generate_batch: " + std::to_string(B) + " prompts for a state of " +
                     std::to_string(state.batch_size()) + " sequences");
  std::map<std::size_t, std::vector<std::size_t>> by_length;
  std::size_t total = 0;
  for (std::size_t b = 0; b < B; ++b) {
    if (prompts[b].empty()) throw InputError("griffin::generate_batch: prompt " + std::to_string(b) + " is empty");
    by_length[prompts[b].size()].push_back(b);
    total += prompts[b].size();
  }
  const auto start = detail::Clock::now();
  std::vector<std::vector<float>> logits(B, std::vector<float>(V));
  const std::size_t chunk = std::max<std::size_t>(options.prefill_chunk, 1);
  std::size_t done = 0;
  std::vector<int> tokens;
  std::vector<float> rows;
  for (const auto& [T, group] : by_length) {
    const std::size_t S = group.size();
    for (std::size_t at = 0; at < T; at += chunk) {
      const std::size_t n = std::min(chunk, T - at);
      tokens.resize(S * n);
      for (std::size_t s = 0; s < S; ++s)
        std::copy_n(prompts[group[s]].begin() + static_cast<std::ptrdiff_t>(at), n, tokens.begin() + static_cast<std::ptrdiff_t>(s * n));
      const bool last = at + n == T;
      rows.resize(last ? S * V : 0);
      model.prefill_sequences(state, group, tokens, rows, last ? LogitsRows::last : LogitsRows::none);
      if (last)
        for (std::size_t s = 0; s < S; ++s)
          std::copy_n(rows.begin() + static_cast<std::ptrdiff_t>(s * V), V, logits[group[s]].begin());
      done += S * n;
      if (progress) progress(done, total);
    }
  }
  const double prefill_seconds = detail::seconds_since(start);
  std::vector<std::size_t> sequences(B);
  for (std::size_t b = 0; b < B; ++b) sequences[b] = b;
  std::vector<Generation> out = continue_batch(model, state, tokenizer, sequences, std::move(logits), prompts, options, callback);
  for (std::size_t b = 0; b < B; ++b) {
    out[b].stats.prompt_tokens = prompts[b].size();
    out[b].stats.prefill_seconds = prefill_seconds;
  }
  return out;
}

}  // namespace griffin
