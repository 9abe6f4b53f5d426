#!/usr/bin/env bash
# scripts/sge_job.sh under a real Grid Engine: Son of Grid Engine on this machine with
# StarCluster's `orte` parallel environment, started by scripts/gridengine_one_node.sh (always
# stopped on exit), and the script submitted as the README tells users (`qsub -pe orte 2
# scripts/sge_job.sh CONFIG`) on a host without GPUs: one rank per slot, so 2 ranks, exit 0, the
# same checkpoint as mpirun -np 2 outside Grid Engine; a job with a bad config must fail with
# dptrain's exit status (qacct). Skipped (exit 77, with the reason) when Grid Engine is not
# installed (scripts/setup.sh --with-schedulers) or already running. Usage: gridengine.sh
# DPTRAIN CKPT_DIFF
set -euo pipefail
source "$(dirname "$0")/lib.sh" "$@"
# shellcheck source-path=SCRIPTDIR source=scheduler_lib.sh
source "$(dirname "$0")/scheduler_lib.sh"
REPO=$(cd "$(dirname "$0")/../.." && pwd)
ONE_NODE=$REPO/scripts/gridengine_one_node.sh
export SGE_ROOT=/var/lib/gridengine SGE_CELL=default

skip_unless_ready "Grid Engine" sge_qmaster sge_execd qsub qacct
pid_file=/var/spool/gridengine/qmaster/qmaster.pid
if [ -s "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
    echo "SKIPPED: a Grid Engine qmaster already runs here (pid $(cat "$pid_file")); Debian's" \
        "has one fixed spool, so this test needs it to itself"
    exit 77
fi

trap '"$ONE_NODE" stop >/dev/null; rm -rf "$TMP"' EXIT
"$ONE_NODE" start 2>"$TMP/start.err" || {
    fail "gridengine_one_node.sh start:"
    sed 's/^/    /' "$TMP/start.err" >&2
    finish
}

# the job gets this environment (the script's -V): root mpirun, no CMA in containers, and a
# machine without GPUs even where nvidia-smi lists some
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none DPTRAIN
mkdir -p "$TMP/nogpu"
printf '#!/bin/sh\nexit 9\n' >"$TMP/nogpu/nvidia-smi"
chmod +x "$TMP/nogpu/nvidia-smi"
export PATH=$TMP/nogpu:$PATH
cd "$REPO"

# submit NAME [dptrain args]: qsub -pe orte 2 as the README says; waits (120 s at most) and
# prints the job's exit status from qacct
submit() {
    local name=$1 id status=""
    shift
    if ! id=$(qsub -terse -pe orte 2 -o "$TMP/$name.log" scripts/sge_job.sh "$CONFIG" "$@" \
        2>"$TMP/$name.submit"); then
        echo "qsub-failed"
        return 0
    fi
    for _ in $(seq 1 600); do
        qstat -j "$id" >/dev/null 2>&1 || break
        sleep 0.2
    done
    for _ in $(seq 1 50); do # the accounting record follows the job's end
        status=$(qacct -j "$id" 2>/dev/null | awk '$1 == "exit_status" { print $2 }')
        [ -z "$status" ] || break
        sleep 0.2
    done
    rm -f "/tmp/dptrain_hosts.$id" # sge_job.sh's hostfile ($TMPDIR is unset in these jobs)
    echo "${status:-unknown}"
}

EXPECT_STEPS=60 # synthetic_small: 2 epochs of 1800 rows in batches of 60
train_ranks ref 2 --device cpu

rc=$(submit orte --device cpu --out "$TMP/orte")
check_job orte "qsub -pe orte 2 scripts/sge_job.sh" "$rc" \
    "sge_job.sh: job [0-9]*: 2 ranks, one per slot per host"

rc=$(submit bad --set train.nonsense=1 --out "$TMP/bad")
echo "gridengine: bad config: exit status $rc"
[ "$rc" = 2 ] || fail "a job with a bad config key: exit status $rc (expected dptrain's 2)"
grep -q "train.nonsense" "$TMP/bad.log" || fail "the bad job's output does not name the bad key"
finish
