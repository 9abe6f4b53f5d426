#!/usr/bin/env bash
# N ranks compute what one rank computes: the same global batch trained with -np 1, 2 and 4 ends
# with the same parameters up to float summation order, with and without dropout (whose masks
# are keyed by the global sample index, not by the rank), and with -np 3 on a global batch that
# 3 does not divide (uneven shards of 20, 21, 21 rows).
#   usage: equivalence.sh DPTRAIN CKPT_DIFF
set -euo pipefail

source "$(dirname "$0")/lib.sh"

# Relative tolerance of N ranks against one rank. The only difference is the order in which fp32
# gradients are summed (one rank sums B rows; N ranks sum B/N rows each, then allreduce). Over
# ~60 SGD steps that moves parameters by ~1e-6 of their tensor's scale (measured: 8e-7); a wrong
# shard, a double-counted or missing rank or a gradient not divided by B moves them by 1e-2 or
# more. 1e-4 sits between the two with a wide margin on both sides.
RTOL=1e-4

# same NAME_A NAME_B: parameters agree to RTOL
same() {
    local rc=0
    "$CKPT_DIFF" "$TMP/$1/checkpoint.bin" "$TMP/$2/checkpoint.bin" --rtol "$RTOL" \
        >"$TMP/diff_$1_$2.out" 2>&1 || rc=$?
    if [ "$rc" -ne 0 ]; then
        fail "$2 does not match $1 to relative $RTOL (ckpt_diff exit $rc):"
        sed 's/^/    /' "$TMP/diff_$1_$2.out" >&2
    else
        echo "ok: $2 matches $1: $(tail -n 1 "$TMP/diff_$1_$2.out")"
    fi
}

# differ NAME_A NAME_B WHY: parameters must NOT agree (a control that the comparison has teeth)
differ() {
    local rc=0
    "$CKPT_DIFF" "$TMP/$1/checkpoint.bin" "$TMP/$2/checkpoint.bin" --rtol "$RTOL" \
        >"$TMP/diff_$1_$2.out" 2>&1 || rc=$?
    if [ "$rc" -ne 1 ]; then
        fail "$2 should differ from $1 ($3) but ckpt_diff exited $rc:"
        sed 's/^/    /' "$TMP/diff_$1_$2.out" >&2
    else
        echo "ok: $2 differs from $1 ($3)"
    fi
}

# Global batch 60: 1800 training rows -> 30 steps per epoch, 2 epochs = 60 steps; 60 rows split
# as 60, 30+30 and 15x4.
EXPECT_STEPS=60
for np in 1 2 4; do
    train_ranks "b60_np$np" "$np" --set train.batch_size=60 --set train.epochs=2
    train_ranks "b60_drop_np$np" "$np" --set train.batch_size=60 --set train.epochs=2 \
        --set model.dropout=0.2
done
same b60_np1 b60_np2
same b60_np1 b60_np4
same b60_drop_np1 b60_drop_np2
same b60_drop_np1 b60_drop_np4
differ b60_np1 b60_drop_np1 "dropout 0.2 must change the run, or the dropout check proves nothing"

# Global batch 62 with 3 ranks: rows [0,20), [20,41), [41,62). 1800 / 62 -> 29 steps per epoch.
EXPECT_STEPS=58
for np in 1 3; do
    train_ranks "b62_np$np" "$np" --set train.batch_size=62 --set train.epochs=2
    train_ranks "b62_drop_np$np" "$np" --set train.batch_size=62 --set train.epochs=2 \
        --set model.dropout=0.2
done
same b62_np1 b62_np3
same b62_drop_np1 b62_drop_np3

finish
