#!/usr/bin/env bash
# `dptrain bench allreduce` under mpirun with 2, 3 and 4 ranks and alone, through the trainer's
# reducer with --algorithm flat, hierarchical and ring (also on "nodes" of the test hook): one
# header line per rank in the contract's format (other tests grep it), the header naming the
# reducer, a table per communicator whose sizes follow -b, -e and -f, #wrong 0 on every row, the
# alpha-beta line, the Out of bounds and Avg bus bandwidth lines, exit 0; bad flags exit 2 naming the flag; --device cuda on the NCCL emulation when this
# is the emulated build.
#   usage: bench_allreduce.sh DPTRAIN CKPT_DIFF
set -euo pipefail

source "$(dirname "$0")/lib.sh"

# run NAME NP ARGS...: NP ranks (0 = no mpirun), output in $TMP/NAME.{out,err}, status in RC
RC=0
run() {
    local name=$1 np=$2
    shift 2
    RC=0
    if [ "$np" -eq 0 ]; then
        "$DPTRAIN" bench allreduce "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" || RC=$?
    else
        "${MPIRUN[@]}" -np "$np" "$DPTRAIN" bench allreduce "$@" \
            >"$TMP/$name.out" 2>"$TMP/$name.err" || RC=$?
    fi
}

show() { # NAME: the run's output, for a failure's context
    sed 's/^/    /' "$TMP/$1.out" "$TMP/$1.err" >&2
}

# rows NAME TABLE: the data rows (no '#') of one table ("world", "intra")
rows() {
    awk -v t="$2" '/^# == /{cur = $3; sub(":", "", cur); next} !/^#/ && cur == t' "$TMP/$1.out"
}

# check_run NAME NP R SIZES COLUMNS: a successful run of R ranks on one node whose world and
# intra tables have exactly SIZES (space-separated) and COLUMNS columns per row
check_run() {
    local name=$1 np=$2 R=$3 sizes=$4 cols=$5 ok=1
    if [ "$RC" -ne 0 ]; then
        fail "$name: exit status $RC, expected 0"
        ok=0
    fi
    # one header line per rank, in rank order, exactly in the contract's format
    local n
    n=$(grep -c '^#  Rank ' "$TMP/$name.out" || true)
    [ "$n" -eq "$R" ] || { fail "$name: $n rank lines, expected $R"; ok=0; }
    for ((r = 0; r < R; r++)); do
        local re
        re=$(printf '^#  Rank %3d Pid [ 0-9]{6,} on [ ]*[^ ]+ device -1 \\[cpu\\] local %d/%d node 0/1$' \
            "$r" "$r" "$R")
        grep -Eq "$re" "$TMP/$name.out" || { fail "$name: no header line for rank $r like /$re/"; ok=0; }
    done
    for table in world intra; do
        local got
        got=$(rows "$name" "$table" | awk '{printf "%s%s", sep, $1; sep = " "}')
        [ "$got" = "$sizes" ] || { fail "$name: $table sizes '$got', expected '$sizes'"; ok=0; }
        # count = size / 4, float, sum, numbers, #wrong 0 (column 8), a model time when R > 1
        local bad
        bad=$(rows "$name" "$table" | awk -v c="$cols" -v R="$R" '
            NF != c || $2 * 4 != $1 || $3 != "float" || $4 != "sum" || $8 != 0 ||
            $5 !~ /^[0-9.]+$/ || $7 !~ /^[0-9.]+$/ || (R > 1 && $9 !~ /^[0-9.]+$/)' || true)
        [ -z "$bad" ] || { fail "$name: $table rows malformed or wrong:"; echo "$bad" >&2; ok=0; }
    done
    for line in '^# == world: all '"$R"' ranks, R = '"$R"'$' '^# == intra: ' '^# == inter: ' \
        '^# skipped: one node'; do
        grep -Eq "$line" "$TMP/$name.out" || { fail "$name: no line like /$line/"; ok=0; }
    done
    n=$(grep -c '^# Out of bounds values : 0 OK$' "$TMP/$name.out" || true)
    [ "$n" -eq 2 ] || { fail "$name: $n 'Out of bounds values : 0 OK' lines, expected 2"; ok=0; }
    n=$(grep -Ec '^# Avg bus bandwidth    : [0-9]+\.[0-9]+ ?$' "$TMP/$name.out" || true)
    [ "$n" -eq 2 ] || { fail "$name: $n 'Avg bus bandwidth' lines, expected 2"; ok=0; }
    if [ "$R" -gt 1 ]; then
        n=$(grep -Ec 'least squares .* alpha [0-9.]+ us, beta ([0-9.]+|inf) GB/s$' "$TMP/$name.out" || true)
        [ "$n" -eq 2 ] || { fail "$name: $n alpha-beta fit lines, expected 2"; ok=0; }
    fi
    if [ "$ok" -eq 1 ]; then
        echo "ok: $name: $R ranks, sizes $sizes, #wrong 0"
    else
        show "$name"
    fi
}

# 2 ranks: sizes 1K, 4K, ..., 256K; --baseline adds three columns (time, busbw, ratio)
run np2 2 -b 1K -e 256K -f 4 -n 3 -w 1 --baseline
check_run np2 2 2 "1024 4096 16384 65536 262144" 12
grep -q '^# dptrain busbw / MPI_Allreduce busbw' "$TMP/np2.out" ||
    fail "np2: --baseline printed no ratio summary"

# 3 ranks: a factor of 3 from 8 bytes, stopping before 100 bytes
run np3 3 -b 8 -e 100 -f 3 -n 2 -w 0
check_run np3 3 3 "8 24 72" 9

# says NAME ALGORITHM: the header says the timings go through the trainer's reducer
says_reducer() {
    local re="^# dptrain path: --algorithm $2 through the trainer's reducer \\(dpt_reducer, [^)]*\\),"
    re+=" the call a training step makes: MPI "
    grep -Eq "$re" "$TMP/$1.out" ||
        fail "$1: the header does not say the timings go through the trainer's reducer"
}

# dptrain's ring (--algorithm ring) and hierarchical allreduce through the trainer's reducer, on
# one node (where the ring is the flat allreduce, as in training): 3 and 4 ranks, sizes from
# one float to 1 MiB, with the baseline beside them
for np in 3 4; do
    run "ring$np" $np --algorithm ring -b 4 -e 1M -f 16 -n 2 -w 1 --baseline
    check_run "ring$np" $np $np "4 64 1024 16384 262144" 12
    says_reducer "ring$np" ring
done
for np in 2 4; do
    run "hier$np" $np --algorithm hierarchical -b 4 -e 1M -f 16 -n 2 -w 1
    check_run "hier$np" $np $np "4 64 1024 16384 262144" 9
    says_reducer "hier$np" hierarchical
done

# on "nodes" of K ranks (the DPT_TEST_RANKS_PER_NODE test hook): the leaders' allreduce and
# dptrain's ring between nodes (K = 1: empty segments, several 32 KiB messages per segment)
# run, all three tables are measured and every element is right
multi_node() { # NAME NP K ALGORITHM
    local name=$1 np=$2 k=$3 algorithm=$4 n bad
    RC=0
    DPT_TEST_RANKS_PER_NODE=$k "${MPIRUN[@]}" -np "$np" -x DPT_TEST_RANKS_PER_NODE "$DPTRAIN" \
        bench allreduce --algorithm "$algorithm" -b 4 -e 1M -f 16 -n 2 -w 1 \
        >"$TMP/$name.out" 2>"$TMP/$name.err" || RC=$?
    n=$(grep -c '^# Out of bounds values : 0 OK$' "$TMP/$name.out" || true)
    bad=$(awk '!/^#/ && $8 != 0' "$TMP/$name.out")
    if [ "$RC" -ne 0 ] || [ "$n" -ne 3 ] || [ -n "$bad" ] ||
        ! grep -q "^# nRanks $np nNodes $((np / k)) " "$TMP/$name.out"; then
        fail "$name: exit $RC, $n correct tables (expected 0 and 3, on $((np / k)) nodes)"
        show "$name"
    else
        echo "ok: $name: $np ranks on $((np / k)) nodes, $algorithm, #wrong 0 in 3 tables"
    fi
    says_reducer "$name" "$algorithm"
}
multi_node ring_nodes4 4 1 ring
multi_node ring_nodes2x2 4 2 ring
multi_node hier_nodes2x2 4 2 hierarchical
grep -q 'ring of 32 KiB eager messages among 4 node leaders' "$TMP/ring_nodes4.out" ||
    fail "ring_nodes4: the reducer's description does not name the ring among 4 leaders"

# one rank without mpirun: nothing is communicated, no fit, still correct
run single 0 -b 4 -e 64 -n 2
check_run single 0 1 "4 8 16 32 64" 9
grep -q 'alpha-beta model: not fitted (one rank' "$TMP/single.out" ||
    fail "single: no 'not fitted' note"

# bad flags: exit 2, the message names the flag, printed once (by rank 0) under mpirun
bad() { # NAME NP SUBSTRING ARGS...
    local name=$1 np=$2 says=$3
    shift 3
    run "$name" "$np" "$@"
    local n
    n=$(grep -cF -- "$says" "$TMP/$name.err" || true)
    if [ "$RC" -ne 2 ] || [ "$n" -ne 1 ]; then
        fail "$name: exit $RC (expected 2), '$says' printed $n times (expected once)"
        show "$name"
    else
        echo "ok: $name: exit 2, $(grep -m1 -F -- "$says" "$TMP/$name.err")"
    fi
}
bad bad_b 0 "-b must be a byte count" -b abc
bad bad_b_mpi 2 "-b must be a byte count" -b abc
bad bad_e 0 "-e 1K (1024 bytes) is smaller than -b 4K" -b 4K -e 1K
bad bad_f 0 "-f must be an integer factor >= 2" -f 1
bad bad_n 0 "-n must be a positive integer" -n 0
bad bad_device 0 "--device must be cpu or cuda" --device gpu
bad bad_option 0 "unknown option '--bogus'" --bogus
bad bad_algorithm 0 "--algorithm must be flat, hierarchical or ring" --algorithm tree

# --device cuda: the emulated build must run it (NCCL carried over MPI, DPT_EMU_DEVICES GPUs);
# a build with real CUDA and no GPU must say so and exit 1; a build without NCCL exits 2.
version=$("$DPTRAIN" version)
run cuda 2 --device cuda -b 1K -e 16K -f 4 -n 2 -w 1
if grep -q 'host emulation' <<<"$version"; then
    bad_rows=$(rows cuda world | awk '$8 != 0' || true)
    if [ "$RC" -ne 0 ] || [ -n "$bad_rows" ] ||
        ! grep -Eq '^#  Rank   1 Pid [ 0-9]+ on [ ]*[^ ]+ device  1 \[[^]]+\] local 1/2 node 0/1$' "$TMP/cuda.out" ||
        [ "$(rows cuda world | wc -l)" -ne 3 ] ||
        ! grep -q "through the trainer's reducer (dpt_reducer, .*: NCCL sum" "$TMP/cuda.out"; then
        fail "cuda (emulated NCCL): exit $RC, expected 0 with 3 correct world rows, device 1 on" \
            "rank 1 and the reducer's NCCL path in the header"
        show cuda
    else
        echo "ok: cuda: NCCL path on the emulation, #wrong 0"
    fi
elif [ "$RC" -eq 1 ] && grep -q 'no GPU is visible\|no NVIDIA driver is installed\|older than this dptrain.s CUDA runtime' "$TMP/cuda.err"; then
    echo "ok: cuda: no GPU here, exit 1 with the reason"
elif [ "$RC" -eq 2 ] && grep -q 'needs the CUDA backend with NCCL' "$TMP/cuda.err"; then
    echo "ok: cuda: not built with NCCL, exit 2 with the reason"
elif [ "$RC" -ne 0 ]; then
    fail "cuda: exit $RC without an expected reason"
    show cuda
fi

finish
