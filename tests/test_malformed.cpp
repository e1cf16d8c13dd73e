// Hostile checkpoints through the user's path, load_model(dir): each case of the generated corpus
// (tests/malformed_corpus.hpp) must be refused with its own message, naming the file, and without a
// giant allocation. The unmodified corpus base must load and agree with the original checkpoint, so
// the corpus is known to break exactly one thing per case.
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <typeinfo>
#include <vector>

#include "griffin/griffin.hpp"
#include "malformed_corpus.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using namespace griffin;
namespace malformed = griffin::test::malformed;

namespace {

struct ScratchDir {
  fs::path path = fs::temp_directory_path() / ("griffin-test-malformed-" + std::to_string(::getpid()));
  ScratchDir() { fs::create_directories(path); }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};
const fs::path& scratch_root() {
  static ScratchDir dir;
  return dir.path;
}
fs::path fresh_dir(const std::string& name) {
  const fs::path p = scratch_root() / name;
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

const malformed::CheckpointImage& base_image() {
  static const malformed::CheckpointImage image =
      malformed::CheckpointImage::read(test::data_dir() / "tiny-griffin");
  return image;
}

Model<> load(const fs::path& dir) {
  LoadOptions options;
  options.threads = 1;
  return load_model(dir, options);
}

// The peak resident set of this process in KiB (VmHWM), to show that no case allocates its claimed size.
std::size_t peak_rss_kib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.starts_with("VmHWM:")) return std::stoul(line.substr(6));
  return 0;
}

std::vector<float> last_logits(const Model<>& model, const std::vector<int>& tokens) {
  auto state = model.new_state();
  return model.prefill(state, tokens);
}

}  // namespace

TEST_CASE("the corpus base is a valid checkpoint in both layouts") {
  const std::vector<int> tokens{2, 17, 300, 5, 511, 42};
  const auto reference = last_logits(load(test::data_dir() / "tiny-griffin"), tokens);
  for (bool sharded : {false, true}) {
    CAPTURE(sharded);
    malformed::CheckpointImage image = base_image();
    image.sharded = sharded;
    const fs::path dir = fresh_dir(sharded ? "base-sharded" : "base-single");
    image.write(dir);
    CHECK(fs::exists(dir / (sharded ? "model.safetensors.index.json" : "model.safetensors")));
    CHECK(last_logits(load(dir), tokens) == reference);
  }
}

TEST_CASE("the corpus holds at least 30 distinct malformed checkpoints") {
  const auto cases = malformed::corpus();
  CHECK(cases.size() >= 30);
  std::set<std::string> names, messages;
  for (const auto& c : cases) {
    CHECK_MESSAGE(names.insert(c.name).second, "duplicate case name: " << c.name);
    CHECK(!c.message.empty());
    CHECK((c.edit || c.damage));
  }
}

TEST_CASE("every malformed checkpoint is refused by load_model with its own message") {
  const std::size_t peak_before = peak_rss_kib();
  const auto cases = malformed::corpus();
  std::size_t index = 0;
  for (const auto& c : cases) {
    CAPTURE(c.name);
    malformed::CheckpointImage image = base_image();
    if (c.edit) c.edit(image);
    const fs::path dir = fresh_dir("case-" + std::to_string(index++));
    image.write(dir);
    if (c.damage) c.damage(dir);

    std::string message;
    bool is_load_error = false, is_config_error = false;
    try {
      (void)load(dir);
    } catch (const io::LoadError& e) {
      message = e.what();
      is_load_error = true;
    } catch (const ConfigError& e) {
      message = e.what();
      is_config_error = true;
    } catch (const std::exception& e) {
      FAIL_CHECK("unexpected exception type " << typeid(e).name() << ": " << e.what());
    }
    CAPTURE(message);
    CHECK_MESSAGE((is_load_error || is_config_error), "the checkpoint loaded");
    CHECK(is_load_error == (c.error == malformed::Error::load));
    CHECK(is_config_error == (c.error == malformed::Error::config));
    CHECK(message.find(c.message) != std::string::npos);
    // Every message starts with the file or directory at fault.
    CHECK(message.starts_with(dir.string()));
    fs::remove_all(dir);
  }
  // Cases claim sizes of terabytes (vocab_size 2e9, 4e6 layers, a 2^63-byte header); none may be allocated.
  const std::size_t growth_mib = (peak_rss_kib() - peak_before) / 1024;
  MESSAGE("peak RSS grew by ", growth_mib, " MiB over the corpus");
  CHECK(growth_mib < 512);
}

TEST_CASE("a checkpoint in F16 or with out-of-order headers is not malformed") {
  const std::vector<int> tokens{2, 9, 100};
  const auto reference = last_logits(load(test::data_dir() / "tiny-griffin"), tokens);

  SUBCASE("F16 weights are widened on load") {
    malformed::CheckpointImage image = base_image();
    image.sharded = false;
    for (auto& t : image.tensors) {
      std::vector<std::byte> half(t.bytes.size() / 2);
      for (std::size_t i = 0; i < half.size() / 2; ++i) {
        float f;
        std::memcpy(&f, t.bytes.data() + 4 * i, 4);
        // Round to the nearest half through _Float16, which g++ and clang both provide on x86-64.
        const _Float16 h = static_cast<_Float16>(f);
        std::memcpy(half.data() + 2 * i, &h, 2);
      }
      t.dtype = DType::f16;
      t.bytes = std::move(half);
    }
    const fs::path dir = fresh_dir("f16");
    image.write(dir);
    const auto logits = last_logits(load(dir), tokens);
    // Half precision keeps about 3 decimal digits of each weight; the logits move by far less than their size.
    CHECK(test::max_abs_diff(logits, reference) < 0.5f);
    CHECK(test::max_abs_diff(logits, reference) > 0.0f);
  }
  SUBCASE("tensors whose data lie in another order than their header entries") {
    malformed::CheckpointImage image = base_image();
    image.sharded = false;
    std::reverse(image.tensors.begin(), image.tensors.end());
    const fs::path dir = fresh_dir("reversed");
    image.write(dir);
    CHECK(last_logits(load(dir), tokens) == reference);
  }
}

TEST_CASE("attention_window_size is the one size no tensor confirms: states start small and grow with use") {
  // A checkpoint whose config claims a window of 2^31 - 1 loads (nothing contradicts it); its states must
  // not allocate the claimed window up front. For sequences shorter than the real window (24) the logits
  // are those of the original checkpoint.
  malformed::CheckpointImage image = base_image();
  image.config["attention_window_size"] = 2147483647;
  const fs::path dir = fresh_dir("huge-window");
  image.write(dir);
  const std::size_t peak_before = peak_rss_kib();
  const auto model = load(dir);
  const auto original = load(test::data_dir() / "tiny-griffin");
  State s = model.new_state(8);
  const std::vector<int> prompt(8 * 10, 7);
  const auto logits = model.prefill(s, prompt);
  State t = original.new_state(8);
  CHECK(logits == original.prefill(t, prompt));
  std::size_t caches = 0;
  for (std::size_t b = 0; b < s.batch_size(); ++b)
    s.visit_buffers(b, [&](const SequenceLayer<false>& l) {
      if (!l.kv) return;
      ++caches;
      CHECK(l.kv->capacity() == 2147483647u);
      CHECK(l.kv->ring().slots <= 16);  // grown by doubling to hold 10 keys
    });
  CHECK(caches == 8 * 2);  // tiny-griffin has two attention layers
  const std::size_t growth_mib = (peak_rss_kib() - peak_before) / 1024;
  CHECK(growth_mib < 256);
}
