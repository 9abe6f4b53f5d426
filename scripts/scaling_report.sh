#!/usr/bin/env bash
# Intra- versus inter-machine scaling on an emulated cluster (scripts/emulate_cluster.sh; needs
# root): runs `dptrain bench allreduce` and `dptrain bench train --scaling weak` on
#   1 machine x 1 rank, 1 machine x 2 ranks, 2 machines x 1 rank, 2 machines x 2 ranks,
# the 2-machine layouts with unshaped links and with 1 Gbit/s links (at 1 Gbit/s also with
# comm.algorithm ring, dptrain's own ring for TCP links), writes
#   OUT/allreduce.csv  label,machines,ranks_per_machine,rate,table,size,time_us,busbw_gbs,model_us
#   OUT/train.csv      bench train's rows (label = layout and rate)
#   OUT/overlap_*.txt  bench train on 2 machines x 1 rank at 1 Gbit/s, batch 512 per rank, ring:
#                      overlap off, on (1 MiB buckets) without and with the progress thread,
#                      on with 4 MiB buckets
# and the raw outputs, then draws OUT/busbw.png and OUT/efficiency.png (scripts/plot_scaling.py).
# Usage: scripts/scaling_report.sh [OUT=runs/scaling] [CONFIG=configs/mlp_large.yaml]
# Numbers from one 2-core box are what they are: every "machine" shares the same two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/scaling}
config=${2:-configs/mlp_large.yaml}
steps=${STEPS:-30}
max=${MAX_BYTES:-64M}
[ "$(id -u)" = 0 ] || { echo "scaling_report: needs root (network namespaces)" >&2; exit 2; }
scripts/build.sh build >/dev/null
mkdir -p "$out"
dptrain=$(realpath build/dptrain)
config=$(realpath "$config")
echo "label,machines,ranks_per_machine,rate,table,size,time_us,busbw_gbs,model_us" >"$out/allreduce.csv"
rm -f "$out/train.csv"

# run MACHINES RANKS_PER_MACHINE RATE [ALGORITHM]: one layout, both benchmarks; ALGORITHM flat
# (default: MPI_Allreduce) or ring (comm.algorithm ring, bench allreduce --algorithm ring)
run() {
    local m=$1 s=$2 rate=$3 algo=${4:-flat} np=$(( $1 * $2 ))
    local label="${m}x${s} ${rate}" tag="${m}x${s}_${rate}"
    [ "$algo" = flat ] || { label+=" $algo"; tag+="_$algo"; }
    local rate_args=()
    [ "$rate" != unshaped ] && rate_args=(--rate "$rate")
    echo "== $label"
    DPTEMU_PREFIX=dptscale scripts/emulate_cluster.sh run -n "$m" --slots "$s" "${rate_args[@]}" -- \
        -np "$np" "$dptrain" bench allreduce --algorithm "$algo" -b 64K -e "$max" -f 4 -n 5 -w 2 \
        >"$out/allreduce_$tag.txt"
    # the tables' rows, tagged with their table (world / intra / inter)
    awk -v label="$label" -v m="$m" -v s="$s" -v rate="$rate" '
        /^# == / { table = $3; sub(":", "", table) }
        /^ +[0-9]+ +[0-9]+ +float/ { printf "%s,%s,%s,%s,%s,%s,%s,%s,%s\n", label, m, s, rate, table, $1, $5, $7, $9 }
    ' "$out/allreduce_$tag.txt" >>"$out/allreduce.csv"
    if [ "$np" -gt 1 ]; then
        DPTEMU_PREFIX=dptscale scripts/emulate_cluster.sh run -n "$m" --slots "$s" "${rate_args[@]}" -- \
            -np "$np" "$dptrain" bench train "$config" --steps "$steps" --warmup 3 --scaling weak \
            --set comm.algorithm="$algo" --csv "$out/train.csv" --label "$label" \
            >"$out/train_$tag.txt"
    fi
}

run 1 1 unshaped
run 1 2 unshaped
run 2 1 unshaped
run 2 2 unshaped
run 2 1 1gbit
run 2 2 1gbit
run 2 1 1gbit ring
run 2 2 1gbit ring

# overlap: 2 machines x 1 rank at 1 Gbit/s, batch 512 per rank (global 1024), one BLAS thread
# per machine, dptrain's ring: gradients in one allreduce after backward, against buckets of
# 1 MiB started during backward, polled between layers only (DPT_PROGRESS_THREAD=0) and by the
# progress thread (the default), and buckets of 4 MiB (the first bucket leaves later)
overlap() { # NAME PROGRESS_THREAD SETTING
    echo "== 2x1 1gbit, $1"
    DPT_PROGRESS_THREAD=$2 DPTEMU_PREFIX=dptscale scripts/emulate_cluster.sh run -n 2 --slots 1 \
        --rate 1gbit -- -np 2 -x DPT_PROGRESS_THREAD "$dptrain" bench train "$config" \
        --steps "$steps" --warmup 3 --set train.batch_size=1024 --set run.threads=1 \
        --set comm.algorithm=ring --set "$3" >"$out/overlap_$1.txt"
    grep -E '^# gradients|^ +2 ' "$out/overlap_$1.txt"
}
rm -f "$out"/overlap_*.txt
overlap off 1 comm.overlap=false
overlap on_no_thread 0 comm.bucket_mb=1
overlap on 1 comm.bucket_mb=1
overlap on_b4 1 comm.bucket_mb=4
/usr/bin/python3 scripts/plot_scaling.py "$out"
echo "== written: $out/allreduce.csv $out/train.csv $out/busbw.png $out/efficiency.png"
