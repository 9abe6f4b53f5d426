#!/usr/bin/env bash
# dptrain runs without mpirun as a single rank (MPI singleton start-up), as users do to debug:
# it trains, says "1 rank", writes its outputs, and computes exactly what `mpirun -np 1` does.
#   usage: single_rank.sh DPTRAIN CKPT_DIFF
set -euo pipefail

source "$(dirname "$0")/lib.sh"

# Without mpirun: no launcher variables may leak in from the calling environment.
rc=0
env -u OMPI_COMM_WORLD_SIZE -u OMPI_COMM_WORLD_RANK -u PMI_SIZE -u PMI_RANK -u PMIX_RANK \
    "$DPTRAIN" train "$CONFIG" --set train.epochs=2 --out "$TMP/alone" \
    >"$TMP/alone.out" 2>"$TMP/alone.err" || rc=$?
if [ "$rc" -ne 0 ]; then
    fail "dptrain train without mpirun exited $rc, expected 0; stderr:"
    sed 's/^/    /' "$TMP/alone.err" >&2
else
    if ! grep -qE '^  ranks +1 rank on ' "$TMP/alone.out"; then
        fail "the start-up table does not say '1 rank'; stdout was:"
        sed 's/^/    /' "$TMP/alone.out" >&2
    fi
    python3 - "$TMP/alone/metrics.jsonl" <<'EOF' || fail "metrics.jsonl of the single-rank run"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
got = [(r["epoch"], r["step"], r["ranks"]) for r in rows]
if got != [(1, 30, 1), (2, 60, 1)]:
    sys.exit(f"{sys.argv[1]}: (epoch, step, ranks) rows {got}, expected [(1, 30, 1), (2, 60, 1)]")
EOF

    # the same run under mpirun -np 1 (same seed, one BLAS thread) is bitwise the same
    rc=0
    "${MPIRUN[@]}" -np 1 "$DPTRAIN" train "$CONFIG" --set train.epochs=2 --out "$TMP/np1" \
        >"$TMP/np1.out" 2>"$TMP/np1.err" || rc=$?
    if [ "$rc" -ne 0 ]; then
        fail "mpirun -np 1 dptrain train exited $rc, expected 0; stderr:"
        sed 's/^/    /' "$TMP/np1.err" >&2
    else
        rc=0
        "$CKPT_DIFF" "$TMP/alone/checkpoint.bin" "$TMP/np1/checkpoint.bin" --bitwise \
            >"$TMP/diff.out" 2>&1 || rc=$?
        if [ "$rc" -ne 0 ]; then
            fail "without mpirun vs mpirun -np 1: checkpoints differ (ckpt_diff exit $rc):"
            sed 's/^/    /' "$TMP/diff.out" >&2
        fi
    fi
fi

finish
