// The paper's inference study on the CPU (Griffin paper, section 4 "Inference speed"): decode latency and
// throughput against the number of tokens already in the state, and throughput against batch size, for
// three models of about equal size that differ only in their temporal-mixing block:
//   MQA      global multi-query attention in every layer (the Transformer baseline; its KV cache grows)
//   Hawk     RG-LRU recurrent blocks only (fixed-size state)
//   Griffin  recurrent, recurrent, local attention (window W; state bounded by W)
// Scaled down so the whole study takes a minute or two: D = 1024, 12 layers, 8 heads of 128, MLP 3072,
// RG-LRU width 1024, window 1024, vocabulary 32000, bf16 weights (see StudyShape).
//
// A decode step's cost depends only on how much the state holds, so each point starts from a state
// filled to length L (fill_state: the KV caches hold the keys a real run would keep, random values)
// and times single decode steps there; an O(L²) prefill to get there would be prefill, not decode.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <string>
#include <vector>

#include "griffin/config.hpp"
#include "griffin/model.hpp"
#include "griffin/random_weights.hpp"
#include "machine.hpp"
#include "models.hpp"

namespace griffin::bench {

struct StudyShape {
  std::size_t width = 1024, lru_width = 1024, heads = 8, head_dim = 128, mlp_width = 3072, window = 1024,
              depth = 12, vocab = 32000;
  WeightType weights = WeightType::bf16;
};

struct StudyOptions {
  StudyShape shape;
  std::vector<std::size_t> lengths{512, 1024, 2048, 4096, 8192, 16384, 32768};
  std::vector<std::size_t> batches{1, 2, 4, 8, 16};
  std::size_t batch_length = 4096;  // the length the batch sweep runs at
  std::size_t steps = 8;            // timed decode steps per point (the fastest is kept)
  std::size_t threads = 2;
};

struct StudyPoint {
  std::size_t length = 0, batch = 0;
  double latency_ms = 0;  // one decode step (all B sequences), the fastest of the timed ones
  double tokens_per_s = 0;
  double state_mb = 0;    // the state's memory (KV caches dominate for MQA)
};

struct StudyModel {
  std::string name;
  double parameters = 0;
  std::vector<StudyPoint> by_length, by_batch;
};

inline DynamicConfig study_config(const StudyShape& s, std::vector<BlockType> pattern) {
  const Shape sizes{.vocab_size = s.vocab, .width = s.width, .lru_width = s.lru_width, .num_heads = s.heads,
                    .head_dim = s.head_dim, .num_kv_heads = 1, .mlp_width = s.mlp_width, .conv_width = 4,
                    .attention_window = s.window, .depth = s.depth};
  return make_dynamic_config(sizes, std::move(pattern), presets::paper_hyper, s.weights);
}

template <class Backend>
StudyPoint study_point(const Model<DynamicConfig, Backend>& model, std::size_t length, std::size_t batch,
                       std::size_t steps) {
  auto state = model.new_state(batch);
  fill_state(state, length);
  const std::size_t V = model.config().sizes.vocab_size;
  std::vector<int> tokens(batch);
  for (std::size_t b = 0; b < batch; ++b) tokens[b] = int((b * 7919 + 13) % V);
  std::vector<float> logits(batch * V);
  model.decode(state, tokens, logits);  // warm-up: the first step touches the state and the scratch
  std::vector<double> times;
  for (std::size_t i = 0; i < steps; ++i) {
    const double t0 = now_seconds();
    model.decode(state, tokens, logits);
    times.push_back(now_seconds() - t0);
  }
  // The fastest step: on a shared machine other work only ever adds time.
  const double best = *std::min_element(times.begin(), times.end());
  StudyPoint p;
  p.length = length;
  p.batch = batch;
  p.latency_ms = best * 1e3;
  p.tokens_per_s = double(batch) / best;
  p.state_mb = double(state.storage_bytes()) / 1e6;
  return p;
}

template <class Backend = simd::Default>
std::vector<StudyModel> run_inference_study(const StudyOptions& o) {
  const std::vector<std::pair<std::string, std::vector<BlockType>>> kinds{
      {"MQA", {BlockType::global_attention}},
      {"Hawk", {BlockType::recurrent}},
      {"Griffin", {BlockType::recurrent, BlockType::recurrent, BlockType::local_attention}}};
  std::vector<StudyModel> out;
  std::vector<Model<DynamicConfig, Backend>> models;
  for (const auto& [name, pattern] : kinds) {
    const DynamicConfig config = study_config(o.shape, pattern);
    auto weights = std::make_shared<const Weights>(make_random_weights(config, o.shape.weights, 1));
    out.push_back({name, double(parameter_count(config)), {}, {}});
    models.emplace_back(config, weights, o.threads);
  }
  // The models take turns at every point, so a burst of other work on the machine hits all three alike.
  auto log = [](const StudyModel& m, const StudyPoint& p) {
    std::fprintf(stderr, "  study %-8s L=%-6zu B=%-3zu %8.2f ms/step\n", m.name.c_str(), p.length, p.batch, p.latency_ms);
  };
  for (std::size_t L : o.lengths)
    for (std::size_t i = 0; i < models.size(); ++i) {
      out[i].by_length.push_back(study_point(models[i], L, 1, o.steps));
      log(out[i], out[i].by_length.back());
    }
  for (std::size_t B : o.batches)
    for (std::size_t i = 0; i < models.size(); ++i) {
      out[i].by_batch.push_back(study_point(models[i], o.batch_length, B, o.steps));
      log(out[i], out[i].by_batch.back());
    }
  return out;
}

// Seconds to generate `length` tokens one at a time from an empty state: the per-step latency measured
// at the study's lengths, integrated over positions 0 … length (trapezoids; flat before the first point).
inline double time_to_generate(const StudyModel& m, std::size_t length) {
  double total = 0;
  std::size_t prev_len = 0;
  double prev_ms = m.by_length.front().latency_ms;
  for (const auto& p : m.by_length) {
    const std::size_t upto = std::min(p.length, length);
    if (upto > prev_len) {
      const double frac = double(upto - prev_len) / double(p.length - prev_len);
      const double end_ms = prev_ms + (p.latency_ms - prev_ms) * frac;
      total += double(upto - prev_len) * (prev_ms + end_ms) / 2 / 1e3;
    }
    if (p.length >= length) return total;
    prev_len = p.length;
    prev_ms = p.latency_ms;
  }
  return total + double(length - prev_len) * prev_ms / 1e3;
}

}  // namespace griffin::bench
