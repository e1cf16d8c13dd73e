#!/usr/bin/env bash
# Runs the test suite under sanitizers (see docs/robustness.md):
#   scripts/sanitize.sh asan   AddressSanitizer + UndefinedBehaviorSanitizer (and LeakSanitizer), -O1, every
#                              doctest executable (packaging and compile-fail tests are skipped: they test
#                              the build, not memory); build dir build-asan
#   scripts/sanitize.sh tsan   ThreadSanitizer on the threaded tests (test_concurrency: one shared Model and
#                              Models sharing weights from several threads; test_engine: the serving engine's
#                              worker, submitters on many threads, streaming and cancellation); build dir build-tsan
#   scripts/sanitize.sh        both
# The build directories are the CMakePresets ones (debug-sanitize, tsan); override with GRIFFIN_ASAN_BUILD and
# GRIFFIN_TSAN_BUILD. Any report fails the run (-fno-sanitize-recover=all, halt_on_error).
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-all}"
jobs="${GRIFFIN_JOBS:-2}"

run_asan() {
  local build="${GRIFFIN_ASAN_BUILD:-build-asan}"
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
    -DGRIFFIN_SANITIZE=address,undefined -DGRIFFIN_BUILD_EXAMPLES=OFF >/dev/null
  cmake --build "$build" -j"$jobs"
  # detect_stack_use_after_return stays off: its fake stack frames are not 64-byte aligned, and g++ spills
  # AVX-512 registers with aligned stores (a SEGV in the sanitizer, not in griffin).
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_init_order=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir "$build" --output-on-failure -j"$jobs" -E '^(find_package_consumer|readme_example_.*|compile_fail_.*)$'
}

run_tsan() {
  local build="${GRIFFIN_TSAN_BUILD:-build-tsan}"
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGRIFFIN_SANITIZE=thread -DGRIFFIN_BUILD_EXAMPLES=OFF >/dev/null
  cmake --build "$build" -j"$jobs" --target test_concurrency test_engine
  TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
    ctest --test-dir "$build" --output-on-failure -R '^(test_concurrency|test_engine)$'
}

case "$mode" in
  asan) run_asan ;;
  tsan) run_tsan ;;
  all) run_asan && run_tsan ;;
  *) echo "usage: $0 [asan|tsan|all]" >&2; exit 2 ;;
esac
