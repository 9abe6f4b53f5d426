#!/usr/bin/env bash
# Idle fraction of the search's schedules, sync against async, at G groups of ranks, through the
# real `dptrain search` under mpirun: Branin (bayes) with the duration model (objective.duration:
# each evaluation waits a lognormal time, sigma 0.5, scaled by 0.5 + u1). Prints the summary's
# utilization line per run; idle fraction = 1 - utilization. docs/search.md has the numbers.
# Usage: [G="2 4"] [KEEP=DIR] scripts/bench_schedule.sh [DPTRAIN=build/dptrain] [DURATION=0.5] [SEEDS="1 2 3"]
#   KEEP=DIR keeps each run's output in DIR/G-SCHED-SEED (for scripts/plot_search.py)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/dptrain}
duration=${2:-0.5}
seeds=${3:-1 2 3}
if [ -n "${KEEP:-}" ]; then
    mkdir -p "$KEEP"
    tmp=$KEEP
else
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
fi
printf '# %-3s %-6s %5s %7s %9s %8s\n' G sched seed trials wall_s idle_%
for g in ${G:-2 4}; do
    trials=$((g * 10))
    for seed in $seeds; do
        for sched in sync async; do
            out=$tmp/$g-$sched-$seed
            mpirun --allow-run-as-root --oversubscribe --mca btl_vader_single_copy_mechanism none \
                -np "$g" "$bin" search configs/branin.yaml --out "$out" --set search.parallel="$g" \
                --set search.trials="$trials" --set objective.duration="$duration" \
                --set search.schedule="$sched" --set run.seed="$seed" >"$out.log" 2>&1
            line=$(grep '^utilization:' "$out.log")
            util=$(sed -E 's/^utilization: ([0-9.]+)%.*/\1/' <<<"$line")
            wall=$(sed -E 's/.* x ([0-9.]+) wall seconds.*/\1/' <<<"$line")
            printf '  %-3s %-6s %5s %7s %9s %8.1f\n' "$g" "$sched" "$seed" "$trials" "$wall" \
                "$(echo "100 - $util" | bc -l)"
        done
    done
done
