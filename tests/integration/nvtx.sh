#!/usr/bin/env bash
# NVTX ranges (src/nvtx.h) as Nsight Systems would record them, through an NVTX injection library
# (tests/nvtx_record.c) instead of nsys: 2 ranks, 2 buckets. Every step is one `step` range
# holding data, forward, backward, allreduce (exposed) and optimizer in that order; each bucket's
# `allreduce bucket K` range starts and ends once per step; evaluation (every rank) and
# checkpoint (rank 0) appear;
# pushes and pops balance. Built only where the toolkit's nvtx3 headers are (the nvcc build).
# Usage: nvtx.sh DPTRAIN CKPT_DIFF NVTX_RECORD_SO
set -euo pipefail
source "$(dirname "$0")/lib.sh"
lib=$(realpath "$3")
EXPECT_STEPS=30
NVTX_INJECTION64_PATH=$lib DPT_NVTX_LOG=$TMP/nvtx \
    train_ranks nvtx 2 --set run.device=cpu --set train.epochs=1 --set comm.bucket_mb=0.01
grep -q "2 buckets" "$TMP/nvtx.out" || fail "expected 2 buckets: $(grep '^  comm' "$TMP/nvtx.out")"
n=$(find "$TMP" -maxdepth 1 -name 'nvtx.[0-9]*' | wc -l)
[ "$n" = 2 ] || fail "expected one NVTX log per rank, found $n"
for log in "$TMP"/nvtx.[0-9]*; do
    python3 - "$log" "$EXPECT_STEPS" <<'PY' || fail "$(basename "$log"): see above"
import sys
path, steps = sys.argv[1], int(sys.argv[2])
stack, open_ids, names, errors = [], {}, {}, []
phases, step_phases, buckets = [], [], {}
for n, line in enumerate(open(path), 1):
    op, _, rest = line.rstrip("\n").partition(" ")
    if op == "push":
        stack.append(rest)
        names[rest] = names.get(rest, 0) + 1
        if len(stack) == 2 and stack[0] == "step":
            step_phases.append(rest)
    elif op == "pop":
        if not stack:
            errors.append(f"line {n}: pop without push")
            continue
        if stack.pop() == "step":
            phases.append(step_phases)
            step_phases = []
    elif op == "start":
        i, _, name = rest.partition(" ")
        open_ids[i] = name
        buckets[name] = buckets.get(name, 0) + 1
    elif op == "end":
        if open_ids.pop(rest, None) is None:
            errors.append(f"line {n}: end of range {rest} never started")
if stack:
    errors.append(f"ranges left open: {stack}")
if open_ids:
    errors.append(f"bucket ranges never ended: {sorted(open_ids.values())}")
want = ["data", "forward", "backward", "allreduce (exposed)", "optimizer"]
if len(phases) != steps:
    errors.append(f"{len(phases)} step ranges, expected {steps}")
bad = [p for p in phases if p != want]
if bad:
    errors.append(f"{len(bad)} steps whose phases are not {want}: first {bad[0]}")
if buckets != {"allreduce bucket 0": steps, "allreduce bucket 1": steps}:
    errors.append(f"bucket ranges per name: {buckets}, expected 2 x {steps}")
if not names.get("evaluation"):
    errors.append("no evaluation range")
for e in errors:
    print("  " + e, file=sys.stderr)
sys.exit(1 if errors else 0)
PY
done
# rank 0 writes the checkpoint
cat "$TMP"/nvtx.[0-9]* | grep -q '^push checkpoint$' || fail "no checkpoint range on any rank"
finish
