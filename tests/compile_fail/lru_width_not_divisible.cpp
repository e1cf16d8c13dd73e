// Must not compile: 100 channels cannot be split into 3 RG-LRU gate blocks.
#include "griffin/config.hpp"
griffin::ModelConfig<griffin::Shape{.lru_width = 100, .num_heads = 3}> config;
