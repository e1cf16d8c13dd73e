// `griffin generate` (and `griffin` with no arguments, the demo): one prompt streamed as it is
// generated, several prompts decoded together (--batch), or several samples of one prompt that is read
// once and forked (--samples).
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "cli/args.hpp"
#include "cli/session.hpp"
#include "griffin/generation/generate.hpp"
#include "griffin/generation/snapshot.hpp"

namespace griffin::cli {

inline const CommandHelp& generate_help() {
  static const CommandHelp help{
      "generate",
      "[options] [PROMPT...]",
      "Continues a prompt and prints the text as it is generated, then prompt-reading (prefill) and\n"
      "generation (decode) speed on stderr. The prompt is the arguments, -p, --file, or standard input.",
      std::vector<OptionSpec>{
          {"--prompt", "-p", "TEXT", "the prompt (with --batch: repeat for several prompts)", true},
          {"--file", "-f", "FILE", "read the prompt (with --batch: one prompt per line) from FILE"},
          {"--batch", "", "", "several prompts (repeated -p, or lines of --file or stdin), decoded together"},
          {"--samples", "", "N", "N continuations of one prompt: the prompt is read once, then forked"},
          {"--no-echo", "", "", "do not print the prompt before the continuation"},
          {"--no-stats", "", "", "do not print speeds on stderr"},
      } + sampling_options("200", "0.8") + common_options(),
      "  griffin generate \"And God said\"\n"
      "  griffin generate --greedy -n 60 -p \"In the beginning\"\n"
      "  echo \"And Jesus answered\" | griffin generate --seed 7\n"
      "  griffin generate --batch -p \"And God said\" -p \"The LORD is my shepherd\" -p \"Blessed are\"\n"
      "  griffin generate --samples 4 --temperature 1 \"And he said unto them,\"\n"
      "  griffin generate --save-state s.bin \"And God said\"; griffin generate --load-state s.bin -n 100\n"};
  return help;
}

// Generation options from the command line.
inline GenerateOptions generation_options(const Args& args, const Tokenizer& tokenizer, std::size_t max_tokens,
                                          double temperature, std::uint64_t& seed) {
  GenerateOptions o;
  o.max_tokens = args.get_uint("--max-tokens", max_tokens);
  o.sampling.temperature = static_cast<float>(args.has("--greedy") ? 0.0 : args.get_double("--temperature", temperature));
  o.sampling.top_k = args.get_uint("--top-k", 0);
  o.sampling.top_p = static_cast<float>(args.get_double("--top-p", 1.0));
  seed = args.has("--seed") ? args.get_uint("--seed", 0)
                            : static_cast<std::uint64_t>(std::chrono::system_clock::now().time_since_epoch().count()) % 100000;
  o.sampling.seed = seed;
  try {
    o.sampling.validate();
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  o.stop_strings = args.all("--stop");
  for (const auto& s : o.stop_strings)
    if (s.empty()) throw UsageError("--stop needs a non-empty text");
  if (tokenizer.eos_id() >= 0) o.stop_tokens.push_back(tokenizer.eos_id());
  if (args.has("--chunk")) o.prefill_chunk = std::max<std::uint64_t>(1, args.get_uint("--chunk", 512));
  return o;
}

inline void print_stats(const Session& s, const GenerationStats& st, std::size_t sequences, std::uint64_t seed,
                        double temperature, StopReason stop) {
  std::fprintf(stderr, "\n[%s · %s · %zu thread%s", s.name().c_str(),
               std::string(weight_type_name(s.model.config().weight_type)).c_str(), s.model.threads(),
               s.model.threads() == 1 ? "" : "s");
  if (sequences > 1) std::fprintf(stderr, " · batch %zu", sequences);
  if (st.prompt_tokens)
    std::fprintf(stderr, " · prefill %zu tokens, %.1f tokens/s", st.prompt_tokens, st.prefill_tokens_per_second());
  std::fprintf(stderr, " · decode %zu tokens, %.1f tokens/s", st.generated_tokens, st.decode_tokens_per_second());
  if (temperature > 0) std::fprintf(stderr, " · seed %llu", static_cast<unsigned long long>(seed));
  if (sequences == 1) std::fprintf(stderr, " · stop: %s", std::string(stop_reason_name(stop)).c_str());
  std::fprintf(stderr, "]\n");
}

// Streams one sequence's text to stdout.
inline TokenCallback print_tokens() {
  return [](int, std::string_view text) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
    return true;
  };
}

// Restores --load-state, checking it belongs to this model.
inline Snapshot load_state(const Args& args, const Session& s) {
  const StateShape shape = s.shape();
  return read_snapshot(args.get("--load-state"), &shape, s.model_id());
}

inline void save_state(const Args& args, const Session& s, const State& state, const std::vector<float>& logits) {
  if (!args.has("--save-state")) return;
  write_snapshot(args.get("--save-state"), state, logits, s.model_id());
  std::fprintf(stderr, "saved the state (%zu sequence%s at position %lld) to %s\n", state.batch_size(),
               state.batch_size() == 1 ? "" : "s", static_cast<long long>(state.position(0)), args.get("--save-state").c_str());
}

// One prompt (or none, continuing a loaded state), streamed.
inline int generate_one(const Args& args, const Session& s, const std::string& prompt, bool echo) {
  std::uint64_t seed = 0;
  const GenerateOptions options = generation_options(args, *s.tokenizer, 200, 0.8, seed);
  State state = s.model.new_state();
  std::vector<float> logits;
  std::vector<int> tokens;
  if (args.has("--load-state")) {
    Snapshot snap = load_state(args, s);
    if (snap.state.batch_size() != 1)
      throw UsageError("--load-state: the state holds " + std::to_string(snap.state.batch_size()) +
                       " sequences; use --batch to continue all of them");
    state = std::move(snap.state);
    logits = std::move(snap.logits);
    tokens = s.tokenizer->encode(prompt);  // no BOS in the middle of a text
    if (tokens.empty() && logits.empty())
      throw UsageError("--load-state: the saved state has no next-token logits; give a prompt to continue with");
  } else {
    if (prompt.empty()) throw UsageError("no prompt: give one as arguments, with -p or --file, or on stdin");
    tokens = s.tokenizer->encode_prompt(prompt);
  }
  if (echo) {
    std::fwrite(prompt.data(), 1, prompt.size(), stdout);
    std::fflush(stdout);
  }
  ProgressLine progress(args.has("--progress"), "reading prompt");
  Generation g;
  if (!tokens.empty()) {
    g = generate(s.model, state, *s.tokenizer, tokens, options, print_tokens(), [&](std::size_t d, std::size_t t) {
      progress(d, t);
      if (d == t) progress.finish();
    });
  } else {
    g = continue_generation(s.model, state, *s.tokenizer, std::move(logits), {}, options, print_tokens());
  }
  if (g.text.empty() || g.text.back() != '\n') std::fputc('\n', stdout);
  std::fflush(stdout);
  if (!args.has("--no-stats")) print_stats(s, g.stats, 1, seed, options.sampling.temperature, g.stop);
  save_state(args, s, state, g.logits);
  return 0;
}

// Several prompts (or several samples of one), decoded together.
inline int generate_many(const Args& args, const Session& s, const std::vector<std::string>& prompts, bool samples,
                         std::size_t count) {
  std::uint64_t seed = 0;
  const GenerateOptions options = generation_options(args, *s.tokenizer, 200, 0.8, seed);
  const std::size_t B = samples ? count : prompts.size();
  std::optional<Snapshot> loaded;
  if (args.has("--load-state")) loaded = load_state(args, s);
  std::vector<Generation> out;
  ProgressLine progress(args.has("--progress"), "reading prompts");
  auto show = [&](std::size_t d, std::size_t t) {
    progress(d, t);
    if (d == t) progress.finish();
  };
  State state = s.model.new_state();
  if (samples) {
    // Read the prompt once into one sequence, then fork it B ways.
    std::vector<float> logits;
    std::vector<int> tokens;
    if (loaded) {
      if (loaded->state.batch_size() != 1) throw UsageError("--samples needs a saved state of one sequence");
      state = std::move(loaded->state);
      logits = std::move(loaded->logits);
      tokens = s.tokenizer->encode(prompts[0]);
    } else {
      if (prompts[0].empty()) throw UsageError("no prompt");
      tokens = s.tokenizer->encode_prompt(prompts[0]);
    }
    const auto start = std::chrono::steady_clock::now();
    if (!tokens.empty()) logits = prefill_prompt(s.model, state, tokens, options.prefill_chunk, show);
    if (logits.empty()) throw UsageError("--load-state: the saved state has no next-token logits; give a prompt");
    const double prefill_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    State forked = broadcast(state, B);
    std::vector<std::size_t> seqs(B);
    std::vector<std::vector<float>> rows(B, logits);
    std::vector<std::vector<int>> contexts(B, tokens);
    for (std::size_t b = 0; b < B; ++b) seqs[b] = b;
    out = continue_batch(s.model, forked, *s.tokenizer, seqs, std::move(rows), contexts, options);
    out[0].stats.prompt_tokens = tokens.size();
    out[0].stats.prefill_seconds = prefill_seconds;
    state = std::move(forked);
  } else {
    std::vector<std::vector<int>> tokens(B);
    if (loaded) {
      // A saved single sequence is forked to every prompt; a saved batch must match the prompt count.
      if (loaded->state.batch_size() == 1 && B > 1) state = broadcast(loaded->state, B);
      else if (loaded->state.batch_size() == B) state = std::move(loaded->state);
      else
        throw UsageError("--load-state holds " + std::to_string(loaded->state.batch_size()) + " sequences but " +
                         std::to_string(B) + " prompts were given");
      for (std::size_t b = 0; b < B; ++b) tokens[b] = s.tokenizer->encode(prompts[b]);
    } else {
      state = s.model.new_state(B);
      for (std::size_t b = 0; b < B; ++b) tokens[b] = s.tokenizer->encode_prompt(prompts[b]);
    }
    for (std::size_t b = 0; b < B; ++b)
      if (tokens[b].empty()) throw UsageError("prompt " + std::to_string(b + 1) + " is empty");
    out = generate_batch(s.model, state, *s.tokenizer, tokens, options, {}, show);
  }
  GenerationStats total;
  for (std::size_t b = 0; b < B; ++b) {
    const std::string& prompt = prompts[samples ? 0 : b];
    std::printf("--- %s %zu ---\n%s%s", samples ? "sample" : "prompt", b + 1, args.has("--no-echo") ? "" : prompt.c_str(),
                out[b].text.c_str());
    if (out[b].text.empty() || out[b].text.back() != '\n') std::printf("\n");
    total.prompt_tokens += out[b].stats.prompt_tokens;
    total.generated_tokens += out[b].stats.generated_tokens;
  }
  std::fflush(stdout);
  total.prefill_seconds = out[0].stats.prefill_seconds;
  total.decode_seconds = out[0].stats.decode_seconds;
  if (!args.has("--no-stats")) print_stats(s, total, B, seed, options.sampling.temperature, out[0].stop);
  std::vector<float> logits;
  for (const auto& g : out) logits.insert(logits.end(), g.logits.begin(), g.logits.end());
  save_state(args, s, state, logits);
  return 0;
}

inline std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(line);
  return lines;
}

inline int run_generate(const std::vector<std::string>& argv) {
  const Args args(generate_help(), argv);
  if (args.has("--help")) return print_help(generate_help()), 0;
  std::string joined;
  for (const auto& p : args.positional()) joined += (joined.empty() ? "" : " ") + p;
  const bool batch = args.has("--batch");
  const std::size_t samples = args.get_uint("--samples", 1);
  if (batch && samples > 1) throw UsageError("--batch and --samples do not go together");
  if (samples == 0) throw UsageError("--samples must be at least 1");
  const bool stdin_has_text = !::isatty(0);
  const Session s = open_session(args);

  if (batch) {
    std::vector<std::string> prompts = args.all("--prompt");
    if (!joined.empty()) prompts.push_back(joined);
    if (args.has("--file")) for (auto& l : split_lines(read_text_file(args.get("--file")))) prompts.push_back(l);
    if (prompts.empty() && stdin_has_text) prompts = split_lines(read_all(std::cin));
    if (prompts.empty()) throw UsageError("--batch: no prompts (repeat -p, or give lines with --file or on stdin)");
    return generate_many(args, s, prompts, false, prompts.size());
  }
  if (args.all("--prompt").size() > 1) throw UsageError("several -p prompts need --batch");
  std::string prompt = args.has("--prompt") ? args.get("--prompt") : joined;
  if (args.has("--file")) prompt = read_text_file(args.get("--file"));
  if (prompt.empty() && !args.has("--prompt") && !args.has("--file") && stdin_has_text) {
    prompt = read_all(std::cin);
    if (!prompt.empty() && prompt.back() == '\n') prompt.pop_back();  // `echo text |` adds one
  }
  if (samples > 1) return generate_many(args, s, {prompt}, true, samples);
  return generate_one(args, s, prompt, !args.has("--no-echo"));
}

// `griffin` with no arguments: a short sample from the demo model.
inline int run_demo() {
  const std::vector<std::string> argv{"--max-tokens", "200", "--temperature", "0.8", "--seed", "2024", "And God said"};
  const Args args(generate_help(), argv);
  const Session s = open_session(args);
  std::fprintf(stderr, "griffin demo: %s (%s parameters), sampling 200 bytes at temperature 0.8, seed 2024\n"
                       "(griffin --help lists the commands; griffin generate --help the options)\n\n",
               s.dir.string().c_str(), human_count(double(parameter_count(s.model.config()))).c_str());
  return generate_one(args, s, "And God said", true);
}

}  // namespace griffin::cli
