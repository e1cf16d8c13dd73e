#!/usr/bin/env bash
# The main job: builds griffin and runs the shipped demo model (models/kjv-griffin).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh -DGRIFFIN_BUILD_TESTS=OFF
if [ -x build/examples/griffin ]; then
  exec build/examples/griffin "$@"
fi
# Until the griffin CLI exists: check the demo model against the reference's logits.
exec build/examples/griffin_logits models/kjv-griffin tests/data/kjv-griffin/golden.safetensors /tmp/griffin-demo-logits.safetensors
