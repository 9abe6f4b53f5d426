#!/usr/bin/env bash
# scripts/slurm_job.sh under a real two-node SLURM: one slurmd on each of two machines of the
# emulated cluster (scripts/emulate_cluster.sh: network namespaces h0, h1, each its own hostname
# and address; slurmctld in the head namespace), started by `EMULATED=2
# scripts/slurm_one_node.sh start` and always stopped. Jobs submitted as the README tells users,
# on CPU nodes, cross "machines" through the real scheduler and launcher: 2 nodes x 1 rank with
# mpirun (Open MPI starts its daemons on the nodes with srun), 2 x 2 with mpirun and with
# srun --mpi=pmix. Each must exit 0, report its ranks on both hosts, and train the same model as
# plain mpirun (2 x 1 bitwise as `mpirun -np 2`; the two 2 x 2 launches bitwise as each other).
# Skipped (77, with the reason) without SLURM, root or network namespaces.
# Usage: slurm_two_nodes.sh DPTRAIN CKPT_DIFF
set -euo pipefail
source "$(dirname "$0")/lib.sh" "$@"
# shellcheck source-path=SCRIPTDIR source=scheduler_lib.sh
source "$(dirname "$0")/scheduler_lib.sh"
skip_unless_ready SLURM slurmctld slurmd munged sbatch srun
# shellcheck source-path=SCRIPTDIR source=netns_lib.sh
source "$(dirname "$0")/netns_lib.sh" s
REPO=$(cd "$(dirname "$0")/../.." && pwd)
ONE_NODE=$REPO/scripts/slurm_one_node.sh

export EMULATED=2 CPUS=2 SLURM_BASE=$TMP/slurm SLURM_PORT=$((20000 + $$ % 20000 * 2))
export SLURM_CONF=$SLURM_BASE/slurm.conf
trap '"$ONE_NODE" stop; "$EMU" down >/dev/null 2>&1 || true; rm -rf "$TMP"' EXIT
"$ONE_NODE" start || { fail "EMULATED=2 slurm_one_node.sh start"; finish; }
SLURM_CLIENT=("$ONE_NODE" client)

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none DPTRAIN
cd "$REPO"
EXPECT_STEPS=60 # synthetic_small: 2 epochs of 1800 rows in batches of 60

train_ranks ref 2 --device cpu
SUBMIT_NODES=(--nodes=2 --ntasks-per-node=1)
rc=$(submit two_by_one LAUNCHER=mpirun -- --device cpu --out "$TMP/two_by_one")
check_job two_by_one "slurm 2 x 1, mpirun" "$rc" "ranks .*2 ranks on 2 hosts: h0 (1), h1 (1)"

SUBMIT_NODES=(--nodes=2 --ntasks-per-node=2)
EXPECT_RANKS=4 REF=none
rc=$(submit two_by_two LAUNCHER=mpirun -- --device cpu --out "$TMP/two_by_two")
check_job two_by_two "slurm 2 x 2, mpirun" "$rc" "ranks .*4 ranks on 2 hosts: h0 (2), h1 (2)"
REF=two_by_two
rc=$(submit two_by_two_srun LAUNCHER=srun -- --device cpu --out "$TMP/two_by_two_srun")
check_job two_by_two_srun "slurm 2 x 2, srun --mpi=pmix" "$rc" \
    "ranks .*4 ranks on 2 hosts: h0 (2), h1 (2)"
finish
