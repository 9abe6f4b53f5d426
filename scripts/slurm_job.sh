#!/bin/bash
#SBATCH --job-name=dptrain
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --cpus-per-task=8
#SBATCH --time=02:00:00
#SBATCH --output=dptrain-%j.out
# SLURM batch script: dptrain with one MPI rank per GPU.
#
#   sbatch scripts/slurm_job.sh CONFIG.yaml [dptrain train options]
#   sbatch --nodes=4 scripts/slurm_job.sh configs/fashion_mnist.yaml
#   sbatch scripts/slurm_job.sh bench allreduce -b 8 -e 128M       (any dptrain command)
#   LAUNCHER=srun sbatch scripts/slurm_job.sh CONFIG.yaml
#
# The directives above ask for 2 nodes with 4 tasks (ranks) each. On GPU nodes ask for the GPUs
# on the sbatch line, one task per GPU: `sbatch --gpus-per-node=4 ...`, --ntasks-per-node equal
# to --gpus-per-node (override both for other nodes). The script asks for no GPUs itself, because
# sbatch refuses a GPU request on a cluster without GPU gres ("Invalid generic resource"): on
# CPU-only nodes it runs as it is, the ranks on the CPU backend (e.g. a debug partition:
# `sbatch --nodes=1 --ntasks-per-node=2 --cpus-per-task=1 scripts/slurm_job.sh CONFIG.yaml`).
# --cpus-per-task = the node's cores / tasks, so each rank's threads have cores of their own.
# GPU choice (docs/gpu.md): a rank that sees one GPU takes it (--gpus-per-task=1 or --gpu-bind
# work); a rank that sees several takes the one at its local rank. Two ranks on one GPU stop.
# sbatch starts the script in the submit directory: build/dptrain and configs/ are relative to it.
#
# Environment (all optional):
#   LAUNCHER       mpirun (default: Open MPI reads the SLURM allocation and starts its daemons
#                  with srun) or srun (SLURM starts the ranks itself; needs SLURM built with
#                  PMIx: SRUN_MPI, default pmix, e.g. pmix_v3 or pmi2 per `srun --mpi=list`)
#   DPTRAIN        the binary (default build/dptrain)
#   BIND           none (default) or socket, see "Binding" below; SOCKETS sockets per node (2)
#   MPI_IFACE      interface or subnet for Open MPI's TCP traffic (e.g. eth0, 10.0.0.0/16)
#   NCCL_DEBUG     default INFO: NCCL prints at start-up which transports (NVLink, PCIe, IB,
#                  sockets) and interfaces it chose, the first thing to read when a multi-node
#                  run hangs or is slow; set WARN once it works
#   NCCL_SOCKET_IFNAME  the inter-node interface for NCCL (e.g. eth0, ib0, or ^docker,lo) when
#                  nodes have several: NCCL otherwise takes the first one it finds
#   OMP_NUM_THREADS, OPENBLAS_NUM_THREADS  default 1: dptrain sets its own BLAS threads from
#                  run.threads at start-up; these only keep libraries from starting one thread
#                  per core in every rank first
#   DRY_RUN=1      print the launch line instead of running (tests use it)
#   MPIRUN         the launcher binary for LAUNCHER=mpirun (default mpirun)
#   OMPI_MCA_oob_tcp_keepalive_time, _intvl, _probes  default 10, 5, 4: how soon mpirun notices
#                  that a host's daemon is cut off (a dead switch port, a crashed node) and ends
#                  the job: about 30 s (Open MPI's default: about 8 minutes). dptrain's watchdog
#                  names the ranks behind the cut first when run.comm_timeout_s is under about
#                  25 s (docs/faults.md); an abort cannot reach such a host, so the end is mpirun's
#
# Binding: none by default. A rank's CPU work on a GPU node is its GPU's feeder (kernel launches,
# NCCL's proxy thread, batch gathering, host BLAS when staged); Open MPI's default binds each
# rank to one core (np <= 2) or packs ranks onto socket 0's cores in order, which serializes
# those threads. BIND=socket maps ranks-per-node/SOCKETS ranks to each socket and binds each to
# its socket: with the usual wiring (GPUs 0..G/2-1 on socket 0) a rank's host memory and threads
# are then near its GPU; check with `nvidia-smi topo -m`.
#
# The exact commands this script runs (G = tasks per node, N = tasks, BIND=none):
#   mpirun -np N --map-by ppr:G:node --bind-to none \
#          -x PATH -x LD_LIBRARY_PATH -x NCCL_DEBUG -x OMP_NUM_THREADS -x OPENBLAS_NUM_THREADS \
#          [-x NCCL_SOCKET_IFNAME] [-x CUDA_VISIBLE_DEVICES] build/dptrain train CONFIG [options]
#   srun --mpi=pmix --ntasks-per-node=G --cpu-bind=none --export=ALL build/dptrain train CONFIG
#   (srun passes the whole environment, so it needs no -x)
# The script is self-contained: sbatch copies it into its spool directory, so it cannot source
# files beside it (scripts/sge_job.sh repeats the same choices for SGE).
set -euo pipefail

die() { echo "slurm_job.sh: $*" >&2; exit 2; }
warn() { echo "slurm_job.sh: warning: $*" >&2; }

[ $# -ge 1 ] || die "usage: sbatch scripts/slurm_job.sh CONFIG.yaml [dptrain train options]"
[ -n "${SLURM_JOB_ID:-}" ] || die "not inside a SLURM allocation: submit with sbatch"

# ranks per node: --ntasks-per-node (SLURM_NTASKS_PER_NODE), else the first node's count in
# SLURM_TASKS_PER_NODE ("4(x2)" or "4,3")
G=${SLURM_NTASKS_PER_NODE:-${SLURM_TASKS_PER_NODE:-1}}
G=${G%%[(,]*}
NODES=${SLURM_JOB_NUM_NODES:-${SLURM_NNODES:-1}}
NP=${SLURM_NTASKS:-$((G * NODES))}
if ! [[ $G =~ ^[1-9][0-9]*$ ]] || ! [[ $NP =~ ^[1-9][0-9]*$ ]]; then
    die "cannot tell the tasks per node from SLURM_NTASKS_PER_NODE/SLURM_TASKS_PER_NODE"
fi
# --gpus-per-node may carry a type: "a100:4"
gpus=${SLURM_GPUS_PER_NODE:-}
gpus=${gpus##*:}
if [ -z "$gpus" ] || [ "$gpus" = 0 ]; then # a CPU partition, or GPUs not requested
    echo "slurm_job.sh: no GPUs requested (--gpus-per-node): the ranks train on the CPU" \
        "backend unless they see GPUs" >&2
elif [ "$gpus" != "$G" ]; then
    warn "$G tasks per node but $gpus GPUs per node: dptrain runs one rank per GPU"
fi
[ "$NP" -eq $((G * NODES)) ] ||
    warn "$NP tasks on $NODES nodes is not $G per node: set --ntasks-per-node, not --ntasks"

LAUNCHER=${LAUNCHER:-mpirun}
DPTRAIN=${DPTRAIN:-build/dptrain}
BIND=${BIND:-none}
SOCKETS=${SOCKETS:-2}
MPIRUN=${MPIRUN:-mpirun}
export NCCL_DEBUG=${NCCL_DEBUG:-INFO}
export OMPI_MCA_oob_tcp_keepalive_time=${OMPI_MCA_oob_tcp_keepalive_time:-10}
export OMPI_MCA_oob_tcp_keepalive_intvl=${OMPI_MCA_oob_tcp_keepalive_intvl:-5}
export OMPI_MCA_oob_tcp_keepalive_probes=${OMPI_MCA_oob_tcp_keepalive_probes:-4}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}

case $1 in
    train | search | bench | version | selftest) args=("$@") ;;
    *) args=(train "$@") ;;
esac

case $LAUNCHER:$BIND in
    mpirun:none) placement=(--map-by "ppr:$G:node" --bind-to none) ;;
    mpirun:socket)
        [ $((G % SOCKETS)) -eq 0 ] || die "BIND=socket: $G ranks per node over $SOCKETS sockets"
        placement=(--map-by "ppr:$((G / SOCKETS)):socket" --bind-to socket) ;;
    srun:none) placement=(--cpu-bind=none) ;;
    # block:block: local ranks 0..G/2-1 on socket 0 like the GPUs (srun's default within a node,
    # cyclic, would alternate sockets)
    srun:socket) placement=(--distribution=block:block --cpu-bind=sockets) ;;
    *) die "LAUNCHER=$LAUNCHER BIND=$BIND: expected LAUNCHER mpirun|srun, BIND none|socket" ;;
esac

if [ "$LAUNCHER" = mpirun ]; then
    # forward only what is set (Open MPI warns about each -x of an unset variable)
    forward=()
    for v in PATH LD_LIBRARY_PATH NCCL_DEBUG NCCL_SOCKET_IFNAME NCCL_IB_HCA CUDA_VISIBLE_DEVICES \
        OMP_NUM_THREADS OPENBLAS_NUM_THREADS; do
        [ -z "${!v+x}" ] || forward+=(-x "$v")
    done
    iface=()
    if [ -n "${MPI_IFACE:-}" ]; then
        iface=(--mca btl_tcp_if_include "$MPI_IFACE" --mca oob_tcp_if_include "$MPI_IFACE")
    fi
    cmd=("$MPIRUN" -np "$NP" "${placement[@]}" "${iface[@]}" "${forward[@]}" "$DPTRAIN" "${args[@]}")
else
    cmd=(srun "--mpi=${SRUN_MPI:-pmix}" "--ntasks-per-node=$G" "${placement[@]}" --export=ALL
        "$DPTRAIN" "${args[@]}")
fi

echo "slurm_job.sh: job $SLURM_JOB_ID: $NP ranks, $G per node on $NODES node(s)" \
    "${SLURM_JOB_NODELIST:+($SLURM_JOB_NODELIST)}" >&2
if [ "${DRY_RUN:-0}" = 1 ]; then
    printf '%q ' "${cmd[@]}" | sed 's/ $//'
    echo
    exit 0
fi
exec "${cmd[@]}"
