// The SentencePiece tokenizer that RecurrentGemma checkpoints ship as tokenizer.model. It calls into
// libsentencepiece, so a program that includes this header links the CMake target griffin::sentencepiece
// (which also makes griffin/generation/load_tokenizer.hpp's load_tokenizer accept SentencePiece checkpoints).
#pragma once

#include <sentencepiece_processor.h>

#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "griffin/generation/tokenizer.hpp"

namespace griffin {

class SentencePieceTokenizer final : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const std::filesystem::path& model_file)
      : processor_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {
    const auto status = processor_->Load(model_file.string());
    if (!status.ok())
      throw TokenizerError(model_file.string() + ": not a SentencePiece model (" + status.ToString() + ")");
  }

  // From the bytes of a tokenizer.model (a serialized ModelProto).
  static SentencePieceTokenizer from_serialized(std::string_view model_proto) {
    SentencePieceTokenizer t;
    const auto status = t.processor_->LoadFromSerializedProto(model_proto);
    if (!status.ok()) throw TokenizerError("not a SentencePiece model (" + status.ToString() + ")");
    return t;
  }

  std::string_view name() const override { return "sentencepiece"; }
  std::size_t vocab_size() const override { return static_cast<std::size_t>(processor_->GetPieceSize()); }

  std::vector<int> encode(std::string_view text) const override {
    std::vector<int> ids;
    const auto status = processor_->Encode(text, &ids);
    if (!status.ok()) throw TokenizerError("sentencepiece encode: " + status.ToString());
    return ids;
  }

  std::string decode(std::span<const int> tokens) const override {
    const int n = processor_->GetPieceSize();
    for (int t : tokens)
      if (t < 0 || t >= n)
        throw TokenizerError("sentencepiece: token id " + std::to_string(t) + " is outside the vocabulary [0, " +
                             std::to_string(n) + ")");
    std::string text;
    const auto status = processor_->Decode(std::vector<int>(tokens.begin(), tokens.end()), &text);
    if (!status.ok()) throw TokenizerError("sentencepiece decode: " + status.ToString());
    return text;
  }

  int bos_id() const override { return processor_->bos_id(); }
  int eos_id() const override { return processor_->eos_id(); }
  int token_id(std::string_view piece) const override {
    const int id = processor_->PieceToId(piece);
    // PieceToId answers "unknown" for pieces it does not have.
    if (id == processor_->unk_id() && processor_->IdToPiece(id) != piece) return -1;
    return id;
  }

  // A token's piece as stored in the vocabulary ("▁the", "<0x0A>", "<end_of_turn>").
  std::string piece(int id) const { return processor_->IdToPiece(id); }

 private:
  SentencePieceTokenizer() : processor_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {}
  std::unique_ptr<sentencepiece::SentencePieceProcessor> processor_;
};

}  // namespace griffin
