#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test with ctest: first the optimized build,
# then the same suite built with AddressSanitizer + UndefinedBehaviorSanitizer.
# Exits non-zero on any failure. Usage: scripts/test.sh [--no-sanitize]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [ "$(id -u)" = 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

echo "== build (Release)"
scripts/build.sh build
echo "== tests (Release)"
(cd build && ctest --output-on-failure --timeout 600)

if [ "${1:-}" != "--no-sanitize" ]; then
  echo "== build (AddressSanitizer + UndefinedBehaviorSanitizer)"
  BUILD_TYPE=Debug scripts/build.sh build-asan -DDPT_SANITIZE=ON
  echo "== tests (AddressSanitizer + UndefinedBehaviorSanitizer)"
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  # Leaks are checked in the unit tests; under mpirun, Open MPI's own allocations at exit
  # (not ours to fix) would drown them, so the integration tests check memory errors only.
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure --timeout 900 -L unit)
  (cd build-asan && ASAN_OPTIONS=detect_leaks=0 ctest --output-on-failure --timeout 900 -LE "unit|slow")
fi
echo "== all tests passed"
