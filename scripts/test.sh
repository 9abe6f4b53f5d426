#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test with ctest, in three builds:
#   1. build/       optimized; the CUDA backend compiled by nvcc when the toolkit is there (it
#                   must build with no warnings; with no GPU the suite runs on the CPU backend)
#   2. build-emu/   the CUDA backend's sources compiled as host C++ against the emulation of
#                   CUDA, cuBLAS and NCCL in tests/cuda_emu: the suite runs on the CUDA code path
#   3. build-asan/  build 2 with AddressSanitizer + UndefinedBehaviorSanitizer, its integration
#                   tests run twice: on the emulated CUDA backend and on the CPU backend
#   4. build-fuzz/  the libFuzzer targets (clang), 20 s each: scripts/fuzz.sh 20
# Exits non-zero on any failure. Usage: scripts/test.sh [--quick]   (--quick: build 1 only)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --with-schedulers  # SLURM and Grid Engine for the scheduler tests
if [ "$(id -u)" = 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
# the emulation offers as many "GPUs" as the largest test starts ranks on one host
export DPT_EMU_DEVICES=4

echo "== build 1: optimized (CPU backend; CUDA backend by nvcc when found)"
# from scratch, so every file is compiled and any warning shows; a warning fails the run
rm -rf build
scripts/build.sh build 2>&1 | tee build.log
if grep -E "warning( #[0-9A-Z-]+-D)?:" build.log; then
  echo "== the build printed warnings (above): fix them"; exit 1
fi
echo "== tests 1"
(cd build && ctest --output-on-failure --timeout 600)
[ "${1:-}" = "--quick" ] && { echo "== all tests passed (quick)"; exit 0; }

echo "== build 2: CUDA backend on the host emulation"
scripts/build.sh build-emu -DDPT_CUDA_EMU=ON
echo "== tests 2"
# streams run as a GPU runs them (tests/cuda_emu/stream_emu.cpp): seed 1 here, as late as each
# stream may; seed 2 in tests 3, which also runs other streams' ready work early
export DPT_EMU_ASYNC=1
# blocks, threads and each barrier interval's threads in orders a seed scrambles
# (tests/cuda_emu/block_emu.cpp): seed 1 here, seed 2 in tests 3
export DPT_EMU_SHUFFLE=1
# (not the real schedulers' tests, label scheduler, about a minute: their jobs train on the CPU
# (run.device cpu, docs/cluster.md), so here they would run build 1's code path again; build 1
# runs them)
(cd build-emu && ctest --output-on-failure --timeout 900 -LE "slow|scheduler")

echo "== build 2b: the CUDA backend without NCCL (-DDPT_NCCL=OFF: GPU ranks reduce through MPI)"
scripts/build.sh build-emu-nonccl -DDPT_CUDA_EMU=ON -DDPT_NCCL=OFF
# the unit tests and the GPU-path integration tests that do not assume NCCL (buckets and bench
# allreduce do, in the emulated build)
(cd build-emu-nonccl && ctest --output-on-failure --timeout 900 -L unit)
(cd build-emu-nonccl && ctest --output-on-failure --timeout 900 \
   -R "integration_(equivalence|staged|gpu_devices|gpu_faults)$")

echo "== build 3: build 2 with AddressSanitizer + UndefinedBehaviorSanitizer"
BUILD_TYPE=Debug scripts/build.sh build-asan -DDPT_CUDA_EMU=ON -DDPT_SANITIZE=ON
echo "== tests 3"
export DPT_EMU_ASYNC=2 DPT_EMU_SHUFFLE=2
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# Leaks are checked in the unit tests; under mpirun, Open MPI's own allocations at exit
# (not ours to fix) would drown them, so the integration tests check memory errors only.
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure --timeout 900 -L unit)
# (the real schedulers' tests, label scheduler, run in build 1 only: about a minute here, and
# what they test is the job scripts and the launch, not trainer code: under SLURM or Grid Engine
# dptrain learns its place from MPI as under mpirun; CI must stay under 25 minutes)
# (integration_search, 126 s here on the emulated backend, runs under the sanitizers on the CPU
# backend below: its code is rank 0's search loop, the same on either backend; the emulated
# backend's trial after trial under the sanitizers is integration_search_async's;
# integration_signals, 69-86 s here, runs in builds 1 and 2 without the sanitizers: the
# checkpoint it writes on a signal is written under them by integration_resume and _faults;
# CI ran 25 min 08 s with it on 2026-12-06)
(cd build-asan && ASAN_OPTIONS=detect_leaks=0 ctest --output-on-failure --timeout 900 -LE "unit|slow|emu|scheduler" \
   -E "^integration_(search|signals)$")
echo "== tests 3, CPU backend: the integration tests of training and search again, no GPU visible"
# (the unit tests above already run every CPU op under the sanitizers; this adds the CPU
# backend inside whole mpirun jobs, keeping CI well under its 15 minutes)
(cd build-asan && DPT_EMU_DEVICES=0 ASAN_OPTIONS=detect_leaks=0 ctest --output-on-failure \
   --timeout 900 -R "integration_(equivalence|resume|bad_input|outputs|search)$")

echo "== build 4: libFuzzer targets (clang), 20 s each"
# every crash found so far already runs in builds 1-3 (ctest fuzz_replay_*); this looks for new ones
scripts/fuzz.sh 20
echo "== all tests passed"
