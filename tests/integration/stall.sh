#!/usr/bin/env bash
# A stalled rank on the MPI path: a CPU run one of whose ranks is stopped with SIGSTOP mid-
# training (a hung node, an NFS stall) must end within run.comm_timeout_s + 15 s, non-zero, with
# a message that names that rank as the one that did not arrive, and leave the last checkpoint
# intact (loaded, CRC and all, by ckpt_diff). Cases: 2 ranks with one allreduce after
# backward, and 3 ranks with overlapped buckets (rank 1 stopped, so the lowest live rank is not
# its neighbour), the same with the lowest live rank arriving late at every allreduce; and a rank
# that hangs as evaluation starts (the watchdog watches evaluation's
# allreduce and the checkpoint's agreement too); and a stall that ends within the grace after
# the timeout, which the job survives. Usage: stall.sh DPTRAIN CKPT_DIFF
set -euo pipefail
source "$(dirname "$0")/lib.sh" "$@"

TIMEOUT_S=5
BOUND_S=$((TIMEOUT_S + 15))
# 1 ms after every step: epochs of about 2 s (1667 steps), so that the stop lands in a step's
# gradient allreduce, which the watchdog watches, not in the few milliseconds of evaluation and
# checkpoint at an epoch's end, which it does not
export DPT_TEST_STEP_SLEEP_US=1000
MPIRUN+=(-x DPT_TEST_STEP_SLEEP_US)

# rank_pid LAUNCHER RANK: the child of mpirun whose environment says it is RANK
rank_pid() {
    local p
    for p in $(pgrep -P "$1" 2>/dev/null); do
        if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2"; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

# start_and_stop NAME NP VICTIM EPOCHS [dptrain args]: trains in the background (100000 rows,
# EPOCHS epochs) and, once a checkpoint is written, stops rank VICTIM with SIGSTOP half a second
# later; sets LAUNCHER and VICTIM (its pid). Returns 1 after counting a failure when it cannot.
start_and_stop() {
    local name=$1 np=$2 victim_rank=$3 epochs=$4
    shift 4
    local out=$TMP/$name
    "${MPIRUN[@]}" -np "$np" "$DPTRAIN" train "$CONFIG" --out "$out" --device cpu \
        --set data.synthetic_train=100000 --set train.epochs="$epochs" \
        --set run.comm_timeout_s=$TIMEOUT_S "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
    LAUNCHER=$!
    for _ in $(seq 1 600); do # a checkpoint first (up to 60 s), so there is one to keep intact
        [ -s "$out/checkpoint.bin" ] && break
        kill -0 "$LAUNCHER" 2>/dev/null || break
        sleep 0.1
    done
    VICTIM=$(rank_pid "$LAUNCHER" "$victim_rank" || true)
    if [ ! -s "$out/checkpoint.bin" ] || [ -z "$VICTIM" ]; then
        kill "$LAUNCHER" 2>/dev/null || true
        wait "$LAUNCHER" || true
        fail "$name: no checkpoint or no rank $victim_rank to stop; stderr:"
        sed 's/^/    /' "$TMP/$name.err" >&2
        return 1
    fi
    sleep 0.5 # into the next epoch
    kill -STOP "$VICTIM"
}

# job_end NAME BOUND_S WHAT: waits up to BOUND_S for the job of LAUNCHER to end (else counts a
# failure and kills it), kills VICTIM (when still there), prints the watchdog lines of
# $TMP/NAME.err; returns the job's exit status.
job_end() {
    local name=$1 bound=$2 what=$3 rc=0 t0
    t0=$(date +%s)
    if ! ends_within "$LAUNCHER" "$bound"; then
        fail "$name: the job still runs ${bound} s after $what"
        kill "$LAUNCHER" 2>/dev/null || true
    fi
    [ -z "$VICTIM" ] || kill -KILL "$VICTIM" 2>/dev/null || true
    wait "$LAUNCHER" || rc=$?
    echo "$name: job ended $(($(date +%s) - t0)) s after $what, exit $rc; watchdog lines:"
    grep "watchdog" "$TMP/$name.err" | sed 's/^/    /' || true
    return "$rc"
}

# stall_case NAME NP VICTIM [dptrain args]
stall_case() {
    local name=$1 np=$2 victim_rank=$3
    shift 3
    local out=$TMP/$name err=$TMP/$name.err rc=0
    # many epochs: stopped long before the end
    start_and_stop "$name" "$np" "$victim_rank" 1000 "$@" || return 0
    job_end "$name" "$BOUND_S" "rank $victim_rank stopped" || rc=$?

    [ "$rc" -ne 0 ] || fail "$name: the stalled job exited 0"
    # every live rank says it; the stopped one may too, once mpirun's SIGCONT before its SIGTERM
    # wakes it at the job's end, so it is not counted
    local r
    for r in $(seq 0 $((np - 1))); do
        [ "$r" -eq "$victim_rank" ] && continue
        grep -q "^\[rank $r .*\] watchdog: gradient allreduce of step [0-9]*.* not done after" \
            "$err" || fail "$name: live rank $r did not say what it waits for"
    done
    grep -q "watchdog: rank $victim_rank (.*) did not arrive" "$err" ||
        fail "$name: the message does not name rank $victim_rank as the one that did not arrive"
    if grep "did not arrive" "$err" | grep -qv "rank $victim_rank (.*) did not arrive"; then
        fail "$name: a rank that was running is named as not arrived"
    fi
    "$CKPT_DIFF" "$out/checkpoint.bin" "$out/checkpoint.bin" --bitwise >/dev/null ||
        fail "$name: the last checkpoint does not load (ckpt_diff)"
}

stall_case one_allreduce 2 1
stall_case buckets 3 1 --set comm.bucket_mb=0.005

# The lowest live rank enters each allreduce late (0.5 s after every step, the others 1 ms), so
# the other live rank's wait expires about 0.5 s before its: that rank must leave the message and
# the abort to rank 0 (DPT_WATCHDOG_DEFER_S). Before, it aborted at the end of its own grace and
# the job ended before rank 0 named rank 1 (case buckets failed so in CI). 540 rows: 9 steps an
# epoch, about 4 s.
late=$TMP/late_rank0.sh
cat >"$late" <<EOF
#!/bin/sh
[ "\$OMPI_COMM_WORLD_RANK" = 0 ] && export DPT_TEST_STEP_SLEEP_US=500000
exec "$DPTRAIN" "\$@"
EOF
chmod +x "$late"
DPTRAIN=$late stall_case late_lowest 3 1 --set data.synthetic_train=540

# A rank that hangs as the first evaluation starts (the test hook stops it there): the other
# waits in evaluation's allreduce, which the watchdog watches too, and the job ends as above.
eval_case() {
    local out=$TMP/eval err=$TMP/eval.err rc=0 victim=""
    DPT_TEST_STOP_AT_EVAL=1 "${MPIRUN[@]}" -np 2 -x DPT_TEST_STOP_AT_EVAL "$DPTRAIN" train \
        "$CONFIG" --out "$out" --device cpu --set run.comm_timeout_s=$TIMEOUT_S \
        >"$TMP/eval.out" 2>"$err" &
    local launcher=$!
    for _ in $(seq 1 600); do # until rank 1 has stopped itself (up to 60 s)
        victim=$(rank_pid "$launcher" 1 || true)
        [ -n "$victim" ] && [ "$(awk '{print $3}' "/proc/$victim/stat" 2>/dev/null)" = T ] && break
        kill -0 "$launcher" 2>/dev/null || break
        sleep 0.1
    done
    LAUNCHER=$launcher VICTIM=$victim
    job_end eval "$BOUND_S" "rank 1 stopped" || rc=$?
    [ "$rc" -ne 0 ] || fail "eval: the stalled job exited 0"
    grep -q "\[rank 0 .*\] watchdog: evaluation's allreduce of step [0-9]* not done after" "$err" ||
        fail "eval: rank 0 did not say it waits in evaluation's allreduce"
    grep -q "watchdog: rank 1 (.*) did not arrive" "$err" ||
        fail "eval: the message does not name rank 1 as the one that did not arrive"
}
eval_case

# A rank that stalls past the timeout but comes back within the grace after it (stopped for
# TIMEOUT_S + 1.5 s, then continued; the job ends DPT_WATCHDOG_GRACE_S = 3 s after the wait
# expires): the waiting rank says what it waits for when its wait expires, and the job goes on
# and ends 0 with no rank named as lost.
recover_case() {
    local err=$TMP/recover.err rc=0
    start_and_stop recover 2 1 2 || return 0
    sleep $((TIMEOUT_S + 1)).5
    kill -CONT "$VICTIM"
    job_end recover 60 "rank 1 went on" || rc=$?
    [ "$rc" -eq 0 ] || fail "recover: the job exited $rc after a stall shorter than the grace"
    grep -q "\[rank 0 .*\] watchdog: .* not done after" "$err" ||
        fail "recover: rank 0 did not say what it waited for when its wait expired"
    if grep -q "did not arrive\|Ending the job" "$err"; then
        fail "recover: a rank was named as lost, or the job was said to end"
    fi
}
recover_case
finish
