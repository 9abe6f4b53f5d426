#!/usr/bin/env bash
# The bucketed, overlapped gradient allreduce (comm.*) computes what one allreduce after
# backward computes:
# - 2 ranks: bucketed with overlap (14 buckets, layers cut into blocks of rows; 2 buckets; the
#   default: 1) ends BITWISE equal to
#   comm.overlap=false, on the MPI path (with and without the progress thread) and (in the
#   emulated CUDA build) on the NCCL path; so does bfloat16 compression bucketed against
#   bfloat16 in one piece;
# - 3 and 4 ranks: bucketed = one allreduce, and hierarchical = flat (overlapped and blocking,
#   on one node and on 2 nodes forced by the DPT_TEST_RANKS_PER_NODE test hook), to RTOL;
# - dptrain's ring between nodes (comm.algorithm ring): with 2 ranks bitwise equal to one
#   allreduce, bucketed or not, fp32 or bfloat16, as 2 nodes and as one; with 3 and 4 ranks
#   (a node per rank, and 2 nodes) to RTOL;
# - bfloat16 compression trains (loss close to fp32's) but is not fp32 (the control);
# - the stop flag travels with the first bucket: SIGTERM to one rank of two with 14 buckets
#   stops both after the same step;
# - on the NCCL path the default comm.bucket_mb cuts the 784-512-512-10 MLP into 2 buckets
#   (reducer_nccl.c's rule), bitwise equal to one allreduce;
# - on the NCCL path (emulated CUDA build) bfloat16 bucketed = bfloat16 in one piece, not fp32,
#   close to the MPI path's bfloat16;
# - with the CUDA backend, comm.algorithm hierarchical is a config error.
#   usage: buckets.sh DPTRAIN CKPT_DIFF
set -euo pipefail

source "$(dirname "$0")/lib.sh"

# With 2 ranks every element of the sum is a + b whichever algorithm MPI picks (IEEE addition
# is commutative), so bucketing cannot change a bit. With 3 or more ranks MPI chooses its
# allreduce algorithm by message size (Open MPI's tuned component: recursive doubling for
# small messages, ring or reduce-scatter + allgather for large ones), so a bucket may be summed
# as (a + b) + c where the whole buffer was summed as a + (b + c): the last bits differ, and
# over 60 SGD steps that grows to ~1e-6 of a tensor's scale (as between 1 and N ranks in
# equivalence.sh; measured here: 4.5e-7 with 3 ranks). A missing, doubled or misplaced bucket
# moves parameters by 1e-2 or more. 1e-4 sits between the two; the bf16 control below shows it
# catches an error of bf16's size. (The hierarchical reduction also sums in its own order.)
RTOL=1e-4
EXPECT_STEPS=60

# says NAME PATTERN: the start-up table's comm line matches (grep -E)
says() {
    grep -Eq "^  comm +$2" "$TMP/$1.out" ||
        fail "$1: the start-up table should say 'comm  $2'; it says: $(grep '^  comm' "$TMP/$1.out")"
}

# compare NAME_A NAME_B bitwise|RTOL
compare() {
    local rc=0 how=(--rtol "$3")
    [ "$3" = bitwise ] && how=(--bitwise)
    "$CKPT_DIFF" "$TMP/$1/checkpoint.bin" "$TMP/$2/checkpoint.bin" "${how[@]}" \
        >"$TMP/diff_$1_$2.out" 2>&1 || rc=$?
    if [ "$rc" -ne 0 ]; then
        fail "$2 does not match $1 ($3; ckpt_diff exit $rc):"
        sed 's/^/    /' "$TMP/diff_$1_$2.out" >&2
    else
        echo "ok: $2 matches $1 ($3): $(tail -n 1 "$TMP/diff_$1_$2.out")"
    fi
}

# 32-64-64-4: layer sizes 2112, 4160 and 260 floats (+4 statistics). bucket_mb 0.001 (262
# floats) cuts the two larger layers into 9 and 16 blocks of output rows (backward computes each
# block's weight gradient on its own), grouped into 14 buckets of at least 262 floats: so these
# runs also check that a weight gradient computed by blocks has the same bits; 0.01 (2621
# floats) cuts the 4160-float layer in two and joins the last layer to it: 2 buckets.
three=(--set comm.bucket_mb=0.001)
two=(--set comm.bucket_mb=0.01)
cpu=(--set run.device=cpu)

# --- 2 ranks: bitwise, on this build's default backend (NCCL in the emulated CUDA build)
train_ranks np2_one 2 --set comm.overlap=false
says np2_one "(MPI flat allreduce|NCCL sum), one allreduce after backward"
train_ranks np2_b3 2 "${three[@]}"
says np2_b3 "(MPI flat allreduce|NCCL sum), 14 buckets .* overlapped with backward"
train_ranks np2_b2 2 "${two[@]}"
says np2_b2 ".*2 buckets"
train_ranks np2_b1 2  # the default bucket size: one bucket, so no overlap
says np2_b1 ".*one allreduce after backward \(the model fits one bucket"
for b in b3 b2 b1; do compare np2_one "np2_$b" bitwise; done
# the MPI path polls overlapped buckets from a progress thread; without it (between layers only)
# the sums are the same
if grep -q "MPI flat" "$TMP/np2_b3.out"; then
    says np2_b3 "MPI flat allreduce, 14 buckets .* overlapped with backward \(progress thread\)"
    DPT_PROGRESS_THREAD=0 train_ranks np2_b3_nothread 2 "${three[@]}"
    says np2_b3_nothread "MPI flat allreduce, 14 buckets .* overlapped with backward, fp32"
    compare np2_one np2_b3_nothread bitwise
fi

# --- 2 ranks on the MPI path: bfloat16 bucketed = bfloat16 in one piece (element by element:
# round each rank's value, add in float, round the sum), and it trains but is not fp32
train_ranks np2_cpu 2 "${cpu[@]}" "${three[@]}"
train_ranks np2_bf16_one 2 "${cpu[@]}" --set comm.compress=bf16 --set comm.overlap=false
says np2_bf16_one "MPI flat allreduce, one allreduce after backward, bfloat16"
train_ranks np2_bf16_b3 2 "${cpu[@]}" --set comm.compress=bf16 "${three[@]}"
compare np2_bf16_one np2_bf16_b3 bitwise
if "$CKPT_DIFF" "$TMP/np2_cpu/checkpoint.bin" "$TMP/np2_bf16_b3/checkpoint.bin" --rtol "$RTOL" \
    >"$TMP/diff_bf16.out" 2>&1; then
    fail "bf16 compression matches fp32 to $RTOL: the gradients were not compressed"
else
    echo "ok: bf16 differs from fp32 beyond $RTOL ($(tail -n 1 "$TMP/diff_bf16.out"))"
fi
# loss_close NAME_A NAME_B REL: the final training losses are within REL of A's
loss_close() {
    python3 - "$TMP/$1/metrics.jsonl" "$TMP/$2/metrics.jsonl" "$3" "$1" "$2" <<'EOF' ||
import json, sys
a, b = ([json.loads(l) for l in open(p) if l.strip()][-1]["train_loss"] for p in sys.argv[1:3])
rel, na, nb = float(sys.argv[3]), sys.argv[4], sys.argv[5]
if not abs(a - b) <= rel * a:
    sys.exit(f"train_loss {na} {a} vs {nb} {b}: more than {rel} apart")
print(f"ok: train_loss {na} {a:.4f}, {nb} {b:.4f}")
EOF
        fail "$2: training loss against $1's"
}
# bf16 keeps 8 significant bits: the final training loss stays within 5% of fp32's (measured:
# 0.512 against 0.513 at 60 steps); a broken sum (e.g. summing bf16 bits as integers) diverges
loss_close np2_cpu np2_bf16_b3 0.05

# --- 2 ranks on the NCCL path (the emulated CUDA build): comm.compress bf16 travels as
# ncclBfloat16 (the statistics in fp32); with 2 ranks every element is bf16(a + b) however the
# buffer is cut, so bucketed = one piece bitwise; it is not fp32; and it trains as the MPI
# path's bf16 does (the backends' GEMMs sum in different orders: measured 0.5121 both, 1% bound)
if grep -q "NCCL sum" "$TMP/np2_one.out"; then
    train_ranks np2_nccl_bf16_one 2 --set comm.compress=bf16 --set comm.overlap=false
    says np2_nccl_bf16_one "NCCL sum, one allreduce after backward, bfloat16"
    train_ranks np2_nccl_bf16_b3 2 --set comm.compress=bf16 "${three[@]}"
    says np2_nccl_bf16_b3 "NCCL sum, 14 buckets .* overlapped with backward, bfloat16"
    compare np2_nccl_bf16_one np2_nccl_bf16_b3 bitwise
    if "$CKPT_DIFF" "$TMP/np2_one/checkpoint.bin" "$TMP/np2_nccl_bf16_b3/checkpoint.bin" \
        --rtol "$RTOL" >"$TMP/diff_nccl_bf16.out" 2>&1; then
        fail "NCCL bf16 compression matches fp32 to $RTOL: the gradients were not compressed"
    fi
    loss_close np2_bf16_b3 np2_nccl_bf16_b3 0.01
fi

# --- 2 ranks, dptrain's ring between "nodes" of one rank each (DPT_TEST_RANKS_PER_NODE=1):
# a + b on one rank, copied to the other, so bitwise too; and on one node (reduce, broadcast)
ring=(--set comm.algorithm=ring)
export DPT_TEST_RANKS_PER_NODE=1
train_ranks np2_ring_b3 2 "${cpu[@]}" "${ring[@]}" "${three[@]}"
says np2_ring_b3 "MPI ring between nodes .* among 2 node leaders.*, 14 buckets .* overlapped with backward \\(progress thread\\), fp32"
compare np2_cpu np2_ring_b3 bitwise
train_ranks np2_ring_one 2 "${cpu[@]}" "${ring[@]}" --set comm.overlap=false
says np2_ring_one "MPI ring .*, one allreduce after backward, fp32"
compare np2_cpu np2_ring_one bitwise
train_ranks np2_ring_bf16 2 "${cpu[@]}" "${ring[@]}" "${three[@]}" --set comm.compress=bf16
compare np2_bf16_one np2_ring_bf16 bitwise
unset DPT_TEST_RANKS_PER_NODE
train_ranks np2_ring_1node 2 "${cpu[@]}" "${ring[@]}" "${three[@]}"
says np2_ring_1node "MPI ring between nodes \\(one node here: flat allreduce\\)"
compare np2_cpu np2_ring_1node bitwise

# --- 3 ranks (uneven shards of 20 rows) and 4: bucketed vs one allreduce, hierarchical vs flat,
# ring vs flat
for np in 3 4; do
    train_ranks "np${np}_one" $np "${cpu[@]}" --set comm.overlap=false
    train_ranks "np${np}_b3" $np "${cpu[@]}" "${three[@]}"
    compare "np${np}_one" "np${np}_b3" "$RTOL"
    DPT_TEST_RANKS_PER_NODE=1 train_ranks "np${np}_ring" $np "${cpu[@]}" "${ring[@]}" "${three[@]}"
    says "np${np}_ring" "MPI ring between nodes .* among $np node leaders"
    compare "np${np}_one" "np${np}_ring" "$RTOL"
done
train_ranks np4_hier 4 "${cpu[@]}" "${three[@]}" --set comm.algorithm=hierarchical
says np4_hier "MPI hierarchical .* among 1 node leaders"
compare np4_one np4_hier "$RTOL"
# two "nodes" of 2 ranks (4 ranks) and of 2 + 1 (3 ranks): leaders and locals both non-trivial
export DPT_TEST_RANKS_PER_NODE=2
for np in 3 4; do
    train_ranks "np${np}_hier_n2" $np "${cpu[@]}" "${three[@]}" --set comm.algorithm=hierarchical
    says "np${np}_hier_n2" "MPI hierarchical .* among 2 node leaders, broadcast\), 14 buckets"
    compare "np${np}_one" "np${np}_hier_n2" "$RTOL"
    train_ranks "np${np}_hier_n2_blocking" $np "${cpu[@]}" --set comm.algorithm=hierarchical \
        --set comm.overlap=false
    compare "np${np}_one" "np${np}_hier_n2_blocking" "$RTOL"
    train_ranks "np${np}_ring_n2" $np "${cpu[@]}" "${three[@]}" "${ring[@]}"
    says "np${np}_ring_n2" "MPI ring between nodes .* among 2 node leaders"
    compare "np${np}_one" "np${np}_ring_n2" "$RTOL"
done
train_ranks np4_hier_n2_bf16 4 "${cpu[@]}" "${three[@]}" --set comm.algorithm=hierarchical \
    --set comm.compress=bf16
unset DPT_TEST_RANKS_PER_NODE

# --- the stop flag (statistics of bucket 0): SIGTERM to one rank of two, 14 buckets
out=$TMP/stop
"${MPIRUN[@]}" -np 2 "$DPTRAIN" train "$CONFIG" --out "$out" "${three[@]}" --set train.epochs=40 \
    >"$out.log" 2>&1 &
pid=$!
for _ in $(seq 1 1500); do [ -e "$out/checkpoint.bin" ] && break; sleep 0.02; done
kill -TERM "$(pgrep -n -f "dptrain .*--out $out( |\$)")" || fail "stop: no rank to signal"
set +e; wait $pid; rc=$?; set -e
[ "$rc" -ne 0 ] || fail "stop: mpirun exited 0 after SIGTERM to a rank"
grep -q "stopped by SIGTERM at epoch [0-9]*, step [0-9]*: checkpoint written" "$out.log" ||
    fail "stop: no 'stopped by SIGTERM' message: $(tail -2 "$out.log")"

# --- the NCCL path's bucket size (reducer_nccl.c: comm.bucket_mb, at most 1/4 of the gradients,
# at least 1 MiB): with the default 25 MB the 784-512-512-10 MLP (669,706 parameters, 2.7 MB) is
# cut into 2 buckets that overlap backward, and trains bitwise as one allreduce after backward
# (2 ranks: a + b). 4 steps of 2 rows per rank, so that the emulation takes seconds.
if grep -q "NCCL sum" "$TMP/np2_one.out"; then
    mlp=(--set "model.layers=[784,512,512,10]" --set train.batch_size=4 --set data.synthetic_train=64
         --set data.synthetic_test=16 --set train.max_steps=4)
    EXPECT_STEPS=4 train_ranks np2_mlp_default 2 "${mlp[@]}"
    says np2_mlp_default "NCCL sum, 2 buckets \(comm.bucket_mb 25; NCCL: at most 1/4 of the gradients, at least 1 MiB: 1 MiB\) overlapped with backward"
    EXPECT_STEPS=4 train_ranks np2_mlp_one 2 "${mlp[@]}" --set comm.overlap=false
    says np2_mlp_one "NCCL sum, one allreduce after backward"
    compare np2_mlp_one np2_mlp_default bitwise
fi

# --- the CUDA backend (emulated CUDA build; skipped where no GPU is visible): hierarchical is a
# config error (exit 2) naming the key
for set in comm.algorithm=hierarchical; do
    rc=0
    "${MPIRUN[@]}" -np 2 "$DPTRAIN" train "$CONFIG" --out "$TMP/cuda_err" --set run.device=cuda \
        --set "$set" >"$TMP/cuda_err.out" 2>&1 || rc=$?
    if grep -q "no GPU is visible\|no NVIDIA driver is installed\|older than this dptrain.s CUDA runtime\|has no CUDA backend" "$TMP/cuda_err.out"; then
        echo "skip: --set $set with the CUDA backend (no GPU, or a build without CUDA)"
    elif [ "$rc" != 2 ] || ! grep -q "${set%%=*}: ${set#*=} .*CUDA backend\|${set%%=*}: ${set#*=} is for the MPI path" "$TMP/cuda_err.out"; then
        fail "--set $set with the CUDA backend: expected exit 2 and a message naming the key; got $rc:"
        sed 's/^/    /' "$TMP/cuda_err.out" >&2
    else
        echo "ok: --set $set with the CUDA backend is a config error"
    fi
done

finish
