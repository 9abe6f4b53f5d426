#!/usr/bin/env bash
# A long run of a tiny model, to show that memory stays flat: 100,000 optimizer steps (100 epochs
# of 1000 steps) of a 32-64-64-4 MLP on synthetic data with 2 ranks, checkpoint and metrics after
# every epoch; prints rank 0's resident memory (metrics.jsonl's rss_mb) at the first, middle and
# last epoch and the process's peak (VmHWM) at the end. About a minute on two cores.
# Usage: scripts/memcheck.sh [STEPS=100000] [NP=2]
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-100000}
np=${2:-2}
scripts/build.sh build >/dev/null
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
out=$(mktemp -d /tmp/dpt_memcheck.XXXXXX)
trap 'rm -rf "$out"' EXIT
# 60,000 rows / batch 60 = 1000 steps per epoch
epochs=$(( (steps + 999) / 1000 ))
start=$(date +%s)
mpirun -np "$np" --oversubscribe build/dptrain train tests/configs/synthetic_small.yaml --out "$out/run" \
  --set data.synthetic_train=66667 --set data.validation_fraction=0.1 --set train.epochs=$epochs \
  --set train.max_steps="$steps" --set run.progress=off >"$out/log" 2>&1 &
job=$!
peak=0
while kill -0 $job 2>/dev/null; do  # rank 0's peak resident size, read while it runs
  pid=$(pgrep -o -f "^build/dptrain train .*--out $out/run" || true)
  if [ -n "$pid" ]; then
    hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    [ "${hwm:-0}" -gt "$peak" ] && peak=$hwm
  fi
  sleep 1
done
wait $job
/usr/bin/python3 - "$out/run/metrics.jsonl" "$peak" "$(( $(date +%s) - start ))" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
pick = [rows[0], rows[1], rows[len(rows) // 2], rows[-1]]
print(f"{'epoch':>6} {'step':>8} {'rss_mb':>8}")
for r in pick:
    print(f"{r['epoch']:>6} {r['step']:>8} {r['rss_mb']:>8.1f}")
growth = rows[-1]["rss_mb"] - rows[1]["rss_mb"]
print(f"rank 0: resident {rows[1]['rss_mb']:.1f} MiB after epoch 2, {rows[-1]['rss_mb']:.1f} MiB after "
      f"step {rows[-1]['step']} (change {growth:+.2f} MiB); peak (VmHWM) {int(sys.argv[2]) / 1024:.1f} MiB; "
      f"{sys.argv[3]} s")
PY
