// The Tokenizer interface, the byte tokenizer, streaming detokenization and tokenizer detection. Include
// griffin/generation/load_tokenizer.hpp (which adds load_tokenizer) rather than this file.
#pragma once

#include <cstddef>
#include <algorithm>
#include <filesystem>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "griffin/io/checkpoint.hpp"

namespace griffin {

struct TokenizerError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  virtual std::string_view name() const = 0;
  virtual std::size_t vocab_size() const = 0;
  // Text to ids, without BOS (callers that want it prepend bos_id()).
  virtual std::vector<int> encode(std::string_view text) const = 0;
  virtual std::string decode(std::span<const int> tokens) const = 0;

  // Special tokens; -1 when the tokenizer has none.
  virtual int bos_id() const { return -1; }
  virtual int eos_id() const { return -1; }
  // The id of a piece that is one token of the vocabulary (e.g. "<end_of_turn>"), or -1.
  virtual int token_id(std::string_view /*piece*/) const { return -1; }

  // Does a sequence start with BOS? (RecurrentGemma's prompts do; the byte models have none.)
  bool adds_bos() const { return bos_id() >= 0; }
  // The prompt as the model should see it at position 0: BOS (when there is one) and the text.
  std::vector<int> encode_prompt(std::string_view text) const {
    std::vector<int> ids;
    if (adds_bos()) ids.push_back(bos_id());
    const std::vector<int> body = encode(text);
    ids.insert(ids.end(), body.begin(), body.end());
    return ids;
  }
};

// One token per byte: id = the byte's value (0..255). Used by checkpoints whose safetensors metadata says
// "tokenizer": "bytes", such as the demo model kjv-griffin. No BOS and no EOS.
class ByteTokenizer final : public Tokenizer {
 public:
  std::string_view name() const override { return "bytes"; }
  std::size_t vocab_size() const override { return 256; }
  std::vector<int> encode(std::string_view text) const override {
    std::vector<int> ids(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) ids[i] = static_cast<unsigned char>(text[i]);
    return ids;
  }
  std::string decode(std::span<const int> tokens) const override {
    std::string text(tokens.size(), '\0');
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      if (tokens[i] < 0 || tokens[i] > 255)
        throw TokenizerError("byte tokenizer: token id " + std::to_string(tokens[i]) + " is not a byte (0..255)");
      text[i] = static_cast<char>(static_cast<unsigned char>(tokens[i]));
    }
    return text;
  }
};

// Turns generated tokens into text as they arrive. Decoding token by token is wrong for SentencePiece (a
// piece's leading space depends on what precedes it; a character split into byte pieces is invalid
// UTF-8 until its last byte arrives), so each push decodes the pending tokens after a few tokens of
// context and releases the text once it does not end in a partial character.
class TextStream {
 public:
  explicit TextStream(const Tokenizer& tokenizer, std::span<const int> context = {}) : tokenizer_(&tokenizer) {
    const std::size_t keep = std::min(context.size(), context_tokens);
    context_.assign(context.end() - static_cast<std::ptrdiff_t>(keep), context.end());
  }

  // The text that token completes (possibly empty while a character is incomplete).
  std::string push(int token) {
    pending_.push_back(token);
    std::string text = decode_pending();
    if (pending_.size() < max_pending && ends_in_partial_character(text)) return {};
    return release(std::move(text));
  }

  // Whatever is still held back (at the end of generation).
  std::string flush() { return pending_.empty() ? std::string() : release(decode_pending()); }

 private:
  static constexpr std::size_t context_tokens = 4, max_pending = 8;

  std::string decode_pending() const {
    if (context_.empty()) return tokenizer_->decode(pending_);
    std::vector<int> all(context_);
    all.insert(all.end(), pending_.begin(), pending_.end());
    const std::string with = tokenizer_->decode(all);
    const std::string before = tokenizer_->decode(context_);
    // Decoding is normally prefix-stable; if it is not, give the pending tokens' text on their own.
    if (with.compare(0, before.size(), before) == 0) return with.substr(before.size());
    return tokenizer_->decode(pending_);
  }

  std::string release(std::string text) {
    context_.insert(context_.end(), pending_.begin(), pending_.end());
    if (context_.size() > context_tokens)
      context_.erase(context_.begin(), context_.end() - static_cast<std::ptrdiff_t>(context_tokens));
    pending_.clear();
    return text;
  }

  // U+FFFD (EF BF BD) at the end is what SentencePiece makes of a character whose bytes are not all there.
  static bool ends_in_partial_character(const std::string& s) {
    return s.size() >= 3 && static_cast<unsigned char>(s[s.size() - 3]) == 0xEF &&
           static_cast<unsigned char>(s[s.size() - 2]) == 0xBF && static_cast<unsigned char>(s[s.size() - 1]) == 0xBD;
  }

  const Tokenizer* tokenizer_;
  std::vector<int> context_, pending_;
};

enum class TokenizerKind { bytes, sentencepiece };

// Which tokenizer a checkpoint directory ships with; throws TokenizerError saying what was looked for.
inline TokenizerKind detect_tokenizer(const std::filesystem::path& dir) {
  if (std::filesystem::exists(dir / "tokenizer.model")) return TokenizerKind::sentencepiece;
  const io::Checkpoint checkpoint = io::Checkpoint::open(dir);
  const auto& metadata = checkpoint.metadata();
  const auto it = metadata.find("tokenizer");
  if (it != metadata.end() && it->second == "bytes") return TokenizerKind::bytes;
  throw TokenizerError(dir.string() + ": no tokenizer: expected a tokenizer.model file (SentencePiece) or the "
                       "safetensors metadata \"tokenizer\": \"bytes\"" +
                       (it != metadata.end() ? " (the metadata says \"tokenizer\": \"" + it->second + "\")" : ""));
}

}  // namespace griffin

