#!/usr/bin/env bash
# How much of the gradient communication overlap hides, measured in interleaved pairs on an
# emulated cluster (scripts/emulate_cluster.sh; needs root): 2 machines x 1 rank at RATE,
# `bench train` of CONFIG with 512 rows per rank, one BLAS thread per machine and dptrain's ring
# (comm.algorithm ring), once with `comm.overlap=false` and once with SETTING, N times.
# Per pair: hidden = (step without overlap - step with it) / exposed comm without overlap, i.e.
# the share of the communication that `comm.overlap: false` exposes and overlap takes off the
# step. Prints each pair and the median, and keeps the raw outputs in OUT.
# Usage: scripts/overlap_pairs.sh [N=5] [SETTING=comm.bucket_mb=0.5] [OUT=runs/overlap]
#        (environment: RATE=1gbit STEPS=30 CONFIG=configs/mlp_large.yaml)
# One pair takes about 50 s at 1gbit. On a 2-core box every "machine" shares the same cores.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-5}
setting=${2:-comm.bucket_mb=0.5}
out=${3:-runs/overlap}
rate=${RATE:-1gbit}
steps=${STEPS:-30}
config=${CONFIG:-configs/mlp_large.yaml}
[ "$(id -u)" = 0 ] || { echo "overlap_pairs: needs root (network namespaces)" >&2; exit 2; }
scripts/build.sh build >/dev/null
mkdir -p "$out"

# one NAME SETTING: one run; prints its 2-rank row (step_ms is field 5, comm_ms 8, comm_total 9)
one() {
    DPTEMU_PREFIX=dptpairs scripts/emulate_cluster.sh run -n 2 --slots 1 --rate "$rate" -- \
        -np 2 build/dptrain bench train "$config" --steps "$steps" --warmup 3 \
        --set train.batch_size=1024 --set run.threads=1 --set comm.algorithm=ring --set "$2" \
        >"$out/$1.txt" 2>&1 || { tail -5 "$out/$1.txt" >&2; exit 1; }
    grep -E '^ +2 +2 ' "$out/$1.txt" | tail -1
}

echo "# overlap in pairs: 2 machines x 1 rank at $rate, $config, 512 rows per rank, ring;" \
    "off = comm.overlap=false, on = $setting; times in ms per step on rank 0"
printf "%4s %10s %10s %10s %10s %10s %8s\n" pair off_step off_comm on_step on_comm on_total hidden
hidden=()
for ((i = 1; i <= n; i++)); do
    off=$(one "off_$i" comm.overlap=false)
    on=$(one "on_$i" "$setting")
    h=$(awk -v a="$off" -v b="$on" 'BEGIN { split(a, x); split(b, y);
        printf "%.3f", (x[5] - y[5]) / x[8] }')
    hidden+=("$h")
    awk -v i="$i" -v a="$off" -v b="$on" -v h="$h" 'BEGIN { split(a, x); split(b, y);
        printf "%4d %10.1f %10.1f %10.1f %10.1f %10.1f %7.1f%%\n", i, x[5], x[8], y[5], y[8], y[9], 100 * h }'
done
printf "%s\n" "${hidden[@]}" | sort -g | awk '{ v[NR] = $1 } END {
    m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
    printf "# median hidden: %.1f%% (lowest %.1f%%, highest %.1f%%, %d pairs)\n", 100 * m,
        100 * v[1], 100 * v[NR], NR }'
