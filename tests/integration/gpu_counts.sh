#!/usr/bin/env bash
# bench train's device work per step on the CUDA backend (emulated build): the launches the
# model's layers call for, no host synchronization in a step that does not read the statistics
# (one rank, and two ranks on NCCL with gradient clipping), the reads every log interval, and
# the step replayed as a CUDA Graph (one launch for all of it).
# Usage: gpu_counts.sh DPTRAIN CKPT_DIFF
set -euo pipefail
source "$(dirname "$0")/lib.sh"
require_emulated_gpus 2


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
    device_work "fused$L" 1 --set "model.layers=${layers%:*}" --set train.cuda_graph=off \
        --set train.gemm_epilogue=on
    if read -r launches smin smax copies <"$TMP/fused$L.counts"; then
        [ "$launches" = "$(expect_fused "$L")" ] ||
            fail "$L layers, epilogues on: $launches launches per step, want $(expect_fused "$L")"
    fi
    device_work "l$L" 1 --set "model.layers=${layers%:*}" --set train.cuda_graph=off \
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
device_work nccl 2 --set train.clip_grad_norm=0.5 --set train.cuda_graph=off \
    --set train.gemm_epilogue=off
if read -r launches smin smax copies <"$TMP/nccl.counts"; then
    [ "$launches" = "$(expect_launches 3 4)" ] ||
        fail "NCCL, clipping: $launches launches per step, want $(expect_launches 3 4)"
    [ "$smin" = 0 ] || fail "NCCL: $smin host syncs in a step that reads nothing, want 0"
    grep -q '^# gradients (all ranks): NCCL' "$TMP/nccl.out" || fail "NCCL: not on the NCCL path"
fi
# the step as a CUDA Graph (train.cuda_graph auto: on here): the gather, the learning rate into
# device memory and one graph launch a step, the rest as before
for np in 1 2; do
    device_work "graph$np" "$np" --set train.clip_grad_norm=0.5
    if read -r launches smin smax copies <"$TMP/graph$np.counts"; then
        [ "$launches" = 3.1 ] || fail "graph, $np ranks: $launches launches per step, want 3.1"
        [ "$smin" = 0 ] || fail "graph, $np ranks: $smin host syncs in a plain step, want 0"
    fi
done
finish
