// What every griffin subcommand starts from: the options shared by all of them, finding the model
// directory (--model, $GRIFFIN_MODEL, or the shipped demo model), loading the model and its tokenizer,
// and the progress line for long prompts.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "cli/args.hpp"
#include "griffin/griffin.hpp"
#include "griffin/generation/snapshot.hpp"
#include "griffin/generation/load_tokenizer.hpp"

namespace griffin::cli {

namespace fs = std::filesystem;

inline std::vector<OptionSpec> common_options() {
  return {
      {"--model", "-m", "DIR", "checkpoint directory (config.json, *.safetensors, tokenizer); default: the demo model"},
      {"--threads", "-t", "N", "worker threads (default: one per hardware thread)"},
      {"--weights", "", "TYPE", "keep the matrices as f32, bf16 or int8 (default: as stored)"},
      {"--help", "-h", "", "show this help"},
  };
}

// Options of the commands that generate text.
inline std::vector<OptionSpec> sampling_options(const std::string& default_max_tokens, const std::string& default_temperature) {
  return {
      {"--max-tokens", "-n", "N", "tokens to generate (default " + default_max_tokens + ")"},
      {"--temperature", "", "T", "sampling temperature; 0 = greedy (default " + default_temperature + ")"},
      {"--greedy", "", "", "always take the most likely token (same as --temperature 0)"},
      {"--top-k", "", "K", "sample from the K most likely tokens only (default: all)"},
      {"--top-p", "", "P", "sample from the smallest set of tokens whose probability reaches P (default 1)"},
      {"--seed", "-s", "N", "random seed; the same seed gives the same text (default: from the clock, printed)"},
      {"--stop", "", "TEXT", "stop when the text contains TEXT (repeatable)", true},
      {"--save-state", "", "FILE", "save the state (and next-token logits) after generating"},
      {"--load-state", "", "FILE", "continue from a saved state instead of starting empty"},
      {"--progress", "", "", "show prompt-reading progress on stderr even when it is not a terminal"},
      {"--chunk", "", "N", "prompt tokens per prefill step (default 512)"},
  };
}

inline std::vector<OptionSpec> operator+(std::vector<OptionSpec> a, const std::vector<OptionSpec>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// The directory of the running executable (Linux: /proc/self/exe).
inline fs::path executable_dir() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path() : exe.parent_path();
}

// The shipped demo model: next to an installed executable (../share/griffin/models/kjv-griffin), in the
// source tree of a build directory, or at the source path compiled in.
inline std::vector<fs::path> demo_model_candidates() {
  std::vector<fs::path> c;
  const fs::path exe = executable_dir();
  if (!exe.empty()) {
    c.push_back(exe / ".." / "share" / "griffin" / "models" / "kjv-griffin");
    c.push_back(exe / "models" / "kjv-griffin");
  }
#ifdef GRIFFIN_DEMO_MODEL_DIR
  c.push_back(GRIFFIN_DEMO_MODEL_DIR);
#endif
  return c;
}

struct ModelChoice {
  fs::path dir;
  bool is_demo = false;
};

inline ModelChoice choose_model(const Args& args) {
  if (args.has("--model")) return {args.get("--model"), false};
  if (const char* env = std::getenv("GRIFFIN_MODEL"); env && *env) return {env, false};
  for (const fs::path& p : demo_model_candidates())
    if (fs::exists(p / "config.json")) return {fs::weakly_canonical(p), true};
  std::string tried;
  for (const fs::path& p : demo_model_candidates()) tried += "\n  " + p.string();
  throw UsageError("no --model given and the demo model was not found; looked in:" + tried);
}

inline std::optional<WeightType> parse_weight_type(const std::string& s) {
  if (s.empty()) return std::nullopt;
  if (s == "f32") return WeightType::f32;
  if (s == "bf16") return WeightType::bf16;
  if (s == "int8") return WeightType::int8;
  throw UsageError("--weights must be f32, bf16 or int8, not \"" + s + "\"");
}

struct Session {
  fs::path dir;
  bool is_demo;
  Model<> model;
  std::unique_ptr<Tokenizer> tokenizer;

  std::string name() const { return dir.filename().string(); }
  std::string model_id() const { return checkpoint_id(dir); }
  StateShape shape() const { return model.new_state().shape(); }
};

inline Session open_session(const Args& args) {
  const ModelChoice choice = choose_model(args);
  LoadOptions options;
  options.weight_type = parse_weight_type(args.get("--weights"));
  options.threads = args.get_uint("--threads", 0);
  auto tokenizer = load_tokenizer(choice.dir);
  auto model = load_model(choice.dir, options);
  if (tokenizer->vocab_size() > model.config().sizes.vocab_size)
    throw TokenizerError(choice.dir.string() + ": the tokenizer has " + std::to_string(tokenizer->vocab_size()) +
                         " tokens but the model only " + std::to_string(model.config().sizes.vocab_size));
  return Session{choice.dir, choice.is_demo, std::move(model), std::move(tokenizer)};
}

// "reading prompt 2048/8192 tokens (25%), 1234 tokens/s" on one stderr line, when stderr is a terminal or
// --progress was given, and only for prompts longer than one prefill chunk.
class ProgressLine {
 public:
  ProgressLine(bool forced, std::string what) : enabled_(forced || ::isatty(2)), what_(std::move(what)) {}
  void operator()(std::size_t done, std::size_t total) {
    if (!enabled_ || (done == total && !shown_)) return;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    std::fprintf(stderr, "\r%s %zu/%zu tokens (%.0f%%), %.0f tokens/s   ", what_.c_str(), done, total,
                 100.0 * double(done) / double(total), s > 0 ? double(done) / s : 0.0);
    std::fflush(stderr);
    shown_ = true;
  }
  void finish() {
    if (shown_) std::fprintf(stderr, "\r\033[K");
    shown_ = false;
  }
  ~ProgressLine() { finish(); }

 private:
  bool enabled_;
  std::string what_;
  bool shown_ = false;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

inline std::string read_all(std::istream& in) {
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline std::string read_text_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError("cannot read " + path.string());
  return read_all(in);
}

inline std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) b /= 1024, ++u;
  char s[32];
  std::snprintf(s, sizeof s, u ? "%.1f %s" : "%.0f %s", b, units[u]);
  return s;
}

inline std::string human_count(double n) {
  char s[32];
  if (n >= 1e9) std::snprintf(s, sizeof s, "%.2fB", n / 1e9);
  else if (n >= 1e6) std::snprintf(s, sizeof s, "%.2fM", n / 1e6);
  else if (n >= 1e3) std::snprintf(s, sizeof s, "%.1fK", n / 1e3);
  else std::snprintf(s, sizeof s, "%.0f", n);
  return s;
}

}  // namespace griffin::cli
