#!/usr/bin/env bash
# Configures and builds dptrain into DIR (default build/). Extra arguments go to cmake.
# Usage: scripts/build.sh [DIR] [-DOPTION=VALUE]...
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}
shift || true
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}" "$@" >"$dir.cmake.log" 2>&1 \
  || { cat "$dir.cmake.log"; exit 1; }
grep -E '^-- (dptrain|  )' "$dir.cmake.log" || true
cmake --build "$dir" -j "$(nproc)"
