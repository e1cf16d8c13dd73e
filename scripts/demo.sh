#!/usr/bin/env bash
# The main job: installs what it needs, builds griffin and runs the demo on the shipped model
# (models/kjv-griffin): a short generation, then prefill and decode tokens/s. Arguments go to `griffin`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh -DGRIFFIN_BUILD_TESTS=OFF -DGRIFFIN_BUILD_PYTHON=OFF
exec build/examples/griffin "$@"
