#!/usr/bin/env bash
# bench train's device work per step on the CUDA backend (emulated build): the launches the
# model's layers call for, no host synchronization in a step that does not read the statistics
# (one rank, and two ranks on NCCL with gradient clipping), the reads every log interval, and
# the step replayed as a CUDA Graph (one launch for all of it).
# Usage: gpu_counts.sh DPTRAIN CKPT_DIFF
set -euo pipefail
source "$(dirname "$0")/lib.sh"
require_emulated_gpus 2

# bench NAME NP ARGS...: the "device work" line of rank count NP into $TMP/NAME.counts as
# "launches syncs_min syncs_max copies"
bench() {
    local name=$1 np=$2
    shift 2
    local xs=(-x DPT_EMU_DEVICES)
    [ -z "${DPT_TEST_BF16_PER_GEMM:-}" ] || xs+=(-x DPT_TEST_BF16_PER_GEMM)
    [ -z "${DPT_TEST_BF16_ACT_PER_GEMM:-}" ] || xs+=(-x DPT_TEST_BF16_ACT_PER_GEMM)
    [ -z "${DPT_EMU_LT_BF16_D_FP32_BIAS:-}" ] || xs+=(-x DPT_EMU_LT_BF16_D_FP32_BIAS)
    "${MPIRUN[@]}" -np "$np" "${xs[@]}" "$DPTRAIN" bench train "$CONFIG" --steps 20 \
        --warmup 2 "$@" >"$TMP/$name.out" 2>&1 || fail "$name: $(tail -3 "$TMP/$name.out")"
    sed -nE "s/^# device work per step on rank 0, $np ranks?: ([0-9.]+) launches, ([0-9]+) host syncs \(([0-9]+) in a step that reads the statistics\), ([0-9.]+) copies.*/\1 \2 \3 \4/p" \
        "$TMP/$name.out" >"$TMP/$name.counts"
    [ -s "$TMP/$name.counts" ] || fail "$name: no device work line: $(grep '^#' "$TMP/$name.out" | tail -3)"
}

# Kernels a step launches for L layers: gather; per layer a GEMM and bias+activation forward;
# the loss and its sums; per layer the bias gradient and the weight-gradient GEMM, and below the
# last layer the input-gradient GEMM and the activation backward; the statistics' sum over
# steps; the optimizer's learning rate into device memory and the update: 6L + 4. Clipping adds
# 4 (two sum-of-squares stages, the factor, the product). The 20 timed steps (2 to 21; 30 a epoch) read the statistics twice (after steps 9
# and 19, train.log_every 10), each with one memset of the sums: + 2/20.
expect_launches() { awk -v L="$1" -v extra="$2" 'BEGIN { printf "%.1f", 6 * L + 4 + extra + 2 / 20 }'; }
# With train.gemm_epilogue on (cuBLASLt's epilogues, cuda/lt.cu): the bias and ReLU ride in the
# forward GEMM, the ReLU mask and the masked layer's bias gradient in the input-gradient GEMM,
# so L bias+activation, L - 1 activation-backward and L - 1 bias-gradient kernels go (the
# logits' bias gradient stays): 6L + 4 - (3L - 2) = 3L + 6.
expect_fused() { awk -v L="$1" 'BEGIN { printf "%.1f", 3 * L + 6 + 2 / 20 }'; }

for layers in "[32,64,4]:2" "[32,64,64,4]:3" "[32,64,64,64,4]:4"; do
    L=${layers#*:}
    bench "fused$L" 1 --set "model.layers=${layers%:*}" --set train.cuda_graph=off \
        --set train.gemm_epilogue=on
    if read -r launches smin smax copies <"$TMP/fused$L.counts"; then
        [ "$launches" = "$(expect_fused "$L")" ] ||
            fail "$L layers, epilogues on: $launches launches per step, want $(expect_fused "$L")"
    fi
    bench "l$L" 1 --set "model.layers=${layers%:*}" --set train.cuda_graph=off \
        --set train.gemm_epilogue=off
    read -r launches smin smax copies <"$TMP/l$L.counts" || continue
    [ "$launches" = "$(expect_launches "$L" 0)" ] ||
        fail "$L layers: $launches launches per step, want $(expect_launches "$L" 0)"
    [ "$smin" = 0 ] || fail "$L layers: $smin host syncs in a step that reads nothing, want 0"
    [ "$smax" -ge 1 ] || fail "$L layers: a read of the statistics did not synchronize ($smax)"
    awk -v c="$copies" 'BEGIN { exit !(c <= 0.1) }' ||
        fail "$L layers: $copies copies per step, want the read's one copy every 10 steps"
done

# two ranks on NCCL with clipping: still no host wait in a plain step (the watchdog polls at
# the reads); the clipping factor stays on the device
bench nccl 2 --set train.clip_grad_norm=0.5 --set train.cuda_graph=off \
    --set train.gemm_epilogue=off
if read -r launches smin smax copies <"$TMP/nccl.counts"; then
    [ "$launches" = "$(expect_launches 3 4)" ] ||
        fail "NCCL, clipping: $launches launches per step, want $(expect_launches 3 4)"
    [ "$smin" = 0 ] || fail "NCCL: $smin host syncs in a step that reads nothing, want 0"
    grep -q '^# gradients (all ranks): NCCL' "$TMP/nccl.out" || fail "NCCL: not on the NCCL path"
fi
# train.precision: bf16 converts the parameters to bf16 once per step (after the update) instead
# of once per GEMM that reads a weight matrix (2L - 1 = 5 of them): 4 launches fewer, the same
# numbers bitwise (DPT_TEST_BF16_PER_GEMM=1 turns the copy off); with graphs and epilogues too
bench bf16 1 --set train.precision=bf16 --set train.cuda_graph=off --set train.gemm_epilogue=off
DPT_TEST_BF16_PER_GEMM=1 bench bf16_per_gemm 1 --set train.precision=bf16 --set train.cuda_graph=off \
    --set train.gemm_epilogue=off
if read -r launches rest <"$TMP/bf16.counts" && read -r per_gemm rest <"$TMP/bf16_per_gemm.counts"; then
    awk -v a="$launches" -v b="$per_gemm" 'BEGIN { exit !(b - a == 4) }' ||
        fail "bf16: $launches launches per step with the weights' copy, $per_gemm without: want 4 fewer"
fi
for g in on off; do
    for per_gemm in 0 1; do
        DPT_TEST_BF16_PER_GEMM=$per_gemm "$DPTRAIN" train "$CONFIG" --device cuda \
            --set train.epochs=1 --set train.precision=bf16 --set train.cuda_graph=$g \
            --out "$TMP/bf16.$g.$per_gemm" >"$TMP/bf16.$g.$per_gemm.out" 2>&1 ||
            fail "bf16 train, graphs $g: $(tail -3 "$TMP/bf16.$g.$per_gemm.out")"
    done
    cmp -s "$TMP/bf16.$g.0/checkpoint.bin" "$TMP/bf16.$g.1/checkpoint.bin" ||
        fail "bf16, graphs $g: the weights' copy changed the result: $("$CKPT_DIFF" "$TMP/bf16.$g.0/checkpoint.bin" "$TMP/bf16.$g.1/checkpoint.bin" 2>&1 | head -3)"
done
# bf16 activations: the bias+ReLU kernel of each hidden layer (no dropout) also writes its
# output rounded to bf16, which the next layer's forward GEMM and the weight-gradient GEMM read
# instead of converting it: 2 (L - 1) = 4 launches fewer than with DPT_TEST_BF16_ACT_PER_GEMM=1
# (the GEMMs convert), the same numbers bitwise: 1 rank and 2 on NCCL with 2 buckets, graphs on
# and off (epilogues off: on, cuBLASLt writes those activations, below)
DPT_TEST_BF16_ACT_PER_GEMM=1 bench bf16_act_per_gemm 1 --set train.precision=bf16 \
    --set train.cuda_graph=off --set train.gemm_epilogue=off
if read -r launches rest <"$TMP/bf16.counts" && read -r per_gemm rest <"$TMP/bf16_act_per_gemm.counts"; then
    awk -v a="$launches" -v b="$per_gemm" 'BEGIN { exit !(b - a == 4) }' ||
        fail "bf16: $launches launches per step with bf16 activations, $per_gemm without: want 4 fewer"
fi
# bf16_train NAME NP GRAPHS EPILOGUES [-x VAR=VALUE]...: a 1-epoch bf16 run into $TMP/NAME (on 2
# ranks NCCL with 2 buckets); same_result A B WHAT: their checkpoints are equal bitwise
bf16_train() {
    local out=$TMP/$1 np=$2 g=$3 epi=$4
    shift 4
    "${MPIRUN[@]}" -np "$np" -x DPT_EMU_DEVICES "$@" "$DPTRAIN" train "$CONFIG" --device cuda \
        --set train.epochs=1 --set train.precision=bf16 --set train.cuda_graph="$g" \
        --set train.gemm_epilogue="$epi" --set comm.bucket_mb=0.01 --out "$out" >"$out.out" 2>&1 ||
        fail "$1: $(tail -3 "$out.out")"
}
same_result() {
    cmp -s "$TMP/$1/checkpoint.bin" "$TMP/$2/checkpoint.bin" ||
        fail "$3: the result changed: $("$CKPT_DIFF" "$TMP/$1/checkpoint.bin" "$TMP/$2/checkpoint.bin" 2>&1 | head -3)"
}
# With the epilogues on, cuBLASLt's RELU_AUX_BIAS writes each hidden layer's output straight into
# its bf16 copy (a bf16 D, the fp32 a not written at all) where the start-up probe finds it
# accepting a bf16 D with an fp32 bias; the emulation does under DPT_EMU_LT_BF16_D_FP32_BIAS=1
# (cublasLt.h lists no such bias type, so by default it refuses and the run writes fp32 a, as
# before). Its D is the float the conversion kernels rounded before, so: 2 (L - 1) = 4 launches
# fewer and the same numbers bitwise as the fp32 D, with the unwritten fp32 a filled with NaN
# (DPT_TEST_BF16_ACT_POISON=1: nothing reads it); 1 rank and 2 on NCCL, graphs on and off.
bench bf16_lt32 1 --set train.precision=bf16 --set train.cuda_graph=off --set train.gemm_epilogue=on
DPT_EMU_LT_BF16_D_FP32_BIAS=1 bench bf16_lt16 1 --set train.precision=bf16 \
    --set train.cuda_graph=off --set train.gemm_epilogue=on
if read -r launches rest <"$TMP/bf16_lt16.counts" && read -r fp32 rest <"$TMP/bf16_lt32.counts"; then
    awk -v a="$launches" -v b="$fp32" 'BEGIN { exit !(b - a == 4) }' ||
        fail "bf16, epilogues: $launches launches per step with a bf16 D, $fp32 with fp32: want 4 fewer"
fi
for np in 1 2; do
    for g in on off; do
        bf16_train "bf16act.$np.$g.0" "$np" "$g" off -x DPT_TEST_BF16_ACT_PER_GEMM=0
        bf16_train "bf16act.$np.$g.1" "$np" "$g" off -x DPT_TEST_BF16_ACT_PER_GEMM=1
        same_result "bf16act.$np.$g.0" "bf16act.$np.$g.1" "bf16 activations, $np ranks, graphs $g"
        bf16_train "bf16lt16.$np.$g" "$np" "$g" on -x DPT_EMU_LT_BF16_D_FP32_BIAS=1 \
            -x DPT_TEST_BF16_ACT_POISON=1
        bf16_train "bf16lt32.$np.$g" "$np" "$g" on
        same_result "bf16lt16.$np.$g" "bf16lt32.$np.$g" "bf16 D of cuBLASLt, $np ranks, graphs $g"
    done
done
grep -q 'GEMM epilogues cuBLASLt (bias; ReLU, its mask and bias gradient); ReLU outputs in bf16 only' \
    "$TMP/bf16lt16.1.on.out" || fail "bf16 D accepted: the device line does not say so: $(grep -m1 '^ *device' "$TMP/bf16lt16.1.on.out")"
grep -q 'ReLU outputs fp32: cuBLASLt refused a bf16 D with an fp32 bias' "$TMP/bf16lt32.1.on.out" ||
    fail "bf16 D refused: the device line does not say so: $(grep -m1 '^ *device' "$TMP/bf16lt32.1.on.out")"
for run in bf16act.2.on.0 bf16lt16.2.on; do
    grep -q '^ *comm .*NCCL sum, 2 buckets' "$TMP/$run.out" ||
        fail "$run: not on NCCL with 2 buckets: $(grep -m1 '^ *comm' "$TMP/$run.out")"
done
# the step as a CUDA Graph (train.cuda_graph auto: on here): the gather, the learning rate into
# device memory and one graph launch a step, the rest as before
for np in 1 2; do
    bench "graph$np" "$np" --set train.clip_grad_norm=0.5
    if read -r launches smin smax copies <"$TMP/graph$np.counts"; then
        [ "$launches" = 3.1 ] || fail "graph, $np ranks: $launches launches per step, want 3.1"
        [ "$smin" = 0 ] || fail "graph, $np ranks: $smin host syncs in a plain step, want 0"
    fi
done
finish
