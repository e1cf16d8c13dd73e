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

// Bytes the loaded weights occupy (matrices in their storage type, everything else f32).
inline std::size_t weight_bytes(const Weights& w) {
  auto v = [](const std::vector<float>& x) { return x.size() * sizeof(float); };
  std::size_t n = w.embed_tokens.size_bytes() + v(w.final_norm);
  for (const auto& l : w.layers) {
    n += v(l.temporal_pre_norm) + v(l.channel_pre_norm);
    const auto& r = l.recurrent;
    n += r.linear_x.size_bytes() + r.linear_y.size_bytes() + r.linear_out.size_bytes() + v(r.linear_x_bias) +
         v(r.linear_y_bias) + v(r.linear_out_bias) + v(r.conv_taps) + v(r.conv_bias) + v(r.input_gate_weight) +
         v(r.input_gate_bias) + v(r.recurrent_gate_weight) + v(r.recurrent_gate_bias) + v(r.log_a_scale);
    const auto& a = l.attention;
    n += a.q_proj.size_bytes() + a.k_proj.size_bytes() + a.v_proj.size_bytes() + a.o_proj.size_bytes() + v(a.o_proj_bias);
    n += l.mlp.gate_proj.size_bytes() + l.mlp.up_proj.size_bytes() + l.mlp.down_proj.size_bytes() +
         v(l.mlp.gate_proj_bias) + v(l.mlp.up_proj_bias) + v(l.mlp.down_proj_bias);
  }
  return n;
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
  for (std::size_t i = 0; i < c.depth; ++i) {
    const BlockType t = c.block_type(i);
    if (i) pattern += ' ';
    pattern += t == BlockType::recurrent ? 'R' : t == BlockType::local_attention ? 'A' : 'G';
    (t == BlockType::recurrent ? recurrent : t == BlockType::local_attention ? local : global) += 1;
  }
  std::printf("layers       %zu: %s  (R recurrent, A local attention, G global attention)\n", c.depth.value(), pattern.c_str());
  std::printf("sizes        vocab %zu · width %zu · lru_width %zu · heads %zu × %zu · mlp %zu · conv %zu · window %zu\n",
              c.vocab_size.value(), c.width.value(), c.lru_width.value(), c.num_heads.value(), c.head_dim.value(),
              c.mlp_width.value(), c.conv_width.value(), c.attention_window.value());
  std::printf("             soft cap %g · rms eps %g · rope theta %g on %zu of %zu head dims · embeddings %s\n",
              c.hyper.logits_soft_cap, c.hyper.rms_norm_eps, c.hyper.rope_theta, c.rope_dims(), c.head_dim.value(),
              c.hyper.embeddings_scale_by_sqrt_dim ? "scaled by sqrt(width)" : "not scaled");
  std::printf("tokens       bos %d · eos %d · pad %d\n", c.hyper.bos_token_id, c.hyper.eos_token_id, c.hyper.pad_token_id);
  const std::size_t params = s.model.weights().parameter_count();
  std::printf("parameters   %s (%zu)\n", human_count(double(params)).c_str(), params);
  std::printf("weights      %s as %s\n", human_bytes(double(weight_bytes(s.model.weights()))).c_str(),
              std::string(weight_type_name(c.weight_type)).c_str());
  // Per sequence: h [E] and K-1 conv inputs per recurrent layer; W keys, values and positions per local
  // attention layer; a growing cache per global attention layer.
  const std::size_t rec = (c.lru_width + (c.conv_width - 1) * c.lru_width) * sizeof(float);
  const std::size_t per_key = 2 * c.head_dim * sizeof(float) + sizeof(int);
  const std::size_t fixed = recurrent * rec + local * c.attention_window * per_key;
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
