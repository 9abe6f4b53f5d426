#!/usr/bin/env bash
# The GPU a rank takes, as a cluster hands them out (docs/gpu.md, "Running"): with a
# CUDA_VISIBLE_DEVICES per rank (each rank sees one GPU, as under SLURM --gpus-per-task=1) and
# with every rank seeing all of them, 2 ranks train what the CPU backend trains; two ranks on one
# physical GPU, more ranks than GPUs, no GPU, and a driver older than the CUDA runtime are each
# refused with a message naming the cause. Emulated CUDA build only (DPT_EMU_DEVICES=4 GPUs).
#   usage: gpu_devices.sh DPTRAIN CKPT_DIFF
set -euo pipefail
source "$(dirname "$0")/lib.sh"
# CPU against CUDA: cuBLAS and OpenBLAS sum in different orders; over the 60 steps measured
# 3e-7 of each tensor's scale. A rank on the wrong data or a missing gradient moves 1e-2.
RTOL=1e-4
export DPT_EMU_DEVICES=4

# wrapper VISIBLE: runs dptrain with CUDA_VISIBLE_DEVICES=VISIBLE, where "$r" in it is replaced
# by this rank's index on the node (what a per-rank launcher script does)
cat > "$TMP/per_rank.sh" <<'WRAP'
#!/usr/bin/env bash
r=${OMPI_COMM_WORLD_LOCAL_RANK:?not under Open MPI}
visible=${VISIBLE//\$r/$r}
visible=${visible//3-r/$((3 - r))}
export CUDA_VISIBLE_DEVICES=$visible
exec "$@"
WRAP
chmod +x "$TMP/per_rank.sh"

# run NAME NP VISIBLE [args...]: dptrain train under the wrapper; output in $TMP/NAME.out
run() {
    local name=$1 np=$2 visible=$3
    shift 3
    VISIBLE=$visible "${MPIRUN[@]}" -x VISIBLE -np "$np" "$TMP/per_rank.sh" "$DPTRAIN" train \
        "$CONFIG" --out "$TMP/$name" "$@" > "$TMP/$name.out" 2>&1
}

# trains NAME NP VISIBLE: must succeed on the GPUs and match the CPU run
trains() {
    local name=$1
    if ! run "$@" --device cuda; then
        sed 's/^/    /' "$TMP/$name.out" >&2
        fail "$name exited non-zero"
        return 0
    fi
    grep -q "device *cuda: one GPU per rank" "$TMP/$name.out" || fail "$name did not train on the GPUs"
    "$CKPT_DIFF" "$TMP/cpu/checkpoint.bin" "$TMP/$name/checkpoint.bin" --rtol "$RTOL" \
        > "$TMP/$name.diff" 2>&1 \
        && echo "ok: $name matches the CPU backend: $(tail -n 1 "$TMP/$name.diff")" \
        || { sed 's/^/    /' "$TMP/$name.diff" >&2; fail "$name differs from the CPU backend"; }
}

# refused NAME NP VISIBLE TEXT [args...]: must exit non-zero and say TEXT
refused() {
    local name=$1 np=$2 visible=$3 text=$4
    shift 4
    if run "$name" "$np" "$visible" "$@"; then
        fail "$name: exited 0, expected a refusal saying: $text"
    elif ! grep -qF -- "$text" "$TMP/$name.out"; then
        sed 's/^/    /' "$TMP/$name.out" >&2
        fail "$name: the message does not say: $text"
    else
        echo "ok: $name refused: $(grep -m1 -F -- "$text" "$TMP/$name.out")"
    fi
}

run cpu 2 '' --device cpu || fail "the CPU run exited non-zero"
trains own_gpu 2 '3-r'           # rank 0 sees physical GPU 3, rank 1 GPU 2: both "device 0"
trains all_gpus 2 '2,3'          # both see two GPUs: each takes its local rank's
refused one_gpu 2 '1' "would both use the GPU at PCI 0000:01:00.0" --device cuda
refused one_gpu_auto 2 '1' "would both use the GPU at PCI 0000:01:00.0" --device auto
refused too_few 3 '0,1' "3 ranks on" --device cuda
refused none 1 '' "no GPU is visible" --device cuda
OLD="the NVIDIA driver supports CUDA 12.4, older than this dptrain's CUDA runtime 13.0"
DPT_EMU_DRIVER_VERSION=12040 refused old_driver 1 '0' "$OLD (cudaErrorInsufficientDriver)" \
    --device cuda
# auto on an old driver trains on the CPU and says why in the start-up table
if DPT_EMU_DRIVER_VERSION=12040 run old_driver_auto 1 '0' --device auto; then
    grep -q "device *cpu.*auto: the NVIDIA driver supports CUDA 12.4.*cudaErrorInsufficientDriver" \
        "$TMP/old_driver_auto.out" \
        || fail "old_driver_auto: the device line does not name the driver:" \
                "$(grep device "$TMP/old_driver_auto.out")"
else
    fail "old_driver_auto exited non-zero"
fi
finish
