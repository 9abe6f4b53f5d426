#!/usr/bin/env bash
# The main job: installs what is missing, builds, runs a short hyperparameter search of the
# Fashion-MNIST MLP on 2 ranks (12 trials of 5 epochs, Bayesian optimization after 4 first ones),
# then trains the best configuration found for the full 15 epochs. About three minutes on two
# cores. Re-running continues the search where it stopped (--resume) and retrains the best.
# Usage: scripts/run.sh [extra arguments for both dptrain commands, e.g. --set run.seed=2]
#        NP=4 scripts/run.sh   (rank count)     OUT=runs/main scripts/run.sh   (outputs)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh build >/dev/null
if [ "$(id -u)" = 0 ]; then
  # Open MPI refuses root unless told; clusters run as users and need none of this
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
out=${OUT:-runs/main}
progress=()
# mpirun forwards output through a pseudo-terminal, so ranks cannot tell whether a person is
# watching; this script can.
if [ -t 1 ]; then progress=(--set run.progress=on); fi
mpirun -np "${NP:-2}" build/dptrain search configs/fashion_mnist_search.yaml --out "$out/search" \
  --resume --set search.trials=12 --set search.initial_random=4 --set train.epochs=5 "$@"
echo
exec mpirun -np "${NP:-2}" build/dptrain train "$out/search/best.yaml" --out "$out/best" \
  --set train.epochs=15 "${progress[@]}" "$@"
