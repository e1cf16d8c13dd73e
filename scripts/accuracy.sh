#!/usr/bin/env bash
# Runs griffin_logits on every golden case with every backend (dynamic config, and the static preset
# where one matches) and prints the worst absolute error against the reference as a Markdown table.
# Usage: scripts/accuracy.sh [BUILD_DIR]   (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
tool=${1:-build}/examples/griffin_logits
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "| case | backend | config | weights | logits max error | decode_logits max error |"
echo "| --- | --- | --- | --- | --- | --- |"
for case in tiny-griffin tiny-hawk-bf16 tiny-mqa kjv-griffin; do
  for backend in scalar xsimd highway; do
    for mode in dynamic static; do
      flags=(--backend "$backend")
      [ "$mode" = static ] && flags+=(--static)
      if ! result=$("$tool" "tests/data/$case" "tests/data/$case/golden.safetensors" "$out/o.safetensors" "${flags[@]}" 2>&1); then
        if grep -q "no compiled-in static preset" <<<"$result"; then continue; fi
        echo "$result" >&2
        exit 1
      fi
      weights=$(sed -n 's/.*weights=\([a-z0-9]*\).*/\1/p' <<<"$result")
      logits=$(sed -n 's/^logits: max |ours - reference| = \([^ ]*\).*/\1/p' <<<"$result")
      decode=$(sed -n 's/^decode_logits: max |ours - reference| = \([^ ]*\).*/\1/p' <<<"$result")
      echo "| $case | $backend | $mode | $weights | $logits | $decode |"
    done
  done
done
