// Choosing the next token from logits: greedy, or sampling with temperature, top-k and top-p (nucleus).
// The random numbers come from std::mt19937_64, whose sequence the C++ standard fixes, turned into
// uniforms by our own code (the std distributions are not specified bit for bit), so one seed gives the
// same tokens with every compiler and standard library.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace griffin {

struct SamplingOptions {
  float temperature = 1.0f;  // 0 = greedy
  std::size_t top_k = 0;     // keep the k most likely tokens; 0 = all
  float top_p = 1.0f;        // keep the smallest set of most likely tokens whose probability reaches p; 1 = all
  std::uint64_t seed = 0;

  bool greedy() const { return temperature <= 0.0f || top_k == 1; }
  void validate() const {
    if (!(temperature >= 0.0f) || !std::isfinite(temperature))
      throw std::invalid_argument("sampling: temperature must be a finite number >= 0 (0 = greedy)");
    if (!(top_p > 0.0f && top_p <= 1.0f)) throw std::invalid_argument("sampling: top_p must be in (0, 1]");
  }
};

// The most likely token; among equal logits the lowest id.
inline int argmax(std::span<const float> logits) {
  if (logits.empty()) throw std::invalid_argument("argmax: no logits");
  std::size_t best = 0;
  for (std::size_t i = 1; i < logits.size(); ++i)
    if (logits[i] > logits[best]) best = i;
  return static_cast<int>(best);
}

// One token a sampler may choose and its probability after temperature, top-k and top-p.
struct Candidate {
  int token;
  double probability;
};

class Sampler {
 public:
  explicit Sampler(SamplingOptions options = {}) : options_(options), rng_(options.seed) { options_.validate(); }

  const SamplingOptions& options() const { return options_; }

  // The distribution sample() draws from, most likely first (ties: lower id first); probabilities sum to 1.
  std::vector<Candidate> distribution(std::span<const float> logits) const {
    std::vector<Candidate> out = candidates(logits);
    std::stable_sort(out.begin(), out.end(), [](const Candidate& a, const Candidate& b) { return a.probability > b.probability; });
    return out;
  }

  int sample(std::span<const float> logits) {
    if (options_.greedy()) return argmax(logits);
    const std::vector<Candidate> kept = candidates(logits);
    const double u = uniform();
    double cumulative = 0.0;
    for (const Candidate& c : kept) {
      cumulative += c.probability;
      if (u < cumulative) return c.token;
    }
    return kept.back().token;  // u within rounding of 1
  }

  // A uniform double in [0, 1) from the top 53 bits of one engine draw.
  double uniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }

  void reseed(std::uint64_t seed) {
    options_.seed = seed;
    rng_.seed(seed);
  }

 private:
  // The kept tokens and their probabilities: sorted most likely first when top-k or top-p cut the
  // vocabulary, in id order otherwise (no sort of the whole vocabulary per token).
  std::vector<Candidate> candidates(std::span<const float> logits) const {
    if (logits.empty()) throw std::invalid_argument("sampler: no logits");
    if (options_.greedy()) return {{argmax(logits), 1.0}};
    const std::size_t V = logits.size();
    const double inv_t = 1.0 / static_cast<double>(options_.temperature);
    // A strict total order (logit, then id), so the kept set never depends on how the sort is done.
    auto before = [&](int a, int b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
    std::vector<int> ids(V);
    std::iota(ids.begin(), ids.end(), 0);
    std::size_t keep = V;  // tokens the softmax runs over
    if (options_.top_k > 0 && options_.top_k < V) {
      keep = options_.top_k;
      std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(keep), ids.end(), before);
    }
    // Softmax of logits / temperature over the kept tokens, in double.
    double top = -std::numeric_limits<double>::infinity();
    for (std::size_t i = 0; i < keep; ++i) top = std::max(top, static_cast<double>(logits[ids[i]]));
    double sum = 0.0;
    for (std::size_t i = 0; i < keep; ++i) sum += std::exp((static_cast<double>(logits[ids[i]]) - top) * inv_t);
    auto probability = [&](int id) { return std::exp((static_cast<double>(logits[id]) - top) * inv_t) / sum; };

    if (options_.top_p >= 1.0f) {
      std::vector<Candidate> out(keep);
      for (std::size_t i = 0; i < keep; ++i) out[i] = {ids[i], probability(ids[i])};
      return out;
    }
    // Top-p: the shortest most-likely-first prefix whose probability reaches top_p. Sorting only as far as
    // needed (a prefix of 256, then 8 times more, …) keeps this cheap for a 256,000-token vocabulary.
    std::size_t sorted = keep < V ? keep : 0;  // top-k already sorted its prefix
    for (std::size_t want = std::min<std::size_t>(keep, 256);; want = std::min(keep, want * 8)) {
      if (want > sorted) {
        std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(want),
                          ids.begin() + static_cast<std::ptrdiff_t>(keep), before);
        sorted = want;
      }
      double cumulative = 0.0;
      std::size_t n = 0;
      while (n < want) {
        cumulative += probability(ids[n++]);
        if (cumulative >= static_cast<double>(options_.top_p)) break;
      }
      if (cumulative >= static_cast<double>(options_.top_p) || want == keep) {
        std::vector<Candidate> out(n);
        for (std::size_t i = 0; i < n; ++i) out[i] = {ids[i], probability(ids[i]) / cumulative};
        return out;
      }
    }
  }

  SamplingOptions options_;
  std::mt19937_64 rng_;
};

}  // namespace griffin
