#!/usr/bin/env bash
# Configures and builds griffin (Release, tests and examples) into build/. Extra arguments go to cmake
# after ours, so they win (scripts/demo.sh turns the tests and the Python module off). The options are passed every time: CMake
# keeps a cached option, and build/ is shared, so a demo run would otherwise leave later builds testless.
# The Python module (build/python/griffin) is built for Debian's /usr/bin/python3, where install-deps.sh puts
# NumPy and pytest; python3 on PATH may be another interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DGRIFFIN_BUILD_TESTS=ON -DGRIFFIN_BUILD_EXAMPLES=ON \
  -DGRIFFIN_BUILD_PYTHON=ON -DPython3_EXECUTABLE=/usr/bin/python3 "$@" >/dev/null
cmake --build build -j"$(nproc)"
