// griffin_report: the ratios that say how fast griffin is, measured in one process on this machine.
//
// Each line is `name value unit anchor anchor_value ratio R` with R = value ÷ anchor_value, where the
// anchor is the machine's limit or a peer measured in the same run on the same shapes:
//   * prefill GEMM GFLOP/s against OpenBLAS cblas_sgemm (and against the FMA peak);
//   * decode GEMV and whole decode steps in bytes/s against cblas_sgemv's bandwidth (decode bound =
//     weight bytes read per token ÷ sgemv GB/s);
//   * the RG-LRU scan, Conv1D and decode attention against their streaming floor (bytes they must move ÷
//     the bandwidth of our own triad loop; for the scan and Conv1D, measured beside them: see
//     streaming_rows);
//   * 2 threads against 1, static against dynamic configs, peak memory against the weights.
// The end-to-end rows run RecurrentGemma-2B's width with 3 layers (R R A) and random weights; layers
// cost the same, so per-layer throughput carries over to the 26-layer model.
//
//   griffin_report                  full report (a few minutes), written into docs/performance.md
//   griffin_report --quick           about a minute, printed only (CI)
//   griffin_report --study           also the inference study (docs/img/inference_study.{dat,svg})
//   griffin_report --study-only      only the study
//   options: --threads N, --doc PATH, --no-doc, --img-dir DIR
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <exception>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#if GRIFFIN_HAVE_OPENBLAS
#include <cblas.h>
#endif

#include "griffin/blocks/linear_layer.hpp"
#include "griffin/kernels/attention.hpp"
#include "griffin/kernels/conv1d.hpp"
#include "griffin/kernels/rg_lru.hpp"
#include "griffin/load_model.hpp"
#include "griffin/model.hpp"
#include "griffin/random_weights.hpp"
#include "griffin/simd/default.hpp"
#include "griffin/threads.hpp"
#include "inference_study.hpp"
#include "machine.hpp"
#include "models.hpp"

#ifndef GRIFFIN_SOURCE_DIR
#define GRIFFIN_SOURCE_DIR "."
#endif

namespace griffin::bench {
namespace {

using Backend = simd::Default;
constexpr double nan = std::numeric_limits<double>::quiet_NaN();

struct Options {
  bool quick = false, study = false, study_only = false, write_doc = true;
  std::size_t threads = std::max<std::size_t>(1, std::thread::hardware_concurrency());
  std::string doc = GRIFFIN_SOURCE_DIR "/docs/performance.md";
  std::string img_dir = GRIFFIN_SOURCE_DIR "/docs/img";
  std::string gnuplot_script = GRIFFIN_SOURCE_DIR "/bench/inference_study.gp";
  std::string command = "griffin_report";
};

struct Row {
  std::string name;
  double value;
  std::string unit;
  std::string anchor;
  double anchor_value;
  double ratio() const { return value / anchor_value; }
};

class Table {
 public:
  void add(Row r) {
    print(r);
    rows_.push_back(std::move(r));
  }
  static void print_header() {
    std::printf("%-44s %11s %-9s %-26s %11s %s\n", "name", "value", "unit", "anchor", "anchor_value", "ratio");
    std::fflush(stdout);
  }
  static std::string number(double v) {
    if (std::isnan(v)) return "n/a";
    char buf[32];
    std::snprintf(buf, sizeof buf, std::abs(v) >= 100 ? "%.0f" : std::abs(v) >= 10 ? "%.1f" : "%.3g", v);
    return buf;
  }
  static void print(const Row& r) {
    std::printf("%-44s %11s %-9s %-26s %11s ratio %s\n", r.name.c_str(), number(r.value).c_str(), r.unit.c_str(),
                r.anchor.c_str(), number(r.anchor_value).c_str(), number(r.ratio()).c_str());
    std::fflush(stdout);
  }
  std::string markdown() const {
    std::ostringstream s;
    s << "| name | value | unit | anchor | anchor value | ratio |\n| --- | ---: | --- | --- | ---: | ---: |\n";
    for (const auto& r : rows_)
      s << "| " << r.name << " | " << number(r.value) << " | " << r.unit << " | " << r.anchor << " | "
        << number(r.anchor_value) << " | " << number(r.ratio()) << " |\n";
    return s.str();
  }

 private:
  std::vector<Row> rows_;
};

// Concatenates strings and numbers (GCC 12 warns falsely about `"literal" + std::to_string(n)`).
template <class... Parts>
std::string cat(const Parts&... parts) {
  std::string s;
  auto put = [&](const auto& p) {
    if constexpr (std::is_arithmetic_v<std::remove_cvref_t<decltype(p)>>)
      s += std::to_string(p);
    else
      s += p;
  };
  (put(parts), ...);
  return s;
}

std::string utc_now() {
  std::time_t t = std::time(nullptr);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", std::gmtime(&t));
  return buf;
}

std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string one;
  in >> one;
  return one.empty() ? "?" : one;
}

// Which of OpenBLAS's kernel sets the peer runs: a DYNAMIC_ARCH build picks one by CPU model, and one
// older than the CPU falls back to a weaker set (Debian 12's 0.3.21 runs its AVX2 "Haswell" kernels on
// Zen 5, half the AVX-512 peak; bench/report asks for its AVX-512 ones there).
std::string openblas_kernels() {
#if GRIFFIN_HAVE_OPENBLAS
  return cat(", OpenBLAS ", openblas_get_corename(), " kernels");
#else
  return "";
#endif
}

std::string machine_line(std::size_t threads) {
  return cat(cpu_model_name(), ", ", std::thread::hardware_concurrency(), " hardware threads (", threads, " used), g++ ",
             __VERSION__, ", backend ", Backend::name, " (", Backend::lanes, " float lanes)", openblas_kernels(),
             ", load average ", load_average(), " at start");
}

// A pure FMA loop scales with the cores it gets; when two threads reach much less than twice one, other
// work is sharing the machine and every ratio involving time is suspect (most of all the thread ones).
std::string busy_warning(const double fma[3], std::size_t threads) {
  if (threads < 2 || fma[2] >= 1.6 * fma[1]) return {};
  char buf[300];
  std::snprintf(buf, sizeof buf,
                "**Warning: the machine was busy** (2 threads reached %.2f× one thread's FMA peak): other work shared "
                "the cores, so these figures are low and the thread ratios meaningless; rerun on a quiet machine.\n",
                fma[2] / fma[1]);
  return buf;
}

// Replaces the text between `<!-- begin -->` and `<!-- end -->` markers of `doc`, keeping everything
// around them; appends a section with the markers when they are missing.
void write_between_markers(const std::string& path, const std::string& key, const std::string& title,
                           const std::string& body) {
  std::string text;
  {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  }
  const std::string begin = "<!-- " + key + ":begin -->", end = "<!-- " + key + ":end -->";
  const auto b = text.find(begin), e = text.find(end);
  if (b != std::string::npos && e != std::string::npos && e > b)
    text = text.substr(0, b + begin.size()) + "\n" + body + text.substr(e);
  else
    text += "\n## " + title + "\n\n" + begin + "\n" + body + end + "\n";
  std::ofstream(path) << text;
}

double seconds(const std::function<void()>& f, const Options& o) {
  return best_seconds(f, o.quick ? 0.2 : 1.0, o.quick ? 2 : 3);
}

// ---- The measurements ----

struct Anchors {
  double fma[3] = {0, 0, 0};    // GFLOP/s on 1 and 2 threads (index = threads, capped at 2)
  double triad[3] = {0, 0, 0};  // GB/s from main memory (STREAM triad, 12 bytes per element)
  double read[3] = {0, 0, 0};   // GB/s from main memory, loads only
  double sgemm_t512_n7680 = nan;  // GFLOP/s, the prefill bound
  double sgemv = nan;             // GB/s, the decode bound
};

std::size_t capped(std::size_t threads) { return std::min<std::size_t>(threads, 2); }

std::string limits_line(const Anchors& a) {
  char buf[320];
  std::snprintf(buf, sizeof buf,
                "Limits measured in the same run: FMA peak %.1f GFLOP/s on 1 thread, %.1f on 2; from main memory, "
                "triad %.1f GB/s on 1 thread, %.1f on 2, loads only %.1f and %.1f GB/s.\n",
                a.fma[1], a.fma[2], a.triad[1], a.triad[2], a.read[1], a.read[2]);
  return buf;
}

// Prefill GEMM: y[T, N] = x[T, K] · W[N, K]ᵀ, ours (f32 weights, the model's threaded linear) against
// cblas_sgemm on the same operands, both on o.threads threads.
void gemm_rows(Table& table, Anchors& a, const Options& o) {
  const std::size_t K = 2560;
  ThreadPool pool(o.threads), one(1);
#if GRIFFIN_HAVE_OPENBLAS
  openblas_set_num_threads(int(o.threads));
#endif
  const std::vector<std::size_t> Ts = o.quick ? std::vector<std::size_t>{512} : std::vector<std::size_t>{512, 2048};
  for (std::size_t N : {std::size_t(2560), std::size_t(7680)}) {
    const Matrix w = random_matrix(N, K, WeightType::f32);
    const std::vector<float> w_rows = random_floats(N * K, std::sqrt(3.0f / float(K)), 1);  // the same, row-major
    for (std::size_t T : Ts) {
      const auto x = random_floats(T * K, 1.0f, 5);
      std::vector<float> y(T * N);
      const double flops = 2.0 * double(T) * double(N) * double(K);
      const double ours = flops / seconds([&] { blocks::parallel_linear<Backend>(pool, x.data(), T, w, nullptr, y.data()); }, o) / 1e9;
      double blas = nan;
#if GRIFFIN_HAVE_OPENBLAS
      blas = flops / seconds([&] {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(T), int(N), int(K), 1.0f, x.data(), int(K),
                    w_rows.data(), int(K), 0.0f, y.data(), int(N));
      }, o) / 1e9;
#endif
      const std::string shape = cat("T", T, "_N", N, "_K", K);
      table.add({"prefill_gemm_f32_" + shape + "_" + std::to_string(o.threads) + "t", ours, "GFLOP/s",
                 "cblas_sgemm", blas});
      if (T == 512 && N == 7680) {
        a.sgemm_t512_n7680 = blas;
        table.add({"prefill_gemm_f32_" + shape + "_" + std::to_string(o.threads) + "t", ours, "GFLOP/s",
                   "fma_peak_" + std::to_string(o.threads) + "t", a.fma[capped(o.threads)]});
        const double ours_1t =
            flops / seconds([&] { blocks::parallel_linear<Backend>(one, x.data(), T, w, nullptr, y.data()); }, o) / 1e9;
        table.add({"prefill_gemm_f32_" + shape + "_" + std::to_string(o.threads) + "t/1t", ours / ours_1t, "x",
                   "ideal", double(o.threads)});
        // The same product with the other storage types (same FLOPs; W is widened on the fly).
        for (WeightType wt : {WeightType::bf16, WeightType::int8}) {
          const Matrix wq = random_matrix(N, K, wt);
          const double g = flops / seconds([&] { blocks::parallel_linear<Backend>(pool, x.data(), T, wq, nullptr, y.data()); }, o) / 1e9;
          table.add({std::string("prefill_gemm_") + std::string(weight_type_name(wt)) + "_" + shape + "_" +
                         std::to_string(o.threads) + "t",
                     g, "GFLOP/s", "cblas_sgemm", blas});
        }
      }
    }
  }
}

// Copies of the MLP gate's shape [7680, 2560], together at least 4 × L3 and main_memory_min_bytes: a call
// on the next copy each time streams its weights from main memory as a decode step does (a single 78 MB
// matrix would stay partly in a 32 MB L3; two of them still did on the Zen 5 VM, see machine.hpp).
std::vector<Matrix> decode_matrix_copies(WeightType wt) {
  std::vector<Matrix> m;
  m.push_back(random_matrix(7680, 2560, wt));
  while (double(m.size() * m[0].size_bytes()) < main_memory_set_bytes(4.0))
    m.push_back(random_matrix(7680, 2560, wt, m.size() + 1));
  return m;
}

// cblas_sgemv's GB/s through those copies: the decode bound's bandwidth (NaN without OpenBLAS).
double sgemv_gbps(const Options& o) {
  double gbps = nan;
#if GRIFFIN_HAVE_OPENBLAS
  // Row-major f32 copies, as many as decode_matrix_copies makes.
  const std::size_t N = 7680, K = 2560;
  std::vector<std::vector<float>> f32;
  while (double(f32.size() * N * K * sizeof(float)) < main_memory_set_bytes(4.0))
    f32.push_back(random_floats(N * K, std::sqrt(3.0f / float(K)), f32.size() + 1));
  const auto x = random_floats(K, 1.0f, 6);
  std::vector<float> y(N);
  openblas_set_num_threads(int(o.threads));
  std::size_t next = 0;
  gbps = double(N * K * sizeof(float)) / seconds([&] {
    const float* w = f32[next++ % f32.size()].data();
    cblas_sgemv(CblasRowMajor, CblasNoTrans, int(N), int(K), 1.0f, w, int(K), x.data(), 1, 0.0f, y.data(), 1);
  }, o) / 1e9;
#else
  (void)o;
#endif
  return gbps;
}

// Decode GEMV: one token through the MLP gate, bytes/s against cblas_sgemv's, both through the copies.
void gemv_rows(Table& table, Anchors& a, const Options& o) {
  ThreadPool pool(o.threads);
  const auto x = random_floats(2560, 1.0f, 6);
  std::vector<float> y(7680);
  const std::string t = "_" + std::to_string(o.threads) + "t";
  a.sgemv = sgemv_gbps(o);
  table.add({"cblas_sgemv_7680x2560" + t, a.sgemv, "GB/s", "read" + t, a.read[capped(o.threads)]});
  for (WeightType wt : {WeightType::f32, WeightType::bf16, WeightType::int8}) {
    const auto m = decode_matrix_copies(wt);
    std::size_t next = 0;
    const double gbps = double(m[0].size_bytes()) / seconds([&] {
      blocks::parallel_linear<Backend>(pool, x.data(), 1, m[next++ % m.size()], nullptr, y.data());
    }, o) / 1e9;
    table.add({std::string("decode_gemv_") + std::string(weight_type_name(wt)) + "_7680x2560" + t, gbps, "GB/s",
               "cblas_sgemv", a.sgemv});
  }
}

// Median seconds of one decode step (B = 1) after a 64-token prompt.
template <class Config>
double decode_step_seconds(const Model<Config, Backend>& model, const Options& o) {
  auto state = model.new_state(1);
  std::vector<int> prompt(64);
  for (std::size_t i = 0; i < prompt.size(); ++i) prompt[i] = int((i * 7919 + 11) % model.config().sizes.vocab_size);
  model.prefill(state, prompt, {}, LogitsRows::none);
  std::vector<float> logits(model.config().sizes.vocab_size);
  const std::vector<int> token{17};
  return seconds([&] { model.decode(state, token, logits); }, o);
}

template <class Config>
double prefill_seconds(const Model<Config, Backend>& model, std::size_t T) {
  auto state = model.new_state(1);
  std::vector<int> prompt(T);
  for (std::size_t i = 0; i < T; ++i) prompt[i] = int((i * 7919 + 11) % model.config().sizes.vocab_size);
  std::vector<float> logits(model.config().sizes.vocab_size);
  return best_seconds([&] {
    state.reset();
    model.prefill(state, prompt, logits, LogitsRows::last);
  }, 0.0, 2);
}

// The whole model: decode and prefill tokens/s of RecurrentGemma-2B's width with 3 layers, and (full run
// only) the decode step of the whole 26-layer RecurrentGemma-2B.
void model_rows(Table& table, const Anchors& a, const Options& o) {
  using Config = RecurrentGemma2BLayers<3>;
  const std::string t = "_" + std::to_string(o.threads) + "t";
  const std::string tag = "rg2b_3L_";
  const std::size_t T = o.quick ? 128 : 512;
  {
    const auto cfg = make_preset<Config>(WeightType::bf16);
    auto weights = std::make_shared<const Weights>(make_random_weights(cfg, WeightType::bf16, 42));
    const double bytes = weight_bytes_per_step(cfg, *weights);
    const Model<Config, Backend> model(cfg, weights, o.threads);
    const Model<DynamicConfig, Backend> dynamic_model(dynamic_twin(cfg), weights, o.threads);
    const Model<Config, Backend> model_1t(cfg, weights, 1);

    // The static preset and its run-time twin take turns, best of three rounds each: memory handed out later
    // in a run can stream faster than earlier (docs/performance.md), which would favour whichever ran last.
    double step = 1e300, step_dyn = 1e300;
    for (int round = 0; round < 3; ++round) {
      step = std::min(step, decode_step_seconds(model, o));
      step_dyn = std::min(step_dyn, decode_step_seconds(dynamic_model, o));
    }
    table.add({"decode_" + tag + "bf16" + t, 1.0 / step, "tokens/s", "sgemv_bound", a.sgemv * 1e9 / bytes});
    table.add({"decode_" + tag + "bf16" + t, bytes / step / 1e9, "GB/s", "cblas_sgemv", a.sgemv});
    table.add({"decode_" + tag + "bf16" + t, bytes / step / 1e9, "GB/s", "read" + t, a.read[capped(o.threads)]});
    const double step_1t = decode_step_seconds(model_1t, o);
    table.add({"decode_" + tag + "bf16" + t + "/1t", step_1t / step, "x", "triad" + t + "/1t",
               a.triad[capped(o.threads)] / a.triad[1]});
    table.add({"decode_" + tag + "bf16_static/dynamic", step_dyn / step, "x", "equal", 1.0});

    const double flops = layer_flops_per_token(cfg) * double(T) + logits_flops_per_row(cfg);
    double pre = 1e300, pre_dyn = 1e300;
    for (int round = 0; round < (o.quick ? 1 : 3); ++round) {
      pre = std::min(pre, prefill_seconds(model, T));
      if (!o.quick) pre_dyn = std::min(pre_dyn, prefill_seconds(dynamic_model, T));
    }
    table.add({"prefill_" + tag + "bf16_T" + std::to_string(T) + t, double(T) / pre, "tokens/s", "sgemm_bound",
               a.sgemm_t512_n7680 * 1e9 * double(T) / flops});
    const double pre_1t = prefill_seconds(model_1t, T);
    table.add({"prefill_" + tag + "bf16_T" + std::to_string(T) + t + "/1t", pre_1t / pre, "x", "ideal",
               double(o.threads)});
    if (!o.quick) table.add({"prefill_" + tag + "bf16_static/dynamic", pre_dyn / pre, "x", "equal", 1.0});
    // The whole process's peak so far: this model with its activations, after the (smaller) matrices and
    // triad arrays of the comparisons above.
    table.add({"peak_rss_" + tag + "bf16", peak_rss_bytes() / 1e9, "GB", "weights_bf16_GB", bytes / 1e9});
    if (o.quick) {
      // RecurrentGemma-2B in full (26 layers) at the bandwidth the 3-layer model reached: its weight bytes
      // counted from these layers (the same shapes) without making it.
      const auto full = make_preset<presets::RecurrentGemma2B>(WeightType::bf16);
      double full_bytes = weight_bytes_per_step(cfg, *weights);
      for (std::size_t i = 0; i < cfg.sizes.depth; ++i) full_bytes -= layer_bytes(cfg, *weights, i);
      for (std::size_t i = 0; i < full.sizes.depth; ++i) full_bytes += layer_bytes(cfg, *weights, i % 3);
      table.add({"decode_rg2b_26L_bf16" + t + "_estimate", bytes / step / full_bytes, "tokens/s", "sgemv_bound",
                 a.sgemv * 1e9 / full_bytes});
    }
  }
  if (!o.quick) {
    // RecurrentGemma-2B in full: 26 layers, 2.7 G parameters, 5.4 GB of bf16 weights made in memory.
    const auto cfg = make_preset<presets::RecurrentGemma2B>(WeightType::bf16);
    auto weights = std::make_shared<const Weights>(make_random_weights(cfg, WeightType::bf16, 42));
    const double bytes = weight_bytes_per_step(cfg, *weights);
    const Model<presets::RecurrentGemma2B, Backend> model(cfg, weights, o.threads);
    const double step = decode_step_seconds(model, o);
    table.add({"peak_rss_rg2b_26L_bf16", peak_rss_bytes() / 1e9, "GB", "weights_bf16_GB", bytes / 1e9});
    // The bound again from an sgemv measured now, with the model still held: memory handed out late in the
    // run streams faster than at its start (docs/performance.md, "Memory state within a run"), and the
    // 26-layer weights are made late. The faster of the two readings is the bound.
    const double sgemv_beside = sgemv_gbps(o);
    const double bound = std::max(a.sgemv, sgemv_beside);
    table.add({"decode_rg2b_26L_bf16" + t, 1.0 / step, "tokens/s", "sgemv_bound", bound * 1e9 / bytes});
    table.add({"decode_rg2b_26L_bf16" + t, bytes / step / 1e9, "GB/s", "cblas_sgemv", bound});
    table.add({"cblas_sgemv_beside_decode_26L" + t, sgemv_beside, "GB/s", "cblas_sgemv", a.sgemv});
  }
  for (WeightType wt : {WeightType::int8, WeightType::f32}) {
    if (o.quick && wt == WeightType::f32) continue;
    const auto cfg = make_preset<Config>(wt);
    auto weights = std::make_shared<const Weights>(make_random_weights(cfg, wt, 42));
    const double bytes = weight_bytes_per_step(cfg, *weights);
    const Model<Config, Backend> model(cfg, weights, o.threads);
    const double step = decode_step_seconds(model, o);
    const std::string name = "decode_" + tag + std::string(weight_type_name(wt)) + t;
    table.add({name, 1.0 / step, "tokens/s", "sgemv_bound", a.sgemv * 1e9 / bytes});
    table.add({name, bytes / step / 1e9, "GB/s", "cblas_sgemv", a.sgemv});
  }
}

// The shipped demo model (models/kjv-griffin, 2.8M parameters, bf16), decoding one sequence: the small model a
// program embeds. Its weights (5.7 MB as loaded) live in L3, so its floor is the larger of its FLOPs at one thread's
// FMA peak and its weight bytes at one thread's L3 read bandwidth (a read loop over a set of the same size).
// The static preset against the same checkpoint read at run time, and two threads against one, are
// measured alternately in this run, the median of many blocks of steps each.
void kjv_rows(Table& table, const Anchors& a, const Options& o) {
  const std::string dir = GRIFFIN_SOURCE_DIR "/models/kjv-griffin";
  LoadOptions one_thread;
  one_thread.threads = 1;
  const auto fixed = load_model<presets::KjvGriffin, Backend>(dir, one_thread);
  const auto read = load_model<DynamicConfig, Backend>(dir, one_thread);
  const auto fixed_2t = fixed.with_threads(2);
  const Weights& w = fixed.weights();
  const double bytes = weight_bytes_per_step(fixed.config(), w);
  const double flops = layer_flops_per_token(fixed.config()) + logits_flops_per_row(fixed.config());
  const std::size_t l3_set = std::clamp<std::size_t>(std::size_t(bytes), 4 * cache_bytes(2), cache_bytes(3) / 2);
  const double l3_read = Stream(l3_set / 8).read_gbps(1);
  const double floor_seconds = std::max(flops / (a.fma[1] * 1e9), bytes / (l3_read * 1e9));
  // Blocks of 100 steps, the three models taking turns block by block (the first of each round alternating), so
  // drift in the machine's state hits them alike; each model's figure is its median block.
  struct Stepper {
    std::function<void()> step;
    std::vector<double> block_seconds;
  };
  auto stepper = [&](const auto& model) {
    auto state = std::make_shared<State>(model.new_state(1));
    std::vector<int> prompt(model.config().sizes.attention_window + 36);
    for (std::size_t i = 0; i < prompt.size(); ++i) prompt[i] = int((i * 7919 + 11) % model.config().sizes.vocab_size);
    model.prefill(*state, prompt, {}, LogitsRows::none);  // past the window: every step then costs the same
    auto logits = std::make_shared<std::vector<float>>(model.config().sizes.vocab_size);
    return Stepper{[&model, state, logits, token = 17]() mutable {
                     model.decode(*state, std::span<const int>(&token, 1), *logits);
                     token = (token + 1) % 256;
                   },
                   {}};
  };
  std::vector<Stepper> models{stepper(fixed), stepper(read), stepper(fixed_2t)};
  constexpr int steps = 100;
  for (auto& m : models)
    for (int i = 0; i < steps; ++i) m.step();  // warm-up
  const int rounds = o.quick ? 15 : 40;
  for (int round = 0; round < rounds; ++round)
    for (std::size_t k = 0; k < models.size(); ++k) {
      Stepper& m = models[(k + std::size_t(round)) % models.size()];
      const double t0 = now_seconds();
      for (int i = 0; i < steps; ++i) m.step();
      m.block_seconds.push_back((now_seconds() - t0) / steps);
    }
  const auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  const double s_static = median(models[0].block_seconds), s_dynamic = median(models[1].block_seconds),
               s_2t = median(models[2].block_seconds);
  table.add({"decode_kjv_static_1t", 1.0 / s_static, "tokens/s", "kjv_floor_1t", 1.0 / floor_seconds});
  table.add({"decode_kjv_static/dynamic_1t", s_dynamic / s_static, "x", "equal", 1.0});
  table.add({"decode_kjv_static_2t/1t", s_static / s_2t, "x", "equal", 1.0});
  table.add({"kjv_l3_read_1t", l3_read, "GB/s", "read_1t", a.read[1]});
}

// The RG-LRU scan and Conv1D over T × 2560 channels (T = 8192: 84 MB per array, 420 MB in all, beyond
// main_memory_min_bytes so none of it comes from cache) against
// the time just moving their bytes takes at triad bandwidth, on 1 and o.threads threads. The arrays are
// head-major, [10 heads][T][256], and the threads split the heads, as the recurrent block runs them in a
// prefill (blocks/recurrent.hpp); the fused scan the block calls (gates, scan and the output gate, five
// streams) has its own row. Its output goes to another array than its multiplier (the block writes in
// place): repeated in place, the timing loop would shrink the values towards subnormals. That costs it a
// read for ownership of the output that the five streams counted do not include. Their anchor is a triad measured right before and after each kernel (the
// faster of the two readings), on arrays allocated beside the kernel's own: streaming bandwidth depends on
// the state the memory was handed out in, and fresh arrays late in a run can stream faster than at its start,
// so the opening triad would flatter them (docs/performance.md, "Memory state within a run"). The last row per
// thread count shows that drift.
void streaming_rows(Table& table, const Anchors& a, const Options& o) {
  const std::size_t T = o.quick ? 512 : 8192, E = 2560, H = 10, bw = E / H;
  constexpr std::size_t K = 4;
  // Cache-line aligned, as the model's workspace and state are (griffin/aligned.hpp).
  const auto aligned = [](const std::vector<float>& v) { return CacheLineVector<float>(v.begin(), v.end()); };
  const auto x = aligned(random_floats(T * E, 1.0f, 8)), gx = aligned(random_floats(T * E, 2.0f, 9)),
             ga = aligned(random_floats(T * E, 2.0f, 10));
  auto scale = random_floats(E, 0.5f, 11);
  for (auto& s : scale) s = -0.4f - std::abs(s);
  CacheLineVector<float> h(E, 0.0f), y(T * E), gated(aligned(random_floats(T * E, 1.0f, 15)));
  std::vector<int> pos(T);
  for (std::size_t t = 0; t < T; ++t) pos[t] = int(100 + t);
  const auto taps = random_floats(K * E, 0.05f, 12), bias = random_floats(E, 0.1f, 13);
  auto conv_state = aligned(random_floats((K - 1) * E, 1.0f, 14));
  const double scan_bytes = 4.0 * (4.0 * double(T * E) + 3.0 * E);
  const double gated_bytes = 4.0 * (5.0 * double(T * E) + 3.0 * E);
  const double conv_bytes = 4.0 * (2.0 * double(T * E) + double(K * E) + E);
  const std::string shape = cat("_T", T, "_10x256");
  std::vector<std::size_t> thread_counts{1};
  if (o.threads > 1) thread_counts.push_back(o.threads);
  Stream dram;
  for (std::size_t threads : thread_counts) {
    ThreadPool pool(threads);
    const std::string t = cat("_", threads, "t");
    // Calls f(head, its first channel, the offset of its [T, bw] matrix) for every head, heads split over threads.
    const auto per_head = [&](auto&& f) {
      pool.parallel_for(H, 1, [&](std::size_t h0, std::size_t h1) {
        for (std::size_t head = h0; head < h1; ++head) f(head * bw, head * T * bw);
      });
    };
    const double triad_before = dram.triad_gbps(threads);
    const double scan = seconds([&] {
      per_head([&](std::size_t c, std::size_t m) {
        kernels::rg_lru_scan<Backend>(x.data() + m, gx.data() + m, ga.data() + m, scale.data() + c, pos.data(), T, bw,
                                      h.data() + c, y.data() + m, 0, bw);
      });
    }, o);
    const double triad_between = dram.triad_gbps(threads);
    table.add({"rg_lru_scan" + shape + t, scan_bytes / scan / 1e9, "GB/s", "triad_beside" + t,
               std::max(triad_before, triad_between)});
    const double fused = seconds([&] {
      per_head([&](std::size_t c, std::size_t m) {
        kernels::rg_lru_gated<Backend>(x.data() + m, gx.data() + m, ga.data() + m, scale.data() + c, pos.data(), T, bw,
                                       h.data() + c, gated.data() + m, y.data() + m, 0, bw);
      });
    }, o);
    const double triad_after_fused = dram.triad_gbps(threads);
    table.add({"rg_lru_gated" + shape + t, gated_bytes / fused / 1e9, "GB/s", "triad_beside" + t,
               std::max(triad_between, triad_after_fused)});
    const double conv = seconds([&] {
      per_head([&](std::size_t c, std::size_t m) {
        kernels::conv1d<Backend>(x.data() + m, bw, T, E, Size<K>{}, taps.data() + c, bias.data() + c, pos.data(),
                                 conv_state.data() + c, y.data() + m, 0, bw);
      });
    }, o);
    const double triad_after = dram.triad_gbps(threads);
    table.add({"conv1d" + shape + t, conv_bytes / conv / 1e9, "GB/s", "triad_beside" + t,
               std::max(triad_after_fused, triad_after)});
    table.add({"triad_beside_streaming_rows" + t, std::max({triad_before, triad_between, triad_after_fused, triad_after}),
               "GB/s", "triad" + t, a.triad[capped(threads)]});
  }
}

// Attention with RecurrentGemma-2B's heads (10 × 256, one KV head): a causal prefill chunk (queries split
// over threads as the block does) against the FMA peak, and one decode query over 16384 cached keys
// (32 MB of keys and values: from DRAM) against triad bandwidth on one thread.
void attention_rows(Table& table, const Anchors& a, const Options& o) {
  constexpr std::size_t H = 10, Dh = 256, W = 2048;
  {
    const std::size_t T = o.quick ? 512 : 2048;
    const auto q = random_floats(T * H * Dh, 1.0f, 15), k = random_floats(T * Dh, 1.0f, 16), v = random_floats(T * Dh, 1.0f, 17);
    std::vector<float> out(T * H * Dh);
    std::vector<int> pos(T);
    for (std::size_t t = 0; t < T; ++t) pos[t] = int(t);
    const kernels::KeySegment seg{k.data(), v.data(), pos.data(), nullptr, T};
    const kernels::QueryRows queries{q.data(), pos.data(), nullptr, T};
    double visible = 0;
    for (std::size_t t = 0; t < T; ++t) visible += double(std::min(t, W) + 1);
    ThreadPool pool(o.threads);
    const double s = seconds([&] {
      pool.parallel_for(T, 1, [&](std::size_t t0, std::size_t t1) {
        kernels::mqa_attention<Backend>(queries, std::span(&seg, 1), H, Size<Dh>{}, W, out.data(), t0 * H, t1 * H);
      });
    }, o);
    table.add({"attention_prefill_T" + std::to_string(T) + "_10x256_" + std::to_string(o.threads) + "t",
               4.0 * H * Dh * visible / s / 1e9, "GFLOP/s", "fma_peak_" + std::to_string(o.threads) + "t",
               a.fma[capped(o.threads)]});
  }
  {
    const std::size_t n = 16384;
    const auto q = random_floats(H * Dh, 1.0f, 18), k = random_floats(n * Dh, 1.0f, 19), v = random_floats(n * Dh, 1.0f, 20);
    std::vector<float> out(H * Dh);
    std::vector<int> pos(n);
    for (std::size_t i = 0; i < n; ++i) pos[i] = int(i);
    const int qpos = int(n);
    const kernels::KeySegment seg{k.data(), v.data(), pos.data(), nullptr, n};
    const kernels::QueryRows query{q.data(), &qpos, nullptr, 1};
    const double s = seconds([&] {
      kernels::mqa_attention<Backend>(query, std::span(&seg, 1), H, Dh, dynamic, out.data());
    }, o);
    table.add({"attention_decode_16384keys_10x256_1t", 4.0 * (2.0 * double(n * Dh) + double(n)) / s / 1e9, "GB/s",
               "triad_1t", a.triad[1]});
  }
}

// ---- The study's output: data file, plot, markdown ----

std::string study_markdown(const std::vector<StudyModel>& models, const StudyOptions& so, const Options& o,
                           const std::string& warning) {
  std::ostringstream s;
  char buf[256];
  s << "Measured " << utc_now() << " on " << machine_line(so.threads) << ".\n" << warning
    << "Command: `" << o.command << "`. Models: D=" << so.shape.width << ", " << so.shape.depth << " layers, "
    << so.shape.heads << " heads × " << so.shape.head_dim << ", MLP " << so.shape.mlp_width << ", RG-LRU width "
    << so.shape.lru_width << ", local window " << so.shape.window << ", vocabulary " << so.shape.vocab << ", "
    << weight_type_name(so.shape.weights) << " weights; parameters:";
  for (const auto& m : models) {
    std::snprintf(buf, sizeof buf, " %s %.0f M", m.name.c_str(), m.parameters / 1e6);
    s << buf << (&m == &models.back() ? ".\n\n" : ",");
  }
  s << "Decode, batch 1: per-step latency (ms) and state memory (MB) when the state holds L tokens, and the "
       "time to generate L tokens from an empty state (s, integrated over the measured latencies).\n\n| L |";
  for (const auto& m : models) s << " " << m.name << " ms | " << m.name << " state MB |";
  for (const auto& m : models) s << " " << m.name << " s to L |";
  s << "\n| ---: |";
  for (std::size_t i = 0; i < 3 * models.size(); ++i) s << " ---: |";
  s << "\n";
  for (std::size_t i = 0; i < so.lengths.size(); ++i) {
    s << "| " << so.lengths[i] << " |";
    for (const auto& m : models) {
      std::snprintf(buf, sizeof buf, " %.2f | %.1f |", m.by_length[i].latency_ms, m.by_length[i].state_mb);
      s << buf;
    }
    for (const auto& m : models) {
      std::snprintf(buf, sizeof buf, " %.1f |", time_to_generate(m, so.lengths[i]));
      s << buf;
    }
    s << "\n";
  }
  s << "\nDecode throughput (tokens/s, all sequences together) against batch size, with " << so.batch_length
    << " tokens in each sequence's state.\n\n| batch |";
  for (const auto& m : models) s << " " << m.name << " tokens/s |";
  s << "\n| ---: |";
  for (std::size_t i = 0; i < models.size(); ++i) s << " ---: |";
  s << "\n";
  for (std::size_t i = 0; i < so.batches.size(); ++i) {
    s << "| " << so.batches[i] << " |";
    for (const auto& m : models) {
      std::snprintf(buf, sizeof buf, " %.1f |", m.by_batch[i].tokens_per_s);
      s << buf;
    }
    s << "\n";
  }
  s << "\n![inference study](img/inference_study.svg)\n";
  return s.str();
}

void write_study_data(const std::string& path, const std::vector<StudyModel>& models, const StudyOptions& so) {
  std::ofstream f(path);
  f << "# griffin inference study (bench/report --study): " << machine_line(so.threads) << ", " << utc_now() << "\n";
  f << "# blocks (gnuplot index): 0-" << models.size() - 1 << " decode against length at batch 1, "
    << models.size() << "-" << 2 * models.size() - 1 << " against batch at length " << so.batch_length << "\n";
  for (const auto& m : models) {
    f << "# " << m.name << ": length latency_ms tokens_per_s state_MB seconds_to_length\n";
    for (const auto& p : m.by_length)
      f << p.length << " " << p.latency_ms << " " << p.tokens_per_s << " " << p.state_mb << " "
        << time_to_generate(m, p.length) << "\n";
    f << "\n\n";
  }
  for (const auto& m : models) {
    f << "# " << m.name << ": batch latency_ms tokens_per_s state_MB\n";
    for (const auto& p : m.by_batch) f << p.batch << " " << p.latency_ms << " " << p.tokens_per_s << " " << p.state_mb << "\n";
    f << "\n\n";
  }
}

void run_study(const Options& o) {
  StudyOptions so;
  so.threads = o.threads;
  if (o.quick) {
    so.lengths = {512, 2048, 8192};
    so.batches = {1, 4, 16};
    so.batch_length = 1024;
    so.steps = 3;
  }
  const double fma[3] = {0, fma_peak_gflops(1), o.threads > 1 ? fma_peak_gflops(2) : 0};
  std::fprintf(stderr, "inference study (MQA, Hawk, Griffin)...\n");
  const auto models = run_inference_study<Backend>(so);
  const std::string md = study_markdown(models, so, o, busy_warning(fma, o.threads));
  std::printf("\n%s", md.c_str());
  if (!o.write_doc) return;
  std::filesystem::create_directories(o.img_dir);
  const std::string data = o.img_dir + "/inference_study.dat", svg = o.img_dir + "/inference_study.svg";
  write_study_data(data, models, so);
  std::printf("wrote %s\n", data.c_str());
  const std::string plot = "gnuplot -e \"data='" + data + "'; out='" + svg + "'\" '" + o.gnuplot_script + "'";
  if (std::system(plot.c_str()) == 0)
    std::printf("wrote %s\n", svg.c_str());
  else
    std::fprintf(stderr, "griffin_report: gnuplot failed or is missing (%s); the data is in %s\n", plot.c_str(), data.c_str());
  write_between_markers(o.doc, "griffin_study", "Inference study", md);
  std::printf("wrote the study section of %s\n", o.doc.c_str());
}

[[noreturn]] void usage(const char* message) {
  std::fprintf(stderr,
               "%s\nusage: griffin_report [--quick] [--study | --study-only] [--threads N] [--doc PATH | --no-doc] "
               "[--img-dir DIR]\n",
               message);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value after " + a).c_str());
      return argv[++i];
    };
    if (a == "--quick") o.quick = true;
    else if (a == "--study") o.study = true;
    else if (a == "--study-only") o.study = o.study_only = true;
    else if (a == "--threads") o.threads = std::max<std::size_t>(1, std::stoul(value()));
    else if (a == "--doc") o.doc = value();
    else if (a == "--no-doc") o.write_doc = false;
    else if (a == "--img-dir") o.img_dir = value();
    else if (a == "--help" || a == "-h") usage("griffin_report: griffin's throughput against this machine's limits and OpenBLAS");
    else usage(("unknown option " + a).c_str());
  }
  // Quick runs are smoke tests: their numbers are not the reference ones, so they never touch the docs.
  if (o.quick) o.write_doc = false;
  // The command as a reader would type it: the wrapper, without the paths it passes.
  o.command = o.study_only ? "bench/study" : "bench/report";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--doc" || a == "--img-dir") ++i;
    else if (a != "--study-only") o.command += " " + a;
  }
  return o;
}

int run(const Options& o) {
  const double t_start = now_seconds();
  std::printf("griffin_report: %s\nmachine: %s\n\n", utc_now().c_str(), machine_line(o.threads).c_str());
  std::fflush(stdout);
  if (!o.study_only) {
    Anchors a;
    {
      Stream dram;
      for (std::size_t t = 1; t <= capped(o.threads); ++t) {
        a.fma[t] = fma_peak_gflops(t);
        a.triad[t] = dram.triad_gbps(t);
        a.read[t] = dram.read_gbps(t);
      }
    }
    std::printf("%s%s\n", limits_line(a).c_str(), busy_warning(a.fma, o.threads).c_str());
    Table table;
    Table::print_header();
    // The demo model first: OpenBLAS's threads keep spinning for a while after its calls, which on two cores
    // would take one from a one-thread decode measured right after.
    kjv_rows(table, a, o);
    gemm_rows(table, a, o);
    gemv_rows(table, a, o);
    model_rows(table, a, o);  // after the anchors it divides by; its weights dwarf the matrices above
    streaming_rows(table, a, o);
    attention_rows(table, a, o);
    std::printf("\nreport took %.0f s\n", now_seconds() - t_start);
    if (o.write_doc) {
      std::ostringstream s;
      s << "Measured " << utc_now() << " on " << machine_line(o.threads) << ".\nCommand: `" << o.command << "`.\n"
        << limits_line(a) << busy_warning(a.fma, o.threads) << "\n" << table.markdown();
      write_between_markers(o.doc, "griffin_report", "Ratio report", s.str());
      std::printf("wrote the report section of %s\n", o.doc.c_str());
    }
  }
  if (o.study) run_study(o);
  return 0;
}

}  // namespace
}  // namespace griffin::bench

int main(int argc, char** argv) {
  try {
    return griffin::bench::run(griffin::bench::parse(argc, argv));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "griffin_report: %s\n", e.what());
    return 1;
  }
}
