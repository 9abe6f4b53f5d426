#!/usr/bin/env bash
# The cluster job scripts (scripts/sge_job.sh, scripts/slurm_job.sh) cannot run here (no
# scheduler), so they run in their DRY_RUN=1 mode (or with MPIRUN=echo) under a fake SGE or SLURM
# environment: the hostfile built from $PE_HOSTFILE, the exact mpirun/srun lines, the warnings
# about slots that are not GPUs, and the refusals. Also bash -n, and shellcheck when installed.
#   usage: job_scripts.sh DPTRAIN CKPT_DIFF
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
SCRIPTS=$(cd "$(dirname "$0")/../../scripts" && pwd)
SGE=$SCRIPTS/sge_job.sh
SLURM=$SCRIPTS/slurm_job.sh

# expect NAME WANT GOT: exact comparison
expect() {
    if [ "$2" = "$3" ]; then
        echo "ok: $1"
    else
        fail "$1:"$'\n'"    expected: $2"$'\n'"    got:      $3"
    fi
}

# run_clean OUT ERR VAR=VALUE... -- COMMAND...: COMMAND in an environment of PATH, a fixed
# LD_LIBRARY_PATH and the given variables only (nothing from the caller's scheduler or NCCL
# settings); returns COMMAND's status
run_clean() {
    local out=$1 err=$2 vars=()
    shift 2
    while [ "$1" != -- ]; do vars+=("$1"); shift; done
    shift
    env -i PATH="$PATH" LD_LIBRARY_PATH=/opt/cuda/lib64 TMPDIR="$TMP" "${vars[@]}" "$@" \
        >"$out" 2>"$err"
}

for s in "$SGE" "$SLURM" "$SCRIPTS/emulate_cluster.sh" "$SCRIPTS/slurm_one_node.sh" \
    "$SCRIPTS/gridengine_one_node.sh"; do
    bash -n "$s" || fail "bash -n $s"
done
if command -v shellcheck >/dev/null; then
    if shellcheck -x "$SGE" "$SLURM" "$SCRIPTS/emulate_cluster.sh" "$SCRIPTS/slurm_one_node.sh" \
        "$SCRIPTS/gridengine_one_node.sh" >"$TMP/shellcheck.out"; then
        echo "ok: shellcheck clean"
    else
        fail "shellcheck:"; sed 's/^/    /' "$TMP/shellcheck.out" >&2
    fi
else
    echo "note: shellcheck not installed; only bash -n"
fi

FORWARD="-x PATH -x LD_LIBRARY_PATH -x NCCL_DEBUG -x OMP_NUM_THREADS -x OPENBLAS_NUM_THREADS"

# ---- SGE ---------------------------------------------------------------------------------------
# 1. allocation_rule 4 on 4-GPU hosts: 4 ranks per host
printf 'node01.cluster 4 all.q@node01.cluster UNDEFINED\nnode02.cluster 4 all.q@node02.cluster UNDEFINED\n' \
    >"$TMP/pe_whole"
run_clean "$TMP/sge1.out" "$TMP/sge1.err" PE_HOSTFILE="$TMP/pe_whole" JOB_ID=101 NSLOTS=8 \
    GPUS_PER_HOST=4 DRY_RUN=1 -- "$SGE" configs/fashion_mnist.yaml --set train.epochs=2 ||
    fail "sge whole hosts: exit $?"
expect "sge: hostfile from \$PE_HOSTFILE, 4 GPUs per host" \
    "node01.cluster slots=4 node02.cluster slots=4" "$(head -n 2 "$TMP/sge1.out" | tr '\n' ' ' | sed 's/ $//')"
expect "sge: mpirun line" \
    "mpirun -np 8 --hostfile $TMP/dptrain_hosts.101 --map-by slot --bind-to none $FORWARD build/dptrain train configs/fashion_mnist.yaml --set train.epochs=2" \
    "$(sed -n 3p "$TMP/sge1.out")"
expect "sge: the hostfile on the mpirun line holds the hosts" \
    "node01.cluster slots=4 node02.cluster slots=4" "$(tr '\n' ' ' <"$TMP/dptrain_hosts.101" | sed 's/ $//')"
! grep -q warning "$TMP/sge1.err" || fail "sge whole hosts: a warning: $(cat "$TMP/sge1.err")"

# 2. the orte PE's round-robin: 3+3+2 slots on 2-GPU hosts -> 2+2+2 ranks, and a warning
printf 'node01 3 all.q@node01 UNDEFINED\nnode02 3 all.q@node02 UNDEFINED\nnode03 2 all.q@node03 UNDEFINED\n' \
    >"$TMP/pe_rr"
run_clean "$TMP/sge2.out" "$TMP/sge2.err" PE_HOSTFILE="$TMP/pe_rr" JOB_ID=102 GPUS_PER_HOST=2 \
    NCCL_DEBUG=WARN NCCL_SOCKET_IFNAME=ib0 MPI_IFACE=10.1.0.0/16 DRY_RUN=1 -- \
    "$SGE" bench allreduce -b 8 -e 1M || fail "sge round-robin: exit $?"
expect "sge: round-robin slots capped at GPUs per host" \
    "node01 slots=2 node02 slots=2 node03 slots=2" "$(head -n 3 "$TMP/sge2.out" | tr '\n' ' ' | sed 's/ $//')"
expect "sge: mpirun line with an interface, NCCL_SOCKET_IFNAME, a bench command" \
    "mpirun -np 6 --hostfile $TMP/dptrain_hosts.102 --map-by slot --bind-to none --mca btl_tcp_if_include 10.1.0.0/16 --mca oob_tcp_if_include 10.1.0.0/16 -x PATH -x LD_LIBRARY_PATH -x NCCL_DEBUG -x NCCL_SOCKET_IFNAME -x OMP_NUM_THREADS -x OPENBLAS_NUM_THREADS build/dptrain bench allreduce -b 8 -e 1M" \
    "$(sed -n 4p "$TMP/sge2.out")"
grep -q "8 slots granted, 6 ranks.*allocation_rule 2" "$TMP/sge2.err" ||
    fail "sge round-robin: no warning about the allocation rule; stderr: $(cat "$TMP/sge2.err")"

# 3. binding per socket: whole hosts only
run_clean "$TMP/sge3.out" "$TMP/sge3.err" PE_HOSTFILE="$TMP/pe_whole" JOB_ID=103 GPUS_PER_HOST=4 \
    BIND=socket DRY_RUN=1 -- "$SGE" configs/x.yaml || fail "sge BIND=socket: exit $?"
expect "sge: BIND=socket" \
    "mpirun -np 8 --hostfile $TMP/dptrain_hosts.103 --map-by ppr:2:socket --bind-to socket $FORWARD build/dptrain train configs/x.yaml" \
    "$(sed -n 3p "$TMP/sge3.out")"
rc=0
run_clean "$TMP/sge4.out" "$TMP/sge4.err" PE_HOSTFILE="$TMP/pe_rr" GPUS_PER_HOST=4 BIND=socket \
    DRY_RUN=1 -- "$SGE" configs/x.yaml || rc=$?
expect "sge: BIND=socket on partial hosts is refused (exit 2)" 2 "$rc"

# 4. not in an SGE job
rc=0
run_clean "$TMP/sge5.out" "$TMP/sge5.err" DRY_RUN=1 -- "$SGE" configs/x.yaml || rc=$?
expect "sge: without \$PE_HOSTFILE: exit 2" 2 "$rc"
grep -q "PE_HOSTFILE" "$TMP/sge5.err" || fail "sge without \$PE_HOSTFILE: message: $(cat "$TMP/sge5.err")"

# 5. the real exec path, with mpirun replaced by echo
run_clean "$TMP/sge6.out" "$TMP/sge6.err" PE_HOSTFILE="$TMP/pe_whole" JOB_ID=106 GPUS_PER_HOST=4 \
    MPIRUN=echo -- "$SGE" configs/x.yaml || fail "sge MPIRUN=echo: exit $?"
expect "sge: MPIRUN=echo runs the same line" \
    "-np 8 --hostfile $TMP/dptrain_hosts.106 --map-by slot --bind-to none $FORWARD build/dptrain train configs/x.yaml" \
    "$(cat "$TMP/sge6.out")"

# ---- SLURM -------------------------------------------------------------------------------------
SL=(SLURM_JOB_ID=201 SLURM_JOB_NUM_NODES=2 SLURM_NTASKS=8 SLURM_NTASKS_PER_NODE=4
    SLURM_TASKS_PER_NODE='4(x2)' SLURM_GPUS_PER_NODE=a100:4 SLURM_JOB_NODELIST='gpu[01-02]')
run_clean "$TMP/sl1.out" "$TMP/sl1.err" "${SL[@]}" DRY_RUN=1 -- \
    "$SLURM" configs/fashion_mnist.yaml --resume || fail "slurm mpirun: exit $?"
expect "slurm: mpirun line" \
    "mpirun -np 8 --map-by ppr:4:node --bind-to none $FORWARD build/dptrain train configs/fashion_mnist.yaml --resume" \
    "$(cat "$TMP/sl1.out")"
! grep -q warning "$TMP/sl1.err" || fail "slurm 2x4 with 4 GPUs: a warning: $(cat "$TMP/sl1.err")"

run_clean "$TMP/sl2.out" "$TMP/sl2.err" "${SL[@]}" LAUNCHER=srun DRY_RUN=1 -- \
    "$SLURM" configs/fashion_mnist.yaml || fail "slurm srun: exit $?"
expect "slurm: srun line" \
    "srun --mpi=pmix --ntasks-per-node=4 --cpu-bind=none --export=ALL build/dptrain train configs/fashion_mnist.yaml" \
    "$(cat "$TMP/sl2.out")"

run_clean "$TMP/sl3.out" "$TMP/sl3.err" "${SL[@]}" BIND=socket MPIRUN=echo -- \
    "$SLURM" configs/x.yaml || fail "slurm BIND=socket: exit $?"
expect "slurm: BIND=socket, mpirun replaced by echo" \
    "-np 8 --map-by ppr:2:socket --bind-to socket $FORWARD build/dptrain train configs/x.yaml" \
    "$(cat "$TMP/sl3.out")"

# tasks per node taken from SLURM_TASKS_PER_NODE alone, and more tasks than GPUs: a warning
run_clean "$TMP/sl4.out" "$TMP/sl4.err" SLURM_JOB_ID=204 SLURM_NNODES=3 SLURM_TASKS_PER_NODE='2(x3)' \
    SLURM_GPUS_PER_NODE=1 DRY_RUN=1 -- "$SLURM" configs/x.yaml || fail "slurm 3x2: exit $?"
expect "slurm: 3 nodes x 2 from SLURM_TASKS_PER_NODE" \
    "mpirun -np 6 --map-by ppr:2:node --bind-to none $FORWARD build/dptrain train configs/x.yaml" \
    "$(cat "$TMP/sl4.out")"
grep -q "2 tasks per node but 1 GPUs per node" "$TMP/sl4.err" ||
    fail "slurm: no warning for more tasks than GPUs; stderr: $(cat "$TMP/sl4.err")"

rc=0
run_clean "$TMP/sl5.out" "$TMP/sl5.err" DRY_RUN=1 -- "$SLURM" configs/x.yaml || rc=$?
expect "slurm: outside an allocation: exit 2" 2 "$rc"


# ---- CPU-only nodes (a debug partition, a CPU cluster) -----------------------------------------
# SLURM without GPUs: SLURM_GPUS_PER_NODE unset, or 0 (--gpus-per-node=0): no warning, same line
for g in unset 0; do
    gv=()
    [ "$g" = unset ] || gv=(SLURM_GPUS_PER_NODE=$g)
    run_clean "$TMP/slc$g.out" "$TMP/slc$g.err" SLURM_JOB_ID=205 SLURM_JOB_NUM_NODES=1 \
        SLURM_NTASKS=2 SLURM_NTASKS_PER_NODE=2 "${gv[@]}" DRY_RUN=1 -- "$SLURM" configs/x.yaml ||
        fail "slurm CPU ($g GPUs): exit $?"
    expect "slurm: CPU nodes (SLURM_GPUS_PER_NODE $g): mpirun line" \
        "mpirun -np 2 --map-by ppr:2:node --bind-to none $FORWARD build/dptrain train configs/x.yaml" \
        "$(cat "$TMP/slc$g.out")"
    ! grep -q warning "$TMP/slc$g.err" || fail "slurm CPU ($g GPUs): a warning: $(cat "$TMP/slc$g.err")"
    grep -q "no GPUs requested" "$TMP/slc$g.err" || fail "slurm CPU ($g GPUs): no note on the CPU backend"
done
if grep -q '^#SBATCH --gpus' "$SLURM"; then
    fail "slurm_job.sh asks for GPUs in its directives: sbatch refuses it on clusters without GPU gres"
fi

# SGE on hosts without GPUs (nvidia-smi lists none): one rank per slot granted, no warning
mkdir -p "$TMP/nogpu"
printf '#!/bin/sh\nexit 9\n' >"$TMP/nogpu/nvidia-smi"
chmod +x "$TMP/nogpu/nvidia-smi"
run_clean "$TMP/sgec.out" "$TMP/sgec.err" PATH="$TMP/nogpu:$PATH" PE_HOSTFILE="$TMP/pe_rr" \
    JOB_ID=107 DRY_RUN=1 -- "$SGE" configs/x.yaml || fail "sge CPU hosts: exit $?"
expect "sge: CPU hosts: one rank per slot" \
    "node01 slots=3 node02 slots=3 node03 slots=2" "$(head -n 3 "$TMP/sgec.out" | tr '\n' ' ' | sed 's/ $//')"
expect "sge: CPU hosts: mpirun line" \
    "mpirun -np 8 --hostfile $TMP/dptrain_hosts.107 --map-by slot --bind-to none $FORWARD build/dptrain train configs/x.yaml" \
    "$(sed -n 4p "$TMP/sgec.out")"
! grep -q warning "$TMP/sgec.err" || fail "sge CPU hosts: a warning: $(cat "$TMP/sgec.err")"

finish
