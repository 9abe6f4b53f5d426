#!/usr/bin/env bash
# scripts/slurm_job.sh under a real SLURM: a one-machine slurmctld + slurmd + munge started by
# scripts/slurm_one_node.sh (always stopped on exit), and the script submitted as the README
# tells users, on a CPU node: with mpirun (LAUNCHER default) and with srun --mpi=pmix
# (LAUNCHER=srun), both 2 ranks; each must exit 0 and train 2 ranks to the same checkpoint as
# mpirun outside SLURM; a job with a bad config must fail, its exit status and message coming back
# through sbatch. Skipped (exit 77, with the reason) when SLURM is not installed
# (scripts/setup.sh --with-schedulers installs it). Usage: slurm.sh DPTRAIN CKPT_DIFF
set -euo pipefail
source "$(dirname "$0")/lib.sh" "$@"
# shellcheck source-path=SCRIPTDIR source=scheduler_lib.sh
source "$(dirname "$0")/scheduler_lib.sh"
REPO=$(cd "$(dirname "$0")/../.." && pwd)
ONE_NODE=$REPO/scripts/slurm_one_node.sh

skip_unless_ready SLURM slurmctld slurmd munged sbatch srun

export SLURM_BASE=$TMP/slurm SLURM_PORT=$((20000 + $$ % 20000 * 2))
export SLURM_CONF=$SLURM_BASE/slurm.conf
trap '"$ONE_NODE" stop; rm -rf "$TMP"' EXIT
"$ONE_NODE" start || { fail "slurm_one_node.sh start"; finish; }

# the job inherits this environment (sbatch --export=ALL): root mpirun, no CMA in containers
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none DPTRAIN
cd "$REPO"

# the README's line for CPU nodes: 1 node, 2 tasks
SUBMIT_NODES=(--nodes=1 --ntasks-per-node=2)

EXPECT_STEPS=60 # synthetic_small: 2 epochs of 1800 rows in batches of 60
# the reference: the same 2 ranks under mpirun, outside SLURM
train_ranks ref 2 --device cpu
for launcher in mpirun srun; do
    rc=$(submit "$launcher" LAUNCHER=$launcher -- --device cpu --out "$TMP/$launcher")
    check_job "$launcher" "slurm LAUNCHER=$launcher" "$rc" \
        "slurm_job.sh: job [0-9]*: 2 ranks, 2 per node on 1 node"
done

# a bad config: the job fails with dptrain's exit status 2 and its message
rc=$(submit bad LAUNCHER=mpirun -- --set train.nonsense=1 --out "$TMP/bad")
[ "$rc" != 0 ] || fail "a job with a bad config key exited 0"
grep -q "train.nonsense" "$TMP/bad.log" || fail "the bad job's output does not name the bad key"
echo "slurm: bad config: the job exited $rc"
finish
