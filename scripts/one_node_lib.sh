# Shared by scripts/slurm_one_node.sh and scripts/gridengine_one_node.sh (sourced): stopping a
# daemon by its pid, so that nothing is left running and no process is matched by name.

# stop_pid PID [SECONDS]: SIGTERM, wait up to SECONDS (default 15) for it to end, then SIGKILL
stop_pid() {
    local pid=$1 tenths=$((${2:-15} * 10))
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 "$tenths"); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}
