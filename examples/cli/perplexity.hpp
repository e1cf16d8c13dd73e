// `griffin perplexity`: how well the model predicts a text, read as one sequence from position 0.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "cli/args.hpp"
#include "cli/session.hpp"
#include "griffin/generation/perplexity.hpp"

namespace griffin::cli {

inline const CommandHelp& perplexity_help() {
  static const CommandHelp help{
      "perplexity",
      "[options] [FILE]",
      "Reads FILE (or stdin) as one sequence from position 0 and reports the mean cross-entropy of\n"
      "predicting each token from those before it, in nats per token and bits per byte. With the demo\n"
      "model and no FILE it uses the demo's heldout.txt (reference: 1.5420 bits/byte).",
      std::vector<OptionSpec>{
          {"--chunk", "", "N", "tokens per prefill step (default: logits of about 64 MB)"},
          {"--progress", "", "", "show progress on stderr even when it is not a terminal"},
      } + common_options(),
      "  griffin perplexity                      (the demo model on its heldout.txt)\n"
      "  griffin perplexity --model DIR text.txt\n"};
  return help;
}

inline int run_perplexity(const std::vector<std::string>& argv) {
  const Args args(perplexity_help(), argv);
  if (args.has("--help")) return print_help(perplexity_help()), 0;
  if (args.positional().size() > 1) throw UsageError("perplexity takes one FILE");
  const Session s = open_session(args);
  std::string name, text;
  if (!args.positional().empty()) {
    name = args.positional()[0];
    text = read_text_file(name);
  } else if (!::isatty(0)) {
    name = "stdin";
    text = read_all(std::cin);
  }
  if (text.empty() && args.positional().empty() && fs::exists(s.dir / "heldout.txt")) {
    name = (s.dir / "heldout.txt").string();
    text = read_text_file(name);
  }
  if (text.empty()) throw UsageError("no text: give a FILE or pipe it to stdin");
  ProgressLine progress(args.has("--progress"), "reading");
  const Perplexity p = evaluate_perplexity(s.model, *s.tokenizer, text, args.get_uint("--chunk", 0),
                                           [&](std::size_t d, std::size_t t) {
                                             progress(d, t);
                                             if (d == t) progress.finish();
                                           });
  std::printf("%s: %zu bytes, %zu tokens (%s tokenizer), %zu predicted\n", name.c_str(), text.size(),
              p.predicted_tokens + 1, std::string(s.tokenizer->name()).c_str(), p.predicted_tokens);
  std::printf("nats/token %.4f · bits/byte %.4f · perplexity %.3f per token\n", p.nats_per_token(), p.bits_per_byte(),
              p.perplexity());
  std::fprintf(stderr, "[%s · %s · %zu thread%s · %.1f tokens/s]\n", s.name().c_str(),
               std::string(weight_type_name(s.model.config().weight_type)).c_str(), s.model.threads(),
               s.model.threads() == 1 ? "" : "s", p.seconds > 0 ? double(p.predicted_tokens) / p.seconds : 0.0);
  return 0;
}

}  // namespace griffin::cli
