#!/usr/bin/env bash
# A one-machine SLURM (slurmctld, slurmd, munge from Debian) for the tests that submit
# scripts/slurm_job.sh to a real scheduler: everything (config, keys, state, logs, pids) under
# one scratch directory, the daemons as root without systemd, stopped by their pids.
#
#   scripts/slurm_one_node.sh install   apt-get the packages (scripts/setup.sh --with-schedulers)
#   scripts/slurm_one_node.sh start     start munged, slurmctld, slurmd; wait for the node idle
#   scripts/slurm_one_node.sh stop      cancel jobs, stop the daemons, remove the directory
#   scripts/slurm_one_node.sh env       print `export SLURM_CONF=...` for the clients
#   scripts/slurm_one_node.sh client CMD...  run a client (sbatch, scontrol, ...) where it
#                                       reaches slurmctld (the head namespace when emulated)
#
# EMULATED=N: N nodes instead, one slurmd on each machine h0..h(N-1) of the emulated cluster
# (scripts/emulate_cluster.sh up -n N --slots CPUS, prefix $DPTEMU_PREFIX), each in its own
# network and hostname, slurmctld in the cluster's head namespace; `stop` takes the cluster
# down too. Jobs then cross "machines" through the real scheduler and launcher.
#
# Environment: SLURM_BASE (scratch directory, default /tmp/dpt_slurm), CPUS (CPUs the node
# declares, default 4: more than the host has is allowed by SlurmdParameters=config_overrides),
# SLURM_PORT (slurmctld's port, default 16817; slurmd takes the next one).
# Notes on what it takes (root, no cgroups, hostnames): docs/cluster.md "Real schedulers".
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=one_node_lib.sh
source "$(dirname "$0")/one_node_lib.sh"

BASE=${SLURM_BASE:-/tmp/dpt_slurm}
CPUS=${CPUS:-4}
PORT=${SLURM_PORT:-16817}
HOST=$(hostname)
CONF=$BASE/slurm.conf
EMULATED=${EMULATED:-0}
EMU=$(cd "$(dirname "$0")" && pwd)/emulate_cluster.sh
HEAD_ADDR=10.213.0.254 # emulate_cluster.sh's head namespace and machines (10.213.0.I+1)

die() { echo "slurm_one_node.sh: $*" >&2; exit 1; }

have_packages() { command -v slurmctld >/dev/null && command -v slurmd >/dev/null &&
    command -v sbatch >/dev/null && command -v munged >/dev/null; }

write_conf() {
    mkdir -p "$BASE/state" "$BASE/spool" "$BASE/log"
    # per node (%n): PMIx's client directories (spmix_appdir_*) are named by job and step only
    local node
    for node in $HOST $(seq -f "h%g" 0 $((EMULATED - 1))); do mkdir -p "$BASE/tmp/$node"; done
    local ctld="$HOST(127.0.0.1)" nodes="NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS State=UNKNOWN"
    if [ "$EMULATED" != 0 ]; then
        ctld="$HOST($HEAD_ADDR)" # the head namespace keeps the box's hostname
        nodes=$(for i in $(seq 0 $((EMULATED - 1))); do
            echo "NodeName=h$i NodeAddr=10.213.0.$((i + 1)) CPUs=$CPUS State=UNKNOWN"
        done)
    fi
    cat >"$CONF" <<EOF
ClusterName=dpt
SlurmctldHost=$ctld
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
AuthType=auth/munge
AuthInfo=socket=$BASE/munge.sock
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$BASE/state
SlurmdSpoolDir=$BASE/spool/%n
TmpFS=$BASE/tmp/%n
SlurmctldPidFile=$BASE/slurmctld.pid
SlurmdPidFile=$BASE/slurmd.%n.pid
SlurmctldLogFile=$BASE/log/slurmctld.log
SlurmdLogFile=$BASE/log/slurmd.%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MailProg=/bin/true
PlugStackConfig=$BASE/plugstack.conf
$nodes
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
    : >"$BASE/plugstack.conf"
}

# client CMD...: a SLURM client command, run where slurmctld can be reached
client() {
    if [ "$EMULATED" = 0 ]; then "$@"; else "$EMU" exec head "$@"; fi
}

stop_pidfile() { # stop_pidfile FILE: the daemon whose pid FILE holds, 10 s to end
    [ ! -s "$1" ] || stop_pid "$(cat "$1")" 10
}

start() {
    have_packages || die "SLURM is not installed: scripts/setup.sh --with-schedulers"
    [ ! -s "$BASE/slurmctld.pid" ] || ! kill -0 "$(cat "$BASE/slurmctld.pid")" 2>/dev/null ||
        die "already running under $BASE (stop it first)"
    rm -rf "$BASE"
    mkdir -p "$BASE"
    write_conf
    # munge: its own key and socket here, so nothing of the host's munge is touched
    head -c 1024 /dev/urandom >"$BASE/munge.key"
    chmod 400 "$BASE/munge.key"
    munged --force --key-file="$BASE/munge.key" --socket="$BASE/munge.sock" \
        --pid-file="$BASE/munged.pid" --log-file="$BASE/log/munged.log" \
        --seed-file="$BASE/munged.seed" || die "munged did not start: $BASE/log/munged.log"
    export SLURM_CONF=$CONF
    local want=1 state=""
    if [ "$EMULATED" = 0 ]; then
        slurmctld -c -f "$CONF" || die "slurmctld did not start: $BASE/log/slurmctld.log"
        slurmd -f "$CONF" || die "slurmd did not start: $BASE/log/slurmd.*.log"
    else
        want=$EMULATED
        "$EMU" up -n "$EMULATED" --slots "$CPUS" >"$BASE/log/cluster.log" 2>&1 ||
            { cat "$BASE/log/cluster.log" >&2; die "emulate_cluster.sh up failed"; }
        "$EMU" exec head slurmctld -c -f "$CONF" ||
            die "slurmctld did not start: $BASE/log/slurmctld.log"
        for i in $(seq 0 $((EMULATED - 1))); do
            # `ip netns exec` mounts a fresh /sys without the cgroup mounts slurmd's cgroup
            # plugin probes at start-up (v1: a tmpfs holding the systemd hierarchy), though
            # proctrack/linuxproc and task/none use none: mount them in its private view
            "$EMU" exec "$i" sh -c "mount -t tmpfs cgroup_root /sys/fs/cgroup &&
                mkdir /sys/fs/cgroup/systemd &&
                mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd &&
                exec slurmd -f '$CONF' -N h$i" ||
                die "slurmd on h$i did not start: $BASE/log/slurmd.h$i.log"
        done
    fi
    for _ in $(seq 1 300); do
        state=$(client sinfo -N -h -o %T 2>/dev/null | grep -c '^idle' || true)
        if [ "$state" = "$want" ]; then
            echo "slurm_one_node.sh: $want node(s) idle ($CPUS CPUs each), SLURM_CONF=$CONF"
            return 0
        fi
        sleep 0.1
    done
    echo "slurm_one_node.sh: $want node(s) did not become idle in 30 s ($state idle);" \
        "logs in $BASE/log:" >&2
    tail -n 5 "$BASE"/log/*.log >&2 || true
    stop
    exit 1
}

stop() {
    [ -d "$BASE" ] || return 0
    if [ -s "$BASE/slurmctld.pid" ] && kill -0 "$(cat "$BASE/slurmctld.pid")" 2>/dev/null; then
        SLURM_CONF=$CONF client scancel --full --quiet --user=root 2>/dev/null || true
    fi
    local f
    for f in "$BASE"/slurmd.*.pid; do stop_pidfile "$f"; done
    stop_pidfile "$BASE/slurmctld.pid"
    stop_pidfile "$BASE/munged.pid"
    [ "$EMULATED" = 0 ] || "$EMU" down >/dev/null 2>&1 || true
    rm -rf "$BASE"
}

case ${1:-} in
    install) exec "$(dirname "$0")/setup.sh" --with-schedulers ;;
    start) start ;;
    stop) stop ;;
    env) echo "export SLURM_CONF=$CONF" ;;
    client) shift; SLURM_CONF=$CONF client "$@" ;;
    *) die "usage: $0 install|start|stop|env|client CMD..." ;;
esac
