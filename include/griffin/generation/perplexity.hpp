// Perplexity of a text: the tokens are read as one sequence from position 0 and every token after the
// first is predicted from those before it (the kjv-griffin README's reference figure is computed this
// way). Reported in nats per token and, given the number of text bytes the predicted tokens cover, in
// bits per byte, which compares models with different tokenizers.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <functional>
#include <numbers>
#include <span>
#include <stdexcept>
#include <vector>

#include "griffin/generation/generate.hpp"
#include "griffin/model.hpp"
#include "griffin/generation/tokenizer.hpp"

namespace griffin {

struct Perplexity {
  double nats = 0;                  // total cross-entropy of the predicted tokens
  std::size_t predicted_tokens = 0;
  std::size_t bytes = 0;            // text bytes those tokens cover
  double seconds = 0;

  double nats_per_token() const { return predicted_tokens ? nats / double(predicted_tokens) : 0; }
  double bits_per_byte() const { return bytes ? nats / std::numbers::ln2 / double(bytes) : 0; }
  double perplexity() const { return std::exp(nats_per_token()); }
};

// Cross-entropy of tokens[1..] given their prefixes, in chunks of `chunk` tokens per prefill (logits for a
// whole chunk are [chunk, V] floats; chunk = 0 picks one of about 64 MB).
template <class M>
Perplexity evaluate_perplexity(const M& model, std::span<const int> tokens, std::size_t bytes, std::size_t chunk = 0,
                               const ProgressCallback& progress = {}) {
  if (tokens.size() < 2) throw InputError("griffin perplexity: needs at least two tokens");
  const std::size_t V = model.config().sizes.vocab_size;
  if (chunk == 0) chunk = std::clamp<std::size_t>((std::size_t(16) << 20) / V, 1, 1024);
  const auto start = std::chrono::steady_clock::now();
  State state = model.new_state(1);
  Perplexity result;
  result.bytes = bytes;
  std::vector<float> logits;
  // Every token but the last is read; the logits at token t predict token t + 1.
  const std::size_t inputs = tokens.size() - 1;
  for (std::size_t at = 0; at < inputs; at += chunk) {
    const std::size_t n = std::min(chunk, inputs - at);
    logits.resize(n * V);
    model.prefill(state, tokens.subspan(at, n), logits, LogitsRows::all);
    for (std::size_t t = 0; t < n; ++t) {
      const float* row = logits.data() + t * V;
      const float top = *std::max_element(row, row + V);
      double sum = 0;
      for (std::size_t v = 0; v < V; ++v) sum += std::exp(double(row[v]) - double(top));
      const int target = tokens[at + t + 1];
      result.nats += std::log(sum) + double(top) - double(row[target]);
    }
    result.predicted_tokens += n;
    if (progress) progress(at + n, inputs);
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

// The perplexity of a text under a tokenizer: with a BOS token every text token is predicted (all bytes
// count); without one (byte models) the first token is context only and its bytes do not count.
template <class M>
Perplexity evaluate_perplexity(const M& model, const Tokenizer& tokenizer, std::string_view text, std::size_t chunk = 0,
                               const ProgressCallback& progress = {}) {
  const std::vector<int> tokens = tokenizer.encode_prompt(text);
  std::size_t bytes = text.size();
  if (!tokenizer.adds_bos() && !tokens.empty()) {
    const std::size_t first = tokenizer.decode(std::span(tokens).first(1)).size();
    bytes -= std::min(bytes, first);
  }
  return evaluate_perplexity(model, tokens, bytes, chunk, progress);
}

}  // namespace griffin
