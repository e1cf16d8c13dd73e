// Text ↔ token ids. A Tokenizer is the small interface the generation loop, the perplexity evaluator and
// the `griffin` tool need (griffin/generation/tokenizer.hpp, with ByteTokenizer: token = byte value);
// SentencePieceTokenizer lives in griffin/generation/sentencepiece.hpp because it links libsentencepiece
// (CMake target griffin::sentencepiece, which defines GRIFFIN_WITH_SENTENCEPIECE).
//
// load_tokenizer(dir) picks the tokenizer a checkpoint ships with: a tokenizer.model file means
// SentencePiece, safetensors metadata "tokenizer": "bytes" means bytes, anything else is an error.
#pragma once

#include <filesystem>
#include <memory>

#include "griffin/generation/tokenizer.hpp"

#ifdef GRIFFIN_WITH_SENTENCEPIECE
#include "griffin/generation/sentencepiece.hpp"
#endif

namespace griffin {

// The tokenizer of a checkpoint directory (see detect_tokenizer). SentencePiece checkpoints need the
// program to link griffin::sentencepiece, which defines GRIFFIN_WITH_SENTENCEPIECE.
inline std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& dir) {
  switch (detect_tokenizer(dir)) {
    case TokenizerKind::bytes:
      return std::make_unique<ByteTokenizer>();
    case TokenizerKind::sentencepiece:
#ifdef GRIFFIN_WITH_SENTENCEPIECE
      return std::make_unique<SentencePieceTokenizer>(dir / "tokenizer.model");
#else
      throw TokenizerError(dir.string() + ": this checkpoint ships a SentencePiece tokenizer.model, but this program "
                           "was built without SentencePiece (link the CMake target griffin::sentencepiece)");
#endif
  }
  throw TokenizerError(dir.string() + ": unknown tokenizer kind");
}

}  // namespace griffin
