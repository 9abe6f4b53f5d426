#!/usr/bin/env bash
# The Fashion-MNIST search benchmark's scripts in their smoke mode (2000 rows, 3 epochs, 4 trials,
# one seed): scripts/bench_fashion_search.sh (sync, async, async + ASHA through mpirun -np 2),
# scripts/search_summary.py, scripts/asha_replay.py and scripts/best_on_test.py on hand-made
# trials.jsonl files (and metrics.jsonl for the last), and,
# where Debian's python3-optuna imports, scripts/compare_optuna.py (else it says it skips that
# part). Skipped (exit 77) after the hand-made cases without the Fashion-MNIST files.
# Usage: fashion_search_bench.sh DPTRAIN CKPT_DIFF
set -euo pipefail
DPTRAIN=$(realpath "$1")
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/dpt_fsb.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

# --- asha_replay.py on a hand-made full-fidelity search: 3 epochs, trial k runs from k to k + 3,
# so trials reach each rung in id order. eta 3 (rung 1): the first continues; 0.6 loses to 0.5;
# 0.3 is the best of 3; 0.7 is not the best of 4 (top max(1, floor(4/3)) = 1): 3+1+3+1 = 8 epochs,
# best 0.1 (trial 2) against the run's 0.05. The old eta-free rule lets the second (m = 2 < 3)
# through: 10 epochs. eta 2 (rungs 1, 2): trial 1 stops at 1 (0.6 > 0.5), trial 3 at 1 (three
# of four better, top 2), trials 0 and 2 continue past rung 2 (each the best there): 8 epochs.
cat > "$TMP/full.jsonl" <<'EOF'
{"trial":0,"objective":0.3,"status":"ok","epochs":3,"start_s":0,"end_s":3,"curve":[0.5,0.4,0.3]}
{"trial":1,"objective":0.45,"status":"ok","epochs":3,"start_s":1,"end_s":4,"curve":[0.6,0.5,0.45]}
{"trial":2,"objective":0.1,"status":"ok","epochs":3,"start_s":2,"end_s":5,"curve":[0.3,0.2,0.1]}
{"trial":3,"objective":0.05,"status":"ok","epochs":3,"start_s":3,"end_s":6,"curve":[0.7,0.1,0.05]}
EOF
replayed() { python3 "$ROOT/scripts/asha_replay.py" "$@" "$TMP/full.jsonl" | awk '!/^#/ {print $2, $3, $4, $5, $6}'; }
[ "$(replayed --eta 3)" = "12 8 0.0500 0.1000 5.00" ] || { echo "asha_replay eta 3: $(replayed --eta 3)"; exit 1; }
[ "$(replayed --eta 3 --rule eta-free)" = "12 10 0.0500 0.1000 5.00" ] ||
    { echo "asha_replay eta-free: $(replayed --eta 3 --rule eta-free)"; exit 1; }
[ "$(replayed --eta 2)" = "12 8 0.0500 0.1000 5.00" ] || { echo "asha_replay eta 2: $(replayed --eta 2)"; exit 1; }

# --- best_on_test.py: the chosen trial (lowest objective, ok or stopped early) read in its own
# trials/NNNN at the epoch where it was recorded. f seed 1: trial 1 (0.10 after 3 epochs; trial 0,
# 0.12, is not it) -> test 0.13; a seed 1: trial 1 stopped at epoch 1 (0.11) -> test 0.12, trial 0
# diverged; seed 2: f 0.09 -> 0.11, a 0.095 -> 0.115. Medians f 0.095 / 0.12, a 0.1025 / 0.1175:
# gaps +0.75 (validation) and -0.25 (test); per seed validation +1.0, +0.5 (none within 0.3),
# test -1.0, +0.5.
mk() {  # DIR TRIALS_JSONL TRIAL_ID METRICS_LINES
    mkdir -p "$1/trials/$(printf %04d "$3")"
    printf '%s\n' "$2" > "$1/trials.jsonl"
    printf '%s\n' "$4" > "$1/trials/$(printf %04d "$3")/metrics.jsonl"
}
mk "$TMP/f1" '{"trial":0,"objective":0.12,"status":"ok","epochs":3}
{"trial":1,"objective":0.10,"status":"ok","epochs":3}' 1 \
'{"epoch":2,"val_accuracy":0.95,"test_accuracy":0.95}
{"epoch":3,"val_accuracy":0.90,"test_accuracy":0.87}'
mkdir -p "$TMP/f1/trials/0000"
echo '{"epoch":3,"val_accuracy":0.88,"test_accuracy":0.80}' > "$TMP/f1/trials/0000/metrics.jsonl"
mk "$TMP/a1" '{"trial":0,"objective":null,"status":"diverged","epochs":1}
{"trial":1,"objective":0.11,"status":"stopped_early","epochs":1}' 1 \
'{"epoch":1,"val_accuracy":0.89,"test_accuracy":0.88}'
mk "$TMP/f2" '{"trial":0,"objective":0.09,"status":"ok","epochs":2}' 0 \
'{"epoch":2,"val_accuracy":0.91,"test_accuracy":0.89}'
mk "$TMP/a2" '{"trial":0,"objective":0.095,"status":"ok","epochs":2}' 0 \
'{"epoch":2,"val_accuracy":0.905,"test_accuracy":0.885}'
python3 "$ROOT/scripts/best_on_test.py" --draws 200 f=1="$TMP/f1" f=2="$TMP/f2" a=1="$TMP/a1" \
    a=2="$TMP/a2" > "$TMP/bot"
cat "$TMP/bot"
tr -s ' ' < "$TMP/bot" > "$TMP/bot1"  # columns compared with single spaces
for want in "f 1 1 3 0.1000 0.1300" "a 1 1 1 0.1100 0.1200" \
            "f med 0.0950 0.1200 (2 seeds)" "a med 0.1025 0.1175 (2 seeds)" \
            "gap of the medians: validation +0.75, test -0.25" \
            "per seed, validation: median +0.75, within 0.3: 0 of 2" \
            "per seed, test: median -0.25, within 0.3: 1 of 2"; do
    grep -qF -- "$want" "$TMP/bot1" || { echo "best_on_test.py: no line '$want'"; exit 1; }
done

if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
    echo "skipped: dataset-fashion-mnist not installed"
    exit 77
fi

# --- search_summary.py: time to target, best, epochs, utilization, medians with a miss
cat > "$TMP/a.jsonl" <<'EOF'
{"trial":0,"objective":0.2,"status":"ok","epochs":3,"time_s":2.0,"start_s":0.0,"end_s":2.0}
{"trial":1,"objective":0.1,"status":"stopped_early","epochs":1,"time_s":1.0,"start_s":0.0,"end_s":3.0}
{"trial":2,"objective":null,"status":"diverged","epochs":0,"time_s":0.5,"start_s":2.0,"end_s":2.5}
{"trial":3,"objective":0.09,"status":"infra_failed","epochs":1,"time_s":1.0,"start_s":2.5,"end_s":3.5}
{"trial":4,"objective":0.11,"status":"ok","epochs":3,"time_s":1.5,"start_s":2.5,"end_s":4.0}
EOF
cat > "$TMP/b.jsonl" <<'EOF'
{"trial":0,"objective":0.3,"status":"ok","epochs":3,"time_s":4.0,"start_s":0.0,"end_s":4.0}
EOF
cat > "$TMP/c.jsonl" <<'EOF'
{"trial":0,"objective":0.12,"status":"ok","epochs":2,"time_s":1.0,"start_s":0.0,"end_s":9.0}
EOF
python3 "$ROOT/scripts/search_summary.py" 0.12 2 m=1="$TMP/a.jsonl" m=2="$TMP/b.jsonl" \
    m=3="$TMP/c.jsonl" > "$TMP/summary"
cat "$TMP/summary"
python3 - "$TMP/summary" <<'EOF'
import sys
rows = [l.split() for l in open(sys.argv[1]) if not l.startswith("#")]
a, b, c, med = rows
# a: the infra_failed trial is left out (4 trials); the stopped trial at 0.1 reached 0.12 at 3.0
# (before trial 4's 0.11 at 4.0); epochs 3+1+0+3; util (2+1+0.5+1.5) / (2 x 4.0); replayed in
# sync rounds (trials 0+1, then 2+4) the first round, 2.0 s long, holds the 0.1
assert a == ["m", "1", "4", "3.0", "0.1000", "7", "4.0", "62.5", "2.0"], a
assert b == ["m", "2", "1", "-", "0.3000", "3", "4.0", "50.0", "-"], b      # a miss
assert c[3] == "9.0" and c[8] == "1.0", c                                    # <= target counts
# medians: time of 3.0, a miss, 9.0 -> the miss sorts last, so 9.0; trials 4, 1, 1; best 0.1,
# 0.3, 0.12; epochs 7, 3, 2; wall 4, 4, 9; util 62.5, 50, 5.6; replayed 2.0, a miss, 1.0
assert med == ["m", "med", "1", "9.0", "0.1200", "3.0", "4.0", "50.0", "2.0", "reached", "2/3"], med
EOF

# --- the benchmark, smoke mode
SMOKE=1 KEEP="$TMP/bench" bash "$ROOT/scripts/bench_fashion_search.sh" "$DPTRAIN" 1 | tee "$TMP/bench.out"
python3 - "$TMP/bench" "$TMP/bench.out" <<'EOF'
import json, os, sys
d, out = sys.argv[1], sys.argv[2]
lines = open(out).read().split("\n")
cut = next(k for k, l in enumerate(lines) if l.startswith("# the chosen trial of each search"))
rows = {l.split()[0] + l.split()[1]: l.split() for l in lines[:cut] if l and not l.startswith("#")}
test = {l.split()[0] + l.split()[1]: l.split() for l in lines[cut:] if l and not l.startswith("#")}
for m in ("sync", "async", "asha"):
    recs = [json.loads(l) for l in open(os.path.join(d, m + "-1", "trials.jsonl"))]
    assert sorted(r["trial"] for r in recs) == [0, 1, 2, 3], (m, recs)
    assert {r["group"] for r in recs} == {0, 1}, m            # 2 groups of one rank
    assert all(r["epochs"] <= 3 for r in recs), m
    row = rows[m + "1"]
    assert row[2] == "4" and int(row[5]) == sum(r["epochs"] for r in recs), row
    assert 0 < float(row[7]) <= 100, row
    assert m + "med" in rows, m
    # best_on_test.py's line: the chosen trial's validation error is the search's best
    t = test[m + "1"]
    assert abs(float(t[4]) - float(row[4])) <= 1e-4 and 0 < float(t[5]) < 1, (t, row)
assert not any(r.get("status") == "stopped_early"
               for m in ("sync", "async")
               for r in map(json.loads, open(os.path.join(d, m + "-1", "trials.jsonl"))))
# asha decided at rung 1 (3 epochs, grace 1, eta 3) for every trial that reached it
rungs = [json.loads(l) for l in open(os.path.join(d, "asha-1", "rungs.jsonl"))]
assert rungs and all(r["epoch"] == 1 for r in rungs), rungs
EOF

# --- Optuna's TPE + Hyperband driving dptrain train (Debian's python3-optuna)
if ! /usr/bin/python3 -c 'import optuna' 2>/dev/null; then
    echo "skip: optuna does not import (scripts/setup.sh --with-compare): compare_optuna.py not run"
    exit 0
fi
/usr/bin/python3 "$ROOT/scripts/compare_optuna.py" --dptrain "$DPTRAIN" --smoke --keep "$TMP/optuna" \
    | tee "$TMP/optuna.out"
python3 - "$TMP/optuna" "$TMP/optuna.out" <<'EOF'
import json, os, sys
d, out = sys.argv[1], sys.argv[2]
recs = [json.loads(l) for l in open(os.path.join(d, "optuna-1", "trials.jsonl"))]
assert sorted(r["trial"] for r in recs) == [0, 1, 2, 3], recs
for r in recs:
    metrics = [json.loads(l) for l in open(os.path.join(d, "optuna-1", "trials", "%04d" % r["trial"], "metrics.jsonl"))]
    assert r["status"] in ("ok", "stopped_early", "diverged"), r
    # the curve is what dptrain wrote; a pruned trial was stopped (fewer than 3 epochs, or the
    # last epoch's line written before SIGTERM landed), an ok one ran all 3; TPE may propose a
    # learning rate that diverges (lr up to 0.3 with 3 layers): no objective, and its log says so
    assert r["curve"] == [1 - m["val_accuracy"] for m in metrics][:len(r["curve"])], r
    assert r["epochs"] == len(r["curve"]) and (r["status"] != "ok" or r["epochs"] == 3), r
    if r["status"] == "diverged":
        assert r["objective"] is None, r
        assert "diverged" in open(os.path.join(d, "optuna-1", "trials", "%04d.log" % r["trial"])).read(), r
    else:
        assert r["objective"] == r["curve"][-1], r
assert sum(r["status"] != "diverged" for r in recs) >= 1, recs
assert any(l.startswith("  optuna-tpe-hb     1 ") for l in open(out)), open(out).read()
EOF
echo "fashion_search_bench: ok"
