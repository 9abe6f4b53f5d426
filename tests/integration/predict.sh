#!/usr/bin/env bash
# dptrain predict and eval on a run trained from a CSV with a header, string labels, quoted
# fields and CRLF (scripts/make_csv_examples.py): eval's accuracy and loss are metrics.jsonl's
# test_accuracy and test_loss for the same file, predict's classes agree with eval's confusion
# matrix, columns are found by name in another order, and bad input is a clear error (exit 2).
#   usage: predict.sh DPTRAIN CKPT_DIFF
set -euo pipefail

source "$(dirname "$0")/lib.sh"
REPO=$(cd "$(dirname "$0")/../.." && pwd)

python3 "$REPO/scripts/make_csv_examples.py" tabular "$TMP/tab" --rows 600 --seed 3
sed -e "s#data/tabular#$TMP/tab#" -e 's/epochs: 20/epochs: 3/' "$REPO/configs/csv_classes.yaml" \
    >"$TMP/tab.yaml"
"$DPTRAIN" train "$TMP/tab.yaml" --out "$TMP/run" >"$TMP/train.out" 2>&1 ||
    { cat "$TMP/train.out" >&2; fail "training on the CSV failed"; finish; }
[ -s "$TMP/run/model.json" ] || fail "model.json was not written beside checkpoint.bin"

# eval: the same accuracy and loss as training reported on its test file
"$DPTRAIN" eval "$TMP/run" --input "$TMP/tab/test.csv" --json >"$TMP/eval.json" ||
    fail "eval --json failed"
"$DPTRAIN" eval "$TMP/run" --input "$TMP/tab/test.csv" >"$TMP/eval.txt" || fail "eval failed"
grep -q '^virginica ' "$TMP/eval.txt" || fail "eval's table lacks the class names"
# predict on the test file's feature columns in another order, without the label column
python3 - "$TMP/tab/test.csv" "$TMP/pred_in.csv" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1], newline="")))
with open(sys.argv[2], "w", newline="") as f:
    csv.writer(f).writerows([[r[3], r[4], r[1], r[2]] for r in rows])  # width, note, sepal, petal
PY
"$DPTRAIN" predict "$TMP/run" --input "$TMP/pred_in.csv" --output "$TMP/pred.csv" ||
    fail "predict failed"
# training and eval both on the backend --device auto picks (the CUDA backend in the emulated
# build, where tests/integration/predict_cuda.sh also checks it against the CPU backend)
eval_matches_metrics "$TMP/run" "$TMP/eval.json"
python3 - "$TMP/eval.json" "$TMP/pred.csv" <<'PY' || fail "eval/predict disagree"
import json, sys
ev = json.load(open(sys.argv[1]))
ok = True
names = [c["name"] for c in ev["classes"]]
if names != ["setosa", "versicolor", "virginica"]:
    print("class names in the stated order expected, got", names); ok = False
lines = open(sys.argv[2]).read().splitlines()
if lines[0] != "prediction,p_setosa,p_versicolor,p_virginica":
    print("predict header:", lines[0]); ok = False
pred = [l.split(",")[0] for l in lines[1:]]
if len(pred) != ev["rows"]:
    print("predict wrote %d rows, eval read %d" % (len(pred), ev["rows"])); ok = False
col = [sum(ev["confusion"][t][p] for t in range(3)) for p in range(3)]
got = [pred.count(n) for n in names]
if got != col:
    print("predicted counts", got, "!= eval's confusion column sums", col); ok = False
for l in lines[1:]:
    p = [float(v) for v in l.split(",")[1:]]
    if abs(sum(p) - 1) > 1e-4 or names[p.index(max(p))] != l.split(",")[0]:
        print("bad probabilities:", l); ok = False; break
sys.exit(0 if ok else 1)
PY

# eval under mpirun: each rank a contiguous share of whole 256-row batches, the counts and the
# batches' loss sums reduced so that the output is the same bytes for any rank count (the
# training file: 600 rows, 3 batches; 2 ranks get 1 and 2 batches, 3 ranks one each)
for fmt in json table; do
    flag=$([ $fmt = json ] && echo --json || true)
    "$DPTRAIN" eval "$TMP/run" --input "$TMP/tab/train.csv" $flag >"$TMP/ev1.$fmt" ||
        fail "eval ($fmt) on the training file failed"
    for np in 2 3; do
        "${MPIRUN[@]}" -np $np "$DPTRAIN" eval "$TMP/run" --input "$TMP/tab/train.csv" $flag \
            >"$TMP/ev$np.$fmt" 2>"$TMP/ev$np.err" || fail "eval ($fmt) on $np ranks failed"
        cmp -s "$TMP/ev1.$fmt" "$TMP/ev$np.$fmt" ||
            { fail "eval ($fmt) on $np ranks differs from 1 rank"; diff "$TMP/ev1.$fmt" "$TMP/ev$np.$fmt" >&2; }
    done
done
grep -q '"rows": *600' "$TMP/ev1.json" || fail "eval did not read the 600 training rows: $(cat "$TMP/ev1.json")"

# a header of numbers (years): predict finds the columns by those names, in another order,
# never as column indices (tests/fuzz/regressions/csv/numeric_header_names_read_as_indices)
python3 - "$TMP/years.csv" "$TMP/years_moved.csv" <<'PY'
import csv, sys
rows = [["2021", "2019", "2020", "y"]] + [[i % 7, i % 5 - 2, i % 3, i % 3] for i in range(60)]
csv.writer(open(sys.argv[1], "w", newline="")).writerows(rows)
csv.writer(open(sys.argv[2], "w", newline="")).writerows([[r[2], r[0], r[1]] for r in rows])
PY
"$DPTRAIN" train "$TMP/tab.yaml" --out "$TMP/years" --set data.train_csv="$TMP/years.csv" \
    --set data.test_csv="$TMP/years.csv" --set data.label_column=y --set data.feature_columns= \
    --set data.class_names= --set "model.layers=[3, 8, 3]" --set train.epochs=1 \
    >"$TMP/years.out" 2>&1 || { cat "$TMP/years.out" >&2; fail "training on numeric column names failed"; }
"$DPTRAIN" predict "$TMP/years" --input "$TMP/years.csv" --output "$TMP/years1.csv" &&
    "$DPTRAIN" predict "$TMP/years" --input "$TMP/years_moved.csv" --output "$TMP/years2.csv" &&
    cmp -s "$TMP/years1.csv" "$TMP/years2.csv" ||
    fail "predict of numerically named columns in another order differs (or failed)"

# bad input: exit 2 and a message naming what is wrong
RC=0
printf 'width,sepal\n1,2\n' >"$TMP/missing_col.csv"
bad missing_column "no column named 'petal' in the header" predict "$TMP/run" --input "$TMP/missing_col.csv"
printf 'id,sepal,petal,width,note,species\n1,1,2,3,x,daisy\n' >"$TMP/unknown_label.csv"
bad unknown_label 'label "daisy" is not one of the 3 classes' eval "$TMP/run" --input "$TMP/unknown_label.csv"
printf 'width,sepal,petal\n1,,2\n' >"$TMP/missing_value.csv"
bad missing_value 'missing_value.csv:2: column 2 (sepal): missing value' predict "$TMP/run" --input "$TMP/missing_value.csv"
bad no_run_dir "model.json" eval "$TMP/nowhere" --input "$TMP/tab/test.csv"
bad no_input "needs RUN_DIR and --input FILE" predict "$TMP/run"
bad bad_device "--device must be auto, cpu or cuda (got 'gpu')" eval "$TMP/run" --input "$TMP/tab/test.csv" --device gpu
finish
