#!/usr/bin/env bash
# The CPU performance figures of docs/performance.md in one run: dptrain against PyTorch (same
# model, batch, optimizer) at 1 and 2 threads, and dptrain's weak scaling from 1 to 2 ranks
# (one BLAS thread each, per-rank batch kept), for the Fashion-MNIST MLP and the large MLP.
# Usage: scripts/bench_cpu.sh [STEPS]   (needs scripts/setup.sh --with-compare and a build)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-300}
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(nproc) cores, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
for cfg in fashion_mnist:128 mlp_large:512; do
  name=${cfg%%:*}; batch=${cfg##*:}
  big_steps=$steps; [ "$name" = mlp_large ] && big_steps=$((steps / 5))
  echo; echo "## $name: dptrain vs PyTorch, one process"
  /usr/bin/python3 scripts/compare_pytorch.py "configs/$name.yaml" --mode speed \
      --bench-steps "$big_steps" --dptrain build/dptrain
  echo; echo "## $name: weak scaling, 1 -> 2 ranks, batch $batch per rank, 1 thread each"
  for i in 1 2 3; do
    mpirun -np 2 --bind-to core build/dptrain bench train "configs/$name.yaml" \
        --steps "$big_steps" --set train.batch_size=$((2 * batch)) --set run.threads=1 | \
        grep -E '^ +[12] |GEMM-only' | sed "s/^/run $i: /"
  done
done
