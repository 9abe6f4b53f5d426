#!/usr/bin/env bash
# The main job's acceptance: configs/fashion_mnist.yaml (784-512-512-10, global batch 128,
# 15 epochs) trained with `mpirun -np 2` reaches at least 89.0% test accuracy on the real
# Fashion-MNIST test set. Skipped (exit 77) when Debian's dataset-fashion-mnist is absent.
#   usage: fashion_mnist.sh DPTRAIN CKPT_DIFF
set -euo pipefail

DPTRAIN=$(realpath "$1")
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DATA=/usr/share/datasets/fashion-mnist
if [ ! -f "$DATA/train-images-idx3-ubyte.gz" ]; then
    echo "skipped: $DATA not installed (apt-get install dataset-fashion-mnist)"
    exit 77
fi
TMP=$(mktemp -d "${TMPDIR:-/tmp}/dpt_fashion.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

mpirun --allow-run-as-root -np 2 "$DPTRAIN" train "$ROOT/configs/fashion_mnist.yaml" \
    --set run.progress=off --out "$TMP/out" | tee "$TMP/stdout"

# the last epoch's test accuracy, from metrics.jsonl (the machine-readable record)
acc=$(tail -n 1 "$TMP/out/metrics.jsonl" | sed -E 's/.*"test_accuracy": ([0-9.eE+-]+).*/\1/')
epochs=$(wc -l < "$TMP/out/metrics.jsonl")
echo "epochs: $epochs, final test accuracy: $acc (required: >= 0.89)"
awk -v a="$acc" 'BEGIN { exit !(a >= 0.89) }' || { echo "FAIL: test accuracy $acc < 0.89" >&2; exit 1; }
[ "$epochs" -eq 15 ] || { echo "FAIL: expected 15 epochs in metrics.jsonl, got $epochs" >&2; exit 1; }

# dptrain eval on the same test set (IDX, through --labels) reports exactly that accuracy
F=/usr/share/datasets/fashion-mnist
ev=$("$DPTRAIN" eval "$TMP/out" --input "$F/t10k-images-idx3-ubyte.gz" \
         --labels "$F/t10k-labels-idx1-ubyte.gz" --json |
     sed -E 's/.*"accuracy": ([0-9.eE+-]+).*/\1/')
echo "dptrain eval accuracy: $ev"
[ "$ev" = "$acc" ] || { echo "FAIL: eval accuracy $ev != metrics.jsonl test_accuracy $acc" >&2; exit 1; }
