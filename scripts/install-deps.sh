#!/usr/bin/env bash
# Installs everything griffin needs to build, test and benchmark, from Debian 12's packages only.
# Safe to run again: it does nothing when every package is already installed.
set -euo pipefail
packages=(
  build-essential cmake pkg-config
  libxsimd-dev libhwy-dev nlohmann-json3-dev   # the library's own dependencies (header-only use)
  doctest-dev                                  # tests
  libbenchmark-dev libopenblas-dev gnuplot-nox # bench/ (OpenBLAS only as the speed comparison)
  libsentencepiece-dev sentencepiece           # tokenizers for RecurrentGemma checkpoints
  libcpp-httplib-dev curl nodejs               # griffin serve; its tests talk to it with curl and the openai npm client
  clang-14 libclang-rt-14-dev                  # fuzzing and sanitizers
  python3-dev pybind11-dev python3-numpy python3-pytest  # the Python module, for /usr/bin/python3
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's nodejs has npm as a package of its own; NodeSource's nodejs (which conflicts with it) includes npm.
if ! command -v npm >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends npm >/dev/null
fi
