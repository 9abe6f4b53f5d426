#!/usr/bin/env bash
# Runs the NCCL emulation check (nccl_emu_check.c) under mpirun on this host, with 2 ranks and
# with 3 (an odd count: one rank keeps its own rank when the others are swapped).
# Usage: nccl_emu_check.sh path/to/nccl_emu_check
set -euo pipefail
exe=${1:?usage: nccl_emu_check.sh path/to/nccl_emu_check}
root=()
if [ "$(id -u)" = 0 ]; then root=(--allow-run-as-root); fi
for np in 2 3; do
  mpirun "${root[@]}" --oversubscribe -np "$np" "$exe"
done
