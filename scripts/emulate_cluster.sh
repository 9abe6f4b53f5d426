#!/usr/bin/env bash
# An emulated multi-machine cluster on one box: N "machines" as Linux network namespaces joined by
# a switch, with optionally rate-limited links, so that `mpirun` runs dptrain across "hosts" and
# intra-machine (shared memory) can be compared with inter-machine (TCP over a link) scaling.
#
#   scripts/emulate_cluster.sh up     [-n N] [--slots S] [--rate RATE]
#   scripts/emulate_cluster.sh run    [-n N] [--slots S] [--rate RATE] -- MPIRUN_ARGS...
#   scripts/emulate_cluster.sh status
#   scripts/emulate_cluster.sh exec   I|head COMMAND...
#   scripts/emulate_cluster.sh down
#   common options: --prefix P (default dptemu, or $DPTEMU_PREFIX)
#
# e.g.  scripts/emulate_cluster.sh run -n 2 --slots 2 --rate 1gbit -- \
#           -np 4 build/dptrain train configs/fashion_mnist.yaml
#
# Needs root (namespaces, veth, tc). Defaults: N=2 machines, S=2 slots each, links unshaped.
#
# How it works
#   Namespaces, all named PREFIX-*, nothing in the host's own network namespace:
#     PREFIX-net    the switch: bridge br0 with one veth port per machine (m0, m1, ...) and `head`
#     PREFIX-mI     machine I: eth0 = 10.213.0.(I+1)/24, plus lo; its own UTS namespace (a file
#                   under /run/PREFIX/uts, bind-mounted like `ip netns` does for network
#                   namespaces) with hostname hI
#     PREFIX-head   where mpirun runs: eth0 = 10.213.0.254/24, no ranks
#   The addresses are private and exist only inside those namespaces (no route leaves them), so
#   no packet can reach the host's network or the outside.
#   --rate puts a token bucket (tc tbf) on both ends of each machine's link: egress of the
#   machine's eth0 (its upload) and egress of its switch port (its download), i.e. a full-duplex
#   NIC of that rate. The head's link is not shaped: it carries only Open MPI's control traffic
#   and the ranks' forwarded output. This kernel has no netem, so latency cannot be added.
#   Every run of mpirun gets (see run_mpirun):
#     --hostfile /run/PREFIX/hostfile   the machines' addresses with slots=S: mpirun in the head
#                   namespace owns none of them, so it starts one daemon (orted) per machine
#     --mca plm_rsh_agent /run/PREFIX/agent   Open MPI starts remote daemons with "AGENT HOST
#                   COMMAND" (normally ssh); our agent maps the address to the machine and runs
#                   COMMAND through `ip netns exec PREFIX-mI nsenter --uts=...`, so the daemon
#                   and the ranks it forks live in that machine's network and hostname.
#                   Why a private hostname: all namespaces share /dev/shm and /tmp, and Open
#                   MPI names its shared-memory segments (vader) and session directories by
#                   hostname; with one hostname, 2+ ranks per machine collide and crash.
#     --mca plm_rsh_no_tree_spawn 1   mpirun starts every daemon itself (a tree spawn would have
#                   daemons run the agent from inside another machine's namespaces)
#     --mca oob_tcp_if_include / btl_tcp_if_include 10.213.0.0/24   control (oob) and data (btl)
#                   only over the emulated links, never loopback, so that inter-machine traffic
#                   passes the shaped interfaces
#     --mca pml ob1 --mca btl self,vader,tcp   shared memory within a machine, TCP between
#                   machines: the transports being emulated (no UCX/libfabric probing)
#     --mca btl_vader_single_copy_mechanism none   as in the tests: CMA needs ptrace rights that
#                   containers often lack
#     --bind-to none   all "machines" share the same cores; binding each daemon's ranks from
#                   core 0 would stack every machine's rank 0 on one core
#     --mca mpi_yield_when_idle 1   (when slots in all exceed the cores) each machine looks
#                   undersubscribed to Open MPI, so it would busy-poll; the box is oversubscribed
#     --allow-run-as-root   this harness runs as root (namespaces need it)
#   State (hostfile, agent, uts files, settings) lives in /run/PREFIX. `run` brings the cluster
#   up when it is not, and then takes it down again on every exit, failed or not (trap); a
#   failing `up` removes what it made. `down` is idempotent: it ends the processes still inside
#   the namespaces (by pid, via `ip netns pids`), deletes the namespaces (which deletes their
#   veths and bridge), unmounts the UTS files and removes /run/PREFIX.
#
# What it cannot emulate: latency, loss, separate CPUs, memory or PCIe per machine (every machine
# shares the box's cores), GPUs or NCCL over the network.
set -euo pipefail

SELF=$(basename "$0")
prefix=${DPTEMU_PREFIX:-dptemu}
subnet=10.213.0       # a private /24; .1.. are the machines, .254 the head
n=2 slots=2 rate=""
n_set=0 slots_set=0 rate_set=0

die() { echo "$SELF: $*" >&2; exit 2; }
say() { echo "$SELF: $*" >&2; }

usage() {
    sed -n '/^#   scripts/,/^# Needs root/p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# ---- names ---------------------------------------------------------------------------------
state_dir() { echo "/run/$prefix"; }
ns_machine() { echo "$prefix-m$1"; }
ns_net() { echo "$prefix-net"; }
ns_head() { echo "$prefix-head"; }
addr_machine() { echo "$subnet.$(($1 + 1))"; }
addr_head() { echo "$subnet.254"; }

# our namespaces, exactly: PREFIX-mI, PREFIX-net, PREFIX-head (so that `down` of one prefix never
# touches another cluster whose prefix merely starts with it)
our_namespaces() {
    local re
    re="^$(printf '%s' "$prefix" | sed 's/[.[\*^$]/\\&/g')-(m[0-9]+|net|head)\$"
    ip netns list 2>/dev/null | awk '{print $1}' | grep -E "$re" || true
}

is_up() { [ -f "$(state_dir)/cluster" ]; }

# ---- checks --------------------------------------------------------------------------------
need_root() {
    [ "$(id -u)" = 0 ] || die "needs root (network namespaces, veth, tc)"
    command -v ip >/dev/null || die "ip not found (package iproute2)"
    if ! command -v nsenter >/dev/null || ! command -v unshare >/dev/null; then
        die "nsenter/unshare not found (package util-linux)"
    fi
}

# tc's rate ("500mbit", "1gbit", ...) -> bits per second, for the bucket size
rate_bits() {
    local num unit
    [[ $1 =~ ^([1-9][0-9]*)(bit|kbit|mbit|gbit)$ ]] || die "--rate $1: expected e.g. 100mbit or 1gbit"
    num=${BASH_REMATCH[1]} unit=${BASH_REMATCH[2]}
    case $unit in
        bit) echo "$num" ;;
        kbit) echo $((num * 1000)) ;;
        mbit) echo $((num * 1000000)) ;;
        gbit) echo $((num * 1000000000)) ;;
    esac
}

# ---- up ------------------------------------------------------------------------------------
# shape NS DEV: token bucket at $rate on DEV's egress. The bucket holds 0.8 ms of traffic but at
# least 100 kB. A full bucket goes out at the veth's speed, so a larger one lets messages of a few
# hundred KiB beat the link: with 2 ms (250 kB at 1gbit) a ring allreduce of 1 MiB took 25% less
# than the link's rate allows and the fitted alpha-beta model missed by 15-21% at 1-64 MiB; with
# 100 kB it misses by 0.4-5% on average. The floor: a GSO super-packet of the veth is up to
# 64 KiB plus headers, and tbf cuts any packet larger than its bucket into MTU-sized ones (a
# TCP stream each way took 85% of both cores at 103 MB/s with a 64 KiB bucket, about 30% at
# 119 MB/s with 100 kB). The
# queue holds 100 ms before dropping: a NIC's send queue pushes back on TCP instead of dropping,
# and with 20 ms an allreduce at 100mbit lost 1.5% of its packets (same time per step, though).
shape() {
    local bits burst
    bits=$(rate_bits "$rate")
    burst=$((bits / 8 / 1250))
    [ "$burst" -ge 100000 ] || burst=100000
    tc -n "$1" qdisc replace dev "$2" root tbf rate "$rate" burst "$burst" latency 100ms
}

# link NS PORT ADDR: a veth from the switch (port PORT) to NS (eth0 with ADDR/24)
link() {
    local ns=$1 port=$2 addr=$3 net
    net=$(ns_net)
    ip -n "$net" link add "$port" type veth peer name eth0 netns "$ns"
    ip -n "$net" link set "$port" master br0
    ip -n "$net" link set "$port" up
    ip -n "$ns" addr add "$addr/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
}

write_agent() {
    local i cases=""
    for ((i = 0; i < n; i++)); do cases+="  $(addr_machine "$i")) m=m$i ;;"$'\n'; done
    cat >"$(state_dir)/agent" <<EOF
#!/bin/sh
# Written by $SELF up: Open MPI's plm_rsh_agent for the emulated cluster '$prefix'.
# Called as "agent [ssh options] HOST COMMAND..."; runs COMMAND as ssh would (one shell command
# line), in the machine's network and UTS (hostname) namespaces.
while [ \$# -gt 0 ]; do case \$1 in -*) shift ;; *) break ;; esac; done
host=\$1; shift
case \$host in
${cases}  *) echo "$prefix agent: \$host is not a machine of this emulated cluster" >&2; exit 255 ;;
esac
exec ip netns exec $prefix-\$m nsenter --uts=$(state_dir)/uts/\$m -- /bin/sh -c "\$*"
EOF
    chmod 755 "$(state_dir)/agent"
}

# on_up_exit STATUS: a failing `up` removes what it made
on_up_exit() {
    if [ "$1" -ne 0 ]; then
        say "up failed; removing what was made"
        cmd_down >/dev/null 2>&1 || true
    fi
}

cmd_up() {
    need_root
    if is_up || [ -n "$(our_namespaces)" ]; then
        die "cluster '$prefix' is already up (or half made): '$SELF down${prefix_arg}' first"
    fi
    [ -z "$rate" ] || { command -v tc >/dev/null || die "--rate needs tc (package iproute2)"; }
    local dir i ns
    dir=$(state_dir)
    # a failing step leaves nothing behind
    trap 'on_up_exit $?' EXIT
    mkdir -p "$dir/uts"

    ip netns add "$(ns_net)"
    ip -n "$(ns_net)" link set lo up
    # a plain learning switch: no STP, no forwarding delay
    ip -n "$(ns_net)" link add br0 type bridge stp_state 0 forward_delay 0
    ip -n "$(ns_net)" link set br0 up

    for ((i = 0; i < n; i++)); do
        ns=$(ns_machine "$i")
        ip netns add "$ns"
        link "$ns" "m$i" "$(addr_machine "$i")"
        # the machine's own hostname, kept in a bind-mounted UTS namespace file
        touch "$dir/uts/m$i"
        unshare --uts="$dir/uts/m$i" hostname "h$i"
        if [ -n "$rate" ]; then
            shape "$ns" eth0
            shape "$(ns_net)" "m$i"
        fi
    done
    ip netns add "$(ns_head)"
    link "$(ns_head)" head "$(addr_head)"

    for ((i = 0; i < n; i++)); do echo "$(addr_machine "$i") slots=$slots"; done >"$dir/hostfile"
    write_agent
    printf 'n=%s\nslots=%s\nrate=%s\n' "$n" "$slots" "$rate" >"$dir/cluster"
    trap - EXIT
    say "up: $n machines x $slots slots${rate:+, links $rate}; '$SELF status${prefix_arg}' for details"
}

# ---- down ----------------------------------------------------------------------------------
cmd_down() {
    need_root
    local dir ns pids f left removed=0
    dir=$(state_dir)
    for ns in $(our_namespaces); do
        # processes still inside (daemons or ranks of an aborted run): ours, ended by pid
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        if [ -n "$pids" ]; then
            # shellcheck disable=SC2086
            kill -TERM $pids 2>/dev/null || true
            for _ in 1 2 3 4 5 6 7 8 9 10; do
                pids=$(ip netns pids "$ns" 2>/dev/null || true)
                [ -n "$pids" ] || break
                sleep 0.2
            done
            # shellcheck disable=SC2086
            [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
        fi
        # deleting a namespace deletes its interfaces: the veth pairs and the bridge
        ip netns del "$ns"
        removed=$((removed + 1))
    done
    if [ -d "$dir" ]; then
        for f in "$dir"/uts/*; do
            [ -e "$f" ] || continue
            umount "$f" 2>/dev/null || true
        done
        rm -rf "$dir"
    fi
    left=$(our_namespaces)
    [ -z "$left" ] || { say "down: still present: $left"; exit 1; }
    say "down: removed $removed namespace(s) of '$prefix'"
}

# ---- status --------------------------------------------------------------------------------
load_state() {
    is_up || { say "cluster '$prefix' is not up"; exit 1; }
    local k v
    while IFS='=' read -r k v; do
        case $k in n) up_n=$v ;; slots) up_slots=$v ;; rate) up_rate=$v ;; esac
    done <"$(state_dir)/cluster"
}

cmd_status() {
    need_root
    local up_n up_slots up_rate i ns host qd
    load_state
    echo "cluster '$prefix': $up_n machines x $up_slots slots, links ${up_rate:-unshaped}," \
        "subnet $subnet.0/24"
    printf '  %-8s %-16s %-14s %-10s %s\n' machine namespace address hostname "eth0 qdisc"
    for ((i = 0; i < up_n; i++)); do
        ns=$(ns_machine "$i")
        host=$(nsenter --uts="$(state_dir)/uts/m$i" hostname 2>/dev/null || echo '?')
        # "qdisc tbf 8001: root refcnt 2 rate 1Gbit burst ..." -> "tbf rate 1Gbit"
        qd=$(tc -n "$ns" qdisc show dev eth0 2>/dev/null |
            awk 'NR == 1 { for (i = 1; i < NF; i++) if ($i == "rate") r = " rate " $(i + 1); print $2 r }')
        printf '  %-8s %-16s %-14s %-10s %s\n' "m$i" "$ns" "$(addr_machine "$i")" "$host" "$qd"
    done
    printf '  %-8s %-16s %-14s %s\n' head "$(ns_head)" "$(addr_head)" "(mpirun)"
    echo "  hostfile $(state_dir)/hostfile, agent $(state_dir)/agent"
}

# ---- exec / run ----------------------------------------------------------------------------
cmd_exec() {
    need_root
    local up_n up_slots up_rate
    load_state
    [ $# -ge 2 ] || die "usage: $SELF exec I|head COMMAND..."
    local which=$1
    shift
    if [ "$which" = head ]; then
        exec ip netns exec "$(ns_head)" "$@"
    fi
    if ! [[ $which =~ ^[0-9]+$ ]] || [ "$which" -ge "$up_n" ]; then die "exec: no machine '$which'"; fi
    exec ip netns exec "$(ns_machine "$which")" nsenter --uts="$(state_dir)/uts/m$which" -- "$@"
}

run_mpirun() {
    local up_n up_slots up_rate dir
    load_state
    dir=$(state_dir)
    # shellcheck disable=SC2054  # "self,vader,tcp" is one argument
    local flags=(--allow-run-as-root
        --hostfile "$dir/hostfile"
        --mca plm_rsh_agent "$dir/agent"
        --mca plm_rsh_no_tree_spawn 1
        --mca oob_tcp_if_include "$subnet.0/24"
        --mca btl_tcp_if_include "$subnet.0/24"
        --mca pml ob1 --mca btl self,vader,tcp
        --mca btl_vader_single_copy_mechanism none
        --bind-to none)
    if [ $((up_n * up_slots)) -gt "$(nproc)" ]; then
        flags+=(--mca mpi_yield_when_idle 1)
    fi
    say "mpirun ${flags[*]} $*"
    # In the background so that a signal to this script runs its trap at once (bash defers traps
    # until a foreground command ends); stdin passed on explicitly (mpirun forwards it to rank 0).
    ip netns exec "$(ns_head)" mpirun "${flags[@]}" "$@" <&0 &
    mpirun_pid=$!
    local rc=0
    wait "$mpirun_pid" || rc=$?
    mpirun_pid=""
    return "$rc"
}

# stop_mpirun: on a signal, end the mpirun this script started (which ends its ranks); `down`
# ends whatever is still inside the namespaces after it.
mpirun_pid=""
stop_mpirun() {
    [ -n "$mpirun_pid" ] || return 0
    kill -TERM "$mpirun_pid" 2>/dev/null || return 0
    for _ in $(seq 25); do
        kill -0 "$mpirun_pid" 2>/dev/null || return 0
        sleep 0.2
    done
    kill -KILL "$mpirun_pid" 2>/dev/null || true
}

# on_run_exit STATUS: `run` removes the cluster it made, whatever the outcome, keeping STATUS
on_run_exit() {
    stop_mpirun
    cmd_down || true
    exit "$1"
}

cmd_run() {
    need_root
    [ $# -gt 0 ] || die "run: nothing to run; usage: $SELF run [-n N] [--slots S] [--rate R] -- MPIRUN_ARGS..."
    if is_up; then
        local up_n up_slots up_rate
        load_state
        if { [ "$n_set" = 1 ] && [ "$n" != "$up_n" ]; } ||
            { [ "$slots_set" = 1 ] && [ "$slots" != "$up_slots" ]; } ||
            { [ "$rate_set" = 1 ] && [ "$rate" != "$up_rate" ]; }; then
            die "run: cluster '$prefix' is up with $up_n x $up_slots slots, rate ${up_rate:-none}; '$SELF down${prefix_arg}' first"
        fi
        trap 'stop_mpirun; exit 130' INT
        trap 'stop_mpirun; exit 143' TERM
        run_mpirun "$@"
    else
        # made here, so removed here on every exit, including failures and signals
        trap 'on_run_exit $?' EXIT
        trap 'exit 130' INT
        trap 'exit 143' TERM
        cmd_up
        trap 'on_run_exit $?' EXIT # cmd_up replaced it
        run_mpirun "$@"
    fi
}

# ---- arguments -----------------------------------------------------------------------------
[ $# -gt 0 ] || usage
cmd=$1
shift
rest=()
while [ $# -gt 0 ]; do
    case $1 in
        -n) [ $# -ge 2 ] || die "-n needs a value"; n=$2; n_set=1; shift 2 ;;
        --slots) [ $# -ge 2 ] || die "--slots needs a value"; slots=$2; slots_set=1; shift 2 ;;
        --rate) [ $# -ge 2 ] || die "--rate needs a value"; rate=$2; rate_set=1; shift 2 ;;
        --prefix) [ $# -ge 2 ] || die "--prefix needs a value"; prefix=$2; shift 2 ;;
        --) shift; rest=("$@"); break ;;
        -h | --help) usage ;;
        *)
            if [ "$cmd" = exec ]; then rest=("$@"); break; fi
            die "unknown argument '$1' (mpirun's arguments go after --)"
            ;;
    esac
done
if ! [[ $n =~ ^[0-9]+$ ]] || [ "$n" -lt 1 ] || [ "$n" -gt 64 ]; then
    die "-n $n: expected 1..64 machines"
fi
if ! [[ $slots =~ ^[0-9]+$ ]] || [ "$slots" -lt 1 ]; then die "--slots $slots: expected >= 1"; fi
[ -z "$rate" ] || rate_bits "$rate" >/dev/null
[[ $prefix =~ ^[a-z][a-z0-9-]{0,23}$ ]] || die "--prefix $prefix: expected [a-z][a-z0-9-]{0,23}"
prefix_arg=""
[ "$prefix" = dptemu ] || prefix_arg=" --prefix $prefix"

case $cmd in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    exec) cmd_exec "${rest[@]}" ;;
    run) cmd_run "${rest[@]}" ;;
    -h | --help | help) usage ;;
    *) die "unknown command '$cmd' (up, run, status, exec, down)" ;;
esac
