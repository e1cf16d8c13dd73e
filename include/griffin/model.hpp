// The model: embedding, a residual stack whose temporal block is chosen per layer (recurrent, local or
// global MQA), each followed by the gated-GeLU MLP, then the final norm and tied, soft-capped logits
// (spec "Model"). Weights are shared read-only; everything that changes lives in a State.
//
// prefill() runs a whole chunk of B × T tokens with matrix-matrix work: every linear sees all B·T rows at
// once, the Conv1D and RG-LRU scan run over the chunk per sequence, attention reads the cached keys plus the
// chunk's own. decode() is the same path with T = 1. Both continue from whatever the state holds, so a
// prompt can be fed in pieces of any size. With a compile-time pattern the layers are a fold over it: each
// layer's block is chosen at compile time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "griffin/blocks/attention.hpp"
#include "griffin/blocks/linear_layer.hpp"
#include "griffin/blocks/mlp.hpp"
#include "griffin/blocks/recurrent.hpp"
#include "griffin/config.hpp"
#include "griffin/kernels/activations.hpp"
#include "griffin/kernels/embedding.hpp"
#include "griffin/kernels/rms_norm.hpp"
#include "griffin/simd/default.hpp"
#include "griffin/state.hpp"
#include "griffin/threads.hpp"
#include "griffin/weights.hpp"

namespace griffin {

// Which rows of logits a prefill returns: every token's, each sequence's last, or none.
enum class LogitsRows { all, last, none };

// Sees the residual stream as it is computed: name is "embed", "layers.{i}" (after block i) or "final_norm";
// rows is [B·T, D] in sequence-major order.
using HiddenObserver = std::function<void(std::string_view name, std::span<const float> rows)>;

// Raised for inputs the model cannot run: a token outside the vocabulary, a state of another model, a batch
// that does not match the state.
struct InputError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

template <class Config = DynamicConfig, simd::VectorBackend Backend = simd::Default>
class Model {
 public:
  using config_type = Config;
  using backend = Backend;

  // threads = 0: one per hardware thread. min_part_work: ThreadPool's (0 splits every job).
  Model(Config config, std::shared_ptr<const Weights> weights, std::size_t threads = 0,
        std::size_t min_part_work = ThreadPool::default_min_part_work)
      : config_(std::move(config)), weights_(std::move(weights)),
        pool_(std::make_shared<ThreadPool>(threads, min_part_work)) {
    config_.validate();
    if (!weights_) throw std::invalid_argument("griffin::Model: no weights (a null shared_ptr)");
    check_weights_fit(config_, *weights_);
    shape_ = StateShape::of(config_);
    embed_scale_ = kernels::embedding_scale(config_.sizes.width, config_.hyper.embeddings_scale_by_sqrt_dim);
  }

  const Config& config() const { return config_; }
  const Weights& weights() const { return *weights_; }
  std::shared_ptr<const Weights> shared_weights() const { return weights_; }
  std::size_t threads() const { return pool_->size(); }
  // A model with the same weights and another thread count (or its own pool, for concurrent use).
  Model with_threads(std::size_t threads) const { return Model(config_, weights_, threads, pool_->min_part_work()); }

  State new_state(std::size_t batch = 1) const { return State(shape_, batch); }

  // Runs tokens [B, T] (sequence-major; B = state.batch_size()) and writes logits: [B, T, V] for
  // LogitsRows::all, [B, V] for LogitsRows::last.
  void prefill(State& state, std::span<const int> tokens, std::span<float> logits, LogitsRows rows = LogitsRows::last,
               const HiddenObserver& observer = {}) const {
    const std::size_t B = check_state(state);
    if (tokens.size() % B != 0)
      throw InputError("griffin: " + std::to_string(tokens.size()) + " tokens do not split into the state's " +
                       std::to_string(B) + " sequences");
    const std::size_t T = tokens.size() / B;
    if (T == 0) throw InputError("griffin: empty prompt (prefill needs at least one token per sequence)");
    check_logits_buffer(logits.size(), rows, B, T);
    forward(state, nullptr, tokens.data(), B, T, rows, logits.data(), observer);
  }

  std::vector<float> prefill(State& state, std::span<const int> tokens, LogitsRows rows = LogitsRows::last,
                             const HiddenObserver& observer = {}) const {
    const std::size_t B = check_state(state);
    const std::size_t T = tokens.size() / B;
    std::vector<float> out(logits_size(rows, B, T));
    prefill(state, tokens, out, rows, observer);
    return out;
  }

  // One token per sequence: tokens [B] → logits [B, V].
  void decode(State& state, std::span<const int> tokens, std::span<float> logits) const {
    const std::size_t B = check_state(state);
    if (tokens.size() != B)
      throw InputError("griffin: decode takes one token per sequence: got " + std::to_string(tokens.size()) +
                       " tokens for a state of " + std::to_string(B) + " sequences");
    prefill(state, tokens, logits, LogitsRows::last);
  }

  std::vector<float> decode(State& state, std::span<const int> tokens) const {
    std::vector<float> out(check_state(state) * config_.sizes.vocab_size);
    decode(state, tokens, out);
    return out;
  }

  // Runs tokens [S, T] for only the S sequences listed (distinct indices into the state), leaving the
  // others untouched: sequences of different lengths are prefilled this way, then decoded together.
  void prefill_sequences(State& state, std::span<const std::size_t> sequences, std::span<const int> tokens,
                         std::span<float> logits, LogitsRows rows = LogitsRows::last) const {
    const std::size_t batch = check_state(state);
    const std::size_t S = sequences.size();
    for (std::size_t i = 0; i < S; ++i) {  // pairwise: a decode step of a batch allocates nothing
      if (sequences[i] >= batch)
        throw InputError("griffin: sequence index " + std::to_string(sequences[i]) + " is outside the state's batch of " +
                         std::to_string(batch));
      for (std::size_t j = 0; j < i; ++j)
        if (sequences[j] == sequences[i])
          throw InputError("griffin: sequence index " + std::to_string(sequences[i]) + " is listed twice");
    }
    if (S == 0 || tokens.empty() || tokens.size() % S != 0)
      throw InputError("griffin: " + std::to_string(tokens.size()) + " tokens do not split into " + std::to_string(S) +
                       " non-empty sequences");
    const std::size_t T = tokens.size() / S;
    check_logits_buffer(logits.size(), rows, S, T);
    forward(state, sequences.data(), tokens.data(), S, T, rows, logits.data(), {});
  }

 private:
  // One forward call's chunk: B sequences (state indices `sequences`) × T tokens, and its buffers.
  struct Chunk {
    const std::size_t* sequences;
    std::size_t B, T;
    const int* positions;
    float *x, *normed, *block_out;
    Workspace& ws;
    const HiddenObserver& observer;
  };

  // The floats a prefill of `sequences` × T tokens writes for `rows`.
  std::size_t logits_size(LogitsRows rows, std::size_t sequences, std::size_t T) const {
    const std::size_t V = config_.sizes.vocab_size;
    return rows == LogitsRows::all ? sequences * T * V : rows == LogitsRows::last ? sequences * V : 0;
  }

  void check_logits_buffer(std::size_t size, LogitsRows rows, std::size_t sequences, std::size_t T) const {
    const std::size_t need = logits_size(rows, sequences, T);
    if (size < need)
      throw InputError("griffin: the logits buffer holds " + std::to_string(size) + " floats but " +
                       std::to_string(need) + " are needed");
  }

  std::size_t check_state(const State& state) const {
    if (!(state.shape() == shape_))
      throw InputError("griffin: this state was made for another model (its sizes or block pattern differ)");
    return state.batch_size();
  }

  // Layer i: the temporal block of type Type, then the MLP, each around its norm and residual connection. Out of
  // line: the fold in run_layers names it once per place in the pattern, and one copy per block type is enough.
  template <BlockType Type>
  [[gnu::noinline]] void run_layer(std::size_t i, State& state, const Chunk& c) const {
    const LayerWeights& lw = weights_->layers[i];
    LayerState& ls = detail::StateAccess::layer(state, i);
    const std::size_t N = c.B * c.T;
    const auto D = kernel_extent(config_.template extent<&Shape::width>());
    const float eps = config_.hyper.rms_norm_eps;
    kernels::rms_norm_rows<Backend>(c.x, lw.temporal_pre_norm.data(), eps, N, D, c.normed);
    if constexpr (Type == BlockType::recurrent)
      blocks::recurrent_block<Backend>(config_, *pool_, lw.recurrent, ls, c.normed, c.positions, c.sequences, c.B, c.T,
                                       c.block_out, c.ws);
    else
      blocks::attention_block<Backend, Type>(config_, *pool_, lw.attention, ls, c.normed, c.positions, c.sequences, c.B,
                                             c.T, c.block_out, c.ws);
    kernels::add_in_place<Backend>(c.x, c.block_out, N * D);
    kernels::rms_norm_rows<Backend>(c.x, lw.channel_pre_norm.data(), eps, N, D, c.normed);
    blocks::mlp_block<Backend>(config_, *pool_, lw.mlp, c.normed, N, c.block_out, c.ws);
    kernels::add_in_place<Backend>(c.x, c.block_out, N * D);
    if (c.observer) c.observer("layers." + std::to_string(i), std::span<const float>(c.x, N * D));
  }

  // Every layer in order. A compile-time pattern is a fold over one period, repeated: no branch on the block
  // type per layer. A run-time pattern switches on it.
  void run_layers(State& state, const Chunk& c) const {
    using PatternT = typename Config::pattern_type;
    const std::size_t depth = config_.sizes.depth;
    if constexpr (PatternT::is_static) {
      constexpr std::size_t P = PatternT::period();
      std::size_t i = 0;
      const auto period = [&]<std::size_t... J>(std::index_sequence<J...>, std::size_t layers) {
        ((J < layers ? run_layer<PatternT::at(J)>(i + J, state, c) : void()), ...);
      };
      for (; i + P <= depth; i += P) period(std::make_index_sequence<P>{}, P);
      if (i < depth) period(std::make_index_sequence<P>{}, depth - i);
    } else {
      for (std::size_t i = 0; i < depth; ++i) switch (config_.block_type(i)) {
          case BlockType::recurrent: run_layer<BlockType::recurrent>(i, state, c); break;
          case BlockType::local_attention: run_layer<BlockType::local_attention>(i, state, c); break;
          case BlockType::global_attention: run_layer<BlockType::global_attention>(i, state, c); break;
        }
    }
  }

  // Runs T tokens for each of the B state sequences listed in `sequences` (distinct indices; null: 0 … B-1).
  void forward(State& state, const std::size_t* sequences, const int* tokens, std::size_t B, std::size_t T,
               LogitsRows which, float* logits, const HiddenObserver& observer) const {
    const std::size_t N = B * T;
    const auto D = kernel_extent(config_.template extent<&Shape::width>());
    const auto V = kernel_extent(config_.template extent<&Shape::vocab_size>());
    const Weights& w = *weights_;
    Workspace& ws = detail::StateAccess::workspace(state);
    ws.reserve(N);  // before any pointer into it is taken: growing moves the buffers
    if (!sequences) sequences = ws.all_sequences(B).data();

    // Positions: token t of sequence b sits at state.position(b) + t. One document per sequence, so the
    // position is also the segment position that resets the recurrences at 0.
    const std::span<int> positions = ws.positions(N);
    for (std::size_t b = 0; b < B; ++b) {
      const std::int64_t start = state.position(sequences[b]);
      if (start + std::int64_t(T) > std::int64_t(std::numeric_limits<int>::max()))
        throw InputError("griffin: sequence " + std::to_string(sequences[b]) + " would pass position 2^31 - 1");
      for (std::size_t t = 0; t < T; ++t) positions[b * T + t] = int(start + std::int64_t(t));
    }
    for (std::size_t r = 0; r < N; ++r)
      if (tokens[r] < 0 || std::size_t(tokens[r]) >= V)
        throw InputError("griffin: token id " + std::to_string(tokens[r]) + " at sequence " + std::to_string(r / T) +
                         ", index " + std::to_string(r % T) + " is outside the vocabulary [0, " + std::to_string(V) + ")");

    const Chunk c{sequences, B, T, positions.data(), ws.get(Workspace::residual, N).data(),
                  ws.get(Workspace::normed, N).data(), ws.get(Workspace::block_out, N).data(), ws, observer};
    w.embed_tokens.visit([&](auto table) {
      for (std::size_t r = 0; r < N; ++r) kernels::embed(table, tokens[r], embed_scale_, c.x + r * D);
    });
    if (observer) observer("embed", std::span<const float>(c.x, N * D));
    run_layers(state, c);
    for (std::size_t b = 0; b < B; ++b) detail::StateAccess::advance(state, sequences[b], std::int64_t(T));

    if (which == LogitsRows::none && !observer) return;
    // Only the rows whose logits are wanted go through the final norm and the [V, D] projection.
    const float eps = config_.hyper.rms_norm_eps;
    if (observer || which == LogitsRows::all) {
      kernels::rms_norm_rows<Backend>(c.x, w.final_norm.data(), eps, N, D, c.normed);
      if (observer) observer("final_norm", std::span<const float>(c.normed, N * D));
      if (which == LogitsRows::last)
        for (std::size_t b = 0; b < B; ++b) std::copy_n(c.normed + (b * T + T - 1) * D, std::size_t(D), c.normed + b * D);
    } else {
      for (std::size_t b = 0; b < B; ++b)
        kernels::rms_norm<Backend>(c.x + (b * T + T - 1) * D, w.final_norm.data(), eps, D, c.normed + b * D);
    }
    if (which == LogitsRows::none) return;
    const std::size_t out_rows = which == LogitsRows::last ? B : N;
    blocks::parallel_linear<Backend>(*pool_, c.normed, out_rows, w.embed_tokens, nullptr, logits, std::nullopt,
                                     std::nullopt, blocks::linear_shape(V, D));
    kernels::soft_cap<Backend>(logits, out_rows * V, config_.hyper.logits_soft_cap);
  }

  Config config_;
  std::shared_ptr<const Weights> weights_;
  std::shared_ptr<ThreadPool> pool_;
  StateShape shape_;
  float embed_scale_ = 1.0f;
};

}  // namespace griffin
