#!/usr/bin/env bash
# The feasibility model on a training search whose failures are real divergences: the regression
# teacher (scripts/make_csv_examples.py regression, 2000 rows) searched with SGD, momentum and a
# learning rate up to 10 (configs/regression_search.yaml), where large steps overflow the loss to a
# non-finite value and the trial is recorded `diverged`. search.feasibility: worst (a diverged
# trial enters the GP as the worst value seen) against model (a classifier of P(feasible)),
# through the real `dptrain search` on one rank, the two modes of a seed side by side on 2 cores.
# Prints per seed, and over seeds: the proposals (trials after the random ones) that diverged,
# and the best validation RMSE (standardized targets). docs/search.md has the numbers.
# Usage: scripts/bench_feasibility_train.sh [DPTRAIN=build/dptrain] [SEEDS="1 2 3"]
# Environment: KEEP=DIR keeps the runs in DIR/MODE-SEED; SETS="key=value ..." adds --set to each
# search; MODES="worst model".
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/dptrain}
seeds=${2:-1 2 3}
modes=${MODES:-worst model}
tmp=${KEEP:-$(mktemp -d)}
mkdir -p "$tmp"
[ -n "${KEEP:-}" ] || trap 'rm -rf "$tmp"' EXIT
data=$tmp/data
[ -f "$data/train.csv" ] || python3 scripts/make_csv_examples.py regression "$data" --rows 2000
sets=(--set data.train_csv="$data/train.csv" --set data.test_csv="$data/test.csv")
for kv in ${SETS:-}; do sets+=(--set "$kv"); done
for seed in $seeds; do
    pids=()
    for m in $modes; do
        rm -rf "$tmp/$m-$seed"
        "$bin" search configs/regression_search.yaml --out "$tmp/$m-$seed" \
            --set search.feasibility="$m" --set run.seed="$seed" "${sets[@]}" \
            >"$tmp/$m-$seed.log" 2>&1 &
        pids+=($!)
    done
    for p in "${pids[@]}"; do
        wait "$p" || { echo "bench_feasibility_train: a search of seed $seed failed: see $tmp/*-$seed.log" >&2; exit 1; }
    done
done
n_random=$(sed -n 's/^ *initial_random: *\([0-9]*\).*/\1/p' configs/regression_search.yaml)
for kv in ${SETS:-}; do [ "${kv%%=*}" = search.initial_random ] && n_random=${kv#*=}; done
python3 - "$tmp" "$modes" "$n_random" $seeds <<'PY'
import json, statistics, sys
tmp, modes, n_random, seeds = sys.argv[1], sys.argv[2].split(), int(sys.argv[3]), sys.argv[4:]
res = {}
print("# %-6s %5s %7s %9s %10s  %s" % ("mode", "seed", "trials", "diverged", "best", "diverged proposals (lr, momentum)"))
for m in modes:
    for s in seeds:
        recs = [json.loads(l) for l in open(f"{tmp}/{m}-{s}/trials.jsonl")]
        prop = [r for r in recs if r["trial"] >= n_random]  # after the random ones
        div = [r for r in prop if r["status"] == "diverged"]
        vals = [r["objective"] for r in recs if r["status"] in ("ok", "stopped_early") and r["objective"] is not None]
        best = min(vals) if vals else float("nan")
        res[(m, s)] = (len(div), best, len(prop))
        pts = " ".join("(%.3g, %.2f)" % (r["params"]["train.lr"], r["params"]["train.momentum"]) for r in div)
        print("  %-6s %5s %7d %9d %10.4f  %s" % (m, s, len(recs), len(div), best, pts))
print("# over seeds %s" % " ".join(seeds))
for m in modes:
    d = [res[(m, s)][0] for s in seeds]
    b = [res[(m, s)][1] for s in seeds]
    n = sum(res[(m, s)][2] for s in seeds)
    print("  %-6s diverged proposals %d of %d (per seed median %g); best: median %.4f" % (
        m, sum(d), n, statistics.median(d), statistics.median(b)))
if len(modes) == 2:
    a, b = modes
    gaps = [res[(b, s)][1] - res[(a, s)][1] for s in seeds]
    print("  %s - %s, best per seed: median %+.4f, %s lower in %d of %d seeds" % (
        b, a, statistics.median(gaps), b, sum(g < 0 for g in gaps), len(gaps)))
PY
