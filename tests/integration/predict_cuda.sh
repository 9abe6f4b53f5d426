#!/usr/bin/env bash
# dptrain predict and eval on the CUDA backend (--device cuda; the emulated build's GPUs): eval's
# accuracy is metrics.jsonl's test_accuracy of a run trained on cuda, predict on cuda gives the
# CPU backend's classes and probabilities (within a stated tolerance), and under mpirun each rank
# takes its own GPU (two ranks on one GPU are refused) and writes what one rank writes.
# Emulated CUDA build only (skipped, 77, elsewhere).
#   usage: predict_cuda.sh DPTRAIN CKPT_DIFF
set -euo pipefail
source "$(dirname "$0")/lib.sh"
REPO=$(cd "$(dirname "$0")/../.." && pwd)
require_emulated_gpus 4

# 3000 rows: a test file of ~750 rows, three 256-row batches (uneven shares on 2 ranks)
python3 "$REPO/scripts/make_csv_examples.py" tabular "$TMP/tab" --rows 3000 --seed 5
sed -e "s#data/tabular#$TMP/tab#" -e 's/epochs: 20/epochs: 2/' "$REPO/configs/csv_classes.yaml" \
    >"$TMP/tab.yaml"
"$DPTRAIN" train "$TMP/tab.yaml" --device cuda --out "$TMP/run" >"$TMP/train.out" 2>&1 ||
    { cat "$TMP/train.out" >&2; fail "training on cuda failed"; finish; }
grep -q "cuda" "$TMP/train.out" || fail "the run did not train on the CUDA backend"
IN=$TMP/tab/test.csv

"$DPTRAIN" eval "$TMP/run" --input "$IN" --json --device cuda >"$TMP/eval.json" ||
    fail "eval --device cuda failed"
"${MPIRUN[@]}" -np 2 "$DPTRAIN" eval "$TMP/run" --input "$IN" --json --device cuda \
    >"$TMP/eval2.json" 2>"$TMP/eval2.err" || fail "eval --device cuda on 2 ranks failed"
cmp -s "$TMP/eval.json" "$TMP/eval2.json" || fail "eval on 2 GPUs differs from 1 GPU"
for dev in cpu cuda; do
    "$DPTRAIN" predict "$TMP/run" --input "$IN" --output "$TMP/pred_$dev.csv" --device $dev ||
        fail "predict --device $dev failed"
done
"${MPIRUN[@]}" -np 3 "$DPTRAIN" predict "$TMP/run" --input "$IN" --output "$TMP/pred3.csv" \
    --device cuda >"$TMP/pred3.out" 2>&1 || { cat "$TMP/pred3.out" >&2; fail "predict on 3 GPUs failed"; }
cmp -s "$TMP/pred_cuda.csv" "$TMP/pred3.csv" || fail "predict on 3 GPUs differs from 1 GPU"

# eval's accuracy is the cuda run's test accuracy exactly (the same rows in the same 256-row
# batches through the same backend's ops); the loss to 1e-6 relative (written with 9 digits).
# predict on cuda against cpu: the same class for every row; each probability within 1e-5: the
# backends' GEMMs sum in another order (emulated cuBLAS in double, OpenBLAS in float), ~1e-7
# of the logits, and predict prints 6 significant digits (5e-7 of a probability <= 1).
eval_matches_metrics "$TMP/run" "$TMP/eval.json"
python3 - "$TMP/eval.json" "$TMP/pred_cpu.csv" "$TMP/pred_cuda.csv" <<'PY' ||
import json, sys
ev = json.load(open(sys.argv[1]))
ok = True
cpu = open(sys.argv[2]).read().splitlines()
gpu = open(sys.argv[3]).read().splitlines()
if len(cpu) != len(gpu) or len(cpu) != ev["rows"] + 1 or cpu[0] != gpu[0]:
    print("rows or header differ:", len(cpu), len(gpu), ev["rows"], cpu[0], gpu[0]); ok = False
worst = 0.0
for a, b in zip(cpu[1:], gpu[1:]):
    a, b = a.split(","), b.split(",")
    if a[0] != b[0]:
        print("class differs: cpu", a, "cuda", b); ok = False; break
    worst = max([worst] + [abs(float(x) - float(y)) for x, y in zip(a[1:], b[1:])])
if worst > 1e-5:
    print("a probability differs by %g > 1e-5" % worst); ok = False
print("predict cpu vs cuda: same classes, probabilities within %.2g" % worst)
sys.exit(0 if ok else 1)
PY
    fail "predict on cuda disagrees with the CPU backend"

# one GPU per rank, as training: two ranks that see one GPU are refused, by name
DPT_EMU_DEVICES=1 "${MPIRUN[@]}" -x DPT_EMU_DEVICES -np 2 "$DPTRAIN" predict "$TMP/run" \
    --input "$IN" --device cuda >"$TMP/shared.out" 2>&1 &&
    fail "predict with 2 ranks on 1 GPU exited 0"
grep -q "would both use the GPU" "$TMP/shared.out" ||
    { cat "$TMP/shared.out" >&2; fail "2 ranks on 1 GPU: no message naming the shared GPU"; }
CUDA_VISIBLE_DEVICES= "$DPTRAIN" eval "$TMP/run" --input "$IN" --device cuda >"$TMP/none.out" 2>&1 &&
    fail "eval --device cuda without a visible GPU exited 0"
grep -q "no GPU is visible" "$TMP/none.out" ||
    { cat "$TMP/none.out" >&2; fail "eval --device cuda without a GPU: no message"; }
finish
