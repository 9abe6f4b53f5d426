#!/usr/bin/env bash
# Regression end to end on the teacher data of scripts/make_csv_examples.py with the shipped
# configs/regression.yaml (two named targets, standardized features and targets): it reaches the
# R^2 the README states, 2 ranks train what one rank trains, eval's metrics are metrics.jsonl's
# and predict's output gives eval's metrics, huber trains, data.missing: mean imputes in training
# and in predict, a search minimizes val_rmse, huber's delta reaches eval through model.json,
# predict and eval under mpirun write what one process writes, and bad input is a clear error
# (exit 2).
#   usage: regression.sh DPTRAIN CKPT_DIFF
set -euo pipefail

source "$(dirname "$0")/lib.sh"
REPO=$(cd "$(dirname "$0")/../.." && pwd)

python3 "$REPO/scripts/make_csv_examples.py" regression "$TMP/data" --rows 8000 --seed 2
sed -e "s#data/regression#$TMP/data#" "$REPO/configs/regression.yaml" >"$TMP/reg.yaml"
"$DPTRAIN" train "$TMP/reg.yaml" --out "$TMP/run" >"$TMP/train.out" 2>&1 ||
    { cat "$TMP/train.out" >&2; fail "training the regression failed"; finish; }
grep -q 'val_rmse' "$TMP/train.out" || fail "the epoch line has no val_rmse column"

"$DPTRAIN" eval "$TMP/run" --input "$TMP/data/test.csv" --json >"$TMP/eval.json" ||
    fail "eval --json failed"
"$DPTRAIN" eval "$TMP/run" --input "$TMP/data/test.csv" >"$TMP/eval.txt" || fail "eval failed"
grep -q '^r2 ' "$TMP/eval.txt" || fail "eval's table lacks r2"
"$DPTRAIN" predict "$TMP/run" --input "$TMP/data/test.csv" --output "$TMP/pred.csv" ||
    fail "predict failed"
# R^2 >= 0.99 is the claim of README and docs/interface.md for this config. The teacher's noise
# (2% of each target's scale) caps R^2 near 0.998; the config measured 0.9977 on this data's
# seed 1, so 0.99 fails only when training is broken (an untrained model gives R^2 <= 0).
# eval and metrics.jsonl: R^2 to 1e-6 relative, RMSE and MAE to 1e-6 relative (training keeps
# the targets standardized in float and maps errors back, eval reads the file's targets).
python3 - "$TMP/run/metrics.jsonl" "$TMP/eval.json" "$TMP/pred.csv" "$TMP/data/test.csv" \
    "$TMP/run/model.json" <<'PY' || fail "regression metrics wrong or disagreeing"
import csv, json, math, sys
last = [json.loads(l) for l in open(sys.argv[1])][-1]
ev = json.load(open(sys.argv[2]))
ok = True
def close(a, b, rtol, what):
    global ok
    if not abs(a - b) <= rtol * abs(b):
        print("%s: %r vs %r (rtol %g)" % (what, a, b, rtol)); ok = False
if not last["test_r2"] >= 0.99:
    print("test R^2 %r < 0.99" % last["test_r2"]); ok = False
for k in ("r2", "rmse", "mae", "loss"):
    close(ev[k], last["test_" + k], 1e-6, "eval %s vs metrics.jsonl test_%s" % (k, k))
pred = list(csv.reader(open(sys.argv[3])))
truth = list(csv.DictReader(open(sys.argv[4])))
names = ["price", "demand"]
if pred[0] != names:
    print("predict header", pred[0]); ok = False
if len(pred) - 1 != ev["rows"] or len(truth) != ev["rows"]:
    print("rows: predict %d, eval %d, file %d" % (len(pred) - 1, ev["rows"], len(truth))); ok = False
sse = sae = 0.0; r2 = 0.0
for k, name in enumerate(names):
    t = [float(r[name]) for r in truth]; p = [float(r[k]) for r in pred[1:]]
    m = sum(t) / len(t)
    e = sum((a - b) ** 2 for a, b in zip(p, t))
    sse += e; sae += sum(abs(a - b) for a, b in zip(p, t))
    r2 += (1 - e / sum((a - m) ** 2 for a in t)) / len(names)
n = len(truth) * len(names)
# predict writes 9 significant digits, so its metrics agree with eval's to ~1e-7
close(math.sqrt(sse / n), ev["rmse"], 1e-5, "RMSE of predict's output vs eval")
close(sae / n, ev["mae"], 1e-5, "MAE of predict's output vs eval")
close(r2, ev["r2"], 1e-6, "R^2 of predict's output vs eval")
info = json.load(open(sys.argv[5]))
if info["task"] != "regression" or info["target_names"] != names or len(info["target_std"]) != 2:
    print("model.json:", {k: info.get(k) for k in ("task", "target_names", "target_std")}); ok = False
print("test R^2", last["test_r2"], "eval", ev["r2"], "predict", r2)
sys.exit(0 if ok else 1)
PY

# predict under mpirun: each rank predicts a contiguous share, rank 0 writes them in order, so
# the output is byte for byte the one-process output (3 ranks on 2000 rows: uneven shares that
# do not fall on the 256-row batches; to a file and to stdout), and no part file is left behind
"${MPIRUN[@]}" -np 3 "$DPTRAIN" predict "$TMP/run" --input "$TMP/data/test.csv" \
    --output "$TMP/pred3.csv" >"$TMP/pred3.out" 2>&1 || fail "predict on 3 ranks failed"
cmp -s "$TMP/pred.csv" "$TMP/pred3.csv" || fail "predict on 3 ranks differs from 1 rank"
(cd "$TMP" && "${MPIRUN[@]}" -np 2 "$DPTRAIN" predict "$TMP/run" --input "$TMP/data/test.csv" \
    >"$TMP/pred2.csv" 2>"$TMP/pred2.err") || fail "predict on 2 ranks to stdout failed"
cmp -s "$TMP/pred.csv" "$TMP/pred2.csv" || fail "predict on 2 ranks to stdout differs from 1 rank"
# eval under mpirun: whole batches per rank, each batch's sums added in the file's order on
# every rank count, so 2 and 3 ranks print the bytes one rank prints (2000 rows: 8 batches)
for np in 2 3; do
    "${MPIRUN[@]}" -np $np "$DPTRAIN" eval "$TMP/run" --input "$TMP/data/test.csv" --json \
        >"$TMP/eval$np.json" 2>"$TMP/eval$np.err" || fail "eval on $np ranks failed"
    cmp -s "$TMP/eval.json" "$TMP/eval$np.json" ||
        fail "eval on $np ranks differs: $(cat "$TMP/eval.json" "$TMP/eval$np.json")"
done
"${MPIRUN[@]}" -np 3 "$DPTRAIN" eval "$TMP/run" --input "$TMP/data/test.csv" >"$TMP/eval3.txt" \
    2>&1 || fail "eval (table) on 3 ranks failed"
cmp -s "$TMP/eval.txt" "$TMP/eval3.txt" || fail "eval's table on 3 ranks differs from 1 rank"
ls "$TMP" | grep -q 'part[0-9]' && fail "part files left behind: $(ls "$TMP" | grep part)"

# 2 ranks, replicated and sharded: the same global batches as one rank (summation order apart;
# 1e-4 relative as tests/integration/equivalence.sh argues), and sharded loading trains too
S=(--set train.epochs=2 --set model.loss=huber --set model.huber_delta=0.5)
"$DPTRAIN" train "$TMP/reg.yaml" --out "$TMP/r1" "${S[@]}" >"$TMP/r1.out" 2>&1 ||
    fail "1-rank huber run failed"
"${MPIRUN[@]}" -np 2 "$DPTRAIN" train "$TMP/reg.yaml" --out "$TMP/r2" "${S[@]}" \
    >"$TMP/r2.out" 2>&1 || fail "2-rank huber run failed"
"$CKPT_DIFF" "$TMP/r1/checkpoint.bin" "$TMP/r2/checkpoint.bin" --rtol 1e-4 >"$TMP/diff.out" 2>&1 ||
    { fail "2 ranks differ from 1 rank:"; cat "$TMP/diff.out" >&2; }
"${MPIRUN[@]}" -np 2 "$DPTRAIN" train "$TMP/reg.yaml" --out "$TMP/sh" "${S[@]}" \
    --set data.sharding=sharded >"$TMP/sh.out" 2>&1 || fail "sharded run failed"
python3 - "$TMP/r1/metrics.jsonl" "$TMP/sh/metrics.jsonl" <<'PY' || fail "huber/sharded runs did not learn"
import json, sys
for p in sys.argv[1:]:
    last = [json.loads(l) for l in open(p)][-1]
    if not last["val_r2"] > 0.9:
        print(p, "val R^2", last["val_r2"]); sys.exit(1)
PY

# model.huber_delta is saved in model.json and eval's loss uses it: metrics.jsonl's test_loss
"$DPTRAIN" eval "$TMP/r1" --input "$TMP/data/test.csv" --json >"$TMP/r1_eval.json" ||
    fail "eval of the huber run failed"
python3 - "$TMP/r1/metrics.jsonl" "$TMP/r1_eval.json" "$TMP/r1/model.json" <<'PY' || fail "huber_delta not carried to eval"
import json, sys
last = [json.loads(l) for l in open(sys.argv[1])][-1]
ev, info = json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
if info.get("huber_delta") != 0.5 or abs(ev["loss"] - last["test_loss"]) > 1e-6 * last["test_loss"]:
    print("model.json huber_delta", info.get("huber_delta"), "eval loss", ev["loss"],
          "test_loss", last["test_loss"]); sys.exit(1)
PY

# search.objective: val_rmse: each trial's objective is its last epoch's val_rmse
cat "$TMP/reg.yaml" - >"$TMP/search.yaml" <<'YAML'
search:
  algorithm: random
  trials: 2
  objective: val_rmse
  space:
    train.lr: {type: log_uniform, low: 0.001, high: 0.01}
YAML
"$DPTRAIN" search "$TMP/search.yaml" --out "$TMP/search" --set train.epochs=1 \
    >"$TMP/search.out" 2>&1 || { cat "$TMP/search.out" >&2; fail "a val_rmse search failed"; }
python3 - "$TMP/search" <<'PY' || fail "the search's objective is not val_rmse"
import json, sys
for l in open(sys.argv[1] + "/trials.jsonl"):
    t = json.loads(l)
    m = [json.loads(x) for x in open("%s/trials/%04d/metrics.jsonl" % (sys.argv[1], t["trial"]))]
    # metrics.jsonl writes 9 significant digits
    if t["status"] != "ok" or abs(t["objective"] - m[-1]["val_rmse"]) > 1e-8 * t["objective"]:
        print("trial", t["trial"], t["status"], t["objective"], m[-1]["val_rmse"]); sys.exit(1)
PY

# data.missing: mean: training imputes the training file's means; predict imputes the saved ones,
# so a row with a missing value predicts as the row with the mean written in
python3 - "$TMP/data/train.csv" "$TMP/miss.csv" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1])))[:2001]
for i, r in enumerate(rows[1:]):
    if i % 7 == 0:
        r[1 + i % 8] = "NA" if i % 2 else ""
csv.writer(open(sys.argv[2], "w", newline="")).writerows(rows)
PY
"$DPTRAIN" train "$TMP/reg.yaml" --out "$TMP/miss" --set train.epochs=2 --set data.missing=mean \
    --set data.train_csv="$TMP/miss.csv" --set data.test_csv="$TMP/miss.csv" >"$TMP/miss.out" 2>&1 ||
    { cat "$TMP/miss.out" >&2; fail "training with data.missing: mean failed"; }
python3 - "$TMP/miss/model.json" "$TMP/miss.csv" "$TMP/one.csv" <<'PY'
import csv, json, sys
fill = json.load(open(sys.argv[1]))["fill"]
rows = list(csv.reader(open(sys.argv[2])))
out = [rows[0], rows[1], list(rows[1])]
for j in range(8):
    if out[2][1 + j] in ("", "NA"):
        out[2][1 + j] = repr(fill[j])
csv.writer(open(sys.argv[3], "w", newline="")).writerows(out)
PY
"$DPTRAIN" predict "$TMP/miss" --input "$TMP/one.csv" --output "$TMP/one_pred.csv" ||
    fail "predict with a missing value failed"
[ "$(sed -n 2p "$TMP/one_pred.csv")" = "$(sed -n 3p "$TMP/one_pred.csv")" ] ||
    fail "a missing value does not predict as its training mean: $(cat "$TMP/one_pred.csv")"

bad softmax "data.task: regression needs model.loss: mse or huber" train "$TMP/reg.yaml" \
    --out "$TMP/x" --set model.loss=softmax_cross_entropy
bad huber_class "model.loss: huber is for data.task: regression" train "$TMP/reg.yaml" \
    --out "$TMP/x" --set data.task=classification --set model.loss=huber
bad width "data.label_column names 2 target columns but model.layers[-1] is 1" train \
    "$TMP/reg.yaml" --out "$TMP/x" --set "model.layers=[8, 16, 1]"
cut -d, -f1-9 "$TMP/data/test.csv" >"$TMP/features_only.csv"
"$DPTRAIN" predict "$TMP/run" --input "$TMP/features_only.csv" --output "$TMP/fo.csv" ||
    fail "predict on the feature columns alone failed"
cut -d, -f1-8 "$TMP/data/test.csv" >"$TMP/short.csv"
bad missing_column "no column named 'x8' in the header" predict "$TMP/run" \
    --input "$TMP/short.csv"
bad eval_no_targets "no column named 'price'" eval "$TMP/run" --input "$TMP/features_only.csv"
finish
