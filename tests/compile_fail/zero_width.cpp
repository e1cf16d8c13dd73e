// Must not compile: a zero-sized residual stream.
#include "griffin/config.hpp"
griffin::ModelConfig<griffin::Shape{.width = 0}> config;
