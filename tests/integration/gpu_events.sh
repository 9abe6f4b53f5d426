#!/usr/bin/env bash
# bench train's GPU-event timing on the emulated CUDA backend, 2 ranks on the emulated NCCL path
# with 3 buckets: the line of compute, communication, overlapped and exposed times is printed
# for both rows and is consistent (compute > 0, exposed <= comm, overlapped + exposed = comm to
# the printed rounding); with the streams run synchronously (DPT_EMU_ASYNC=0: each allreduce runs
# when backward queues it) part of comm is overlapped; with graphs the last replay is read.
# Usage: gpu_events.sh DPTRAIN CKPT_DIFF
set -euo pipefail
source "$(dirname "$0")/lib.sh"
require_emulated_gpus 2

# 64-1024-1024-4: 1.1 M gradients, 3 NCCL buckets of at least 1 MiB; a batch of 8 keeps it cheap
args=(--steps 3 --warmup 1 --set run.device=cuda --set "model.layers=[64,1024,1024,4]"
      --set train.batch_size=8 --set data.synthetic_train=256 --set data.synthetic_test=64
      --set data.synthetic_teacher_width=64)

# run NAME GRAPH [env...]: bench train on 2 ranks; its GPU-events lines into $TMP/NAME.ev
run() {
    local name=$1 graph=$2
    shift 2
    env "$@" "${MPIRUN[@]}" -np 2 -x DPT_EMU_DEVICES -x DPT_EMU_ASYNC "$DPTRAIN" bench train \
        "$CONFIG" "${args[@]}" --set "train.cuda_graph=$graph" >"$TMP/$name.out" 2>&1 ||
        { fail "$name: $(tail -3 "$TMP/$name.out")"; return 1; }
    grep -q 'NCCL sum, 3 buckets' "$TMP/$name.out" ||
        fail "$name: not 3 NCCL buckets: $(grep '^# gradients' "$TMP/$name.out")"
    grep '^# GPU events per step' "$TMP/$name.out" >"$TMP/$name.ev" || true
    [ "$(wc -l <"$TMP/$name.ev")" = 2 ] || fail "$name: expected 2 GPU-event lines, got: $(cat "$TMP/$name.ev")"
}

# check NAME WANT_OVERLAP SOURCE: the 2-rank line's numbers hold together; prints "comm overlapped"
check() {
    local name=$1 want=$2 source=$3 line
    line=$(grep -E '^# GPU events per step on rank 0, 2 ranks: ' "$TMP/$name.ev") ||
        { fail "$name: no 2-rank GPU-event line"; return; }
    read -r compute fb upd comm over exp < <(echo "$line" | sed -nE \
        's/.*compute ([0-9.]+) ms \(forward\+backward ([0-9.]+), update ([0-9.]+)\), comm ([0-9.]+) ms, overlapped ([0-9.]+) ms, exposed ([0-9.]+) ms; .*/\1 \2 \3 \4 \5 \6/p') ||
        { fail "$name: unreadable line: $line"; return; }
    echo "$line" | grep -q "; $source\$" || fail "$name: not from '$source': $line"
    awk -v c="$compute" -v fb="$fb" -v u="$upd" -v m="$comm" -v o="$over" -v e="$exp" -v w="$want" 'BEGIN {
        bad = "";
        if (!(c > 0)) bad = bad " compute not > 0;";
        if (c - (fb + u) > 0.0015 || (fb + u) - c > 0.0015) bad = bad " compute != forward+backward + update;";
        if (!(m > 0)) bad = bad " comm not > 0;";
        if (e > m + 0.0005) bad = bad " exposed > comm;";
        if (o + e - m > 0.0015 || m - (o + e) > 0.0015) bad = bad " overlapped + exposed != comm;";
        if (o > fb + 0.0005) bad = bad " overlapped > forward+backward;";
        if (w && !(o > 0)) bad = bad " nothing overlapped;";
        if (bad != "") { print bad; exit 1 } }' >"$TMP/$name.why" ||
        fail "$name:$(cat "$TMP/$name.why") in: $line"
    grep -qE '^# GPU events per step on rank 0, 1 rank: compute [0-9.]*[1-9][0-9.]* ms .*comm not timed' \
        "$TMP/$name.ev" || fail "$name: the 1-rank line: $(grep ', 1 rank:' "$TMP/$name.ev")"
}

# as CI runs it (DPT_EMU_ASYNC as set: 1 runs each stream as late as it can, which overlaps nothing)
run ci off DPT_EMU_ASYNC="${DPT_EMU_ASYNC:-1}" && check ci 0 "mean of the timed steps"
# synchronous streams: the first buckets' allreduces run inside backward
run sync off DPT_EMU_ASYNC=0 && check sync 1 "mean of the timed steps"
# graphs: the events are nodes of the graph; its replay runs in capture order (overlapped)
run graph on DPT_EMU_ASYNC="${DPT_EMU_ASYNC:-1}" && check graph 1 "the CUDA Graph's last replay"
finish
