// Specialising a model at compile time: the sizes and the block pattern of the shipped demo model, spelled
// in the type. Sizes left out (or set to griffin::dynamic) would be read from config.json instead.
#include <algorithm>
#include <cstdio>
#include <vector>
#include <string_view>

#include "griffin/griffin.hpp"

using namespace griffin;

using KjvGriffin = ModelConfig<Shape{.vocab_size = 256, .width = 192, .lru_width = 192, .num_heads = 4,
                                     .head_dim = 48, .num_kv_heads = 1, .mlp_width = 576, .conv_width = 4,
                                     .attention_window = 64, .depth = 6},
                               Pattern<BlockType::recurrent, BlockType::recurrent, BlockType::local_attention>>;

int main(int argc, char** argv) {
  const char* dir = argc > 1 ? argv[1] : GRIFFIN_DEMO_MODEL_DIR;
  // Checks config.json and every tensor against KjvGriffin; a mismatch is an error naming the field.
  const auto model = load_model<KjvGriffin, simd::Highway>(dir);
  auto state = model.new_state();
  std::string_view prompt = "In the beginning God created the heaven and the eart";
  std::vector<int> tokens(prompt.begin(), prompt.end());  // byte-level model: token = byte
  std::vector<float> logits = model.prefill(state, tokens);
  const int next = int(std::max_element(logits.begin(), logits.end()) - logits.begin());
  std::printf("%.*s -> '%c'\n", int(prompt.size()), prompt.data(), next);
}
