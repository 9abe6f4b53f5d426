#!/usr/bin/env bash
# scripts/gpu_check.sh under the host emulation (--emulated): it runs end to end and its table
# has every row (build, selftest per precision, ctest -L gpu, 18 bench train variants and 3 with
# train.gemm_epilogue off, the NCCL allreduce, training to accuracy, PyTorch skipped), each with
# its log; a variant this build
# refuses is "not supported by this build"; without a driver and past the time budget the
# failing rows say FAIL, name their logs and the script exits 1; a usage error exits 2.
# Usage: gpu_check.sh DPTRAIN CKPT_DIFF (the emulated build's)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
script=$(cd "$(dirname "$0")/../.." && pwd)/scripts/gpu_check.sh
build=$(dirname "$DPTRAIN")
export DPT_GPU_CHECK_BUILD=$build DPT_EMU_DEVICES=2

set +e
"$script" --emulated "$TMP/ok" >"$TMP/ok.out" 2>&1; rc=$?
set -e
[ $rc = 0 ] || fail "gpu_check --emulated exited $rc: $(tail -5 "$TMP/ok.out")"
table=$TMP/ok/table.md
[ -f "$table" ] || fail "no table.md in OUTDIR"
cmp -s <(grep '^| ' "$table") <(grep '^| ' "$TMP/ok.out") || fail "the printed table differs from table.md"
status() { grep -F "| $1 |" "$table" | head -1 | awk -F' [|] ' '{print $2}'; }
for r in build "selftest FP32" "selftest TF32" "ctest -L gpu" "bench allreduce --device cuda, 2 rank(s)" \
         "train synthetic_small.yaml --device cuda"; do
    [ "$(status "$r")" = PASS ] || fail "row '$r': status '$(status "$r")', expected PASS"
done
case "$(status "selftest BF16")" in PASS | "not supported by this build") ;;
*) fail "row 'selftest BF16': status '$(status "selftest BF16")'" ;; esac
[ "$(status "pytorch eager")" = SKIP ] || fail "pytorch eager is not skipped under the emulation"
# 3 shapes x 3 precisions x graphs on/off; fp32 without graphs runs in every build
n=$(grep -c '^| bench [0-9-]* b[0-9]* [a-z0-9]* graphs=o[nf]* |' "$table" || true)
[ "$n" = 18 ] || fail "expected 18 bench train rows, got $n"
grep '^| bench [0-9-]* b' "$table" | grep -vE '\| (PASS|not supported by this build) \|' |
    sed 's/^/    /' | grep . && fail "bench rows that neither passed nor were refused (above)"
m=$(grep -cE '^\| bench [0-9-]* b[0-9]* fp32 graphs=off \| PASS \| [1-9][0-9]* samples/s' "$table" || true)
[ "$m" = 3 ] || fail "expected the 3 fp32 graphs=off rows with samples/s > 0, got $m"
# the GPU events' compute time per step in every fp32 row (one rank: no allreduce to time)
m=$(grep -cE '^\| bench [0-9-]* b[0-9]* fp32 graphs=o[nf]* \| PASS \| .*GPU events compute/comm/overlapped/exposed ms [0-9.]*[1-9][0-9.]*/-/-/- \|' "$table" || true)
[ "$m" = 6 ] || fail "expected the GPU events' times in the 6 fp32 rows, got $m: $(grep -m1 '^| bench' "$table")"
# 3 rows with train.gemm_epilogue off beside the default (cuBLASLt's epilogues): the emulated
# cuBLASLt accepts them, so the default row launches fewer kernels per step than its twin
e=$(grep -cE '^\| bench [0-9-]* b[0-9]* [a-z0-9]* graphs=o[nf]* epilogue=off \| PASS \|' "$table" || true)
[ "$e" = 3 ] || fail "expected 3 bench rows with epilogue=off that passed, got $e"
launches() { grep -F "| bench $1 |" "$table" | grep -oE '[0-9.]+ launches' | head -1 | awk '{print $1}'; }
fused=$(launches "32-64-64-10 b16 fp32 graphs=off")
plain=$(launches "32-64-64-10 b16 fp32 graphs=off epilogue=off")
awk -v a="$fused" -v b="$plain" 'BEGIN { exit !(a + 0 > 0 && a + 0 < b + 0) }' ||
    fail "launches per step with epilogues '$fused', without '$plain': expected fewer with"
# every log a row names is in OUTDIR/logs
for log in $(awk -F' [|] ' '/^\| / && !/^\| (check|---) / { sub(/ \|$/, "", $4); print $4 }' "$table" | grep . | sort -u); do
    [ -f "$TMP/ok/logs/$log" ] || fail "row names log '$log', not in OUTDIR/logs"
done
grep -q '"test_accuracy"' "$TMP/ok/train/metrics.jsonl" || fail "no training metrics in OUTDIR/train"

# no driver and a 6 s budget: the failing steps are FAIL rows naming their logs, steps past the
# budget are not started, and the exit status is 1
set +e
DPT_EMU_DRIVER_VERSION=0 DPT_GPU_CHECK_BUDGET_S=6 "$script" --emulated "$TMP/bad" >"$TMP/bad.out" 2>&1; rc=$?
set -e
[ $rc = 1 ] || fail "without a driver gpu_check exited $rc, expected 1"
grep -qE '^\| selftest .*\| FAIL \| .* \| selftest.log \|$' "$TMP/bad/table.md" ||
    fail "no FAIL row for the selftest without a GPU: $(grep '^| selftest' "$TMP/bad/table.md")"
grep -qE '^\| train .* \| FAIL \| (exit 1: .*no NVIDIA driver|not run: time budget spent).* \| train.log \|$' \
    "$TMP/bad/table.md" || fail "the training row is not a FAIL naming why and train.log: $(grep '^| train' "$TMP/bad/table.md")"
grep -q '| FAIL | not run: time budget spent |' "$TMP/bad/table.md" || fail "no step was left out for the budget"
grep -q 'gpu_check: FAILED' "$TMP/bad.out" || fail "no FAILED line at the end"

# usage errors
set +e
"$script" >/dev/null 2>"$TMP/usage.err"; rc=$?
"$script" --emulated a b >/dev/null 2>>"$TMP/usage.err"; rc2=$?
set -e
[ $rc = 2 ] && [ $rc2 = 2 ] && grep -q '^usage: scripts/gpu_check.sh' "$TMP/usage.err" ||
    fail "usage errors: exit $rc and $rc2, $(head -2 "$TMP/usage.err")"
finish
