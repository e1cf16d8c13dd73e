// The umbrella header: everything a user of griffin needs, in reading order
// (config → kernels → blocks → model → io).
#pragma once

#include "griffin/config.hpp"
#include "griffin/dtype.hpp"
#include "griffin/simd/default.hpp"
#include "griffin/kernels/rms_norm.hpp"
#include "griffin/kernels/activations.hpp"
#include "griffin/kernels/embedding.hpp"
#include "griffin/kernels/linear.hpp"
#include "griffin/kernels/conv1d.hpp"
#include "griffin/kernels/rg_lru.hpp"
#include "griffin/kernels/rope.hpp"
#include "griffin/kernels/attention.hpp"
#include "griffin/weights.hpp"
#include "griffin/state.hpp"
#include "griffin/threads.hpp"
#include "griffin/model.hpp"
#include "griffin/io/safetensors.hpp"
#include "griffin/io/config_json.hpp"
#include "griffin/io/load.hpp"
