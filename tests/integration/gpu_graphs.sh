#!/usr/bin/env bash
# train.cuda_graph (emulated CUDA build): a run whose step is captured once and replayed equals
# the same run without graphs bitwise: one rank; two ranks on NCCL with overlapped buckets and
# clipping (the allreduces captured across streams); learning rates that change every step and
# AdamW's bias corrections (read from device memory by the replayed update); dropout (its key's
# step read from device memory by the replayed kernels); a regression (its loss sums on the
# device). An NCCL error in a replay is caught by the watchdog. `on` where the step cannot be
# captured is refused, naming why.
# Usage: gpu_graphs.sh DPTRAIN CKPT_DIFF
set -euo pipefail
source "$(dirname "$0")/lib.sh"
require_emulated_gpus 2

# same NAME NP ARGS...: trains with graphs on and off, checks the start-up table says which,
# and compares the checkpoints bitwise
same() {
    local name=$1 np=$2
    shift 2
    for g in on off; do
        "${MPIRUN[@]}" -np "$np" -x DPT_EMU_DEVICES "$DPTRAIN" train "$CONFIG" --device cuda \
            --set train.epochs=1 --set train.cuda_graph=$g --out "$TMP/$name.$g" "$@" \
            >"$TMP/$name.$g.out" 2>&1 || { fail "$name, graphs $g: $(tail -3 "$TMP/$name.$g.out")"; return; }
    done
    grep -q "CUDA Graph on (the step captured once, then replayed)" "$TMP/$name.on.out" ||
        fail "$name: graphs not on: $(grep device "$TMP/$name.on.out")"
    grep -q "CUDA Graph off (train.cuda_graph)" "$TMP/$name.off.out" || fail "$name: graphs not off"
    cmp -s "$TMP/$name.on/checkpoint.bin" "$TMP/$name.off/checkpoint.bin" ||
        fail "$name: the replayed run differs: $("$CKPT_DIFF" "$TMP/$name.on/checkpoint.bin" "$TMP/$name.off/checkpoint.bin" 2>&1 | head -3)"
}

same one_rank 1
same nccl 2 --set comm.bucket_mb=0.005 --set train.clip_grad_norm=0.5
same schedule 1 --set train.schedule=step --set train.step_epochs=1 --set train.epochs=3 \
    --set train.warmup_epochs=1
same adamw_cosine 1 --set train.optimizer=adamw --set train.schedule=cosine --set train.epochs=2 \
    --set train.warmup_epochs=1 --set train.lr=0.003
# dropout: the mask's key holds the step, which the replayed kernels read from device memory (a
# replay that kept the captured step's mask would differ from the run without graphs); 2 epochs,
# so the key moves on across an epoch's end, and 2 ranks, so each draws its own rows' masks
same dropout 2 --set model.dropout=0.2 --set train.epochs=2 --set comm.bucket_mb=0.005
# a regression: its loss sums stay on the device too (loss_targets_stats), so it is captured
REPO=$(cd "$(dirname "$0")/../.." && pwd)
python3 "$REPO/scripts/make_csv_examples.py" regression "$TMP/regdata" --rows 1000 --seed 2 >/dev/null
sed -e "s#data/regression#$TMP/regdata#" "$REPO/configs/regression.yaml" >"$TMP/reg.yaml"
CONFIG=$TMP/reg.yaml same regression 2 --set train.epochs=2

# an NCCL error in the 5th allreduce to run (a replay): the watchdog, polling the event recorded
# behind the replays at the next read, ends the job naming it (not "diverged", not a hang)
rc=0
DPT_EMU_NCCL_FAIL_AFTER=5 timeout 120 "${MPIRUN[@]}" -np 2 -x DPT_EMU_DEVICES -x DPT_EMU_NCCL_FAIL_AFTER \
    "$DPTRAIN" train "$CONFIG" --device cuda --set run.comm_timeout_s=30 --out "$TMP/fault" \
    >"$TMP/fault.out" 2>&1 || rc=$?
[ $rc = 1 ] && grep -q "CUDA Graph on" "$TMP/fault.out" &&
    grep -qE "ncclAllReduce\(sum, [0-9]+ floats\) on rank [01] of 2 -> NCCL error after" "$TMP/fault.out" &&
    ! grep -q diverged "$TMP/fault.out" ||
    fail "NCCL error in a replay: exit $rc: $(grep -E 'rank|error' "$TMP/fault.out" | head -3)"

# on, where the step cannot be captured (batches staged through pinned memory): refused before
# training, exit 2; auto says what rules it out
set +e
"$DPTRAIN" train "$CONFIG" --device cuda --set train.cuda_graph=on --set data.device_resident=off \
    --out "$TMP/staged" >"$TMP/staged.out" 2>&1
rc=$?
set -e
[ $rc = 2 ] && grep -q "train.cuda_graph: on, but the step cannot be captured as a CUDA Graph: batches are staged" "$TMP/staged.out" ||
    fail "cuda_graph on with staged batches: exit $rc, $(tail -1 "$TMP/staged.out")"
"$DPTRAIN" train "$CONFIG" --device cuda --set data.device_resident=off --set train.epochs=1 \
    --out "$TMP/auto" >"$TMP/auto.out" 2>&1 || fail "auto: $(tail -2 "$TMP/auto.out")"
grep -q "CUDA Graph off: batches are staged" "$TMP/auto.out" || fail "auto: $(grep device "$TMP/auto.out")"
finish
