#!/usr/bin/env bash
# The main job: installs what is missing, builds, and trains the Fashion-MNIST MLP on 2 ranks.
# Usage: scripts/run.sh [extra dptrain arguments, e.g. --set train.epochs=2]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh build >/dev/null
if [ "$(id -u)" = 0 ]; then
  # Open MPI refuses root unless told; clusters run as users and need none of this
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
progress=()
# mpirun forwards output through a pseudo-terminal, so ranks cannot tell whether a person is
# watching; this script can.
if [ -t 1 ]; then progress=(--set run.progress=on); fi
exec mpirun -np "${NP:-2}" build/dptrain train configs/fashion_mnist.yaml "${progress[@]}" "$@"
