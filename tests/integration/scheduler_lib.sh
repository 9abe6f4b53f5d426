# Shared by the real-scheduler tests (slurm.sh, gridengine.sh), sourced after lib.sh: the checks
# of a finished 2-rank job's outputs against the same training under plain mpirun ($TMP/ref).

# skip_unless_ready SCHEDULER COMMAND...: exits 77 (ctest's skip), saying why, unless every
# COMMAND is installed and this runs as root (the one-machine schedulers' daemons run as root)
skip_unless_ready() {
    local what=$1 c
    shift
    for c in "$@"; do
        if ! command -v "$c" >/dev/null; then
            echo "SKIPPED: $c not installed (scripts/setup.sh --with-schedulers installs $what)"
            exit 77
        fi
    done
    if [ "$(id -u)" != 0 ]; then
        echo "SKIPPED: the one-machine $what runs its daemons as root"
        exit 77
    fi
}

# check_job NAME WHAT STATUS LINE: the job NAME (WHAT in failures) exited STATUS; it must be 0,
# its output $TMP/NAME.log must hold a line matching LINE and no warning, $TMP/NAME/metrics.jsonl's
# last row must say 2 ranks took $EXPECT_STEPS steps, and $TMP/NAME/checkpoint.bin must be
# bitwise $TMP/ref's. On a non-zero STATUS it shows the submission's and the job's output.
check_job() {
    local name=$1 what=$2 status=$3 line=$4
    echo "$what: the job exited $status"
    if [ "$status" != 0 ]; then
        fail "$what: the job exited $status (expected 0); its output:"
        sed 's/^/    /' "$TMP/$name.submit" "$TMP/$name.log" >&2 || true
        return 0
    fi
    grep -q "$line" "$TMP/$name.log" || fail "$what: no line '$line' in the job's output"
    if grep -q "warning" "$TMP/$name.log"; then
        fail "$what: a warning on a CPU node: $(grep warning "$TMP/$name.log")"
    fi
    python3 - "$TMP/$name/metrics.jsonl" "$EXPECT_STEPS" <<'PY' || fail "$what: metrics.jsonl"
import json, sys
last = [json.loads(l) for l in open(sys.argv[1]) if l.strip()][-1]
if last["ranks"] != 2 or last["step"] != int(sys.argv[2]):
    sys.exit(f"last row: ranks={last['ranks']} step={last['step']}, expected 2 ranks")
PY
    "$CKPT_DIFF" "$TMP/ref/checkpoint.bin" "$TMP/$name/checkpoint.bin" --bitwise >/dev/null ||
        fail "$what: the checkpoint differs from mpirun -np 2 outside the scheduler"
}
