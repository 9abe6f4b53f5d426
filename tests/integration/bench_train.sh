#!/usr/bin/env bash
# dptrain bench train: the default (all ranks and one) and --scaling weak|strong over 1, 2, ...
# ranks with the CSV rows it appends, overlapped buckets (flat and ring), its flag errors, and
# (emulated CUDA build) the reason a single failing rank gives.
# Usage: bench_train.sh DPTRAIN CKPT_DIFF
set -euo pipefail
source "$(dirname "$0")/lib.sh"
csv=$TMP/scaling.csv

# Prints the table rows (lines starting with a rank count) of a bench output file.
rows() { grep -E '^ +[0-9]+ +[0-9]+ +[0-9]+ ' "$1" || true; }

"${MPIRUN[@]}" -np 2 "$DPTRAIN" bench train "$CONFIG" --steps 5 --warmup 1 >"$TMP/plain.out" 2>&1 ||
    fail "bench train failed: $(tail -3 "$TMP/plain.out")"
[ "$(rows "$TMP/plain.out" | awk '{print $1}' | tr '\n' ' ')" = "1 2 " ] ||
    fail "bench train: expected rows for 1 and 2 ranks: $(rows "$TMP/plain.out")"

"${MPIRUN[@]}" -np 3 "$DPTRAIN" bench train "$CONFIG" --steps 5 --warmup 1 --scaling weak \
    --csv "$csv" --label "one box" >"$TMP/weak.out" 2>&1 || fail "--scaling weak failed: $(tail -3 "$TMP/weak.out")"
# weak: 60 / 3 = 20 rows per rank at every count
[ "$(rows "$TMP/weak.out" | awk '{print $1 ":" $3}' | tr '\n' ' ')" = "1:20 2:40 3:60 " ] ||
    fail "--scaling weak: expected ranks 1, 2, 3 with batches 20, 40, 60: $(rows "$TMP/weak.out")"
rows "$TMP/weak.out" | head -1 | grep -q ' 100.0%$' || fail "--scaling weak: one rank is not 100% efficient"

"${MPIRUN[@]}" -np 3 "$DPTRAIN" bench train "$CONFIG" --steps 5 --warmup 1 --scaling strong \
    --csv "$csv" --label "one box" >"$TMP/strong.out" 2>&1 || fail "--scaling strong failed"
[ "$(rows "$TMP/strong.out" | awk '{print $1 ":" $3}' | tr '\n' ' ')" = "1:60 2:60 3:60 " ] ||
    fail "--scaling strong: expected the global batch 60 at every count: $(rows "$TMP/strong.out")"

# the CSV: one header, then one row per rank count and run
[ "$(head -1 "$csv")" = "label,mode,config,ranks,nodes,batch,samples_per_s,step_ms,compute_ms,wait_ms,comm_ms,comm_total_ms,data_ms,efficiency" ] ||
    fail "CSV header: $(head -1 "$csv")"
[ "$(grep -c '^one box,weak,' "$csv")" = 3 ] && [ "$(grep -c '^one box,strong,' "$csv")" = 3 ] ||
    fail "CSV: expected 3 weak and 3 strong rows: $(cat "$csv")"
awk -F, 'NR > 1 && !($7 > 0 && $14 > 0) { bad = 1 } END { exit bad }' "$csv" ||
    fail "CSV: a row without positive samples/s and efficiency"

# overlapped buckets on the MPI path (the timed barrier is then tested between polls of the
# buckets): flat, and dptrain's ring between 2 "nodes" of one rank each
for algo in flat ring; do
    DPT_TEST_RANKS_PER_NODE=1 "${MPIRUN[@]}" -np 2 -x DPT_TEST_RANKS_PER_NODE "$DPTRAIN" bench train \
        "$CONFIG" --steps 5 --warmup 1 --set run.device=cpu --set comm.algorithm=$algo \
        --set comm.bucket_mb=0.001 \
        >"$TMP/overlap_$algo.out" 2>&1 || fail "overlap, $algo: $(tail -3 "$TMP/overlap_$algo.out")"
    grep -q "^# gradients (all ranks): .* buckets .* overlapped with backward" "$TMP/overlap_$algo.out" ||
        fail "overlap, $algo: not overlapped: $(grep '^# gradients' "$TMP/overlap_$algo.out")"
    # the 2-rank row: comm_total (from the first bucket's start to the last one's end) > 0
    rows "$TMP/overlap_$algo.out" | awk '$1 == 2 && $9 > 0 { ok = 1 } END { exit !ok }' ||
        fail "overlap, $algo: no 2-rank row with communication: $(rows "$TMP/overlap_$algo.out")"
done

set +e
"$DPTRAIN" bench train "$CONFIG" --scaling linear >/dev/null 2>"$TMP/bad.err"; rc=$?
set -e
[ $rc = 2 ] && grep -q "scaling must be weak or strong (got 'linear')" "$TMP/bad.err" ||
    fail "bad --scaling: exit $rc, $(head -1 "$TMP/bad.err")"

# a rank that fails alone says why: in the emulated CUDA build, 3 ranks and 2 "GPUs" per host
# (ranks 0 and 1 take theirs; a rank that sees one GPU would take it: tests gpu_devices.sh)
if "$DPTRAIN" version | grep -q 'host emulation'; then
    set +e
    DPT_EMU_DEVICES=2 "${MPIRUN[@]}" -np 3 -x DPT_EMU_DEVICES "$DPTRAIN" bench train "$CONFIG" \
        --steps 2 >/dev/null 2>"$TMP/gpus.err"; rc=$?
    set -e
    [ $rc != 0 ] && grep -q "rank 2 .*3 ranks on .* but 2 GPUs visible to rank 2" "$TMP/gpus.err" ||
        fail "two GPUs for 3 ranks: exit $rc, no reason from rank 2: $(head -3 "$TMP/gpus.err")"
fi
finish
