#!/usr/bin/env bash
# Fuzzes the safetensors and config.json parsers: builds the libFuzzer targets with clang++-14
# (ASan + UBSan) and runs each for SECONDS (default 30) from the committed seeds in fuzz/corpus/.
# Fails on any crash, sanitizer report, leak, timeout or out-of-memory; the input that caused it is left
# in the build directory as crash-* / leak-* / timeout-* / oom-*. New inputs go to a scratch directory,
# so the committed corpus does not change. Build directory: $GRIFFIN_FUZZ_BUILD (default build-fuzz).
#   scripts/fuzz.sh          # 30 s per target
#   scripts/fuzz.sh 300      # 5 min per target
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"
build="${GRIFFIN_FUZZ_BUILD:-build-fuzz}"

cmake -S . -B "$build" -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DGRIFFIN_BUILD_FUZZ=ON -DGRIFFIN_BUILD_TESTS=OFF -DGRIFFIN_BUILD_EXAMPLES=OFF -DGRIFFIN_BUILD_PYTHON=OFF >/dev/null
cmake --build "$build" -j2 --target fuzz_safetensors fuzz_config

for target in safetensors config; do
  scratch="$(mktemp -d)"
  trap 'rm -rf "$scratch"' EXIT
  echo "== fuzz_$target for ${seconds}s"
  # -rss_limit_mb: well above ASan's own overhead, far below what a size taken on trust would allocate.
  "$build/fuzz/fuzz_$target" "$scratch" "fuzz/corpus/$target" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -artifact_prefix="$build/" -print_final_stats=1 2>&1 | grep -v -e '^#[0-9]' -e '# Uses: ' -e 'dictionary' -e 'NEW_FUNC' || {
      echo "fuzz_$target FAILED (see the artifact in $build/)" >&2
      exit 1
    }
  rm -rf "$scratch"
  trap - EXIT
done
echo "fuzzing passed"
