// One translation unit instantiating RecurrentGemma-2B as a fully static model on the default backend:
// what compiling a preset costs a user (timed by bench/build_time; see docs/performance.md).
#include "griffin/griffin.hpp"

template class griffin::Model<griffin::presets::RecurrentGemma2B, griffin::simd::Default>;
