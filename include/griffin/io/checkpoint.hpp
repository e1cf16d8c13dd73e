// A model directory (spec "Checkpoint layout") read as one set of named tensors, so that the loader never
// cares whether the weights are one file or shards.
#pragma once

#include <cstddef>
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "griffin/io/error.hpp"
#include "griffin/io/json.hpp"
#include "griffin/io/mapped_file.hpp"
#include "griffin/io/safetensors.hpp"

namespace griffin::io {

// The weights of a Hugging Face model directory: one model.safetensors, or the shards that
// model.safetensors.index.json names. Every shard is validated on open, and the index must agree with the
// shards exactly (each listed tensor in its shard, no shard tensor unlisted).
class Checkpoint {
 public:
  static Checkpoint open(const std::filesystem::path& dir) {
    namespace fs = std::filesystem;
    Checkpoint c;
    c.dir_ = dir;
    const fs::path index_path = dir / "model.safetensors.index.json";
    const fs::path single_path = dir / "model.safetensors";
    std::error_code ec;
    if (fs::exists(index_path, ec)) {
      c.open_sharded(index_path);
    } else if (fs::exists(single_path, ec)) {
      c.shards_.push_back(SafetensorsFile::open(single_path));
      for (const TensorView& t : c.shards_.back().tensors()) c.by_name_.emplace(t.name, &t);
    } else {
      throw LoadError(dir.string() + ": no model.safetensors or model.safetensors.index.json in this directory");
    }
    for (const auto& shard : c.shards_)
      for (const auto& [key, value] : shard.metadata()) c.metadata_.emplace(key, value);  // first shard wins
    return c;
  }

  Checkpoint(Checkpoint&&) noexcept = default;
  Checkpoint& operator=(Checkpoint&&) noexcept = default;
  Checkpoint(const Checkpoint&) = delete;  // the views point into the shards' mappings
  Checkpoint& operator=(const Checkpoint&) = delete;

  // The tensor called `name`; LoadError "DIR: missing tensor "NAME"" if there is none.
  const TensorView& get(std::string_view name) const {
    if (const TensorView* t = find(name)) return *t;
    throw LoadError(dir_.string() + ": missing tensor " + detail::in_quotes(name));
  }
  const TensorView* find(std::string_view name) const {
    auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : it->second;
  }
  // Every tensor name, sorted.
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    out.reserve(by_name_.size());
    for (const auto& [name, view] : by_name_) out.push_back(name);
    return out;
  }
  // The shards' __metadata__ merged (where two shards disagree on a key, the first shard by name wins).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::filesystem::path& dir() const { return dir_; }
  const std::vector<SafetensorsFile>& shards() const { return shards_; }

 private:
  Checkpoint() = default;

  void open_sharded(const std::filesystem::path& index_path) {
    namespace fs = std::filesystem;
    const std::string index_name = index_path.string();

    MappedFile mapped = MappedFile::open(index_path);
    if (mapped.size() > SafetensorsFile::max_header_bytes)
      fail_in(index_name, "index is " + std::to_string(mapped.size()) + " bytes, more than the limit of " +
                              std::to_string(SafetensorsFile::max_header_bytes));
    std::string_view text(reinterpret_cast<const char*>(mapped.data()), mapped.size());
    nlohmann::json index = detail::parse_json_unique_keys(text, index_name, "key");
    if (!index.is_object()) fail_in(index_name, "index is not a JSON object but " + detail::json_excerpt(index));
    auto wm = index.find("weight_map");
    if (wm == index.end()) fail_in(index_name, "missing weight_map");
    if (!wm->is_object()) fail_in(index_name, "weight_map is not an object but " + detail::json_excerpt(*wm));
    if (wm->empty()) fail_in(index_name, "weight_map is empty");

    std::map<std::string, std::string> tensor_to_shard;
    std::set<std::string> shard_names;
    for (const auto& [tensor, shard] : wm->items()) {
      if (!shard.is_string())
        fail_in(index_name, "weight_map: tensor " + detail::in_quotes(tensor) + " maps to " +
                                detail::json_excerpt(shard) + ", not a file name");
      const auto& file = shard.get_ref<const std::string&>();
      // A shard is a file beside the index: no directories, so an index cannot reach outside `dir`.
      if (file.empty() || file == "." || file == ".." || file.find('/') != std::string::npos ||
          file.find('\\') != std::string::npos)
        fail_in(index_name, "weight_map: tensor " + detail::in_quotes(tensor) + " names shard " +
                                detail::in_quotes(file) + ", which is not a plain file name");
      tensor_to_shard.emplace(tensor, file);
      shard_names.insert(file);
    }

    std::map<std::string, std::size_t> shard_index;
    for (const std::string& file : shard_names) {
      const fs::path p = dir_ / file;
      std::error_code ec;
      if (!fs::exists(p, ec))
        fail_in(index_name, "shard " + detail::in_quotes(file) + " named by weight_map does not exist (expected " +
                                p.string() + ")");
      shard_index.emplace(file, shards_.size());
      shards_.push_back(SafetensorsFile::open(p));
    }
    // Only now that shards_ is complete are pointers into it stable.
    for (const auto& [tensor, file] : tensor_to_shard) {
      const TensorView* t = shards_[shard_index.at(file)].find(tensor);
      if (!t)
        fail_in(index_name, "tensor " + detail::in_quotes(tensor) + " is not in shard " + detail::in_quotes(file) +
                                " where weight_map puts it");
      by_name_.emplace(tensor, t);
    }
    for (const auto& [file, i] : shard_index)
      for (const TensorView& t : shards_[i].tensors()) {
        auto it = tensor_to_shard.find(t.name);
        if (it == tensor_to_shard.end())
          fail_in(index_name, "shard " + detail::in_quotes(file) + " holds tensor " + detail::in_quotes(t.name) +
                                  ", which weight_map does not list");
        if (it->second != file)
          fail_in(index_name, "tensor " + detail::in_quotes(t.name) + " is in shard " + detail::in_quotes(file) +
                                  " but weight_map puts it in " + detail::in_quotes(it->second));
      }
  }

  [[noreturn]] static void fail_in(const std::string& file, const std::string& what) {
    throw LoadError(file + ": " + what);
  }

  std::filesystem::path dir_;
  std::vector<SafetensorsFile> shards_;
  std::map<std::string, const TensorView*, std::less<>> by_name_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace griffin::io
