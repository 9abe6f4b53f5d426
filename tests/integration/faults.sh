#!/usr/bin/env bash
# Faults on real file systems and ranks: a read-only and a full output directory are reported
# before training starts; a disk that fills up during training stops the run with the file named
# and leaves the previous checkpoint intact (bitwise the checkpoint of a run that stopped there);
# run.check_every names the rank whose parameters drifted. The file-system cases mount small
# tmpfs file systems, so they need root (skipped, exit 77, otherwise).
# Usage: faults.sh DPTRAIN CKPT_DIFF
set -euo pipefail
source "$(dirname "$0")/lib.sh"

# Runs dptrain, expects exit code WANT and PATTERN on stderr. Args: NAME WANT PATTERN ARGS...
expect() {
    local name=$1 want=$2 pattern=$3
    shift 3
    set +e
    "$@" >"$TMP/$name.out" 2>"$TMP/$name.err"
    local rc=$?
    set -e
    [ $rc -eq "$want" ] || fail "$name: exit $rc, expected $want: $(tail -2 "$TMP/$name.err")"
    grep -q -- "$pattern" "$TMP/$name.err" || fail "$name: stderr lacks '$pattern': $(cat "$TMP/$name.err")"
}

# --- run.check_every: the ranks compare a hash of their parameters
"${MPIRUN[@]}" -np 3 "$DPTRAIN" train "$CONFIG" --out "$TMP/plain" >/dev/null 2>&1 || fail "plain run failed"
"${MPIRUN[@]}" -np 3 "$DPTRAIN" train "$CONFIG" --out "$TMP/checked" --set run.check_every=7 >/dev/null 2>&1 ||
    fail "a run with run.check_every failed"
"$CKPT_DIFF" "$TMP/plain/checkpoint.bin" "$TMP/checked/checkpoint.bin" --bitwise >/dev/null ||
    fail "run.check_every changed the result"
expect drift 1 "run.check_every: at step 40 the parameters of rank 2 differ from rank 0's" \
    "${MPIRUN[@]}" -np 3 -x DPT_INJECT_PARAM_FAULT=2:40 "$DPTRAIN" train "$CONFIG" --out "$TMP/drift" \
    --set run.check_every=20
[ "$(grep -c 'differ from rank 0' "$TMP/drift.err")" = 1 ] || fail "drift: the message is not printed once"

if [ "$(id -u)" != 0 ] || ! command -v mount >/dev/null; then
    echo "faults: not root: the file-system cases are skipped"
    finish
    exit 77
fi
mnt=$TMP/mnt
mkdir -p "$mnt"
cleanup() { umount "$mnt" 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT

# --- a read-only output directory: reported before training
mount -t tmpfs -o ro,size=64k tmpfs "$mnt"
expect readonly 1 "Read-only file system" "$DPTRAIN" train "$CONFIG" --out "$mnt/run"
grep -q 'epoch' "$TMP/readonly.out" && fail "readonly: training started"
umount "$mnt"

# --- a full disk before the start
mount -t tmpfs -o size=64k tmpfs "$mnt"
dd if=/dev/zero of="$mnt/fill" bs=4k 2>/dev/null || true  # until the disk is full
mkdir -p "$mnt/run"
expect full_at_start 1 "No space left on device" "$DPTRAIN" train "$CONFIG" --out "$mnt/run"
grep -q 'epoch' "$TMP/full_at_start.out" && fail "full at start: training started"
umount "$mnt"

# --- the disk fills up during training: room for one checkpoint (52 KB here) but not for the
# temporary file of the next, so the save after epoch 2 fails
"$DPTRAIN" train "$CONFIG" --out "$TMP/one_epoch" --set train.epochs=1 >/dev/null 2>&1 || fail "1-epoch run failed"
mount -t tmpfs -o size=100k tmpfs "$mnt"
expect full_later 1 "cannot write checkpoint '$mnt/run/checkpoint.bin': No space left on device (the previous checkpoint is kept)" "$DPTRAIN" train "$CONFIG" --out "$mnt/run" --set train.epochs=3
grep -q 'No space left on device' "$TMP/full_later.err" || fail "full later: the message does not say the disk is full"
"$CKPT_DIFF" "$TMP/one_epoch/checkpoint.bin" "$mnt/run/checkpoint.bin" --bitwise >/dev/null ||
    fail "full later: the checkpoint left is not the last good one (epoch 1)"
ls "$mnt/run" | grep -q '\.tmp' && fail "full later: a temporary file is left behind"
# with room again, --resume continues from it
cp -r "$mnt/run" "$TMP/moved"
umount "$mnt"
"$DPTRAIN" train "$CONFIG" --out "$TMP/moved" --set train.epochs=3 --resume >"$TMP/moved.log" 2>&1 ||
    fail "resume after the full disk failed"
grep -q 'resume: .* at step 30 ' "$TMP/moved.log" || fail "resume after the full disk: not from step 30"

finish
