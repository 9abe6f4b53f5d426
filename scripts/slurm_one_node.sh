#!/usr/bin/env bash
# A one-machine SLURM (slurmctld, slurmd, munge from Debian) for the tests that submit
# scripts/slurm_job.sh to a real scheduler: everything (config, keys, state, logs, pids) under
# one scratch directory, the daemons as root without systemd, stopped by their pids.
#
#   scripts/slurm_one_node.sh install   apt-get the packages (scripts/setup.sh --with-schedulers)
#   scripts/slurm_one_node.sh start     start munged, slurmctld, slurmd; wait for the node idle
#   scripts/slurm_one_node.sh stop      cancel jobs, stop the daemons, remove the directory
#   scripts/slurm_one_node.sh env       print `export SLURM_CONF=...` for the clients
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

die() { echo "slurm_one_node.sh: $*" >&2; exit 1; }

have_packages() { command -v slurmctld >/dev/null && command -v slurmd >/dev/null &&
    command -v sbatch >/dev/null && command -v munged >/dev/null; }

write_conf() {
    mkdir -p "$BASE/state" "$BASE/spool" "$BASE/log"
    cat >"$CONF" <<EOF
ClusterName=dpt
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
AuthType=auth/munge
AuthInfo=socket=$BASE/munge.sock
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$BASE/state
SlurmdSpoolDir=$BASE/spool
SlurmctldPidFile=$BASE/slurmctld.pid
SlurmdPidFile=$BASE/slurmd.pid
SlurmctldLogFile=$BASE/log/slurmctld.log
SlurmdLogFile=$BASE/log/slurmd.log
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
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
    : >"$BASE/plugstack.conf"
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
    slurmctld -c -f "$CONF" || die "slurmctld did not start: $BASE/log/slurmctld.log"
    slurmd -f "$CONF" || die "slurmd did not start: $BASE/log/slurmd.log"
    for _ in $(seq 1 300); do
        state=$(sinfo -h -o %T 2>/dev/null | head -n 1 || true)
        case $state in
            idle*) echo "slurm_one_node.sh: node $HOST idle ($CPUS CPUs), SLURM_CONF=$CONF"
                   return 0 ;;
        esac
        sleep 0.1
    done
    echo "slurm_one_node.sh: the node did not become idle in 30 s (state '${state:-none}');" \
        "logs in $BASE/log:" >&2
    tail -n 5 "$BASE"/log/*.log >&2 || true
    stop
    exit 1
}

stop() {
    [ -d "$BASE" ] || return 0
    if [ -s "$BASE/slurmctld.pid" ] && kill -0 "$(cat "$BASE/slurmctld.pid")" 2>/dev/null; then
        SLURM_CONF=$CONF scancel --full --quiet --user=root 2>/dev/null || true
    fi
    stop_pidfile "$BASE/slurmd.pid"
    stop_pidfile "$BASE/slurmctld.pid"
    stop_pidfile "$BASE/munged.pid"
    rm -rf "$BASE"
}

case ${1:-} in
    install) exec "$(dirname "$0")/setup.sh" --with-schedulers ;;
    start) start ;;
    stop) stop ;;
    env) echo "export SLURM_CONF=$CONF" ;;
    *) die "usage: $0 install|start|stop|env" ;;
esac
