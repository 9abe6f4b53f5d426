# Shared by the real-scheduler tests (slurm.sh, slurm_two_nodes.sh, gridengine.sh), sourced after
# lib.sh: SLURM submission, and the checks of a finished job's outputs against the same training
# under plain mpirun ($TMP/ref).

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
# last row must say ${EXPECT_RANKS:-2} ranks took $EXPECT_STEPS steps, and $TMP/NAME/checkpoint.bin
# must be bitwise $TMP/${REF:-ref}'s (REF=none: not compared). On a non-zero STATUS it shows the submission's and the job's output.
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
    python3 - "$TMP/$name/metrics.jsonl" "$EXPECT_STEPS" "${EXPECT_RANKS:-2}" <<'PY' ||
import json, sys
last = [json.loads(l) for l in open(sys.argv[1]) if l.strip()][-1]
if last["ranks"] != int(sys.argv[3]) or last["step"] != int(sys.argv[2]):
    sys.exit(f"last row: ranks={last['ranks']} step={last['step']}, expected {sys.argv[3]} ranks")
PY
        fail "$what: metrics.jsonl"
    [ "${REF:-ref}" = none ] ||
        "$CKPT_DIFF" "$TMP/${REF:-ref}/checkpoint.bin" "$TMP/$name/checkpoint.bin" --bitwise \
        >/dev/null || fail "$what: the checkpoint differs from $TMP/${REF:-ref} (plain mpirun)"
}

# submit NAME [VAR=VALUE...] -- [dptrain args]: sbatch scripts/slurm_job.sh with SUBMIT_NODES
# (e.g. --nodes=1 --ntasks-per-node=2) and 1 CPU per task, through SLURM_CLIENT (a prefix that
# runs a client where slurmctld is reachable; empty: here); waits for the job (scontrol every
# 0.2 s: sbatch --wait polls every few seconds) and prints its exit code
SLURM_CLIENT=()
submit() {
    local name=$1 vars=() id state="" code=""
    shift
    while [ "$1" != -- ]; do vars+=("$1"); shift; done
    shift
    if ! id=$(env "${vars[@]}" "${SLURM_CLIENT[@]}" sbatch --parsable "${SUBMIT_NODES[@]}" \
        --cpus-per-task=1 --output="$TMP/$name.log" scripts/slurm_job.sh "$CONFIG" "$@" \
        2>"$TMP/$name.submit"); then
        echo "sbatch-failed"
        return 0
    fi
    for _ in $(seq 1 900); do # 180 s
        local info
        info=$("${SLURM_CLIENT[@]}" scontrol show job -o "$id" 2>/dev/null || true)
        state=$(sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' <<<"$info")
        code=$(sed -n 's/.* ExitCode=\([0-9]*\):\([0-9]*\).*/\1/p' <<<"$info")
        case $state in
            PENDING | CONFIGURING | RUNNING | COMPLETING | "") sleep 0.2 ;;
            *) echo "${code:-?}"; return 0 ;;
        esac
    done
    "${SLURM_CLIENT[@]}" scancel "$id" 2>/dev/null || true
    echo "timeout($state)"
}
