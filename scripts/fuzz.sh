#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) with clang into build-fuzz/ and runs each for the
# given time on a copy of its seed corpus and regressions (the repository's corpus stays as it
# is), one target after the other. Prints per target the runs, executions per second and the
# outcome; a crash, leak, timeout or failed property leaves its input under
# build-fuzz/fuzz-work/TARGET/artifacts/ (printed) and makes the script exit 1.
# Usage: scripts/fuzz.sh [SECONDS=60] [TARGET...]   TARGET: config idx csv checkpoint
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(config idx csv checkpoint)
case "$secs" in ''|*[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]"; exit 2;; esac
command -v clang >/dev/null || { echo "fuzz.sh: clang not found (apt-get install clang)"; exit 2; }

echo "== fuzz build: clang, -fsanitize=fuzzer,address,undefined (build-fuzz/)"
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DDPT_FUZZ=ON -DDPT_CUDA=OFF >build-fuzz.cmake.log 2>&1 || { cat build-fuzz.cmake.log; exit 1; }
cmake --build build-fuzz -j "$(nproc)" --target "${targets[@]/#/fuzz_}" >build-fuzz.log 2>&1 \
  || { tail -30 build-fuzz.log; exit 1; }
if grep -E "(warning|error):" build-fuzz.log; then
  echo "== the fuzz build printed warnings (above): fix them"; exit 1
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
echo "== fuzzing ${secs} s per target: ${targets[*]}"
printf '%-18s %8s %12s %10s %8s %8s  %s\n' target seconds runs exec/s cov corpus result
failed=0
for t in "${targets[@]}"; do
  bin=$PWD/build-fuzz/tests/fuzz/fuzz_$t
  work=$PWD/build-fuzz/fuzz-work/$t
  rm -rf "$work"
  mkdir -p "$work/corpus" "$work/artifacts"
  cp tests/fuzz/corpus/"$t"/* "$work/corpus/"
  cp tests/fuzz/regressions/"$t"/* "$work/corpus/" 2>/dev/null || true
  dict=()
  [ -f "tests/fuzz/$t.dict" ] && dict=(-dict="$PWD/tests/fuzz/$t.dict")
  rc=0
  start=$(date +%s)
  (cd "$work" && "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
     -print_final_stats=1 -artifact_prefix="$work/artifacts/" "${dict[@]}" corpus) \
     >"$work/log" 2>&1 || rc=$?
  # libFuzzer ends with "Done N runs in S second(s)"; a crash ends it earlier without that line
  runs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1/p' "$work/log" | tail -1)
  took=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\2/p' "$work/log" | tail -1)
  [ -n "$runs" ] || runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
  [ -n "$took" ] || took=$(($(date +%s) - start))
  runs=${runs:-0}
  took=${took:-0}
  rate=$([ "$took" -gt 0 ] && echo $((runs / took)) || echo "-")
  cov=$(grep -oE 'cov: [0-9]+' "$work/log" | tail -1 | cut -d' ' -f2)
  corp=$(ls "$work/corpus" | wc -l)
  if [ "$rc" = 0 ]; then
    result="nothing found"
  else
    result="FAILED (exit $rc)"
    failed=1
  fi
  printf '%-18s %8s %12s %10s %8s %8s  %s\n' "fuzz_$t" "$took" "$runs" "$rate" "${cov:--}" \
    "$corp" "$result"
  if [ "$rc" != 0 ]; then
    grep -E "ERROR|SUMMARY|fuzz_|runtime error" "$work/log" | head -20 | sed 's/^/    /'
    for f in "$work"/artifacts/*; do
      [ -e "$f" ] && echo "    input: $f   (replay: $bin $f; add it to tests/fuzz/regressions/$t/)"
    done
    echo "    log: $work/log"
  fi
done
[ "$failed" = 0 ] && echo "== fuzzing found nothing" || echo "== fuzzing found failures (above)"
exit "$failed"
