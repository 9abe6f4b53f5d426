#!/bin/bash
#$ -S /bin/bash
#$ -N dptrain
#$ -cwd
#$ -j y
#$ -V
# SGE job script (Sun/Oracle/Son of Grid Engine, StarCluster): dptrain with one MPI rank per GPU.
#
#   qsub -pe orte N scripts/sge_job.sh CONFIG.yaml [dptrain train options]
#   qsub -pe orte N scripts/sge_job.sh bench allreduce -b 8 -e 128M     (any dptrain command)
#   e.g. GPUS_PER_HOST=4 qsub -pe gpu 8 scripts/sge_job.sh configs/fashion_mnist.yaml
#
# The directives above: bash, run in the submit directory (paths like build/dptrain and configs/
# are relative to it), stdout and stderr in one dptrain.oJOBID, and -V to carry the submit
# shell's environment (PATH, LD_LIBRARY_PATH, NCCL_*) into the job.
#
# Slots are not GPUs. StarCluster's `orte` parallel environment has allocation_rule $round_robin
# over CPU slots: `-pe orte 8` on 4-GPU hosts with 8 cores each may give 3+3+2 slots on three
# hosts, or all 8 on one, while dptrain needs exactly one rank per GPU (more ranks than GPUs on a
# host stops the job). Two ways to get a fixed number of ranks per host:
#   1. (best) a parallel environment whose allocation_rule is the number of GPUs per host, and N a
#      multiple of it. As root on the master (`qconf -ap gpu`, then add `gpu` to the queue's
#      pe_list with `qconf -mq all.q`):
#          pe_name            gpu
#          slots              9999
#          allocation_rule    4        # = GPUs per host: every host gets exactly 4 ranks
#          control_slaves     TRUE     # tight integration: mpirun starts its daemons via qrsh
#          job_is_first_task  FALSE
#          start_proc_args    /bin/true
#          stop_proc_args     /bin/true
#      and request whole hosts' GPUs: `qsub -pe gpu 8 ...` = 2 hosts x 4 GPUs.
#   2. (any PE) this script writes its own hostfile from $PE_HOSTFILE with slots = min(slots
#      granted, GPUS_PER_HOST) per host and starts that many ranks; it warns when that is fewer
#      than the slots granted (the rest of the allocation stays idle).
# Open MPI built with SGE support (Debian's is) reads the allocation and starts its daemons
# through `qrsh -inherit` (control_slaves TRUE), so no ssh between nodes is needed.
#
# Environment (all optional):
#   GPUS_PER_HOST  ranks per host (default: GPUs that nvidia-smi lists on this host; on a host
#                  without GPUs, one rank per slot granted: the CPU backend)
#   DPTRAIN        the binary (default build/dptrain, relative to the submit directory)
#   BIND           none (default) or socket, see "Binding" below; SOCKETS sockets per host (2)
#   MPI_IFACE      interface or subnet for Open MPI's TCP traffic (e.g. eth0, 10.0.0.0/16)
#   NCCL_DEBUG     default INFO: NCCL prints at start-up which transports (NVLink, PCIe, IB,
#                  sockets) and interfaces it chose, the first thing to read when a multi-host
#                  run hangs or is slow; set WARN once it works
#   NCCL_SOCKET_IFNAME  the inter-host interface for NCCL (e.g. eth0, ib0, or ^docker,lo) when
#                  hosts have several: NCCL otherwise takes the first one it finds
#   OMP_NUM_THREADS, OPENBLAS_NUM_THREADS  default 1: dptrain sets its own BLAS threads from
#                  run.threads at start-up; these only keep libraries from starting one thread
#                  per core in every rank first
#   DRY_RUN=1      print the hostfile and the mpirun line instead of running (tests use it)
#   MPIRUN         the launcher (default mpirun)
#   OMPI_MCA_oob_tcp_keepalive_time, _intvl, _probes  default 10, 5, 4: how soon mpirun notices
#                  that a host's daemon is cut off (a dead switch port, a crashed node) and ends
#                  the job: about 30 s (Open MPI's default: about 8 minutes). dptrain's watchdog
#                  names the ranks behind the cut first when run.comm_timeout_s is under about
#                  25 s (docs/faults.md); an abort cannot reach such a host, so the end is mpirun's
#
# Binding: --bind-to none by default. A rank's CPU work on a GPU host is its GPU's feeder (kernel
# launches, NCCL's proxy thread, batch gathering, host BLAS when staged); Open MPI's default
# binds each rank to one core (np <= 2) or packs ranks onto socket 0's cores in order, which
# serializes those threads. BIND=socket maps GPUS_PER_HOST/SOCKETS ranks to each socket and binds
# each to its socket: with the usual wiring (GPUs 0..G/2-1 on socket 0) a rank's host memory and
# threads are then near its GPU (local rank = device index); check with `nvidia-smi topo -m`.
#
# The exact command this script runs (G = GPUs per host, N = ranks, BIND=none):
#   mpirun -np N --hostfile HOSTFILE --map-by slot --bind-to none \
#          -x PATH -x LD_LIBRARY_PATH -x NCCL_DEBUG -x OMP_NUM_THREADS -x OPENBLAS_NUM_THREADS \
#          [-x NCCL_SOCKET_IFNAME] [-x CUDA_VISIBLE_DEVICES] build/dptrain train CONFIG [options]
# The script is self-contained: qsub copies it into the spool directory, so it cannot source
# files beside it (scripts/slurm_job.sh repeats the same choices for SLURM).
set -euo pipefail

die() { echo "sge_job.sh: $*" >&2; exit 2; }
warn() { echo "sge_job.sh: warning: $*" >&2; }

[ $# -ge 1 ] || die "usage: qsub -pe PE N scripts/sge_job.sh CONFIG.yaml [dptrain train options]"
if [ -z "${PE_HOSTFILE:-}" ] || [ ! -r "$PE_HOSTFILE" ]; then
    die "no readable \$PE_HOSTFILE: submit with qsub -pe PE N (this runs inside an SGE job)"
fi

if [ -z "${GPUS_PER_HOST:-}" ]; then
    if command -v nvidia-smi >/dev/null && n=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU') &&
        [ "$n" -gt 0 ]; then
        GPUS_PER_HOST=$n
    else # CPU hosts: every slot granted is a rank
        echo "sge_job.sh: no GPU listed by nvidia-smi here: one rank per slot granted, on the" \
            "CPU backend (set GPUS_PER_HOST for GPU hosts)" >&2
    fi
fi
[ -z "${GPUS_PER_HOST:-}" ] || [[ $GPUS_PER_HOST =~ ^[1-9][0-9]*$ ]] ||
    die "GPUS_PER_HOST=$GPUS_PER_HOST: expected a count"
DPTRAIN=${DPTRAIN:-build/dptrain}
BIND=${BIND:-none}
SOCKETS=${SOCKETS:-2}
MPIRUN=${MPIRUN:-mpirun}
export NCCL_DEBUG=${NCCL_DEBUG:-INFO}
export OMPI_MCA_oob_tcp_keepalive_time=${OMPI_MCA_oob_tcp_keepalive_time:-10}
export OMPI_MCA_oob_tcp_keepalive_intvl=${OMPI_MCA_oob_tcp_keepalive_intvl:-5}
export OMPI_MCA_oob_tcp_keepalive_probes=${OMPI_MCA_oob_tcp_keepalive_probes:-4}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}

# $PE_HOSTFILE: "host slots queue processors" per line -> "host slots=min(slots, GPUs)"
hostfile=${TMPDIR:-/tmp}/dptrain_hosts.${JOB_ID:-$$}
np=0
granted_total=0
partial=0
: >"$hostfile"
while read -r host granted _; do
    [ -n "$host" ] || continue
    [[ $granted =~ ^[0-9]+$ ]] || die "$PE_HOSTFILE: cannot read the slots of '$host'"
    if [ -z "${GPUS_PER_HOST:-}" ]; then # CPU hosts: one rank per slot
        echo "$host slots=$granted" >>"$hostfile"
        np=$((np + granted))
        granted_total=$((granted_total + granted))
        continue
    fi
    slots=$((granted < GPUS_PER_HOST ? granted : GPUS_PER_HOST))
    [ "$granted" -le "$GPUS_PER_HOST" ] ||
        warn "$host: $granted slots granted, $GPUS_PER_HOST GPUs: starting $GPUS_PER_HOST ranks there"
    if [ "$granted" -lt "$GPUS_PER_HOST" ]; then
        warn "$host: $granted slots granted for $GPUS_PER_HOST GPUs: $((GPUS_PER_HOST - granted)) GPU(s) idle"
        partial=1
    fi
    echo "$host slots=$slots" >>"$hostfile"
    np=$((np + slots))
    granted_total=$((granted_total + granted))
done <"$PE_HOSTFILE"
[ "$np" -gt 0 ] || die "$PE_HOSTFILE lists no slots"
[ "$np" -eq "$granted_total" ] ||
    warn "$granted_total slots granted, $np ranks (one per GPU): use a PE with allocation_rule $GPUS_PER_HOST (see the top of this script)"

case $BIND in
    none) placement=(--map-by slot --bind-to none) ;;
    socket)
        [ -n "${GPUS_PER_HOST:-}" ] || die "BIND=socket needs GPUS_PER_HOST (ranks per host)"
        [ $((GPUS_PER_HOST % SOCKETS)) -eq 0 ] || die "BIND=socket: $GPUS_PER_HOST GPUs over $SOCKETS sockets"
        # ppr places G/SOCKETS ranks on every socket of every host: whole hosts only
        [ "$partial" = 0 ] || die "BIND=socket needs $GPUS_PER_HOST slots on every host (allocation_rule $GPUS_PER_HOST)"
        placement=(--map-by "ppr:$((GPUS_PER_HOST / SOCKETS)):socket" --bind-to socket) ;;
    *) die "BIND=$BIND: expected none or socket" ;;
esac

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

case $1 in
    train | search | bench | version | selftest) args=("$@") ;;
    *) args=(train "$@") ;;
esac
cmd=("$MPIRUN" -np "$np" --hostfile "$hostfile" "${placement[@]}" "${iface[@]}" "${forward[@]}"
    "$DPTRAIN" "${args[@]}")

echo "sge_job.sh: job ${JOB_ID:-?}: $np ranks, ${GPUS_PER_HOST:-one per slot} per host;" \
    "hostfile $hostfile:" >&2
sed 's/^/    /' "$hostfile" >&2
if [ "${DRY_RUN:-0}" = 1 ]; then
    cat "$hostfile"
    printf '%q ' "${cmd[@]}" | sed 's/ $//'
    echo
    exit 0
fi
exec "${cmd[@]}"
