// The recurrent block's head-major layout (kernels/activation_layout.hpp) changes where values live, never
// what they are: gemm reading and writing head-major matrices, Conv1D over one head's rows, and the whole
// block in either layout give the same bits, on every backend, at every size, for any thread count.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "griffin/blocks/recurrent.hpp"
#include "griffin/kernels/conv1d.hpp"
#include "griffin/kernels/linear.hpp"
#include "griffin/matrix.hpp"
#include "griffin/state.hpp"
#include "griffin/threads.hpp"
#include "test_support.hpp"
#include "tiny_random_model.hpp"

using namespace griffin;
using kernels::ActivationLayout;
using test::random_floats;

namespace {

// A row-major [rows, cols] matrix copied into `layout`, and back.
std::vector<float> to_layout(const std::vector<float>& m, std::size_t rows, std::size_t cols, ActivationLayout layout) {
  std::vector<float> out(m.size(), NAN);
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = 0; c < cols; ++c) out[layout.offset(r, c)] = m[r * cols + c];
  return out;
}
std::vector<float> from_layout(const std::vector<float>& m, std::size_t rows, std::size_t cols, ActivationLayout layout) {
  std::vector<float> out(m.size());
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = 0; c < cols; ++c) out[r * cols + c] = m[layout.offset(r, c)];
  return out;
}

}  // namespace

TEST_CASE("head-major offsets: one [rows, head width] matrix per head, one after another") {
  const auto layout = ActivationLayout::head_major(5, 4);  // 5 rows, heads of 4 columns
  CHECK(layout.offset(0, 0) == 0);
  CHECK(layout.offset(0, 3) == 3);
  CHECK(layout.offset(1, 0) == 4);    // the next row of head 0
  CHECK(layout.offset(0, 4) == 20);   // head 1 starts after head 0's 5 × 4
  CHECK(layout.offset(3, 9) == 53);   // head 2 (from 40), row 3 (12 more), its column 1
  CHECK(layout.run_from(6) == 2);
  const auto rows = ActivationLayout::row_major(12);
  CHECK(rows.offset(3, 9) == 45);
  CHECK(rows.run_from(6) >= 12);
}

// Sizes with heads that split register tiles (24, 20, 40 against 8 or 16 lanes), K blocks that cross heads
// (K = 520, 1100 beyond kc), partial row tiles, more rows than a row block, and fewer tokens than gemm
// needs (a head-major linear takes gemm anyway), for every weight type.
TEST_CASE_TEMPLATE("gemm reads and writes head-major matrices to the same bits as row-major", B, GRIFFIN_TEST_BACKENDS) {
  struct Case {
    std::size_t tokens, k, n, in_head, out_head;
  };
  const Case cases[] = {{13, 96, 96, 24, 24}, {300, 520, 128, 40, 32}, {31, 1100, 100, 100, 20},
                        {3, 64, 64, 16, 16},  {20, 40, 3100, 8, 100}};
  ThreadPool two(2);
  // Outputs split at whole panels (kernels::linear_output_grain), as the blocks split them, and coarser.
  const auto check = [&](const Case& d, auto view) {
    const auto x = random_floats(d.tokens * d.k, 4), bias = random_floats(d.n, 5);
    std::vector<float> want(d.tokens * d.n);
    kernels::reference::matmul(x.data(), d.tokens, view, bias.data(), want.data());
    const auto in = ActivationLayout::head_major(d.tokens, d.in_head);
    const auto out = ActivationLayout::head_major(d.tokens, d.out_head);
    const auto x_heads = to_layout(x, d.tokens, d.k, in);
    const std::size_t grain = kernels::linear_output_grain<B>(d.tokens);
    for (std::size_t part : {grain, 2 * grain, 3 * grain}) {
      CAPTURE(part);
      std::vector<float> y(d.tokens * d.n, NAN);
      two.parallel_for(d.n, part, [&](std::size_t n0, std::size_t n1) {
        kernels::linear<B>(x_heads.data(), in, d.tokens, view, bias.data(), y.data(), out, n0, n1);
      });
      CHECK(from_layout(y, d.tokens, d.n, out) == want);
    }
    // Either side alone.
    std::vector<float> y_rows(d.tokens * d.n, NAN), y_heads(d.tokens * d.n, NAN);
    const auto rows_in = ActivationLayout::row_major(d.k), rows_out = ActivationLayout::row_major(d.n);
    kernels::linear<B>(x_heads.data(), in, d.tokens, view, bias.data(), y_rows.data(), rows_out, 0, d.n);
    kernels::linear<B>(x.data(), rows_in, d.tokens, view, bias.data(), y_heads.data(), out, 0, d.n);
    CHECK(y_rows == want);
    CHECK(from_layout(y_heads, d.tokens, d.n, out) == want);
  };
  for (const auto& d : cases)
    for (WeightType type : {WeightType::f32, WeightType::bf16, WeightType::int8}) {
      CAPTURE(d.tokens);
      CAPTURE(d.k);
      CAPTURE(d.n);
      CAPTURE(weight_type_name(type));
      const Matrix w = test::matrix_from_rows(type, random_floats(d.n * d.k, 3), d.n, d.k);
      w.visit([&](auto view) { check(d, view); });
    }
}

TEST_CASE_TEMPLATE("conv1d over one head's rows equals those channels of the row-major chunk", B, GRIFFIN_TEST_BACKENDS) {
  const std::size_t T = 11, E = 48, heads = 3, bw = E / heads, K = 4;
  const auto u = random_floats(T * E, 6), taps = random_floats(K * E, 7), bias = random_floats(E, 8);
  const std::vector<int> positions{5, 6, 7, 0, 1, 2, 3, 4, 5, 0, 1};  // continues a document, then two more
  const auto start_state = random_floats((K - 1) * E, 9);
  for (const std::size_t tokens : {T, std::size_t(2)}) {  // 2 < K - 1: part of the old state is kept
    CAPTURE(tokens);
    std::vector<float> want(T * E, NAN), want_state = start_state;
    kernels::conv1d<B>(u.data(), E, tokens, E, Size<dynamic>(K), taps.data(), bias.data(), positions.data(),
                       want_state.data(), want.data(), 0, E);
    const auto layout = ActivationLayout::head_major(tokens, bw);
    const auto u_heads = to_layout(u, tokens, E, layout);
    std::vector<float> y_heads(T * E, NAN), state = start_state;
    for (std::size_t h = 0; h < heads; ++h)
      kernels::conv1d<B>(u_heads.data() + h * tokens * bw, bw, tokens, E, Size<dynamic>(K), taps.data() + h * bw,
                         bias.data() + h * bw, positions.data(), state.data() + h * bw, y_heads.data() + h * tokens * bw,
                         0, bw);
    const auto got = from_layout(y_heads, tokens, E, layout);
    CHECK(std::vector<float>(got.begin(), got.begin() + std::ptrdiff_t(tokens * E)) ==
          std::vector<float>(want.begin(), want.begin() + std::ptrdiff_t(tokens * E)));
    CHECK(state == want_state);
  }
}

namespace {

// A model whose heads are whole vectors for every backend (32 channels) or not (20, 24).
DynamicConfig recurrent_config(std::size_t lru_width, std::size_t heads) {
  DynamicConfig c = test::tiny_random_config();
  c.sizes.lru_width = lru_width;
  c.sizes.num_heads = heads;
  c.validate();
  return c;
}

struct BlockRun {
  std::vector<float> out;
  LayerState state;
};

// Two chunks through layer 0 (a recurrent block): the first from zero state, the second continuing it, for
// B sequences of T tokens stored in state rows `sequences`; the second chunk starts a new document midway.
template <class Backend>
BlockRun run_block(const Model<DynamicConfig>& model, ThreadPool& pool, std::size_t B, std::size_t T,
                   blocks::RecurrentLayout layout) {
  const DynamicConfig& config = model.config();
  const std::size_t D = config.sizes.width, N = B * T;
  const RecurrentWeights& rw = model.weights().layers[0].recurrent;
  State state = model.new_state(B + 1);
  // A block-level test: the block takes the layer's state and the scratch as the model hands them over.
  LayerState& ls = detail::StateAccess::layer(state, 0);
  const std::vector<std::size_t> sequences = B == 1 ? std::vector<std::size_t>{1} : std::vector<std::size_t>{2, 0, 1};
  std::vector<float> out;
  for (std::size_t chunk = 0; chunk < 2; ++chunk) {
    const auto normed = random_floats(N * D, 20 + std::uint32_t(chunk));
    std::vector<int> positions(N);
    for (std::size_t b = 0; b < B; ++b)
      for (std::size_t t = 0; t < T; ++t)
        positions[b * T + t] = chunk == 1 && t >= T / 2 ? int(t - T / 2) : int(chunk * T + t);
    std::vector<float> y(N * D, NAN);
    blocks::recurrent_block<Backend>(config, pool, rw, ls, normed.data(), positions.data(), sequences.data(), B, T,
                                     y.data(), detail::StateAccess::workspace(state), layout);
    out.insert(out.end(), y.begin(), y.end());
  }
  return {out, ls};
}

}  // namespace

// Head-major, the block's three linears always go through gemm; row-major, a chunk of fewer than
// gemm_min_tokens rows goes through gemv, which computes every output as the same chain: the two layouts
// give the same bits at every size. Both on two threads too (min_part_work 0, so the pool takes every
// split the block allows even for these small sizes): the split must not change a bit in either layout.
TEST_CASE_TEMPLATE("the recurrent block gives the same bits head-major and row-major", B, GRIFFIN_TEST_BACKENDS) {
  ThreadPool one(1), two(2, 0);
  for (const auto& [lru_width, heads] : {std::pair<std::size_t, std::size_t>{64, 2}, {96, 3}, {40, 2}, {72, 3}}) {
    CAPTURE(lru_width);
    CAPTURE(heads);
    const DynamicConfig config = recurrent_config(lru_width, heads);
    const auto model = test::tiny_random_model(config, 1, 5);
    for (const auto& [batch, tokens] : {std::pair<std::size_t, std::size_t>{1, 29}, {3, 9}, {3, 2}, {1, 1}}) {
      CAPTURE(batch);
      CAPTURE(tokens);
      const BlockRun rows = run_block<B>(model, one, batch, tokens, blocks::RecurrentLayout::row_major);
      REQUIRE(std::isfinite(rows.out[0]));
      for (ThreadPool* pool : {&one, &two}) {
        CAPTURE(pool->size());
        const BlockRun rows_again = run_block<B>(model, *pool, batch, tokens, blocks::RecurrentLayout::row_major);
        CHECK(rows_again.out == rows.out);
        const BlockRun heads_run = run_block<B>(model, *pool, batch, tokens, blocks::RecurrentLayout::head_major);
        CHECK(heads_run.out == rows.out);
        CHECK(heads_run.state.rg_lru == rows.state.rg_lru);
        CHECK(heads_run.state.conv == rows.state.conv);
        // Whichever layout `automatic` picks, it is one of the two above.
        const BlockRun automatic = run_block<B>(model, *pool, batch, tokens, blocks::RecurrentLayout::automatic);
        CHECK(automatic.out == rows.out);
        CHECK(automatic.state.rg_lru == rows.state.rg_lru);
      }
    }
  }
}
