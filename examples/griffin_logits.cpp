// griffin_logits MODEL_DIR IN.safetensors OUT.safetensors [--backend B] [--weights f32|bf16|int8] [--threads N] [--static]
//
// The tool for checking a checkpoint against a reference. IN holds int32 `tokens` [B, T] and optionally
// int32 `prefill_len` [1] = P. OUT receives f32 `logits` [B, T, V] from one prefill over the whole
// sequence and, when P is given, `decode_logits` [B, T-P, V] from a P-token prefill followed by
// one-token decode steps. When IN also holds reference `logits` / `decode_logits` (the golden files do),
// the largest absolute difference is printed.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "griffin/griffin.hpp"

namespace {

struct Options {
  std::string model_dir, in_path, out_path, backend = "highway";
  std::optional<griffin::WeightType> weights;
  std::size_t threads = 0;
  bool use_static = false;
};

[[noreturn]] void usage(const char* message) {
  std::fprintf(stderr,
               "%s\nusage: griffin_logits MODEL_DIR IN.safetensors OUT.safetensors [--backend scalar|xsimd|highway]\n"
               "                      [--weights f32|bf16|int8] [--threads N] [--static]\n",
               message);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value after " + a).c_str());
      return argv[++i];
    };
    if (a == "--backend") o.backend = value();
    else if (a == "--weights") {
      std::string w = value();
      if (w == "f32") o.weights = griffin::WeightType::f32;
      else if (w == "bf16") o.weights = griffin::WeightType::bf16;
      else if (w == "int8") o.weights = griffin::WeightType::int8;
      else usage(("unknown weight type " + w).c_str());
    } else if (a == "--threads") {
      // Digits only: std::stoul would throw past main's handler on "abc" and wrap "-1" to 2^64 - 1.
      const std::string n = value();
      const auto [end, error] = std::from_chars(n.data(), n.data() + n.size(), o.threads);
      if (n.empty() || error != std::errc() || end != n.data() + n.size())
        usage(("--threads expects a non-negative integer, got \"" + n + "\"").c_str());
    }
    else if (a == "--static") o.use_static = true;
    else if (a == "--help" || a == "-h") usage("griffin_logits: run a checkpoint on given tokens and write its logits");
    else if (!a.empty() && a[0] == '-') usage(("unknown option " + a).c_str());
    else positional.push_back(a);
  }
  if (positional.size() != 3) usage("expected MODEL_DIR IN.safetensors OUT.safetensors");
  o.model_dir = positional[0];
  o.in_path = positional[1];
  o.out_path = positional[2];
  return o;
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  float m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

std::span<const std::byte> as_bytes(const std::vector<float>& v) { return std::as_bytes(std::span(v)); }

template <class Model>
int run(const Model& model, const Options& o, const griffin::io::SafetensorsFile& in) {
  const auto* tokens_view = in.find("tokens");
  if (!tokens_view || tokens_view->shape.size() != 2)
    throw griffin::io::LoadError(o.in_path + ": needs an int32 tensor `tokens` of shape [B, T]");
  const std::size_t B = tokens_view->shape[0], T = tokens_view->shape[1];
  const std::size_t V = model.config().sizes.vocab_size;
  const std::vector<int> tokens = griffin::io::to_i32(*tokens_view);
  std::optional<std::size_t> prefill_len;
  if (const auto* p = in.find("prefill_len")) {
    const auto v = griffin::io::to_i32(*p);
    if (v.size() != 1 || v[0] < 1 || std::size_t(v[0]) > T)
      throw griffin::io::LoadError(o.in_path + ": prefill_len must be one int32 in [1, T=" + std::to_string(T) + "]");
    prefill_len = std::size_t(v[0]);
  }

  auto state = model.new_state(B);
  std::vector<float> logits = model.prefill(state, tokens, griffin::LogitsRows::all);

  std::vector<float> decode_logits;
  if (prefill_len) {
    const std::size_t P = *prefill_len;
    auto s = model.new_state(B);
    std::vector<int> prompt(B * P);
    for (std::size_t b = 0; b < B; ++b) std::copy_n(tokens.begin() + b * T, P, prompt.begin() + b * P);
    model.prefill(s, prompt, {}, griffin::LogitsRows::none);
    decode_logits.resize(B * (T - P) * V);
    std::vector<int> step(B);
    for (std::size_t t = P; t < T; ++t) {
      for (std::size_t b = 0; b < B; ++b) step[b] = tokens[b * T + t];
      const std::vector<float> l = model.decode(s, step);
      for (std::size_t b = 0; b < B; ++b)
        std::copy_n(l.begin() + b * V, V, decode_logits.begin() + (b * (T - P) + (t - P)) * V);
    }
  }

  std::vector<griffin::io::TensorToWrite> out{{"logits", griffin::DType::f32, {B, T, V}, as_bytes(logits)}};
  if (prefill_len)
    out.push_back({"decode_logits", griffin::DType::f32, {B, T - *prefill_len, V}, as_bytes(decode_logits)});
  griffin::io::write_safetensors(o.out_path, out);

  std::printf("model %s: B=%zu T=%zu V=%zu backend=%s weights=%s threads=%zu config=%s\n", o.model_dir.c_str(), B, T, V,
              Model::backend::name, std::string(griffin::weight_type_name(model.config().weight_type)).c_str(),
              model.threads(), Model::config_type::fully_static ? "static" : "dynamic");
  int status = 0;
  for (const auto& [name, ours] : {std::pair{"logits", &logits}, std::pair{"decode_logits", &decode_logits}}) {
    const auto* ref = in.find(name);
    if (!ref || ours->empty()) continue;
    const std::vector<float> expected = griffin::io::to_f32(*ref);
    if (expected.size() != ours->size()) {
      std::printf("%s: reference has %zu values, we computed %zu\n", name, expected.size(), ours->size());
      status = 1;
      continue;
    }
    const float err = max_abs_diff(*ours, expected);
    std::printf("%s: max |ours - reference| = %.3g%s\n", name, err, err <= 1e-4f ? " (within 1e-4)" : " (ABOVE 1e-4)");
    if (!(err <= 1e-4f)) status = 1;
  }
  return status;
}

template <class Config, class Backend>
int run_with(const Options& o, const griffin::io::SafetensorsFile& in) {
  griffin::LoadOptions lo;
  lo.weight_type = o.weights;
  lo.threads = o.threads;
  return run(griffin::load_model<Config, Backend>(o.model_dir, lo), o, in);
}

// Tries each compiled-in static preset; the first whose sizes match config.json runs.
template <class Backend>
int run_static(const Options& o, const griffin::io::SafetensorsFile& in) {
  const auto file = griffin::io::read_config_json(std::filesystem::path(o.model_dir) / "config.json");
  auto matches = [&]<class Config>() {
    try {
      (void)griffin::convert_config<Config>(file);
      return true;
    } catch (const griffin::ConfigError&) {
      return false;
    }
  };
  using namespace griffin::presets;
  if (matches.template operator()<KjvGriffin>()) return run_with<KjvGriffin, Backend>(o, in);
  if (matches.template operator()<RecurrentGemma2B>()) return run_with<RecurrentGemma2B, Backend>(o, in);
  if (matches.template operator()<RecurrentGemma9B>()) return run_with<RecurrentGemma9B, Backend>(o, in);
  throw griffin::ConfigError(o.model_dir + ": no compiled-in static preset matches this config.json (presets: "
                             "kjv-griffin, RecurrentGemma-2B, RecurrentGemma-9B); run without --static");
}

template <class Backend>
int run_backend(const Options& o, const griffin::io::SafetensorsFile& in) {
  return o.use_static ? run_static<Backend>(o, in) : run_with<griffin::DynamicConfig, Backend>(o, in);
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  try {
    const auto in = griffin::io::SafetensorsFile::open(o.in_path);
    if (o.backend == "scalar") return run_backend<griffin::simd::Scalar>(o, in);
    if (o.backend == "xsimd") return run_backend<griffin::simd::Xsimd>(o, in);
    if (o.backend == "highway") return run_backend<griffin::simd::Highway>(o, in);
    usage(("unknown backend " + o.backend).c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "griffin_logits: %s\n", e.what());
    return 1;
  }
}
