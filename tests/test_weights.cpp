// The tensor tables (griffin/weights.hpp) and the weights drawn from them (random_weights.hpp): the table
// lists exactly the checkpoint's tensors with their shapes, parameter_count and weight_bytes count them,
// check_weights_fit names a tensor of the wrong shape as the checkpoint names it, and make_random_weights
// fills every tensor the table lists as its Init says.
#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

#include "griffin/io/checkpoint.hpp"
#include "griffin/io/config_json.hpp"
#include "griffin/load_model.hpp"
#include "griffin/random_weights.hpp"
#include "griffin/weights.hpp"
#include "test_support.hpp"
#include "tiny_random_model.hpp"

using namespace griffin;

namespace {

constexpr const char* checkpoints[] = {"tiny-griffin", "tiny-hawk-bf16", "tiny-mqa", "kjv-griffin"};

template <class Member>
constexpr bool is_matrix = std::is_same_v<std::remove_cvref_t<Member>, Matrix>;

// Every tensor of `w` as the table lists it: name → its elements as held.
std::map<std::string, std::size_t> held_elements(const DynamicConfig& config, const Weights& w) {
  std::map<std::string, std::size_t> held;
  Weights::visit_tensors(w, config, [&](const auto& member, const TensorSpec& spec, std::size_t layer) {
    if constexpr (is_matrix<decltype(member)>) held[tensor_name(layer, spec.name)] = member.rows() * member.cols();
    else held[tensor_name(layer, spec.name)] = member.size();
  });
  return held;
}

}  // namespace

TEST_CASE("the tensor table lists exactly the checkpoint's tensors, with their shapes") {
  for (const char* name : checkpoints) {
    CAPTURE(name);
    const auto dir = test::data_dir() / name;
    const DynamicConfig config = io::read_config_json(dir / "config.json");
    const io::Checkpoint checkpoint = io::Checkpoint::open(dir);
    Weights shapes;
    shapes.layers.resize(config.sizes.depth);
    std::map<std::string, std::vector<std::size_t>> listed;
    Weights::visit_tensors(shapes, config, [&](auto&, const TensorSpec& spec, std::size_t layer) {
      CHECK(listed.emplace(tensor_name(layer, spec.name), spec.dims()).second);  // each once
    });
    std::map<std::string, std::vector<std::size_t>> stored;
    for (const std::string& tensor : checkpoint.names()) stored[tensor] = checkpoint.find(tensor)->shape;
    CHECK(listed == stored);
  }
}

TEST_CASE("parameter_count(config) is the sum over the checkpoint's tensors and over a loaded model's") {
  for (const char* name : checkpoints) {
    CAPTURE(name);
    const auto dir = test::data_dir() / name;
    const io::Checkpoint checkpoint = io::Checkpoint::open(dir);
    std::size_t in_files = 0;
    for (const std::string& tensor : checkpoint.names()) in_files += checkpoint.find(tensor)->element_count();
    const auto model = load_model(dir, {.weight_type = std::nullopt, .threads = 1});
    std::size_t loaded = 0;
    for (const auto& [tensor, elements] : held_elements(model.config(), model.weights())) loaded += elements;
    CHECK(parameter_count(model.config()) == in_files);
    CHECK(loaded == in_files);
  }
}

TEST_CASE("weight_bytes counts each matrix in its storage type (panels padded to 16 rows) and the rest in f32") {
  // tiny-griffin's matrices: the embedding [V, D], per recurrent layer linear_x, linear_y [E, D] and linear_out
  // [D, E], per attention layer q_proj [H·Dh, D], k_proj, v_proj [Dh, D] and o_proj [D, H·Dh], per layer the
  // MLP's gate and up [F, D] and down [D, F]. Every row count is a multiple of 16: no padding.
  const auto dir = test::data_dir() / "tiny-griffin";
  const DynamicConfig config = io::read_config_json(dir / "config.json");
  const Shape& s = config.sizes;
  std::size_t matrix_elements = s.vocab_size * s.width, matrix_rows = s.vocab_size;
  for (std::size_t i = 0; i < s.depth; ++i) {
    if (config.block_type(i) == BlockType::recurrent) {
      matrix_elements += 3 * s.lru_width * s.width;
      matrix_rows += 2 * s.lru_width + s.width;
    } else {
      matrix_elements += 2 * s.num_heads * s.head_dim * s.width + 2 * s.head_dim * s.width;
      matrix_rows += s.num_heads * s.head_dim + 2 * s.head_dim + s.width;
    }
    matrix_elements += 3 * s.mlp_width * s.width;
    matrix_rows += 2 * s.mlp_width + s.width;
  }
  const std::size_t small_tensors = parameter_count(config) - matrix_elements;
  const auto bytes = [&](WeightType type) {
    const auto model = load_model(dir, {.weight_type = type, .threads = 1});
    return weight_bytes(model.config(), model.weights());
  };
  CHECK(bytes(WeightType::f32) == 4 * matrix_elements + 4 * small_tensors);
  CHECK(bytes(WeightType::bf16) == 2 * matrix_elements + 4 * small_tensors);
  CHECK(bytes(WeightType::int8) == matrix_elements + 4 * matrix_rows + 4 * small_tensors);  // a scale per row
}

TEST_CASE("check_weights_fit names a tensor of the wrong shape as the checkpoint names it") {
  const DynamicConfig config = test::tiny_random_config();
  CHECK_NOTHROW(check_weights_fit(config, make_random_weights(config, WeightType::f32, 1)));
  // Each tensor of the table in turn, one element short (a matrix one column short).
  std::vector<std::string> names;
  {
    Weights shapes;
    shapes.layers.resize(config.sizes.depth);
    Weights::visit_tensors(shapes, config, [&](auto&, const TensorSpec& spec, std::size_t layer) {
      names.push_back(tensor_name(layer, spec.name));
    });
  }
  REQUIRE(names.size() == 2 + 2 * (2 + 13 + 6) + (2 + 5 + 6));
  for (std::size_t target = 0; target < names.size(); ++target) {
    CAPTURE(names[target]);
    Weights w = make_random_weights(config, WeightType::f32, 1);
    std::size_t index = 0;
    Weights::visit_tensors(w, config, [&](auto& member, const TensorSpec&, std::size_t) {
      if (index++ != target) return;
      if constexpr (is_matrix<decltype(member)>)
        member = Matrix::from_rows(WeightType::f32, member.rows(), member.cols() - 1, [](std::size_t, std::span<float>) {});
      else member.pop_back();
    });
    const std::string message = "griffin: the weights do not fit the config: " + names[target] + " is [";
    CHECK_THROWS_WITH_AS(check_weights_fit(config, w), doctest::Contains(message.c_str()), std::invalid_argument);
  }
}

TEST_CASE("make_random_weights fills every tensor the table lists, each as its Init says") {
  const DynamicConfig config = test::tiny_random_config();
  const Weights w = make_random_weights(config, WeightType::f32, 3);
  CHECK_NOTHROW(check_weights_fit(config, w));
  std::size_t tensors = 0;
  std::vector<std::vector<float>> drawn;  // every tensor drawn at random, to tell them apart
  Weights::visit_tensors(w, config, [&](const auto& member, const TensorSpec& spec, std::size_t layer) {
    CAPTURE(tensor_name(layer, spec.name));
    ++tensors;
    std::vector<float> values;
    if constexpr (is_matrix<decltype(member)>) {
      for (std::size_t r = 0; r < member.rows(); ++r)
        for (std::size_t c = 0; c < member.cols(); ++c) values.push_back(member.at(r, c));
    } else {
      values = member;
    }
    REQUIRE(values.size() == spec.elements());
    double sum_sq = 0;
    for (float v : values) sum_sq += double(v) * v;
    const double variance = sum_sq / double(values.size());
    switch (spec.init) {
      case Init::zero: CHECK(variance == 0.0); break;
      // The sample variance of at least 64 draws: within a factor of two of the spec's (a loose bound that a
      // wrong fan-in, a factor of 4 or more here, still fails).
      case Init::normal_fan_in:
        CHECK(variance == doctest::Approx(1.0 / double(spec.fan_in)).epsilon(0.5).scale(0));
        drawn.push_back(values);
        break;
      case Init::conv_taps:
        CHECK(variance == doctest::Approx(0.01 / double(spec.fan_in)).epsilon(0.5).scale(0));
        drawn.push_back(values);
        break;
      case Init::lru_decay:
        for (float v : values) {
          CHECK(v >= 4.0f * std::log(0.81f) - 1e-6f);
          CHECK(v <= 4.0f * std::log(0.998f) + 1e-6f);
        }
        drawn.push_back(values);
        break;
    }
  });
  CHECK(tensors == 2 + 2 * (2 + 13 + 6) + (2 + 5 + 6));
  // Every tensor has its own stream: no two drawn tensors start alike.
  std::size_t alike = 0;
  for (std::size_t a = 0; a < drawn.size(); ++a)
    for (std::size_t b = a + 1; b < drawn.size(); ++b) alike += drawn[a][0] == drawn[b][0] && drawn[a][1] == drawn[b][1];
  CHECK(alike == 0);
}

TEST_CASE("random weights of a deeper model keep the layers they share") {
  const DynamicConfig three = test::tiny_random_config();
  DynamicConfig six = three;
  six.sizes.depth = 6;
  const Weights a = make_random_weights(three, WeightType::f32, 9), b = make_random_weights(six, WeightType::f32, 9);
  for (std::size_t i = 0; i < 3; ++i) {
    CAPTURE(i);
    CHECK(a.layers[i].mlp.down_proj_bias == b.layers[i].mlp.down_proj_bias);
    CHECK(a.layers[i].temporal_pre_norm == b.layers[i].temporal_pre_norm);
    std::size_t differ = 0;
    for (std::size_t r = 0; r < a.layers[i].mlp.gate_proj.rows(); ++r)
      for (std::size_t c = 0; c < a.layers[i].mlp.gate_proj.cols(); ++c)
        differ += a.layers[i].mlp.gate_proj.at(r, c) != b.layers[i].mlp.gate_proj.at(r, c);
    CHECK(differ == 0);
  }
  CHECK(a.layers[0].recurrent.conv_taps == b.layers[0].recurrent.conv_taps);
  CHECK(a.layers[0].recurrent.conv_taps != b.layers[3].recurrent.conv_taps);  // layer 3 draws its own
}
