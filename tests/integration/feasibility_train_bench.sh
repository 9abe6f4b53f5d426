#!/usr/bin/env bash
# The feasibility benchmarks. On a training search (configs/regression_search.yaml,
# scripts/bench_feasibility_train.sh): its premise, that the space holds both a learning rate
# that trains and one whose loss overflows (a `diverged` trial, exit 1 with the reason), and the
# script on one seed of 8 trials, its counts checked against the runs' trials.jsonl. On Branin
# (scripts/bench_feasibility.sh): seed 100 under model, its line against its run, not stuck.
# Usage: feasibility_train_bench.sh DPTRAIN CKPT_DIFF
set -euo pipefail
source "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RCFG=$ROOT/configs/regression_search.yaml
python3 "$ROOT/scripts/make_csv_examples.py" regression "$TMP/data" --rows 2000
data=(--set data.train_csv="$TMP/data/train.csv" --set data.test_csv="$TMP/data/test.csv")

# --- the premise: lr 0.1 trains, lr 3 (inside the searched range, up to 10) diverges
"$DPTRAIN" train "$RCFG" --out "$TMP/ok" "${data[@]}" --set train.lr=0.1 >"$TMP/ok.log" 2>&1 ||
    fail "lr 0.1 does not train: $(tail -2 "$TMP/ok.log")"
if "$DPTRAIN" train "$RCFG" --out "$TMP/div" "${data[@]}" --set train.lr=3 >"$TMP/div.log" 2>&1; then
    fail "lr 3 trained: the benchmark's space has no divergent region"
else
    grep -q "diverged: the training loss is" "$TMP/div.log" ||
        fail "lr 3 failed, but not as a divergence: $(tail -2 "$TMP/div.log")"
fi
python3 - "$RCFG" <<'PY' || fail "the searched learning rate does not reach 3"
import re, sys
m = re.search(r"train\.lr:\s*\{type: log_uniform, low: ([0-9.e-]+), high: ([0-9.e-]+)\}", open(sys.argv[1]).read())
assert m and float(m.group(1)) <= 0.1 and float(m.group(2)) >= 3, m and m.groups()
PY

# --- the script on one seed: its per-run line says what trials.jsonl says
KEEP=$TMP/bench SETS="search.trials=8 data.train_csv=$TMP/data/train.csv data.test_csv=$TMP/data/test.csv" \
    "$ROOT/scripts/bench_feasibility_train.sh" "$DPTRAIN" 3 >"$TMP/bench.out" 2>&1 ||
    fail "bench_feasibility_train.sh failed: $(tail -3 "$TMP/bench.out")"
python3 - "$TMP/bench" "$TMP/bench.out" <<'PY' || fail "bench_feasibility_train.sh: its table differs from the runs"
import json, sys
tmp, out = sys.argv[1], open(sys.argv[2]).read().splitlines()
rows = {l.split()[0]: l.split() for l in out if l.startswith("  ") and l.split()[1:2] == ["3"]}
assert set(rows) == {"worst", "model"}, out
for m in ("worst", "model"):
    recs = [json.loads(l) for l in open(f"{tmp}/{m}-3/trials.jsonl")]
    div = sum(r["status"] == "diverged" for r in recs if r["trial"] >= 4)
    best = min(r["objective"] for r in recs if r["status"] == "ok")
    assert int(rows[m][2]) == len(recs) == 8, rows[m]
    assert int(rows[m][3]) == div, (rows[m], div)
    assert abs(float(rows[m][4]) - best) < 1e-4, (rows[m], best)
    # the random trials are the same under both modes; the proposals come from the history
    assert [r["params"] for r in sorted(recs, key=lambda r: r["trial"])][:4] == \
        [r["params"] for r in sorted((json.loads(l) for l in open(f"{tmp}/worst-3/trials.jsonl")),
                                     key=lambda r: r["trial"])][:4]
assert any("model - worst, best per seed" in l for l in out), out
print("bench_feasibility_train: table agrees with the runs")
PY
# --- scripts/bench_feasibility.sh (Branin with its divergent corner) on seed 100, where the
# search under model used to stick: every late proposal in the region, until the floor was
# held when the polished neighbourhood fell below it (src/gp.c any_above_floor). Its line must
# agree with the run's trials.jsonl, and the search must not be stuck.
FIRST=100 MODES=model KEEP=$TMP/branin "$ROOT/scripts/bench_feasibility.sh" "$DPTRAIN" 1 40 \
    >"$TMP/branin.out" 2>&1 || fail "bench_feasibility.sh failed: $(tail -3 "$TMP/branin.out")"
python3 - "$TMP/branin" "$TMP/branin.out" <<'PY' || fail "bench_feasibility.sh, seed 100: $(cat "$TMP/branin.out")"
import json, re, sys
recs = [json.loads(l) for l in open(f"{sys.argv[1]}/model-100/trials.jsonl")]
late = [r for r in recs if r["trial"] >= 20]
inside = sum(r["params"]["objective.x1"] > 5 and r["params"]["objective.x2"] < 5 for r in late)
line = open(sys.argv[2]).read()
m = re.search(r"mean ([0-9.]+)% .*stuck \(half or more of them in the region\): (.*)$", line, re.M)
assert m, line
assert abs(float(m.group(1)) - 100.0 * inside / len(late)) < 0.06, (m.group(1), inside, len(late))
assert m.group(2) == ("100" if 2 * inside >= len(late) else "none"), m.group(2)
assert 2 * inside < len(late), f"stuck: {inside} of {len(late)} late proposals in the region"
print(f"bench_feasibility: seed 100, {inside} of {len(late)} late proposals in the region")
PY

finish
