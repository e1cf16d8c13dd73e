// Loads a checkpoint in the Hugging Face RecurrentGemma layout (config.json plus one or several
// safetensors files) into Weights, checking every tensor's name, dtype and shape against the config.
// Every matrix is laid out in panels (matrix.hpp) as it is read; the files are closed once the model is made.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "griffin/config.hpp"
#include "griffin/dtype.hpp"
#include "griffin/io/checkpoint.hpp"
#include "griffin/io/config_json.hpp"
#include "griffin/io/error.hpp"
#include "griffin/io/mapped_file.hpp"
#include "griffin/io/safetensors.hpp"
#include "griffin/kernels/rg_lru.hpp"
#include "griffin/model.hpp"
#include "griffin/weights.hpp"

namespace griffin {

struct LoadOptions {
  // How to keep the large matrices; unset = the type config.json's torch_dtype names (bfloat16: bf16;
  // float32, float16 or none: f32). WeightType::int8 quantises each matrix row symmetrically (one f32 scale
  // per row) at load time.
  std::optional<WeightType> weight_type;
  std::size_t threads = 0;  // 0 = one per hardware thread
  std::size_t min_part_work = ThreadPool::default_min_part_work;  // ThreadPool's: 0 splits every job
};

namespace detail {

// Hands out the checkpoint's tensors by name, checking each, and remembers which were taken so that
// tensors the model does not use can be reported.
class TensorReader {
 public:
  explicit TensorReader(const io::Checkpoint& checkpoint) : checkpoint_(checkpoint) {}

  const io::TensorView& take(const std::string& name, const std::vector<std::size_t>& shape) {
    const io::TensorView* t = checkpoint_.find(name);
    if (!t) throw io::LoadError(where() + "missing tensor " + name + " (expected shape " + io::detail::shape_string(shape) + ")");
    if (t->dtype != DType::f32 && t->dtype != DType::bf16 && t->dtype != DType::f16)
      throw io::LoadError(where() + "tensor " + name + " has dtype " + std::string(dtype_name(t->dtype)) +
                          " but weights must be F32, BF16 or F16");
    if (t->shape != shape)
      throw io::LoadError(where() + "tensor " + name + " has shape " + io::detail::shape_string(t->shape) +
                          " but the config implies " + io::detail::shape_string(shape));
    taken_.insert(name);
    return *t;
  }

  std::vector<float> floats(const std::string& name, const std::vector<std::size_t>& shape) {
    return io::to_f32(take(name, shape));
  }

  // A matrix in the storage type, laid out in panels: copied as it is where the file holds that type, else
  // converted a row at a time (a float copy of the whole matrix would cost 4 bytes per weight on top of an
  // int8 or bf16 result: 2.6 GB for RecurrentGemma-2B's embedding).
  Matrix matrix(const std::string& name, std::size_t rows, std::size_t cols, WeightType storage) {
    const io::TensorView& t = take(name, {rows, cols});
    const auto address = reinterpret_cast<std::uintptr_t>(t.data);
    const auto ranges = ParallelRanges::for_work(rows * cols);
    Matrix m = (storage == WeightType::f32 && t.dtype == DType::f32 && address % alignof(float) == 0) ||
                       (storage == WeightType::bf16 && t.dtype == DType::bf16 && address % alignof(bf16) == 0)
                   ? Matrix::from_row_major(storage, t.data, rows, cols, ranges)
                   : Matrix::from_rows(
                         storage, rows, cols, [&](std::size_t r, std::span<float> row) { io::read_f32(t, r * cols, row); },
                         ranges);
    io::release_pages(t.bytes());
    return m;
  }

  // Every tensor of the checkpoint must have been used (lm_head.weight, the tied copy, is allowed).
  void check_all_used() const {
    for (const std::string& name : checkpoint_.names())
      if (!taken_.contains(name))
        throw io::LoadError(where() + "unexpected tensor " + name +
                            " (not part of a model with this config.json; wrong block_types or num_hidden_layers?)");
  }

  void allow(const std::string& name) { taken_.insert(name); }

  // The number of layers the checkpoint holds (one more than the highest i of "model.layers.{i}.…") must
  // be the config's depth. Checked before anything is allocated, so a wrong num_hidden_layers (even an
  // absurd one) is one clear error rather than a missing or unexpected tensor, or a giant allocation.
  void check_layer_count(std::size_t depth) const {
    constexpr std::string_view prefix = "model.layers.";
    std::size_t count = 0;
    for (const std::string& name : checkpoint_.names()) {
      if (!name.starts_with(prefix)) continue;
      std::size_t i = 0, k = prefix.size();
      while (k < name.size() && name[k] >= '0' && name[k] <= '9' && i < (std::size_t{1} << 40))
        i = i * 10 + std::size_t(name[k++] - '0');
      if (k > prefix.size() && k < name.size() && name[k] == '.') count = std::max(count, i + 1);
    }
    if (count == depth) return;
    std::string holds = count == 0 ? "no layers (no model.layers.* tensors)"
                                   : std::to_string(count) + " layers (model.layers.0 to model.layers." +
                                         std::to_string(count - 1) + ")";
    throw io::LoadError(where() + "config.json says num_hidden_layers is " + std::to_string(depth) +
                        " but the checkpoint holds " + holds);
  }

  // A layer whose block type (from block_types) is not the one its tensors are: one error naming both.
  void check_block_type(std::size_t layer, BlockType type) const {
    const std::string p = "model.layers." + std::to_string(layer) + ".temporal_block.";
    const bool want_recurrent = type == BlockType::recurrent;
    const std::string other = want_recurrent ? "q_proj.weight" : "linear_x.weight";
    const std::string mine = want_recurrent ? "linear_x.weight" : "q_proj.weight";
    if (checkpoint_.find(p + mine) || !checkpoint_.find(p + other)) return;
    throw io::LoadError(where() + "model.layers." + std::to_string(layer) + ": block_types says \"" +
                        std::string(block_type_name(type)) + "\" but the checkpoint holds " +
                        (want_recurrent ? "an attention block" : "a recurrent block") + " here (temporal_block." +
                        other + "); block_types does not match the checkpoint");
  }

 private:
  std::string where() const { return checkpoint_.dir().string() + ": "; }
  const io::Checkpoint& checkpoint_;
  std::set<std::string, std::less<>> taken_;
};

}  // namespace detail

// Reads the weights of a model described by `config` from an open checkpoint: every tensor its tensor tables
// list, each checked for name, dtype and shape, and no tensor more.
template <class Config>
Weights load_weights(const io::Checkpoint& checkpoint, const Config& config, WeightType storage) {
  const std::size_t depth = config.sizes.depth;
  detail::TensorReader in(checkpoint);
  in.check_layer_count(depth);
  Weights w;
  w.layers.resize(depth);
  for (std::size_t i = 0; i < depth; ++i) {
    w.layers[i].type = config.block_type(i);
    in.check_block_type(i, w.layers[i].type);
  }
  if (checkpoint.find("lm_head.weight")) in.take("lm_head.weight", {config.sizes.vocab_size, config.sizes.width});
  Weights::visit_tensors(w, config, [&](auto& member, const TensorSpec& spec, std::size_t layer) {
    const std::string name = tensor_name(layer, spec.name);
    if constexpr (std::is_same_v<std::remove_cvref_t<decltype(member)>, Matrix>) {
      member = in.matrix(name, spec.shape[0], spec.shape[1], storage);
    } else {
      std::vector<float> v = in.floats(name, spec.dims());
      if (spec.transform == Transform::taps_k_major) {  // [E, 1, K] → [K, E]
        const std::size_t E = spec.shape[0], K = spec.shape[2];
        member.resize(K * E);
        for (std::size_t c = 0; c < E; ++c)
          for (std::size_t k = 0; k < K; ++k) member[k * E + c] = v[c * K + k];
      } else if (spec.transform == Transform::log_a_scale) {
        for (float& x : v) x = kernels::rg_lru_log_a_scale(x);
        member = std::move(v);
      } else {
        member = std::move(v);
      }
    }
  });
  in.check_all_used();
  return w;
}

// Reads config.json, checks it against the compile-time parts of Config, opens the safetensors and
// loads the weights. The weights are copies, so the files are unmapped before it returns.
template <class Config = DynamicConfig, simd::VectorBackend Backend = simd::Default>
Model<Config, Backend> load_model(const std::filesystem::path& dir, const LoadOptions& options = {}) {
  const DynamicConfig file_config = io::read_config_json(dir / "config.json");
  Config config = convert_config<Config>(file_config);
  if (options.weight_type) config.weight_type = *options.weight_type;
  const io::Checkpoint checkpoint = io::Checkpoint::open(dir);
  auto weights = std::make_shared<const Weights>(load_weights(checkpoint, config, config.weight_type));
  return Model<Config, Backend>(std::move(config), std::move(weights), options.threads, options.min_part_work);
}

}  // namespace griffin
