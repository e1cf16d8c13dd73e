#include <cstdio>

#include "griffin/griffin.hpp"

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  const auto model = griffin::load_model(argv[1], {.threads = 1});
  auto state = model.new_state();
  const auto logits = model.prefill(state, std::vector<int>{'A', 'n', 'd'});
  std::printf("consumer: %zu logits, parameters %zu\n", logits.size(), griffin::parameter_count(model.config()));
  return logits.size() == model.config().sizes.vocab_size ? 0 : 1;
}
