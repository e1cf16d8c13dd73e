// A conversation over one State: each turn reads only its own new tokens (the state already holds the
// conversation so far) and generates the reply. Instruction-tuned RecurrentGemma checkpoints use Gemma's
// turn template,
//     <start_of_turn>user\n{message}<end_of_turn>\n<start_of_turn>model\n{reply}<end_of_turn>\n
// recognised by the tokenizer having <start_of_turn> and <end_of_turn>; with any other tokenizer (the
// byte-level demo) the message is plain text that the model continues to the end of its line.
#pragma once

#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "griffin/generation/generate.hpp"
#include "griffin/state.hpp"
#include "griffin/generation/tokenizer.hpp"

namespace griffin {

template <class M>
class Chat {
 public:
  // `options` apply to every reply; turn k samples with seed options.sampling.seed + k.
  Chat(const M& model, const Tokenizer& tokenizer, GenerateOptions options)
      : model_(&model), tokenizer_(&tokenizer), options_(std::move(options)), state_(model.new_state()) {
    start_turn_ = tokenizer.token_id("<start_of_turn>");
    end_turn_ = tokenizer.token_id("<end_of_turn>");
    if (uses_turn_template()) options_.stop_tokens.push_back(end_turn_);
    else options_.stop_strings.push_back("\n");
    if (tokenizer.eos_id() >= 0) options_.stop_tokens.push_back(tokenizer.eos_id());
  }

  bool uses_turn_template() const { return start_turn_ >= 0 && end_turn_ >= 0; }

  // The tokens the next turn will read for `message`: BOS at the very start, the previous reply closed
  // (with <end_of_turn> if it was cut short), the user turn and the opening of the model's turn.
  std::vector<int> turn_tokens(std::string_view message) const {
    std::vector<int> tokens;
    if (state_.position() == 0 && tokenizer_->adds_bos()) tokens.push_back(tokenizer_->bos_id());
    std::string text;
    if (uses_turn_template()) {
      if (reply_open_) text += "<end_of_turn>\n";
      else if (state_.position() > 0) text += "\n";
      text += "<start_of_turn>user\n";
      text += message;
      text += "<end_of_turn>\n<start_of_turn>model\n";
    } else {
      text = message;
    }
    const std::vector<int> body = tokenizer_->encode(text);
    tokens.insert(tokens.end(), body.begin(), body.end());
    return tokens;
  }

  // One turn: reads the message, generates the reply (streamed to `callback`), and keeps the state.
  Generation say(std::string_view message, const TokenCallback& callback = {}, const ProgressCallback& progress = {}) {
    const std::vector<int> tokens = turn_tokens(message);
    if (tokens.empty()) throw InputError("griffin::Chat: an empty message");
    GenerateOptions o = options_;
    o.sampling.seed = options_.sampling.seed + turns_++;
    Generation g = generate(*model_, state_, *tokenizer_, tokens, o, callback, progress);
    reply_open_ = uses_turn_template() && g.stop != StopReason::stop_token;
    return g;
  }

  const State& state() const { return state_; }
  // Resumes a saved conversation (a state of one sequence of this model).
  void restore(State state) {
    if (state.batch_size() != 1) throw InputError("griffin::Chat: a conversation is a state of one sequence");
    state_ = std::move(state);
    reply_open_ = false;
  }
  void reset() {
    state_.reset();
    reply_open_ = false;
  }
  const GenerateOptions& options() const { return options_; }

 private:
  const M* model_;
  const Tokenizer* tokenizer_;
  GenerateOptions options_;
  State state_;
  int start_turn_ = -1, end_turn_ = -1;
  bool reply_open_ = false;
  std::uint64_t turns_ = 0;
};

// One message of a whole conversation given at once (an OpenAI-style chat request).
struct ChatMessage {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

// A whole conversation rendered as the prompt of the model's next reply, and what ends that reply.
struct ChatPrompt {
  std::vector<int> tokens;
  std::vector<int> stop_tokens;
  std::vector<std::string> stop_strings;
};

// With Gemma's turn template: each user turn and assistant turn in the template (a system message opens the
// first user turn, since Gemma has no system role), then the opening of the model's turn; the reply ends at
// <end_of_turn>. With any other tokenizer (the byte-level demo) each message is one line of plain text and
// the reply is the next line: it ends at "\n".
inline ChatPrompt render_chat(const Tokenizer& tokenizer, std::span<const ChatMessage> messages) {
  if (messages.empty()) throw std::invalid_argument("chat: no messages");
  const int start_turn = tokenizer.token_id("<start_of_turn>"), end_turn = tokenizer.token_id("<end_of_turn>");
  const bool turn_template = start_turn >= 0 && end_turn >= 0;
  std::string text, system;
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    if (m.role != "system" && m.role != "user" && m.role != "assistant")
      throw std::invalid_argument("chat: message " + std::to_string(i) + " has role \"" + m.role +
                                  "\"; the roles are system, user and assistant");
    if (!turn_template) {
      text += m.content;
      text += '\n';
    } else if (m.role == "system") {
      system += m.content + "\n\n";
    } else {
      text += m.role == "user" ? "<start_of_turn>user\n" + system : std::string("<start_of_turn>model\n");
      if (m.role == "user") system.clear();
      text += m.content;
      text += "<end_of_turn>\n";
    }
  }
  ChatPrompt p;
  if (turn_template) {
    text += system.empty() ? "" : "<start_of_turn>user\n" + system + "<end_of_turn>\n";
    text += "<start_of_turn>model\n";
    p.stop_tokens.push_back(end_turn);
  } else {
    p.stop_strings.push_back("\n");
  }
  if (tokenizer.eos_id() >= 0) p.stop_tokens.push_back(tokenizer.eos_id());
  p.tokens = tokenizer.encode_prompt(text);
  return p;
}

}  // namespace griffin
