#!/usr/bin/env bash
# Every user mistake is reported, not crashed on: each case below checks the exact exit status
# (2 for a config, data or usage error, 1 for a diverged run; a signal would show as > 128) and a
# substring of the message on stderr, and that no checkpoint was written. Input files (configs,
# IDX files, a truncated gzip) are generated here in a temp dir.
#   usage: bad_input.sh DPTRAIN CKPT_DIFF
set -euo pipefail

source "$(dirname "$0")/lib.sh"

# case NAME ARGS...: runs ARGS (a full command), keeps stdout/stderr in $TMP/NAME.{out,err}
RC=0
case_run() {
    local name=$1
    shift
    RC=0
    "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" || RC=$?
}

# expect NAME CODE SUBSTRING...: exit status exactly CODE, stderr has every SUBSTRING
expect() {
    local name=$1 code=$2 ok=1
    shift 2
    if [ "$RC" -ne "$code" ]; then
        fail "$name: exit status $RC, expected $code$([ "$RC" -gt 128 ] && echo " (killed by signal $((RC - 128)))")"
        ok=0
    fi
    for s in "$@"; do
        if ! grep -qF -- "$s" "$TMP/$name.err"; then
            fail "$name: stderr lacks '$s'"
            ok=0
        fi
    done
    if [ "$ok" -eq 0 ]; then
        echo "  stderr of $name:" >&2
        sed 's/^/    /' "$TMP/$name.err" >&2
    else
        echo "ok: $name: exit $code, $(grep -m1 '^dptrain' "$TMP/$name.err" || true)"
    fi
}

# once NAME SUBSTRING: an error that every rank shares is printed once, by rank 0 (main.c: "rank 0
# speaks for errors every rank shares, the others only for their own")
once() {
    local n
    n=$(grep -cF -- "$2" "$TMP/$1.err" || true)
    if [ "$n" -ne 1 ]; then
        fail "$1: the shared error '$2' is printed $n times, expected once (by rank 0):"
        grep -F -- "$2" "$TMP/$1.err" | sed 's/^/    /' >&2
    fi
}

# no_checkpoint NAME DIR: nothing was trained into DIR
no_checkpoint() {
    if [ -e "$2/checkpoint.bin" ] || [ -e "$2/checkpoint.bin.tmp" ]; then
        fail "$1: a checkpoint exists in $2 although the run should not have trained"
    fi
}

train() { # NAME ARGS...: dptrain train CONFIG --out $TMP/NAME ARGS (one rank, no mpirun)
    local name=$1
    shift
    case_run "$name" "$DPTRAIN" train "$CONFIG" --out "$TMP/$name" "$@"
}

# ---- config ------------------------------------------------------------------------------

# unknown key: line 4, column 3 (libyaml marks, 1-based in the message)
printf 'run:\n  seed: 3\ntrain:\n  learning_rate: 0.1\n' >"$TMP/unknown_key.yaml"
case_run unknown_key "$DPTRAIN" train "$TMP/unknown_key.yaml" --out "$TMP/unknown_key"
expect unknown_key 2 "unknown_key.yaml:4:3:" "learning_rate"
no_checkpoint unknown_key "$TMP/unknown_key"

# wrong type: the value 'three' starts at line 2, column 11
printf 'train:\n  epochs: three\n' >"$TMP/wrong_type.yaml"
case_run wrong_type "$DPTRAIN" train "$TMP/wrong_type.yaml" --out "$TMP/wrong_type"
expect wrong_type 2 "wrong_type.yaml:2:11:" "train.epochs" "three"
no_checkpoint wrong_type "$TMP/wrong_type"

train negative_lr --set train.lr=-0.1
expect negative_lr 2 "train.lr" "must be > 0"
no_checkpoint negative_lr "$TMP/negative_lr"

case_run missing_config "$DPTRAIN" train "$TMP/no_such_config.yaml" --out "$TMP/missing_config"
expect missing_config 2 "no_such_config.yaml"

# the same config error under mpirun: rank 0 names it; no rank prints an error without a message
case_run config_error_np2 "${MPIRUN[@]}" -np 2 "$DPTRAIN" train "$CONFIG" --set train.lr=-0.1 \
    --out "$TMP/config_error_np2"
expect config_error_np2 2 "must be > 0"
if grep -qE 'error: *$' "$TMP/config_error_np2.err"; then
    fail "config_error_np2: a rank printed an error line with an empty message:"
    grep -nE 'error: *$' "$TMP/config_error_np2.err" | sed 's/^/    /' >&2
fi

# ---- command line ------------------------------------------------------------------------

train unknown_option --frobnicate
expect unknown_option 2 "unknown option '--frobnicate'"
case_run unknown_command "$DPTRAIN" frobnicate "$CONFIG"
expect unknown_command 2 "unknown command 'frobnicate'"
case_run missing_config_arg "$DPTRAIN" train
expect missing_config_arg 2 "missing CONFIG.yaml"

# ---- data files --------------------------------------------------------------------------

# IDX files (big-endian header, u8 data): 300 images of 4x8 = 32 features, labels 0..9;
# variants with a bad magic and with one label 12 for a 10-class model
python3 - "$TMP" <<'EOF'
import gzip, random, struct, sys
d = sys.argv[1]
rng = random.Random(1)
n, rows, cols = 300, 4, 8
pixels = bytes(rng.randrange(256) for _ in range(n * rows * cols))
labels = bytearray(rng.randrange(10) for _ in range(n))
def write(name, data):
    open(f"{d}/{name}", "wb").write(data)
write("images.idx", struct.pack(">IIII", 0x803, n, rows, cols) + pixels)
write("labels.idx", struct.pack(">II", 0x801, n) + bytes(labels))
write("badmagic-images.idx", struct.pack(">IIII", 0x804, n, rows, cols) + pixels)
labels[123] = 12
write("badlabel-labels.idx", struct.pack(">II", 0x801, n) + bytes(labels))
write("images.idx.gz", gzip.compress(struct.pack(">IIII", 0x803, n, rows, cols) + pixels))
EOF
gz_bytes=$(stat -c %s "$TMP/images.idx.gz")
head -c $((gz_bytes / 2)) "$TMP/images.idx.gz" >"$TMP/truncated-images.idx.gz"

IDX=(--set data.format=idx --set 'data.test_images=""' --set 'data.test_labels=""'
     --set model.layers=[32,16,10] --set train.batch_size=30)
idx() { # NAME IMAGES LABELS [ARGS...]
    local name=$1 images=$2 labels=$3
    shift 3
    train "$name" "${IDX[@]}" --set "data.train_images=$images" --set "data.train_labels=$labels" "$@"
}

# control: the generated files are good, so each failure below is caused by its one defect
idx idx_control "$TMP/images.idx.gz" "$TMP/labels.idx" --set train.epochs=1
expect idx_control 0

idx layers0 "$TMP/images.idx" "$TMP/labels.idx" --set model.layers=[30,16,10]
expect layers0 2 "32 features" "model.layers[0] is 30"
no_checkpoint layers0 "$TMP/layers0"

idx missing_file "$TMP/no_such_images.idx.gz" "$TMP/labels.idx"
expect missing_file 2 "no_such_images.idx.gz" "cannot open"
no_checkpoint missing_file "$TMP/missing_file"

idx truncated_gzip "$TMP/truncated-images.idx.gz" "$TMP/labels.idx"
expect truncated_gzip 2 "truncated-images.idx.gz" "truncated"
no_checkpoint truncated_gzip "$TMP/truncated_gzip"

idx bad_magic "$TMP/badmagic-images.idx" "$TMP/labels.idx"
expect bad_magic 2 "badmagic-images.idx" "bad magic" "0x00000804"
no_checkpoint bad_magic "$TMP/bad_magic"

idx label_range "$TMP/images.idx" "$TMP/badlabel-labels.idx"
expect label_range 2 "badlabel-labels.idx" "label 12" "out of range"
no_checkpoint label_range "$TMP/label_range"

# ---- ranks -------------------------------------------------------------------------------

# a global batch of 1 cannot give each of 2 ranks a row; every rank reaches the same verdict,
# so rank 0 alone reports it
case_run batch_lt_ranks "${MPIRUN[@]}" -np 2 "$DPTRAIN" train "$CONFIG" \
    --set train.batch_size=1 --out "$TMP/batch_lt_ranks"
expect batch_lt_ranks 2 "batch_size" "ranks"
no_checkpoint batch_lt_ranks "$TMP/batch_lt_ranks"
once batch_lt_ranks "smaller than the number of ranks"

# ---- divergence --------------------------------------------------------------------------

# From the start: a linear MLP with MSE and SGD at lr 10 overflows within a few steps, before
# any checkpoint exists.
DIV=(--set model.activation=identity --set model.loss=mse --set train.lr=10)
case_run diverged_early "${MPIRUN[@]}" -np 2 "$DPTRAIN" train "$CONFIG" "${DIV[@]}" \
    --set train.epochs=2 --out "$TMP/diverged_early"
expect diverged_early 1 "diverged" "no checkpoint"
once diverged_early "diverged"
no_checkpoint diverged_early "$TMP/diverged_early"

# After a checkpoint: the same model with a linear warm-up to lr 10 over 22 epochs (30 steps per
# epoch) trains while the rate is small and blows up once it passes ~0.6, in epoch 2 or 3
# (measured: step ~45). The checkpoint of the last good epoch must survive, load, and be the
# only one (no checkpoint.bin.tmp left behind).
case_run diverged_late "${MPIRUN[@]}" -np 2 "$DPTRAIN" train "$CONFIG" "${DIV[@]}" \
    --set train.warmup_epochs=22 --set train.epochs=23 --out "$TMP/diverged_late"
expect diverged_late 1 "diverged" "last good checkpoint"
good=$(grep -oE 'last good checkpoint \(epoch [0-9]+\)' "$TMP/diverged_late.err" | head -n1 |
       grep -oE '[0-9]+' || true)
if [ -z "$good" ]; then
    fail "diverged_late: the message does not name the epoch of the last good checkpoint"
else
    rc=0
    "$CKPT_DIFF" "$TMP/diverged_late/checkpoint.bin" "$TMP/diverged_late/checkpoint.bin" \
        --bitwise >"$TMP/diverged_late.ckpt" 2>&1 || rc=$?
    if [ "$rc" -ne 0 ] || ! grep -qF "epoch $good, step $((good * 30))," "$TMP/diverged_late.ckpt"; then
        fail "diverged_late: checkpoint.bin should load and hold epoch $good (ckpt_diff exit $rc):"
        sed 's/^/    /' "$TMP/diverged_late.ckpt" >&2
    else
        echo "ok: diverged_late: the epoch-$good checkpoint loads"
    fi
fi
if [ -e "$TMP/diverged_late/checkpoint.bin.tmp" ]; then
    fail "diverged_late: checkpoint.bin.tmp was left behind"
fi

finish
