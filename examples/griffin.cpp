// griffin: run Griffin / Hawk / RecurrentGemma checkpoints from the command line.
//
//   griffin                       a short demo with the shipped model (models/kjv-griffin)
//   griffin generate [PROMPT]     continue a prompt (also --batch, --samples, --save-state/--load-state)
//   griffin chat                  a conversation that keeps its state between turns
//   griffin perplexity [FILE]     bits per byte and nats per token of a text
//   griffin info                  config, parameter count, memory
//   griffin serve                 an OpenAI-compatible HTTP server with continuous batching
//
// The commands live in examples/cli/; docs/cli.md describes every option.
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "cli/chat.hpp"
#include "cli/generate.hpp"
#include "cli/info.hpp"
#include "cli/perplexity.hpp"
#ifdef GRIFFIN_WITH_HTTPLIB
#include "cli/serve.hpp"
#endif

namespace {

void print_usage(std::FILE* out) {
  std::fprintf(out,
               "usage: griffin [COMMAND] [options]\n\n"
               "Runs Griffin, Hawk and RecurrentGemma checkpoints on the CPU. Without a command, generates a\n"
               "short sample with the shipped demo model.\n\n"
               "commands:\n"
               "  generate    continue a prompt; several at once with --batch (griffin generate --help)\n"
               "  chat        a multi-turn conversation on stdin, keeping the state between turns\n"
               "  perplexity  bits per byte and nats per token of a text\n"
               "  info        the model's config, parameter count and memory\n"
               "  serve       an OpenAI-compatible HTTP server (griffin serve --help)\n\n"
               "common options: --model DIR (default: the demo model, or $GRIFFIN_MODEL), --threads N,\n"
               "                --weights f32|bf16|int8, --help\n");
}

}  // namespace

int main(int argc, char** argv) {
  namespace cli = griffin::cli;
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string command = args.empty() ? "" : args[0];
  try {
    if (args.empty()) return cli::run_demo();
    if (command == "--help" || command == "-h" || command == "help") {
      print_usage(stdout);
      return 0;
    }
    const std::vector<std::string> rest(args.begin() + 1, args.end());
    if (command == "generate") return cli::run_generate(rest);
    if (command == "chat") return cli::run_chat(rest);
    if (command == "perplexity") return cli::run_perplexity(rest);
    if (command == "info") return cli::run_info(rest);
    if (command == "serve") {
#ifdef GRIFFIN_WITH_HTTPLIB
      return cli::run_serve(rest);
#else
      std::fprintf(stderr, "griffin serve: this griffin was built without cpp-httplib (libcpp-httplib-dev)\n");
      return 1;
#endif
    }
    // `griffin "some prompt"` or `griffin --seed 3 ...`: generate.
    command = "generate";
    return cli::run_generate(args);
  } catch (const cli::UsageError& e) {
    std::fprintf(stderr, "griffin %s: %s\nTry 'griffin %s --help'.\n", command.c_str(), e.what(), command.c_str());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "griffin %s: %s\n", command.c_str(), e.what());
    return 1;
  }
}
