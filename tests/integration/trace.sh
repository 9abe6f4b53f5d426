#!/usr/bin/env bash
# run.trace: a 2-rank run with overlapped buckets writes Chrome trace-event JSON that parses,
# has a traceEvents array with both ranks as processes, every phase of a step (data, forward,
# backward, the exposed allreduce, the optimizer), each bucket's allreduce, evaluation on both
# ranks and the checkpoint on rank 0, each layer's part of forward and backward nested in them;
# run.trace_steps bounds it (3 steps of each of 2 epochs);
# each traced step's phases add up to the step (within 5%); the training is bitwise the same
# as without the trace; bench train's traced steps match the step time it reports (5%); an
# unwritable path fails naming run.trace. Usage: trace.sh DPTRAIN CKPT_DIFF
set -euo pipefail
source "$(dirname "$0")/lib.sh" "$@"

EXPECT_STEPS=60 # synthetic_small: 2 epochs of 1800 rows in batches of 60
SETS=(--device cpu --set comm.bucket_mb=0.005) # 4 buckets of the 32-64-64-4 MLP
train_ranks plain 2 "${SETS[@]}"
train_ranks traced 2 "${SETS[@]}" --set run.trace="$TMP/trace.json" --set run.trace_steps=3
"$CKPT_DIFF" "$TMP/plain/checkpoint.bin" "$TMP/traced/checkpoint.bin" --bitwise >/dev/null ||
    fail "the traced run's checkpoint differs from the plain run's"

python3 - "$TMP/trace.json" <<'PY' || fail "trace.json"
import collections, json, sys
d = json.load(open(sys.argv[1]))
ev = d["traceEvents"]
assert isinstance(ev, list), "traceEvents is not an array"
spans = [e for e in ev if e["ph"] == "X"]
names = collections.defaultdict(collections.Counter)
for e in spans:
    names[e["pid"]][e["name"]] += 1
assert sorted(names) == [0, 1], f"processes {sorted(names)}, expected ranks 0 and 1"
procs = {e["pid"]: e["args"]["name"] for e in ev if e["name"] == "process_name"}
assert sorted(procs) == [0, 1] and procs[1].startswith("rank 1"), procs
phases = ["data", "forward", "backward", "allreduce (exposed)", "optimizer"]
for r in (0, 1):
    c = names[r]
    assert c["step"] == 6, f"rank {r}: {c['step']} steps traced, expected 3 of each of 2 epochs"
    for p in phases:
        assert c[p] == 6, f"rank {r}: {c[p]} '{p}' spans, expected 6"
    assert c["bucket allreduce"] == 24, f"rank {r}: {c['bucket allreduce']} bucket spans, expected 4 x 6"
    assert c["evaluation"] == 2, f"rank {r}: {c['evaluation']} evaluation spans, expected 2"
assert names[0]["checkpoint"] == 2 and names[1]["checkpoint"] == 0, "checkpoints: rank 0 writes them"
# the phases of a step tile it: their sum is the step's duration (5%: float microseconds)
worst = 0.0
for r in (0, 1):
    steps = {e["args"]["step"]: e for e in spans if e["pid"] == r and e["name"] == "step"}
    for s, st in steps.items():
        total = sum(e["dur"] for e in spans if e["pid"] == r and e["args"].get("step") == s
                    and e["name"] in phases + ["barrier wait"])
        worst = max(worst, abs(total - st["dur"]) / st["dur"])
        for e in spans:
            if e["pid"] == r and e["args"].get("step") == s and e["name"] in phases:
                assert st["ts"] - 1e-3 <= e["ts"] and e["ts"] + e["dur"] <= st["ts"] + st["dur"] + 1e-3, \
                    f"rank {r} step {s}: {e['name']} lies outside its step"
assert worst <= 0.05, f"a step's phases add up to {100 * worst:.1f}% off its duration"
# each layer's part of forward and of backward (32-64-64-4: layers 0..2), nested in the phase
# and tiling it (5%: the loss sits in the last backward layer's span, the sync after backward in none)
worst_layers = 0.0
for r in (0, 1):
    for phase, name in (("forward", "forward layer"), ("backward", "backward layer")):
        for ph in [e for e in spans if e["pid"] == r and e["name"] == phase]:
            s = ph["args"]["step"]
            layers = sorted((e for e in spans if e["pid"] == r and e["args"].get("step") == s
                             and e["name"].startswith(name + " ")), key=lambda e: e["ts"])
            got = sorted(e["args"]["layer"] for e in layers)
            assert got == [0, 1, 2], f"rank {r} step {s}: {name} spans of layers {got}"
            for e in layers:
                assert ph["ts"] - 1e-3 <= e["ts"] and e["ts"] + e["dur"] <= ph["ts"] + ph["dur"] + 1e-3, \
                    f"rank {r} step {s}: {e['name']} lies outside {phase}"
            if ph["dur"] > 50:  # microseconds: below that, timer granularity dominates
                worst_layers = max(worst_layers, abs(sum(e["dur"] for e in layers) - ph["dur"]) / ph["dur"])
assert worst_layers <= 0.05, f"the layers add up to {100 * worst_layers:.1f}% off their phase"
print(f"trace: {len(ev)} events, 2 ranks; phases within {100 * worst:.3f}% of each step, "
      f"layers within {100 * worst_layers:.3f}% of forward and backward")
PY

# bench train writes the trace of its all-ranks row: the traced steps' mean length matches the
# step time it reports (5%: the loop around the steps is outside the spans)
"${MPIRUN[@]}" -np 2 "$DPTRAIN" bench train "$CONFIG" --device cpu --steps 40 --warmup 5 \
    --set 'model.layers=[32,256,256,4]' --set train.batch_size=256 \
    --set run.trace="$TMP/bench.json" --set run.trace_steps=1000 >"$TMP/bench.out" \
    2>"$TMP/bench.err" || fail "bench train with run.trace exited non-zero: $(tail -3 "$TMP/bench.err")"
python3 - "$TMP/bench.json" "$TMP/bench.out" <<'PY' || fail "bench train's trace"
import json, statistics, sys
ev = json.load(open(sys.argv[1]))["traceEvents"]
row = [l.split() for l in open(sys.argv[2]) if l.split()[:1] == ["2"]]
assert row, "no 2-rank row in bench train's table"
step_ms = float(row[0][4])
steps = [e["dur"] / 1e3 for e in ev if e["ph"] == "X" and e["name"] == "step" and e["pid"] == 0
         and e["args"]["step"] >= 5]
assert len(steps) == 40, f"{len(steps)} timed steps traced, expected 40"
mean = statistics.mean(steps)
assert abs(mean - step_ms) <= 0.05 * step_ms, f"traced steps {mean:.3f} ms, bench {step_ms:.3f} ms"
print(f"bench train: traced steps {mean:.3f} ms against step_ms {step_ms:.3f} "
      f"({100 * abs(mean - step_ms) / step_ms:.2f}% apart)")
PY

rc=0
"${MPIRUN[@]}" -np 2 "$DPTRAIN" train "$CONFIG" --out "$TMP/bad" --device cpu \
    --set run.trace="$TMP/no/such/dir/trace.json" >"$TMP/bad.out" 2>"$TMP/bad.err" || rc=$?
[ "$rc" -ne 0 ] || fail "an unwritable run.trace path: exit 0"
grep -q "run.trace: cannot write" "$TMP/bad.err" "$TMP/bad.out" ||
    fail "an unwritable run.trace path: no message naming run.trace"
[ ! -s "$TMP/bad/metrics.jsonl" ] || fail "an unwritable run.trace path: it trained first"
finish
