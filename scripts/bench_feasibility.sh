#!/usr/bin/env bash
# The feasibility model on Branin with a divergent region (objective.diverge_corner: evaluations
# with x1 > 5 and x2 < 5 diverge; one of Branin's three minima lies there): the share of
# proposals after trial 20 that fall in the region, search.feasibility: worst (diverged trials
# enter the GP as the worst value) against model (a classifier of P(feasible)), through the real
# `dptrain search` on one rank; and the seeds whose late proposals went into the region half the
# time or more (a stuck search). docs/search.md has the numbers.
# Usage: scripts/bench_feasibility.sh [DPTRAIN=build/dptrain] [SEEDS=10] [TRIALS=40]
# Environment: FIRST=1 (the first seed: FIRST=11 with SEEDS=10 runs seeds 11-20), MODES="worst
# model", KEEP=DIR (keep the runs there instead of a temporary directory).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/dptrain}
seeds=${2:-10}
trials=${3:-40}
first=${FIRST:-1}
if [ -n "${KEEP:-}" ]; then
    tmp=$KEEP
    mkdir -p "$tmp"
else
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
fi
for mode in ${MODES:-worst model}; do
    for seed in $(seq "$first" $((first + seeds - 1))); do
        rm -rf "$tmp/$mode-$seed"
        "$bin" search configs/branin.yaml --out "$tmp/$mode-$seed" --set search.trials="$trials" \
            --set objective.diverge_corner=true --set search.feasibility=$mode \
            --set run.seed="$seed" >"$tmp/$mode-$seed.log" 2>&1
    done
    python3 - "$tmp" "$mode" "$seeds" "$first" <<'PY'
import json, sys, statistics
tmp, mode, seeds, first = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
shares, regrets = [], []
for s in range(first, first + seeds):
    recs = [json.loads(l) for l in open(f"{tmp}/{mode}-{s}/trials.jsonl")]
    late = [r for r in recs if r["trial"] >= 20]
    inside = sum(r["params"]["objective.x1"] > 5 and r["params"]["objective.x2"] < 5 for r in late)
    shares.append(inside / len(late))
    regrets.append(min(r["objective"] for r in recs if r["objective"] is not None) - 0.39788735772973816)
stuck = [s for s, x in zip(range(first, first + seeds), shares) if x >= 0.5]
print(f"# {mode:5s}: proposals in the divergent region after trial 20: mean {100 * statistics.mean(shares):.1f}% "
      f"(per seed: {' '.join(f'{100 * x:.0f}' for x in shares)}); median regret {statistics.median(regrets):.2e}; "
      f"stuck (half or more of them in the region): {' '.join(map(str, stuck)) or 'none'}")
PY
done
