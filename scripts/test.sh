#!/usr/bin/env bash
# The test command: installs the dependencies, builds everything and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh
# An empty test set (say, a build configured without tests) is an error, not a pass.
ctest --test-dir build --output-on-failure --no-tests=error -j2
