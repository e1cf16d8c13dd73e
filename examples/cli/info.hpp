// `griffin info`: what a checkpoint is: its config, parameter count, and memory for weights and state.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "cli/args.hpp"
#include "cli/session.hpp"

namespace griffin::cli {

inline const CommandHelp& info_help() {
  static const CommandHelp help{
      "info",
      "[options]",
      "Prints the model's configuration, parameter count, the memory its weights take as loaded, and the\n"
      "memory of a state per sequence.",
      std::vector<OptionSpec>{
          {"--context", "", "N", "tokens of context for the global-attention memory estimate (default 8192)"},
      } + common_options(),
      "  griffin info\n  griffin info --model DIR --weights bf16\n"};
  return help;
}

inline int run_info(const std::vector<std::string>& argv) {
  const Args args(info_help(), argv);
  if (args.has("--help")) return print_help(info_help()), 0;
  // `griffin info DIR` would otherwise describe the demo model, not DIR.
  if (!args.positional().empty())
    throw UsageError("info takes no arguments besides options; for a checkpoint directory use --model " +
                     args.positional()[0]);
  const Session s = open_session(args);
  const auto& c = s.model.config();
  const std::size_t context = args.get_uint("--context", 8192);
  std::printf("model        %s%s\n", s.dir.string().c_str(), s.is_demo ? "  (the shipped demo model)" : "");
  std::printf("tokenizer    %s (%zu tokens)\n", std::string(s.tokenizer->name()).c_str(), s.tokenizer->vocab_size());
  std::string pattern;
  std::size_t recurrent = 0, local = 0, global = 0;
  for (std::size_t i = 0; i < c.sizes.depth; ++i) {
    const BlockType t = c.block_type(i);
    if (i) pattern += ' ';
    pattern += t == BlockType::recurrent ? 'R' : t == BlockType::local_attention ? 'A' : 'G';
    (t == BlockType::recurrent ? recurrent : t == BlockType::local_attention ? local : global) += 1;
  }
  std::printf("layers       %zu: %s  (R recurrent, A local attention, G global attention)\n", c.sizes.depth,
              pattern.c_str());
  // Every field of the description, from the field table, by its config.json key.
  visit_fields([&](const auto& f) {
    using F = std::remove_cvref_t<decltype(f)>;
    std::string value;
    if constexpr (std::is_same_v<F, SizeField>) value = std::to_string(c.sizes.*f.member * f.json_factor);
    else if constexpr (std::is_same_v<F, NumberField>) value = detail::shortest(c.hyper.*f.member);
    else if constexpr (std::is_same_v<F, FlagField>) value = c.hyper.*f.member ? "true" : "false";
    else value = std::to_string(c.hyper.*f.member);
    std::printf("  %-28s %-10s %s\n", std::string(f.json_key).c_str(), value.c_str(), std::string(f.meaning).c_str());
  });
  std::printf("rope         %zu of %zu head dims rotated\n", c.rope_dims(), c.sizes.head_dim);
  const std::size_t params = parameter_count(c);
  std::printf("parameters   %s (%zu)\n", human_count(double(params)).c_str(), params);
  std::printf("weights      %s as %s\n", human_bytes(double(weight_bytes(c, s.model.weights()))).c_str(),
              std::string(weight_type_name(c.weight_type)).c_str());
  // Per sequence: h [E] and K-1 conv inputs per recurrent layer; W keys, values and positions per local
  // attention layer; a growing cache per global attention layer.
  const std::size_t rec = c.sizes.conv_width * c.sizes.lru_width * sizeof(float);
  const std::size_t per_key = 2 * c.sizes.head_dim * sizeof(float) + sizeof(int);
  const std::size_t fixed = recurrent * rec + local * c.sizes.attention_window * per_key;
  std::printf("state        %s per sequence", human_bytes(double(fixed)).c_str());
  if (global) std::printf(" + %s per token of context (%s at %zu tokens)", human_bytes(double(global * per_key)).c_str(),
                          human_bytes(double(fixed + global * per_key * context)).c_str(), context);
  else std::printf(", whatever the context length");
  std::printf("\nruntime      %zu threads · SIMD backend %s\n", s.model.threads(), simd::Default::name);
  const io::Checkpoint checkpoint = io::Checkpoint::open(s.dir);
  for (const auto& [key, value] : checkpoint.metadata()) std::printf("metadata     %s: %s\n", key.c_str(), value.c_str());
  return 0;
}

}  // namespace griffin::cli
