#!/usr/bin/env bash
# Cost-aware proposals, search.acquisition ei against ei_per_second, on Branin with the duration
# model (objective.duration: lognormal waits scaled by 0.5 + u1, so a trial at x1 = 10 takes 3x
# one at x1 = -5): per run, the search clock (end_s) when the best-so-far regret first fell below
# each threshold, the mean trial time, the mean x1 of the GP's proposals (after the 5 random
# ones; the three minima lie at x1 = -3.14, 3.14, 9.42) and the regret after the last trial. One
# rank, one group.
# docs/search.md has the numbers.
# Usage: scripts/bench_cost.sh [DPTRAIN=build/dptrain] [DURATION=0.2] [SEEDS="1 2 3 4 5"] [TRIALS=30]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/dptrain}
duration=${2:-0.2}
seeds=${3:-1 2 3 4 5}
trials=${4:-30}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '# Branin, %s trials, objective.duration %s s; t(r<X): search seconds to regret below X\n' \
    "$trials" "$duration"
printf '# %-14s %5s %10s %10s %10s %9s %8s %10s\n' acquisition seed 't(r<1e-1)' 't(r<1e-2)' \
    't(r<1e-3)' mean_t_s gp_x1 final_regret
for seed in $seeds; do
    for acq in ei ei_per_second; do
        out=$tmp/$acq-$seed
        "$bin" search configs/branin.yaml --out "$out" --set search.trials="$trials" \
            --set objective.duration="$duration" --set search.acquisition="$acq" \
            --set run.seed="$seed" >"$out.log" 2>&1 || { cat "$out.log"; exit 1; }
        python3 - "$out/trials.jsonl" "$acq" "$seed" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
recs.sort(key=lambda r: r["end_s"])
best, hit = float("inf"), {}
for r in recs:
    if r["status"] == "ok":
        best = min(best, r["objective"] - 0.397887)
    for th in (1e-1, 1e-2, 1e-3):
        if best < th and th not in hit:
            hit[th] = r["end_s"]
cell = lambda th: "%10.2f" % hit[th] if th in hit else "%10s" % "-"
mean_t = sum(r["time_s"] for r in recs) / len(recs)
gp = [r["params"]["objective.x1"] for r in recs if r["trial"] >= 5]
print("  %-14s %5s %s %s %s %9.3f %8.2f %10.2e" % (sys.argv[2], sys.argv[3], cell(1e-1), cell(1e-2),
                                                  cell(1e-3), mean_t, sum(gp) / len(gp), best))
PY
    done
done
