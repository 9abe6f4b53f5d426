#!/usr/bin/env bash
# train.precision: bf16 on the CUDA backend (emulated build): the parameters' bf16 copy, the
# activations' bf16 copies (written by the bias+ReLU kernel, or by cuBLASLt as a bf16 D with the
# epilogues on) save their launches and change no result bitwise.
# Usage: gpu_bf16.sh DPTRAIN CKPT_DIFF
set -euo pipefail
source "$(dirname "$0")/lib.sh"
require_emulated_gpus 2

# train.precision: bf16 converts the parameters to bf16 once per step (after the update) instead
# of once per GEMM that reads a weight matrix (2L - 1 = 5 of them): 4 launches fewer, the same
# numbers bitwise (DPT_TEST_BF16_PER_GEMM=1 turns the copy off); with graphs and epilogues too
device_work bf16 1 --set train.precision=bf16 --set train.cuda_graph=off --set train.gemm_epilogue=off
DPT_TEST_BF16_PER_GEMM=1 device_work bf16_per_gemm 1 --set train.precision=bf16 --set train.cuda_graph=off \
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
DPT_TEST_BF16_ACT_PER_GEMM=1 device_work bf16_act_per_gemm 1 --set train.precision=bf16 \
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
# (DPT_TEST_BF16_ACT_POISON=1: nothing reads it); 1 rank with graphs on and off, 2 on NCCL with.
device_work bf16_lt32 1 --set train.precision=bf16 --set train.cuda_graph=off --set train.gemm_epilogue=on
DPT_EMU_LT_BF16_D_FP32_BIAS=1 device_work bf16_lt16 1 --set train.precision=bf16 \
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
        [ "$np.$g" != 2.off ] || continue # a second's runs fewer: 2 ranks with graphs suffice
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
finish
