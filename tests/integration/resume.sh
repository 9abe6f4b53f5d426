#!/usr/bin/env bash
# A resumed run is the uninterrupted run: with the same rank count (-np 2) on the CPU backend,
# stopping and continuing with --resume must end with a bitwise identical checkpoint (parameters,
# optimizer state, epoch, step), both from an epoch boundary and from a train.max_steps cut in
# the middle of an epoch. A checkpoint that does not fit the configured model is refused (exit 2)
# with a message naming the widths, and is left untouched.
#   usage: resume.sh DPTRAIN CKPT_DIFF
set -euo pipefail

source "$(dirname "$0")/lib.sh"

NP=2

# run NAME OUTDIR ARGS...: mpirun -np NP dptrain train CONFIG --out OUTDIR ARGS; RC = exit status
run() {
    local name=$1 out=$2
    shift 2
    RC=0
    "${MPIRUN[@]}" -np "$NP" "$DPTRAIN" train "$CONFIG" --out "$out" "$@" \
        >"$TMP/$name.out" 2>"$TMP/$name.err" || RC=$?
}

expect_exit() { # NAME CODE
    if [ "$RC" -ne "$2" ]; then
        fail "$1: exit status $RC, expected $2; stderr:"
        sed 's/^/    /' "$TMP/$1.err" >&2
        return 1
    fi
}

expect_text() { # NAME FILE(out|err) SUBSTRING
    if ! grep -qF -- "$3" "$TMP/$1.$2"; then
        fail "$1: std$2 lacks '$3'; std$2 was:"
        sed 's/^/    /' "$TMP/$1.$2" >&2
    fi
}

# bitwise NAME_A_DIR NAME_B_DIR WHAT
bitwise() {
    local rc=0 log=$TMP/diff_$(basename "$1")_$(basename "$2").out
    "$CKPT_DIFF" "$1/checkpoint.bin" "$2/checkpoint.bin" --bitwise >"$log" 2>&1 || rc=$?
    if [ "$rc" -ne 0 ]; then
        fail "$3: checkpoints differ (ckpt_diff --bitwise exit $rc):"
        sed 's/^/    /' "$log" >&2
    else
        echo "ok: $3: bitwise identical"
    fi
}

# header_has DIR TEXT WHAT: ckpt_diff's description of DIR/checkpoint.bin contains TEXT
header_has() {
    local rc=0 log=$TMP/self_$(basename "$1").out
    "$CKPT_DIFF" "$1/checkpoint.bin" "$1/checkpoint.bin" --bitwise >"$log" 2>&1 || rc=$?
    if [ "$rc" -ne 0 ] || ! grep -qF -- "$2" "$log"; then
        fail "$3: expected a loadable checkpoint with '$2' (ckpt_diff exit $rc):"
        sed 's/^/    /' "$log" >&2
    fi
}

# 1. Epoch boundary. SGD with Nesterov momentum, a step schedule (the learning rate changes every
#    epoch, so a resume that restarted the schedule would show) and dropout (masks keyed by step).
A=(--set train.optimizer=sgd --set train.nesterov=true --set train.schedule=step
   --set train.step_epochs=1 --set train.step_gamma=0.7 --set model.dropout=0.1)
run straight4 "$TMP/straight4" "${A[@]}" --set train.epochs=4
expect_exit straight4 0 || true
run first2 "$TMP/split" "${A[@]}" --set train.epochs=2
expect_exit first2 0 || true
header_has "$TMP/split" "epoch 2, step 60" "checkpoint after 2 of 4 epochs"
run resume4 "$TMP/split" "${A[@]}" --set train.epochs=4 --resume
if expect_exit resume4 0; then
    expect_text resume4 out "at step 60"
    bitwise "$TMP/straight4" "$TMP/split" "4 epochs straight vs 2 epochs + --resume to 4"
    # metrics.jsonl is appended to on --resume: one row per epoch, 1 to 4, nothing twice
    python3 - "$TMP/split/metrics.jsonl" <<'EOF' || fail "resumed metrics.jsonl"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
got = [(r["epoch"], r["step"]) for r in rows]
want = [(1, 30), (2, 60), (3, 90), (4, 120)]
if got != want:
    sys.exit(f"{sys.argv[1]}: (epoch, step) rows {got}, expected {want}")
EOF
fi

# 2. Mid-epoch. Adam (two state copies and a step-dependent bias correction), cut by
#    train.max_steps=45 in the middle of epoch 2 (30 steps per epoch), then resumed without a
#    limit to the end of epoch 3.
B=(--set train.optimizer=adam --set train.lr=0.002 --set model.dropout=0.1 --set train.epochs=3)
run straight3 "$TMP/straight3" "${B[@]}"
expect_exit straight3 0 || true
run cut45 "$TMP/cut" "${B[@]}" --set train.max_steps=45
expect_exit cut45 0 || true
header_has "$TMP/cut" "epoch 1, step 45" "checkpoint after a max_steps cut at step 45"
run resume_mid "$TMP/cut" "${B[@]}" --set train.max_steps=0 --resume
if expect_exit resume_mid 0; then
    expect_text resume_mid out "at step 45"
    bitwise "$TMP/straight3" "$TMP/cut" "3 epochs straight vs max_steps=45 + --resume"
fi

# 3. A checkpoint of other widths (or another optimizer) is refused before anything runs, and
#    stays as it was.
run widths "$TMP/split" "${A[@]}" --set train.epochs=6 --set model.layers=[32,48,4] --resume
if expect_exit widths 2; then
    expect_text widths err "layer widths"
    expect_text widths err "[32,64,64,4]"
    expect_text widths err "[32,48,4]"
fi
run optimizer "$TMP/split" "${A[@]}" --set train.epochs=6 --set train.optimizer=adam --resume
if expect_exit optimizer 2; then
    expect_text optimizer err "optimizer 'sgd'"
fi
bitwise "$TMP/straight4" "$TMP/split" "checkpoint untouched by the refused resumes"

finish
