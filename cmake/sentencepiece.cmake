# griffin::sentencepiece: griffin plus the SentencePiece tokenizer (griffin/generation/sentencepiece.hpp).
# The library stays header-only; this separate INTERFACE target carries the one compiled dependency, so
# programs that only run byte-level models never link libsentencepiece. Linking it defines
# GRIFFIN_WITH_SENTENCEPIECE, which lets griffin::load_tokenizer open checkpoints with a tokenizer.model.
find_path(GRIFFIN_SENTENCEPIECE_INCLUDE_DIR sentencepiece_processor.h)
find_library(GRIFFIN_SENTENCEPIECE_LIBRARY sentencepiece)
find_library(GRIFFIN_SENTENCEPIECE_TRAIN_LIBRARY sentencepiece_train)  # only the tests train a model
if(GRIFFIN_SENTENCEPIECE_INCLUDE_DIR AND GRIFFIN_SENTENCEPIECE_LIBRARY)
  add_library(griffin_sentencepiece INTERFACE)
  add_library(griffin::sentencepiece ALIAS griffin_sentencepiece)
  set_target_properties(griffin_sentencepiece PROPERTIES EXPORT_NAME sentencepiece)
  target_include_directories(griffin_sentencepiece SYSTEM INTERFACE $<BUILD_INTERFACE:${GRIFFIN_SENTENCEPIECE_INCLUDE_DIR}>)
  target_link_libraries(griffin_sentencepiece INTERFACE griffin
    $<BUILD_INTERFACE:${GRIFFIN_SENTENCEPIECE_LIBRARY}> $<INSTALL_INTERFACE:sentencepiece>)
  target_compile_definitions(griffin_sentencepiece INTERFACE GRIFFIN_WITH_SENTENCEPIECE=1)
  install(TARGETS griffin_sentencepiece EXPORT griffinTargets)
  message(STATUS "griffin: SentencePiece found (${GRIFFIN_SENTENCEPIECE_LIBRARY}): target griffin::sentencepiece")
else()
  message(STATUS "griffin: SentencePiece not found: griffin::sentencepiece is not available")
endif()
