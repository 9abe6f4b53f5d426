#!/usr/bin/env bash
# Benchmark of the hyperparameter search: dptrain's Bayesian optimizer, random search and Optuna's
# TPE on Branin and Hartmann6 over 20 seeds, median and quartiles of the simple regret after 10,
# 20, 30, 50 and 100 evaluations, and the time per proposal (see scripts/bench_search.py).
# About five minutes on two cores. Usage: scripts/bench_search.sh [--seeds N] [--budget N] ...
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --with-compare
scripts/build.sh build >/dev/null
# Debian's python3 has Debian's Optuna; a python3 earlier on PATH (pyenv) may not
exec /usr/bin/python3 scripts/bench_search.py build/dptrain "$@"
