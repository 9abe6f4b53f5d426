#!/usr/bin/env bash
# Device allocation failures on the GPU path, injected by the emulation: with
# DPT_EMU_ALLOC_FAIL_AFTER=N the (N+1)-th device allocation and all later ones fail. Every N up
# to the first that trains must end the run with exit 1, a line giving the bytes and the GPU of
# the failed cudaMalloc and one naming the buffer, never a crash; the run that gets through must
# train what a run without the fault trains. Emulated CUDA build only.
#   usage: gpu_alloc.sh DPTRAIN CKPT_DIFF
set -euo pipefail
source "$(dirname "$0")/lib.sh"
export DPT_EMU_DEVICES=4

"$DPTRAIN" train "$CONFIG" --device cuda --out "$TMP/clean" > "$TMP/clean.out" 2>&1 \
    || { cat "$TMP/clean.out" >&2; fail "the run without the fault failed"; finish; }

trained=-1
for n in $(seq 0 60); do
    rc=0
    DPT_EMU_ALLOC_FAIL_AFTER=$n timeout 120 "$DPTRAIN" train "$CONFIG" --device cuda \
        --out "$TMP/n$n" > "$TMP/n$n.out" 2>&1 || rc=$?
    if [ "$rc" -eq 0 ]; then
        trained=$n
        break
    fi
    if [ "$rc" -ne 1 ]; then
        fail "N=$n: exit $rc, expected 1 (a crash or a hang, not a reported error)"
    elif ! grep -qE "cudaMalloc of [0-9]+ bytes on GPU 0 \(PCI [0-9a-f:.]+\) failed: out of memory \([0-9]+ MiB free of [0-9]+ MiB\)" "$TMP/n$n.out"; then
        fail "N=$n: no line gives the bytes and the GPU of the failed cudaMalloc"
    elif ! grep -qE "(error:|->) out of cuda memory for [a-z]" "$TMP/n$n.out"; then
        # (-> : the loss's scratch, allocated at first use inside a step, ends the run that way)
        fail "N=$n: no line names the buffer that did not fit"
    else
        continue
    fi
    sed 's/^/    /' "$TMP/n$n.out" >&2
done
if [ "$trained" -lt 2 ]; then
    fail "no run with the fault trained (or one did before any allocation failed): N=$trained"
else
    echo "ok: N=0..$((trained - 1)) each ended with the allocation named; N=$trained trained"
    "$CKPT_DIFF" "$TMP/clean/checkpoint.bin" "$TMP/n$trained/checkpoint.bin" > /dev/null \
        || fail "the run that got through the fault differs from the run without it"
fi

# A small GPU: 33 MiB, of which cuBLAS's workspace takes 32 MiB at start-up (the emulation
# models it), so about 1 MiB is left for the data.
SMALL=33

# data.device_resident: on and no room for the training set: said so, exit 1
rc=0
DPT_EMU_DEVICE_MEM_MB=$SMALL "$DPTRAIN" train "$CONFIG" --device cuda \
    --set data.device_resident=on --set data.synthetic_train=20000 \
    --out "$TMP/on" > "$TMP/on.out" 2>&1 || rc=$?
if [ "$rc" -ne 1 ] || ! grep -q "data.device_resident: on, but the training set" "$TMP/on.out"; then
    sed 's/^/    /' "$TMP/on.out" >&2
    fail "resident on without room: exit $rc, expected 1 with the training set named"
fi

# data.device_resident: auto keeps the rows on the device only when max(256 MiB, 5 %) stays free:
# the 0.2 MB training set fits the small device but not with the reserve (staged), a 512 MiB one
# with it (resident); both train what the default device trains.
for mem in $SMALL 512; do
    DPT_EMU_DEVICE_MEM_MB=$mem "$DPTRAIN" train "$CONFIG" --device cuda --out "$TMP/mem$mem" \
        > "$TMP/mem$mem.out" 2>&1 || { cat "$TMP/mem$mem.out" >&2; fail "auto on ${mem} MiB failed"; }
done
grep -q "staged through pinned" "$TMP/mem$SMALL.out" || fail "auto on a $SMALL MiB device: not staged"
DPT_EMU_DEVICE_MEM_MB=$SMALL "$DPTRAIN" train "$CONFIG" --device cuda \
    --set data.device_resident=on --out "$TMP/on$SMALL" > "$TMP/on$SMALL.out" 2>&1 || true
grep -q "training rows resident on the device" "$TMP/on$SMALL.out" \
    || fail "the training set does not fit a $SMALL MiB device even without the reserve: no test"
grep -q "training rows resident on the device" "$TMP/mem512.out" \
    || fail "auto on a 512 MiB device: not resident"
for mem in $SMALL 512; do
    "$CKPT_DIFF" "$TMP/clean/checkpoint.bin" "$TMP/mem$mem/checkpoint.bin" > /dev/null \
        || fail "auto on a ${mem} MiB device trained a different model"
done
# The reserve against the real consumers, on 2 ranks: cuBLAS's 32 MiB workspace from start-up and
# NCCL's ring buffers (16 channels x 9.2 MiB = 147 MiB in the emulation's model), connected at the
# first collective, after the data decision. On a 181 MiB GPU the 2.3 MiB training set fits
# cudaMalloc then (on: resident) but not beside the ring buffers: the first allreduce fails. auto
# leaves the reserve free, stages the rows and trains.
rc=0
DPT_EMU_DEVICES=2 DPT_EMU_DEVICE_MEM_MB=181 NCCL_DEBUG=WARN "${MPIRUN[@]}" -np 2 \
    "$DPTRAIN" train "$CONFIG" --device cuda --set data.device_resident=on \
    --set data.synthetic_train=20000 --set train.epochs=1 --set train.batch_size=600 \
    --out "$TMP/nccl_on" > "$TMP/nccl_on.out" 2>&1 || rc=$?
if [ "$rc" -eq 0 ] || ! grep -q "training rows resident on the device" "$TMP/nccl_on.out" ||
    ! grep -q "out of memory': connecting rank [01]'s ring (154140672 bytes" "$TMP/nccl_on.out"; then
    sed 's/^/    /' "$TMP/nccl_on.out" >&2
    fail "resident beside NCCL's buffers: exit $rc, expected a failed first allreduce"
fi
rc=0
DPT_EMU_DEVICES=2 DPT_EMU_DEVICE_MEM_MB=181 "${MPIRUN[@]}" -np 2 \
    "$DPTRAIN" train "$CONFIG" --device cuda \
    --set data.synthetic_train=20000 --set train.epochs=1 --set train.batch_size=600 \
    --out "$TMP/nccl_auto" > "$TMP/nccl_auto.out" 2>&1 || rc=$?
if [ "$rc" -ne 0 ] || ! grep -q "staged through pinned" "$TMP/nccl_auto.out"; then
    sed 's/^/    /' "$TMP/nccl_auto.out" >&2
    fail "auto beside NCCL's buffers: exit $rc, expected staged rows and a trained model"
fi
finish
