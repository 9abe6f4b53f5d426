#!/usr/bin/env bash
# NCCL faults on the GPU path, injected by the emulation: an asynchronous NCCL error in the 3rd
# gradient allreduce, a 3rd allreduce that never completes (a stalled peer), and a communicator
# initialization that never completes (a peer that never joins). Each must end
# the job (exit 1) with a message naming the collective, the rank and the seconds waited, not
# train on unreduced gradients into "diverged" or hang. Emulated CUDA build only.
#   usage: gpu_faults.sh DPTRAIN CKPT_DIFF
set -euo pipefail
source "$(dirname "$0")/lib.sh"
export DPT_EMU_DEVICES=4
if "$DPTRAIN" version | grep -q "NCCL *not built"; then
    echo "skipped: built without NCCL (-DDPT_NCCL=OFF)"
    exit 77
fi

# fault NAME ENV=VALUE TEXT...: 2 ranks on the GPUs with ENV set must exit 1 and say each TEXT
fault() {
    local name=$1 env=$2 rc=0
    shift 2
    # graphs off: the hang is injected at the N-th ncclAllReduce call, which a replay of the
    # captured step does not make (gpu_graphs.sh injects the error into a replay)
    env "$env" timeout 120 "${MPIRUN[@]}" -np 2 "$DPTRAIN" train "$CONFIG" --device cuda \
        --set run.comm_timeout_s=1 --set train.cuda_graph=off --out "$TMP/$name" \
        > "$TMP/$name.out" 2>&1 || rc=$?
    if [ "$rc" -eq 0 ] || [ "$rc" -eq 124 ]; then
        fail "$name: exit $rc, expected 1 (0: the fault went unseen; 124: the job hung)"
        return 0
    fi
    for text in "$@"; do
        if ! grep -qE -- "$text" "$TMP/$name.out"; then
            fail "$name: no line says: $text"
            sed 's/^/    /' "$TMP/$name.out" >&2
            return 0
        fi
    done
    if grep -q "diverged" "$TMP/$name.out"; then
        fail "$name: reported as a diverged run"
    else
        echo "ok: $name: $(grep -m1 -E "ncclAllReduce|ncclCommInit" "$TMP/$name.out")"
    fi
}

fault nccl_error DPT_EMU_NCCL_FAIL_AFTER=3 \
    "ncclAllReduce\(sum, [0-9]+ floats\) on rank [01] of 2" \
    "NCCL error after [0-9.]+ s: remote process exited or there was a network error" \
    "injected remote error"
fault nccl_hang DPT_EMU_NCCL_HANG_AFTER=3 \
    "ncclAllReduce\(sum, [0-9]+ floats\) on rank [01] of 2" \
    "not finished after [0-9.]+ s \(run.comm_timeout_s 1\)"
fault nccl_init_hang DPT_EMU_NCCL_INIT_HANG=1 \
    "ncclCommInitRankConfig\(non-blocking\) on rank [01] of 2" \
    "not finished after [0-9.]+ s \(run.comm_timeout_s 1\)"
finish
