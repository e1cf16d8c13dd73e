// `griffin chat`: a conversation read from stdin, one user turn per line. The state is kept between
// turns, so each turn reads only its own new tokens, never the conversation again. Instruction-tuned
// SentencePiece checkpoints (those with <start_of_turn>/<end_of_turn> tokens) get Gemma's turn
// template; other models (the byte-level demo) simply continue the text, one line per turn.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "cli/args.hpp"
#include "cli/generate.hpp"
#include "cli/session.hpp"
#include "griffin/generation/chat.hpp"

namespace griffin::cli {

inline const CommandHelp& chat_help() {
  static const CommandHelp help{
      "chat",
      "[options]",
      "A conversation, one user turn per line of standard input (type /quit or Ctrl-D to end, /reset to\n"
      "start over, /save FILE to save the conversation's state). The model's state is kept between turns.\n"
      "With an instruction-tuned checkpoint each line is wrapped in Gemma's turn template\n"
      "(<start_of_turn>user ... <end_of_turn> <start_of_turn>model); with other models (the byte-level\n"
      "demo) the model continues your line to the end of its line.",
      std::vector<OptionSpec>{
          {"--stats", "", "", "print speeds on stderr after each turn"},
      } + sampling_options("256 per turn", "0.8") + common_options(),
      "  griffin chat --model recurrentgemma-2b-it\n"
      "  printf 'And God said\\nAnd Moses answered\\n' | griffin chat --seed 1\n"
      "  griffin chat --save-state talk.bin   (later: griffin chat --load-state talk.bin)\n"};
  return help;
}

inline int run_chat(const std::vector<std::string>& argv) {
  const Args args(chat_help(), argv);
  if (args.has("--help")) return print_help(chat_help()), 0;
  if (!args.positional().empty()) throw UsageError("chat reads its turns from stdin; unexpected argument " + args.positional()[0]);
  const Session s = open_session(args);
  std::uint64_t seed = 0;
  Chat chat(s.model, *s.tokenizer, generation_options(args, *s.tokenizer, 256, 0.8, seed));
  if (args.has("--load-state")) {
    Snapshot snap = load_state(args, s);
    if (snap.state.batch_size() != 1) throw UsageError("--load-state: chat continues a state of one sequence");
    chat.restore(std::move(snap.state));
  }
  const bool interactive = ::isatty(0);
  std::fprintf(stderr, "griffin chat: %s, %s; /quit to end\n", s.name().c_str(),
               chat.uses_turn_template() ? "Gemma turn template" : "plain text (the model continues each line)");
  for (;;) {
    if (interactive) std::fprintf(stdout, "> "), std::fflush(stdout);
    std::string line;
    if (!std::getline(std::cin, line)) break;
    if (!interactive) std::printf("> %s\n", line.c_str());
    if (line == "/quit" || line == "/exit") break;
    if (line == "/reset") {
      chat.reset();
      std::printf("(conversation reset)\n");
      continue;
    }
    if (line.rfind("/save ", 0) == 0) {
      write_snapshot(line.substr(6), chat.state(), {}, s.model_id());
      std::printf("(saved to %s)\n", line.substr(6).c_str());
      continue;
    }
    if (line.empty()) continue;
    if (!chat.uses_turn_template()) std::fwrite(line.data(), 1, line.size(), stdout);  // the model continues it
    ProgressLine progress(args.has("--progress"), "reading");
    const Generation g = chat.say(line, print_tokens(), [&](std::size_t d, std::size_t t) {
      progress(d, t);
      if (d == t) progress.finish();
    });
    std::printf("\n");
    std::fflush(stdout);
    if (args.has("--stats")) print_stats(s, g.stats, 1, seed, chat.options().sampling.temperature, g.stop);
  }
  if (args.has("--save-state")) {
    write_snapshot(args.get("--save-state"), chat.state(), {}, s.model_id());
    std::fprintf(stderr, "saved the conversation (%lld tokens) to %s\n", static_cast<long long>(chat.state().position()),
                 args.get("--save-state").c_str());
  }
  return 0;
}

}  // namespace griffin::cli
