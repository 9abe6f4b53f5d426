#!/usr/bin/env bash
# The first run on a machine with NVIDIA GPUs, in one command and at most 8 minutes (issue 15):
# builds for the GPUs' architecture, runs the parity selftest and the gpu tests, times `bench
# train` on three MLP shapes in fp32, tf32 and bf16 with CUDA graphs on and off (and three rows with
# cuBLASLt's GEMM epilogues off, train.gemm_epilogue, to see which wins), the NCCL
# allreduce, trains Fashion-MNIST to accuracy, and times PyTorch eager on the same GPU where it is
# installed. Prints one markdown table and writes it (table.md) with the raw logs into OUTDIR.
# docs/gpu.md ("Performance model") holds the predictions to compare the table against.
set -uo pipefail

usage() {
    cat <<'EOF'
usage: scripts/gpu_check.sh [--emulated] OUTDIR

  On a machine with one or more NVIDIA GPUs (nvidia-smi, nvcc, MPI): builds dptrain for the
  GPUs' compute capability into build-gpucheck/, then runs the checks below, each bounded by
  `timeout`, in at most 8 minutes in all. Writes OUTDIR/table.md and OUTDIR/logs/*.log.
  Exit 0 when every required check passed, 1 when one failed, 2 on a usage error.

  --emulated   no GPU: the host emulation's binary (build-emu/, built with
               scripts/build.sh build-emu -DDPT_CUDA_EMU=ON), tiny shapes and step counts, no
               nvidia-smi, no PyTorch (CI checks the script's logic this way). Same as
               DPT_GPU_CHECK_EMU=1.

  environment: DPT_GPU_CHECK_BUILD=DIR    use this build of dptrain instead of building one
               FASHION_MNIST_DIR=DIR      where the four Fashion-MNIST IDX files are
                                          (default: the paths in configs/fashion_mnist.yaml)
               DPT_GPU_CHECK_BUDGET_S=N   the time budget in seconds (default 480)
               MPIRUN="mpirun ..."        the launcher for the multi-GPU allreduce
               PYTHON=python3             the interpreter for the PyTorch timing
EOF
}

emulated=${DPT_GPU_CHECK_EMU:-0}
out=""
for a in "$@"; do
    case "$a" in
    --emulated) emulated=1 ;;
    -h | --help) usage; exit 0 ;;
    -*) echo "gpu_check: unknown option '$a'" >&2; usage >&2; exit 2 ;;
    *)
        [ -z "$out" ] || { echo "gpu_check: one OUTDIR only (got '$out' and '$a')" >&2; exit 2; }
        out=$a ;;
    esac
done
[ -n "$out" ] || { usage >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out/logs" || { echo "gpu_check: cannot create '$out/logs'" >&2; exit 2; }
out=$(cd "$out" && pwd)
logs=$out/logs
table=$out/table.md
budget=${DPT_GPU_CHECK_BUDGET_S:-480}
PYTHON=${PYTHON:-python3}
failed=0
rows=()

# One row of the table. A FAIL of a required check (the default) makes the script exit 1.
row() { # NAME STATUS RESULT LOG
    rows+=("| $1 | $2 | $3 | ${4:-} |")
    [ "$2" != FAIL ] || failed=1
}

# Runs a command into logs/LOG with a timeout of at most T seconds and what is left of the
# budget; sets rc (124: timed out; 125: not started, the budget is spent).
run_step() { # LOG T CMD...
    local log=$logs/$1 t=$2
    shift 2
    local left=$((budget - SECONDS))
    [ "$t" -le "$left" ] || t=$left
    if [ "$t" -lt 5 ]; then
        echo "not run: the ${budget} s budget is spent" >"$log"
        rc=125
        return
    fi
    echo "\$ $*" >"$log"
    # in a subshell whose stderr is dropped (bash's "Killed" notice when -k had to kill); the
    # exit keeps bash from replacing the subshell by timeout, which -k's SIGKILL also reaches
    (timeout -k 10 "$t" "$@" >>"$log" 2>&1; exit $?) 2>/dev/null
    rc=$?
}

# Why a step failed, for the result column.
why() { # LOG
    case $rc in
    124 | 137) echo "timed out" ;;
    125) echo "not run: time budget spent" ;;
    *) echo "exit $rc: $(grep -m1 -iE 'error|fail' "$logs/$1" | cut -c1-120 | tr '|' '/')" ;;
    esac
}

# MPIRUN overrides the launcher (e.g. MPIRUN="srun --mpi=pmix"); Open MPI's gets its flags
if [ -n "${MPIRUN:-}" ]; then
    read -r -a mpirun_cmd <<<"$MPIRUN"
else
    mpirun_cmd=(mpirun)
    if mpirun --version 2>/dev/null | grep -q 'Open MPI'; then
        mpirun_cmd+=(--oversubscribe)
        [ "$(id -u)" != 0 ] || mpirun_cmd+=(--allow-run-as-root)
    fi
fi

# --- the build --------------------------------------------------------------------------------
if [ "$emulated" = 1 ]; then
    build=${DPT_GPU_CHECK_BUILD:-$root/build-emu}
    export DPT_EMU_DEVICES=${DPT_EMU_DEVICES:-2}
    mpirun_cmd+=(--mca btl_vader_single_copy_mechanism none)
    if "$build/dptrain" version 2>/dev/null | grep -q 'host emulation'; then
        row "build" PASS "emulated: $build/dptrain (no GPU, no nvidia-smi)" ""
    else
        echo "gpu_check: --emulated needs the emulated build in $build (scripts/build.sh build-emu -DDPT_CUDA_EMU=ON)" >&2
        exit 2
    fi
    ngpu=$DPT_EMU_DEVICES
    gpu_name="host emulation ($ngpu GPUs)"
else
    command -v nvidia-smi >/dev/null ||
        { echo "gpu_check: nvidia-smi not found: this script needs an NVIDIA GPU (--emulated runs it without one)" >&2; exit 2; }
    caps=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>"$logs/nvidia-smi.log") ||
        { echo "gpu_check: nvidia-smi failed: $(cat "$logs/nvidia-smi.log")" >&2; exit 2; }
    ngpu=$(echo "$caps" | grep -c .)
    [ "$ngpu" -ge 1 ] || { echo "gpu_check: nvidia-smi lists no GPU" >&2; exit 2; }
    gpu_name=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1)
    # compute capability 9.0 -> DPT_CUDA_ARCHS 90 (cuda/CMakeLists.txt: SASS, and PTX of the last)
    archs=$(echo "$caps" | tr -d ' .' | sort -u | paste -sd';')
    if [ -n "${DPT_GPU_CHECK_BUILD:-}" ]; then
        build=$DPT_GPU_CHECK_BUILD
        row "build" PASS "given: $build (archs not checked)" ""
    else
        build=$root/build-gpucheck
        run_step build.log 300 "$root/scripts/build.sh" "$build" -DDPT_CUDA=ON "-DDPT_CUDA_ARCHS=$archs"
        if [ $rc = 0 ]; then
            row "build" PASS "DPT_CUDA_ARCHS=$archs, $(grep -m1 'CUDA  ' "$logs/build.log" | sed 's/^-- *//')" build.log
        else
            row "build" FAIL "$(why build.log)" build.log
        fi
    fi
fi
dptrain=$build/dptrain
[ -x "$dptrain" ] || { printf '%s\n' "${rows[@]}"; echo "gpu_check: no $dptrain" >&2; exit 1; }
"$dptrain" version >"$logs/version.log" 2>&1

# --- selftest and the gpu tests ---------------------------------------------------------------
run_step selftest.log 120 "$dptrain" selftest
self_rc=$rc
if grep -q '(skipped)' "$logs/selftest.log"; then
    row "selftest" FAIL "no CUDA device visible to dptrain" selftest.log
else
    for p in FP32 TF32 BF16; do
        # one parity section per precision: "# parity: cpu (reference) vs cuda (TF32 GEMMs)" ...
        n=$(grep -A1000 "vs cuda ($p GEMMs)" "$logs/selftest.log" | grep -m1 '^# parity cpu vs cuda:' |
            sed 's/^# parity cpu vs cuda: //')
        if [ -z "$n" ] && [ $self_rc = 0 ]; then
            row "selftest $p" "not supported by this build" "no $p section in dptrain selftest" selftest.log
        elif [ -n "$n" ] && [ $self_rc = 0 ]; then
            row "selftest $p" PASS "$n" selftest.log
        else
            rc=$self_rc
            row "selftest $p" FAIL "${n:-$(why selftest.log)}" selftest.log
        fi
    done
fi
run_step ctest_gpu.log 180 ctest --test-dir "$build" -L gpu --output-on-failure
if [ $rc = 0 ] && grep -q 'Skipped' "$logs/ctest_gpu.log"; then
    row "ctest -L gpu" FAIL "a gpu test skipped itself: $(grep -m1 -A1 'did not run' "$logs/ctest_gpu.log" | tail -1 | tr -s ' ')" ctest_gpu.log
elif [ $rc = 0 ] && grep -q 'tests passed' "$logs/ctest_gpu.log"; then
    row "ctest -L gpu" PASS "$(grep -m1 'tests passed' "$logs/ctest_gpu.log")" ctest_gpu.log
else
    row "ctest -L gpu" FAIL "$(why ctest_gpu.log)" ctest_gpu.log
fi

# --- bench train: 3 shapes x fp32, tf32, bf16 x CUDA graphs on and off -------------------------
if [ "$emulated" = 1 ]; then
    # the same rows on shapes the emulation computes in a moment (it runs kernels on the CPU)
    shapes=("32,64,64,10 16" "32,64,64,10 64" "32,128,128,10 32")
    steps=(--steps 3 --warmup 1)
    bench_data=(--set data.synthetic_train=256 --set data.synthetic_test=64)
else
    shapes=("784,512,512,10 128" "784,512,512,10 1024" "784,2048,2048,10 512")
    steps=(--steps 300 --warmup 30)
    bench_data=(--set data.synthetic_train=16384 --set data.synthetic_test=1024)
fi
bench_cfg=$root/tests/configs/synthetic_small.yaml
declare -A samples # "shape batch precision" -> samples/s, for the PyTorch ratio
bench_row() { # LAYERS BATCH PRECISION GRAPH [EPILOGUE]
    local layers=$1 batch=$2 prec=$3 graph=$4 epi=${5:-}
    local name="bench ${layers//,/-} b$batch $prec graphs=$graph${epi:+ epilogue=$epi}"
    local log="bench_${layers//,/-}_b${batch}_${prec}_graph_$graph${epi:+_epilogue_$epi}.log" note=""
    local args=(bench train "$bench_cfg" "${steps[@]}" --set run.device=cuda --set run.threads=0
                --set "model.layers=[$layers]" --set "train.batch_size=$batch" "${bench_data[@]}"
                --set train.lr=0.01 --set "train.precision=$prec"
                ${epi:+--set "train.gemm_epilogue=$epi"})
    run_step "$log" 90 "$dptrain" "${args[@]}" --set "train.cuda_graph=$graph"
    if [ $rc = 2 ] && [ "$graph" = off ] && grep -q "unknown key 'train.cuda_graph'" "$logs/$log"; then
        # a build without train.cuda_graph never captures graphs: "off" is what it always does
        run_step "$log" 90 "$dptrain" "${args[@]}"
        note=" (no train.cuda_graph in this build)"
    fi
    if [ $rc = 2 ] && grep -qE "unknown key|expected one of" "$logs/$log"; then
        row "$name" "not supported by this build" "$(grep -m1 'error:' "$logs/$log" | sed 's/.*error: //' | cut -c1-100)" "$log"
        return
    fi
    # the one-rank row: ranks nodes batch samples/s step_ms ...
    local r
    r=$(grep -E '^ +1 +[0-9]+ +[0-9]+ +[0-9.]+ +[0-9.]+ ' "$logs/$log" | head -1)
    if [ $rc != 0 ] || [ -z "$r" ]; then
        row "$name" FAIL "$(why "$log")" "$log"
        return
    fi
    local sps step_ms counts
    sps=$(echo "$r" | awk '{print $4}')
    step_ms=$(echo "$r" | awk '{print $5}')
    # what the backend counted per step, where the build prints it (launches, syncs, copies)
    # (the one-rank row's line, not the header that explains the columns)
    counts=$(grep -m1 -E '^# device work per step on rank 0, 1 rank: ' "$logs/$log" |
             sed 's/^# device work per step on rank 0, 1 rank: *//' | cut -c1-100 | tr '|' '/')
    # the GPU events' times of the one-rank row (compute / comm / overlapped / exposed ms per
    # step; comm "-" where no allreduce ran on the device), where the build prints them
    local ev
    ev=$(sed -nE 's/^# GPU events per step on rank 0, 1 rank: compute ([0-9.]+) ms .*\), (comm ([0-9.]+) ms, overlapped ([0-9.]+) ms, exposed ([0-9.]+) ms|comm not timed).*/\1 \3 \4 \5/p' "$logs/$log" | head -1)
    [ -z "$ev" ] || counts="${counts:+$counts, }GPU events compute/comm/overlapped/exposed ms $(echo "$ev" | awk '{ printf "%s/%s/%s/%s", $1, ($2 == "" ? "-" : $2), ($3 == "" ? "-" : $3), ($4 == "" ? "-" : $4) }')"
    # the faster of graphs on and off, for the PyTorch ratio
    local prev=${samples["$layers $batch $prec"]:-0}
    awk -v a="$sps" -v b="$prev" 'BEGIN { exit !(a > b) }' && samples["$layers $batch $prec"]=$sps
    row "$name" PASS "$(printf '%.0f samples/s, %.1f us/step%s%s' "$sps" "$(awk -v m="$step_ms" 'BEGIN{print m*1000}')" "${counts:+, $counts}" "$note")" "$log"
}
for s in "${shapes[@]}"; do
    for prec in fp32 tf32 bf16; do
        for graph in on off; do
            bench_row "${s% *}" "${s#* }" $prec $graph
        done
    done
done
# the rows above run train.gemm_epilogue's default (auto: cuBLASLt's epilogues where it accepts
# them); these three run our separate kernels instead, so the table shows which wins: the small
# MLP in bf16 with graphs and in fp32 without (where the launches saved matter most), the large
# one in bf16 with graphs
for r in "${shapes[0]} bf16 on" "${shapes[0]} fp32 off" "${shapes[2]} bf16 on"; do
    read -r r_layers r_batch r_prec r_graph <<<"$r"
    bench_row "$r_layers" "$r_batch" "$r_prec" "$r_graph" off
done

# --- the NCCL allreduce ------------------------------------------------------------------------
if [ "$emulated" = 1 ]; then
    ar_flags=(-b 1K -e 64K -f 8 -n 2 -w 1)
else
    ar_flags=(-b 8 -e 256M -f 4 -n 20 -w 5)
fi
if [ "$ngpu" -gt 1 ]; then
    run_step allreduce.log 120 "${mpirun_cmd[@]}" -np "$ngpu" "$dptrain" bench allreduce --device cuda "${ar_flags[@]}"
else
    run_step allreduce.log 120 "$dptrain" bench allreduce --device cuda "${ar_flags[@]}"
fi
if [ $rc = 0 ] && grep -q '^# Out of bounds values : 0 OK' "$logs/allreduce.log"; then
    # the largest size of the first section (all ranks)
    big=$(awk '/^# Out of bounds/ { exit } $3 == "float" { line = $0 }
               END { split(line, f); printf "%s B: %s us, busbw %s GB/s", f[1], f[5], f[7] }' "$logs/allreduce.log")
    row "bench allreduce --device cuda, $ngpu rank(s)" PASS "$big; $(grep -m1 '^# Avg bus bandwidth' "$logs/allreduce.log" | sed 's/^# *//;s/ *$//' | tr -s ' ')" allreduce.log
else
    row "bench allreduce --device cuda, $ngpu rank(s)" FAIL "$(why allreduce.log)" allreduce.log
fi

# --- Fashion-MNIST to accuracy on the GPU ----------------------------------------------------
if [ "$emulated" = 1 ]; then
    # the emulation trains the small synthetic problem instead (Fashion-MNIST takes a minute there)
    train_cfg=$bench_cfg
    train_args=(--set train.epochs=2)
    min_acc=0.70
else
    train_cfg=$root/configs/fashion_mnist.yaml
    train_args=()
    min_acc=0.89
    if [ -n "${FASHION_MNIST_DIR:-}" ]; then
        d=$FASHION_MNIST_DIR
        train_args+=(--set "data.train_images=$d/train-images-idx3-ubyte.gz"
                     --set "data.train_labels=$d/train-labels-idx1-ubyte.gz"
                     --set "data.test_images=$d/t10k-images-idx3-ubyte.gz"
                     --set "data.test_labels=$d/t10k-labels-idx1-ubyte.gz")
    fi
fi
run_step train.log 240 "$dptrain" train "$train_cfg" --device cuda --out "$out/train" \
    --set run.progress=off "${train_args[@]}"
acc=$(grep -o '"test_accuracy": *[0-9.eE+-]*' "$out/train/metrics.jsonl" 2>/dev/null | tail -1 | sed 's/.*: *//')
name="train $(basename "$train_cfg") --device cuda"
if [ $rc != 0 ] || [ -z "$acc" ]; then
    row "$name" FAIL "$(why train.log)" train.log
elif awk -v a="$acc" -v m="$min_acc" 'BEGIN { exit !(a >= m) }'; then
    row "$name" PASS "test accuracy $(awk -v a="$acc" 'BEGIN{printf "%.2f", 100*a}')% >= $(awk -v m="$min_acc" 'BEGIN{print 100*m}')% ($(grep -o '[0-9]* steps in [0-9.]*s' "$logs/train.log" | tail -1))" train.log
else
    row "$name" FAIL "test accuracy $(awk -v a="$acc" 'BEGIN{printf "%.2f", 100*a}')% < $(awk -v m="$min_acc" 'BEGIN{print 100*m}')%" train.log
fi

# --- PyTorch eager on the same GPU (optional) --------------------------------------------------
if [ "$emulated" = 1 ]; then
    row "pytorch eager" SKIP "emulated: no GPU for PyTorch" ""
elif ! "$PYTHON" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' >"$logs/pytorch_probe.log" 2>&1; then
    row "pytorch eager" SKIP "no PyTorch with CUDA importable by $PYTHON" pytorch_probe.log
else
    for s in "${shapes[@]}"; do
        layers=${s% *} batch=${s#* }
        for prec in fp32 tf32 bf16; do
            log="pytorch_${layers//,/-}_b${batch}_$prec.log"
            run_step "$log" 60 "$PYTHON" "$root/scripts/bench_pytorch_gpu.py" --layers "$layers" \
                --batch "$batch" --precision $prec --steps 300 --warmup 30
            sps=$(grep -m1 '^samples/s ' "$logs/$log" | awk '{print $2}')
            name="pytorch eager ${layers//,/-} b$batch $prec"
            if [ $rc != 0 ] || [ -z "$sps" ]; then
                row "$name" FAIL "$(why "$log")" "$log"
                continue
            fi
            ours=${samples["$layers $batch $prec"]:-}
            ratio=""
            [ -z "$ours" ] || ratio=$(awk -v a="$ours" -v b="$sps" 'BEGIN { printf ", dptrain / pytorch = %.2fx", a / b }')
            row "$name" PASS "$(printf '%.0f samples/s' "$sps")$ratio" "$log"
        done
    done
fi

# --- the table ---------------------------------------------------------------------------------
{
    echo "# dptrain gpu_check on $(hostname): $gpu_name"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $ngpu GPU(s), $(sed -n 1p "$logs/version.log"), ${SECONDS} s; logs in logs/"
    echo
    echo "| check | status | result | log |"
    echo "| --- | --- | --- | --- |"
    printf '%s\n' "${rows[@]}"
} >"$table"
cat "$table"
if [ $failed != 0 ]; then
    echo "gpu_check: FAILED (see the FAIL rows and their logs in $logs)" >&2
    exit 1
fi
echo "gpu_check: every required check passed; table in $table"
