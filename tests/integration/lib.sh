# Shared set-up of the integration tests, sourced by each tests/integration/NAME.sh after
# `set -euo pipefail`; its arguments are the script's: DPTRAIN CKPT_DIFF.
# Provides DPTRAIN, CKPT_DIFF, CONFIGS, CONFIG (the small synthetic config), TMP (removed on
# exit), MPIRUN (as root, oversubscribed, no CMA so it works in containers), fail, finish,
# train_ranks and device_work.

TEST_NAME=$(basename "$0" .sh)
DPTRAIN=$(realpath "$1")
CKPT_DIFF=$(realpath "$2")
CONFIGS=$(cd "$(dirname "$0")/../configs" && pwd)
CONFIG=$CONFIGS/synthetic_small.yaml
TMP=$(mktemp -d "${TMPDIR:-/tmp}/dpt_$TEST_NAME.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
MPIRUN=(mpirun --allow-run-as-root --oversubscribe --mca btl_vader_single_copy_mechanism none)

failures=0
fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

# Ends the test: non-zero when any check failed.
finish() {
    if [ "$failures" -ne 0 ]; then
        echo "$TEST_NAME: $failures check(s) failed" >&2
        exit 1
    fi
    echo "$TEST_NAME: all checks passed"
}

# train_ranks NAME NP [args...]: trains $CONFIG into $TMP/NAME with NP ranks (output in
# $TMP/NAME.out and .err); checks the exit status and that metrics.jsonl's last row says NP
# ranks took $EXPECT_STEPS steps (so that a broken launch, e.g. N singletons each believing it
# is rank 0 of 1, cannot pass as agreement). A failure is counted, not fatal.
train_ranks() {
    local name=$1 np=$2
    shift 2
    local rc=0
    "${MPIRUN[@]}" -np "$np" "$DPTRAIN" train "$CONFIG" --out "$TMP/$name" "$@" \
        >"$TMP/$name.out" 2>"$TMP/$name.err" || rc=$?
    if [ "$rc" -ne 0 ]; then
        fail "$name: mpirun -np $np dptrain train $* exited $rc (expected 0); stderr:"
        sed 's/^/    /' "$TMP/$name.err" >&2
        return 0
    fi
    python3 - "$TMP/$name/metrics.jsonl" "$np" "$EXPECT_STEPS" <<'EOF' || fail "$name: metrics.jsonl check"
import json, sys
path, np, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
last = [json.loads(l) for l in open(path) if l.strip()][-1]
if last["ranks"] != np or last["step"] != steps:
    sys.exit(f"{path}: last row has ranks={last['ranks']} step={last['step']}, "
             f"expected ranks={np} step={steps}")
EOF
}

# kill_search_after OUT LINES NP ARGS...: runs `dptrain ARGS --out OUT` on NP ranks in the
# background, SIGKILLs its newest rank once OUT/trials.jsonl (OUT/$KILL_WATCH when set) has LINES
# lines, and waits for the job. Returns 0 when it killed a running search that then exited
# non-zero, 1 otherwise (the caller checks the search was cut mid-way: fewer lines than its
# budget).
kill_search_after() {
    local out=$1 lines=$2 np=$3
    shift 3
    "${MPIRUN[@]}" -np "$np" "$DPTRAIN" "$@" --out "$out" >"$out.killed.log" 2>&1 &
    local job=$! victim
    for _ in $(seq 1 1000); do
        local watch=$out/${KILL_WATCH:-trials.jsonl}
        [ -f "$watch" ] && [ "$(wc -l <"$watch")" -ge "$lines" ] && break
        sleep 0.01
    done
    victim=$(pgrep -f -n "dptrain search .*--out $out" || true)
    if [ -z "$victim" ]; then
        wait "$job" || true
        return 1
    fi
    kill -9 "$victim"
    if wait "$job"; then return 1; fi
    return 0
}

# eval_matches_metrics RUN_DIR EVAL_JSON: eval's accuracy (eval --json) is exactly the
# test_accuracy of the last line of RUN_DIR/metrics.jsonl and its loss the test_loss to 1e-6
# relative (both write 9 digits of a mean over the same rows); a failure is counted.
eval_matches_metrics() {
    python3 - "$1/metrics.jsonl" "$2" <<'EOF' || fail "eval ($2) disagrees with $1/metrics.jsonl"
import json, sys
last = [json.loads(l) for l in open(sys.argv[1])][-1]
ev = json.load(open(sys.argv[2]))
print("eval accuracy %r loss %r; metrics.jsonl test_accuracy %r test_loss %r"
      % (ev["accuracy"], ev["loss"], last["test_accuracy"], last["test_loss"]))
sys.exit(0 if ev["accuracy"] == last["test_accuracy"] and
         abs(ev["loss"] - last["test_loss"]) <= 1e-6 * abs(last["test_loss"]) else 1)
EOF
}

# bad NAME SUBSTRING ARGS...: `dptrain ARGS` must exit 2 with SUBSTRING in its stderr (a usage
# error that names what is wrong); a failure is counted.
bad() { # NAME SUBSTRING ARGS...
    local name=$1 want=$2 rc=0
    shift 2
    "$DPTRAIN" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" || rc=$?
    if [ "$rc" -ne 2 ] || ! grep -qF -- "$want" "$TMP/$name.err"; then
        fail "$name: exit $rc (expected 2), stderr lacks '$want':"
        sed 's/^/    /' "$TMP/$name.err" >&2
    else
        echo "ok: $name: $(head -n1 "$TMP/$name.err")"
    fi
}

# Ends the test as skipped (77) unless DPTRAIN is the emulated CUDA build; then the emulated
# host offers $1 GPUs (DPT_EMU_DEVICES, exported).
require_emulated_gpus() {
    "$DPTRAIN" version | grep -q 'host emulation' || { echo "not the emulated build"; exit 77; }
    export DPT_EMU_DEVICES=$1
}

# ends_within PID SECONDS: waits up to SECONDS for process PID to end; 0 if it did, 1 if it runs
ends_within() {
    local _
    for _ in $(seq 1 $(($2 * 10))); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.1
    done
    ! kill -0 "$1" 2>/dev/null
}

# device_work NAME NP ARGS...: `bench train $CONFIG --steps 20 --warmup 2 ARGS` on NP ranks (the
# DPT_TEST_BF16_* and DPT_EMU_LT_* variables set passed on), its "device work" line of rank
# count NP into $TMP/NAME.counts as "launches syncs_min syncs_max copies"
device_work() {
    local name=$1 np=$2
    shift 2
    local xs=(-x DPT_EMU_DEVICES)
    [ -z "${DPT_TEST_BF16_PER_GEMM:-}" ] || xs+=(-x DPT_TEST_BF16_PER_GEMM)
    [ -z "${DPT_TEST_BF16_ACT_PER_GEMM:-}" ] || xs+=(-x DPT_TEST_BF16_ACT_PER_GEMM)
    [ -z "${DPT_EMU_LT_BF16_D_FP32_BIAS:-}" ] || xs+=(-x DPT_EMU_LT_BF16_D_FP32_BIAS)
    "${MPIRUN[@]}" -np "$np" "${xs[@]}" "$DPTRAIN" bench train "$CONFIG" --steps 20 \
        --warmup 2 "$@" >"$TMP/$name.out" 2>&1 || fail "$name: $(tail -3 "$TMP/$name.out")"
    sed -nE "s/^# device work per step on rank 0, $np ranks?: ([0-9.]+) launches, ([0-9]+) host syncs \(([0-9]+) in a step that reads the statistics\), ([0-9.]+) copies.*/\1 \2 \3 \4/p" \
        "$TMP/$name.out" >"$TMP/$name.counts"
    [ -s "$TMP/$name.counts" ] || fail "$name: no device work line: $(grep '^#' "$TMP/$name.out" | tail -3)"
}
