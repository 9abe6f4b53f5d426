#!/usr/bin/env bash
# Batches staged through pinned host memory (data.device_resident: off; what a training set
# larger than device memory gets) train exactly what device-resident data trains: same rows, same
# order, so the checkpoints must be bitwise identical, with dropout and 2 ranks through NCCL.
# Only meaningful for a device backend: registered for the emulated CUDA build.
#   usage: staged.sh DPTRAIN CKPT_DIFF
set -euo pipefail
source "$(dirname "$0")/lib.sh"

for mode in on off; do
    "${MPIRUN[@]}" -np 2 "$DPTRAIN" train "$CONFIG" --set data.device_resident=$mode \
        --set model.dropout=0.2 --set train.epochs=3 --out "$TMP/$mode" > "$TMP/$mode.out" 2>&1 \
        || { cat "$TMP/$mode.out"; fail "device_resident=$mode exited non-zero"; }
done
grep -q "training rows staged through pinned memory" "$TMP/off.out" \
    || fail "device_resident=off did not stage the batches: $(grep device "$TMP/off.out")"
grep -q "training rows resident on the device" "$TMP/on.out" \
    || fail "device_resident=on did not keep the rows on the device: $(grep device "$TMP/on.out")"
"$CKPT_DIFF" "$TMP/on/checkpoint.bin" "$TMP/off/checkpoint.bin" --bitwise \
    || fail "staged and device-resident runs differ"
finish
