#!/usr/bin/env bash
# The CUDA backend trains what the CPU backend trains: Fashion-MNIST with configs/fashion_mnist.yaml
# for 2 epochs under `mpirun -np 2`, once with --device cpu and once with --device cuda (in CI the
# CUDA backend runs on the host emulation, gradients through the emulated NCCL), must end with
# the same test accuracy and validation loss. Skipped (77) without the data set.
#   usage: fashion_mnist_backends.sh DPTRAIN CKPT_DIFF
set -euo pipefail
source "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
    echo "skipped: dataset-fashion-mnist not installed"
    exit 77
fi

for dev in cpu cuda; do
    "${MPIRUN[@]}" -np 2 "$DPTRAIN" train "$ROOT/configs/fashion_mnist.yaml" --device "$dev" \
        --set train.epochs=2 --set train.warmup_epochs=0 --set run.progress=off \
        --out "$TMP/$dev" > "$TMP/$dev.out" 2>&1 || { cat "$TMP/$dev.out"; fail "$dev run exited non-zero"; }
    grep -E '^ +[0-9]+ +[0-9]+ ' "$TMP/$dev.out" | sed "s/^/$dev: /" || true
done
[ "$failures" -eq 0 ] || finish

field() { tail -n 1 "$TMP/$1/metrics.jsonl" | sed -E "s/.*\"$2\": ([0-9.eE+-]+).*/\1/"; }
# The two backends sum each GEMM in a different order (cuBLAS vs OpenBLAS blocking), and 842
# SGD steps at lr 0.05 amplify those last-bit differences: measured here, 0.13 points of test
# accuracy (86.83% vs 86.96%) and 0.26% of validation loss. The bounds leave 4x room over that;
# a wrong kernel costs whole points and tens of percent of loss. (That N ranks of the CUDA
# backend, through NCCL, equal one rank to 1e-4 is integration_equivalence's job.)
awk -v a="$(field cpu test_accuracy)" -v b="$(field cuda test_accuracy)" \
    'BEGIN { d = a - b; if (d < 0) d = -d; printf "test accuracy cpu %.4f cuda %.4f\n", a, b; exit !(d <= 0.005) }' \
    || fail "test accuracy differs by more than 0.5 points"
awk -v a="$(field cpu val_loss)" -v b="$(field cuda val_loss)" \
    'BEGIN { d = (a - b) / a; if (d < 0) d = -d; printf "val loss cpu %.6f cuda %.6f\n", a, b; exit !(d <= 0.01) }' \
    || fail "validation loss differs by more than 1% relative"
grep -q "gradients through NCCL" "$TMP/cuda.out" || fail "the cuda run did not reduce through NCCL"
finish
