#!/usr/bin/env bash
# A one-machine Son of Grid Engine (Debian's gridengine-master, -exec, -client) with the `orte`
# parallel environment that StarCluster sets up, for the tests that submit scripts/sge_job.sh
# to a real scheduler. Debian fixes its paths (SGE_ROOT /var/lib/gridengine, cell default, spool
# /var/spool/gridengine): only one such Grid Engine per machine, configured in place.
#
#   scripts/gridengine_one_node.sh install  apt-get the packages (scripts/setup.sh --with-schedulers)
#   scripts/gridengine_one_node.sh start    start sge_qmaster, configure (host, PE orte, queue
#                                           all.q, 1 s scheduling), start sge_execd, wait for it
#   scripts/gridengine_one_node.sh stop     delete jobs, stop both daemons
#   scripts/gridengine_one_node.sh env      print the exports the clients need
#
# Environment: SLOTS (the queue's and the PE's slots, default 4).
# What it takes (host aliases when the host name resolves to a loopback address named otherwise,
# min_uid 0 for root's jobs, the scheduling interval): docs/cluster.md "Real schedulers".
set -Eeuo pipefail
# shellcheck source-path=SCRIPTDIR source=one_node_lib.sh
source "$(dirname "$0")/one_node_lib.sh"

export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
SLOTS=${SLOTS:-4}
HOST=$(hostname)
SPOOL=/var/spool/gridengine
QMASTER_PID=$SPOOL/qmaster/qmaster.pid

die() { echo "gridengine_one_node.sh: $*" >&2; exit 1; }

have_packages() { command -v sge_qmaster >/dev/null && command -v sge_execd >/dev/null &&
    command -v qsub >/dev/null && [ -d "$SGE_ROOT/$SGE_CELL/common" ]; }

# qmaster names a client by the reverse lookup of its address; when the host name resolves to
# 127.0.0.1 whose first name in /etc/hosts is localhost, every client is refused ("client IP
# resolved to host name localhost. This is not identical to clients host name vm") unless the
# names are aliases of one another
write_aliases() {
    local ip names
    ip=$(getent hosts "$HOST" | awk '{print $1; exit}')
    [ -n "$ip" ] || return 0
    names=$(awk -v ip="$ip" -v h="$HOST" '$1 == ip { for (i = 2; i <= NF; i++) if ($i != h) printf " %s", $i }' /etc/hosts)
    echo "$HOST$names" >"$SGE_ROOT/$SGE_CELL/common/host_aliases"
}

configure() {
    local tmp
    tmp=$(mktemp -d)
    # root's jobs: Debian's global configuration refuses uids and gids below 1000
    # shellcheck disable=SC2016 # $1 is the edited file's, in the written script
    printf '#!/bin/sh\nsed -i -e "s/^min_uid .*/min_uid 0/" -e "s/^min_gid .*/min_gid 0/" "$1"\n' \
        >"$tmp/edit_conf"
    chmod +x "$tmp/edit_conf"
    EDITOR=$tmp/edit_conf qconf -mconf >/dev/null 2>&1
    qconf -ss 2>/dev/null | grep -qx "$HOST" || qconf -as "$HOST" >/dev/null
    if ! qconf -sel 2>/dev/null | grep -qx "$HOST"; then
        printf 'hostname %s\nload_scaling NONE\ncomplex_values NONE\nuser_lists NONE\nxuser_lists NONE\nprojects NONE\nxprojects NONE\nusage_scaling NONE\nreport_variables NONE\n' \
            "$HOST" >"$tmp/host"
        qconf -Ae "$tmp/host" >/dev/null
    fi
    # StarCluster's PE: slots filled host by host, mpirun starts its daemons with qrsh -inherit
    # shellcheck disable=SC2016 # $fill_up is Grid Engine's, not the shell's
    printf 'pe_name orte\nslots %s\nuser_lists NONE\nxuser_lists NONE\nstart_proc_args /bin/true\nstop_proc_args /bin/true\nallocation_rule $fill_up\ncontrol_slaves TRUE\njob_is_first_task FALSE\nurgency_slots min\naccounting_summary FALSE\nqsort_args NONE\n' \
        "$SLOTS" >"$tmp/pe"
    if qconf -spl 2>/dev/null | grep -qx orte; then qconf -Mp "$tmp/pe" >/dev/null; else
        qconf -Ap "$tmp/pe" >/dev/null; fi
    # the queue: qconf's own template (every attribute) edited by a script as EDITOR
    # shellcheck disable=SC2016 # $1 is the edited file's, in the written script
    printf '#!/bin/sh\nsed -i -e "s/^qname .*/qname all.q/" -e "s/^hostlist .*/hostlist %s/" -e "s/^slots .*/slots %s/" -e "s/^pe_list .*/pe_list orte/" -e "s|^shell .*|shell /bin/bash|" -e "s/^load_thresholds .*/load_thresholds NONE/" "$1"\n' \
        "$HOST" "$SLOTS" >"$tmp/edit_queue"
    chmod +x "$tmp/edit_queue"
    if qconf -sql 2>/dev/null | grep -qx all.q; then EDITOR=$tmp/edit_queue qconf -mq all.q >/dev/null
    else EDITOR=$tmp/edit_queue qconf -aq >/dev/null; fi
    # the default 15 s scheduling interval would make every job wait about 20 s to start
    qconf -ssconf | sed -e 's/^schedule_interval .*/schedule_interval 0:0:1/' \
        -e 's/^flush_submit_sec .*/flush_submit_sec 1/' \
        -e 's/^flush_finish_sec .*/flush_finish_sec 1/' >"$tmp/sconf"
    qconf -Msconf "$tmp/sconf" >/dev/null
    rm -rf "$tmp"
}

# execd names its spool directory after the host's resolved name (localhost here, not vm)
execd_pidfile() { find "$SPOOL"/execd -name execd.pid 2>/dev/null | head -n 1 || true; }


start() {
    have_packages || die "Grid Engine is not installed: scripts/setup.sh --with-schedulers"
    [ ! -s "$QMASTER_PID" ] || ! kill -0 "$(cat "$QMASTER_PID")" 2>/dev/null ||
        die "sge_qmaster already runs (pid $(cat "$QMASTER_PID")): stop it first"
    # a failed step below leaves no daemon running
    trap 'echo "gridengine_one_node.sh: start failed (line $LINENO); stopping" >&2; stop' ERR
    write_aliases
    sge_qmaster || die "sge_qmaster did not start ($SPOOL/qmaster/messages)"
    for _ in $(seq 1 100); do
        qstat >/dev/null 2>&1 && break
        sleep 0.1
    done
    configure
    sge_execd || die "sge_execd did not start"
    for _ in $(seq 1 300); do # until the queue instance reports a load
        if qstat -f -q "all.q@$HOST" 2>/dev/null | awk '$1 ~ /^all.q@/ && $4 != "-NA-" && $6 == "" { ok = 1 } END { exit !ok }'; then
            echo "gridengine_one_node.sh: all.q@$HOST up ($SLOTS slots, PE orte)"
            trap - ERR
            return 0
        fi
        sleep 0.1
    done
    echo "gridengine_one_node.sh: all.q@$HOST did not come up in 30 s:" >&2
    qstat -f >&2 || true
    stop
    exit 1
}

stop() {
    if [ -s "$QMASTER_PID" ] && kill -0 "$(cat "$QMASTER_PID")" 2>/dev/null; then
        qdel -u '*' >/dev/null 2>&1 || true
    fi
    local f
    f=$(execd_pidfile)
    [ -z "$f" ] || stop_pid "$(cat "$f")"
    [ ! -s "$QMASTER_PID" ] || stop_pid "$(cat "$QMASTER_PID")"
}

case ${1:-} in
    install) exec "$(dirname "$0")/setup.sh" --with-schedulers ;;
    start) start ;;
    stop) stop ;;
    env) echo "export SGE_ROOT=$SGE_ROOT SGE_CELL=$SGE_CELL" ;;
    *) die "usage: $0 install|start|stop|env" ;;
esac
