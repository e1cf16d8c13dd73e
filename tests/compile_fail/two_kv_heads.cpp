// Must not compile: griffin implements multi-query attention (one KV head), as every released model uses.
#include "griffin/config.hpp"
griffin::ModelConfig<griffin::Shape{.num_kv_heads = 2}> config;
