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
  const Tokenizer& tok = *s.tokenizer;
  std::uint64_t seed = 0;
  GenerateOptions options = generation_options(args, tok, 256, 0.8, seed);
  const int start_turn = tok.token_id("<start_of_turn>"), end_turn = tok.token_id("<end_of_turn>");
  const bool gemma = start_turn >= 0 && end_turn >= 0;
  if (gemma) options.stop_tokens.push_back(end_turn);
  else options.stop_strings.push_back("\n");  // plain text: one line per turn

  State state = s.model.new_state();
  bool turn_open = false;  // gemma: the model's last turn ended without <end_of_turn>
  if (args.has("--load-state")) {
    Snapshot snap = load_state(args, s);
    if (snap.state.batch_size() != 1) throw UsageError("--load-state: chat continues a state of one sequence");
    state = std::move(snap.state);
  }
  const bool interactive = ::isatty(0);
  std::fprintf(stderr, "griffin chat: %s, %s; /quit to end\n", s.name().c_str(),
               gemma ? "Gemma turn template" : "plain text (the model continues each line)");
  std::uint64_t turn = 0;
  for (;;) {
    if (interactive) std::fprintf(stdout, "> "), std::fflush(stdout);
    std::string line;
    if (!std::getline(std::cin, line)) break;
    if (!interactive) std::printf("> %s\n", line.c_str());
    if (line == "/quit" || line == "/exit") break;
    if (line == "/reset") {
      state.reset();
      turn_open = false;
      std::printf("(conversation reset)\n");
      continue;
    }
    if (line.rfind("/save ", 0) == 0) {
      write_snapshot(line.substr(6), state, {}, s.model_id());
      std::printf("(saved to %s)\n", line.substr(6).c_str());
      continue;
    }
    std::vector<int> tokens;
    if (state.position() == 0 && tok.adds_bos()) tokens.push_back(tok.bos_id());
    std::string text;
    if (gemma) {
      if (turn_open) text += "<end_of_turn>\n";
      else if (state.position() > 0) text += "\n";
      text += "<start_of_turn>user\n" + line + "<end_of_turn>\n<start_of_turn>model\n";
    } else {
      text = line;
    }
    const std::vector<int> body = tok.encode(text);
    tokens.insert(tokens.end(), body.begin(), body.end());
    if (tokens.empty()) continue;
    if (!gemma) std::fwrite(line.data(), 1, line.size(), stdout);  // the model continues the user's line
    options.sampling.seed = seed + turn++;
    ProgressLine progress(args.has("--progress"), "reading");
    const Generation g = generate(s.model, state, tok, tokens, options, print_tokens(), [&](std::size_t d, std::size_t t) {
      progress(d, t);
      if (d == t) progress.finish();
    });
    turn_open = gemma && g.stop != StopReason::stop_token;
    std::printf("\n");
    std::fflush(stdout);
    if (args.has("--stats")) print_stats(s, g.stats, 1, options.sampling.seed, options.sampling.temperature, g.stop);
  }
  if (args.has("--save-state")) {
    write_snapshot(args.get("--save-state"), state, {}, s.model_id());
    std::fprintf(stderr, "saved the conversation (%lld tokens) to %s\n", static_cast<long long>(state.position()),
                 args.get("--save-state").c_str());
  }
  return 0;
}

}  // namespace griffin::cli
