#!/usr/bin/env bash
# What a run leaves behind and prints: a 2-epoch run on 2 ranks writes metrics.jsonl (one row per
# epoch with the keys of docs/interface.md, ranks = 2), a config.yaml that dptrain loads again, a
# checkpoint, and prints one start-up table and one line per epoch, from rank 0 only. Also
# `dptrain version`, `dptrain --help` and `dptrain` without arguments.
#   usage: outputs.sh DPTRAIN CKPT_DIFF
set -euo pipefail

source "$(dirname "$0")/lib.sh"

RC=0
case_run() { # NAME CMD...
    local name=$1
    shift
    RC=0
    "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" || RC=$?
}

expect_exit() { # NAME CODE
    if [ "$RC" -ne "$2" ]; then
        fail "$1: exit status $RC, expected $2; stdout and stderr:"
        sed 's/^/    out: /' "$TMP/$1.out" >&2
        sed 's/^/    err: /' "$TMP/$1.err" >&2
        return 1
    fi
}

# count NAME STREAM REGEX N: exactly N lines of std$STREAM match the extended REGEX
count() {
    local n
    n=$(grep -cE -- "$3" "$TMP/$1.$2" || true)
    if [ "$n" -ne "$4" ]; then
        fail "$1: $n line(s) of std$2 match /$3/, expected $4; std$2 was:"
        sed 's/^/    /' "$TMP/$1.$2" >&2
    fi
}

# ---- a 2-epoch run on 2 ranks ------------------------------------------------------------

OUT=$TMP/run
case_run run "${MPIRUN[@]}" -np 2 "$DPTRAIN" train "$CONFIG" --set train.epochs=2 --out "$OUT"
if expect_exit run 0; then
    # start-up table, once: the title line and one row per topic, naming 2 ranks
    count run out '^dptrain [0-9.]+ +train ' 1
    for row in ranks device comm data model train output; do
        count run out "^  $row " 1
    done
    count run out '^  ranks +2 ranks on ' 1
    # the epoch table: one header, then one line per epoch (epoch, step = 30 per epoch), once
    count run out '^ *epoch +step ' 1
    count run out '^ +1 +30 ' 1
    count run out '^ +2 +60 ' 1
    count run out '^done: 2 epochs' 1

    python3 - "$OUT/metrics.jsonl" <<'EOF' || fail "metrics.jsonl (see above)"
import json, math, sys
path = sys.argv[1]
lines = [l for l in open(path).read().splitlines() if l.strip()]
errors = []
if len(lines) != 2:
    errors.append(f"{len(lines)} lines, expected 2 (one per epoch)")
keys = ["epoch", "step", "train_loss", "val_loss", "val_accuracy", "test_accuracy",
        "samples_per_s", "time_s", "compute_s", "comm_s", "ranks"]
for i, line in enumerate(lines):
    try:
        row = json.loads(line)
    except ValueError as e:
        errors.append(f"line {i + 1} is not JSON ({e}): {line}")
        continue
    missing = [k for k in keys if k not in row]
    if missing:
        errors.append(f"line {i + 1} lacks {missing}: {line}")
        continue
    if row["epoch"] != i + 1 or row["step"] != 30 * (i + 1) or row["ranks"] != 2:
        errors.append(f"line {i + 1}: epoch {row['epoch']}, step {row['step']}, ranks "
                      f"{row['ranks']}; expected {i + 1}, {30 * (i + 1)}, 2")
    for k in keys:
        if not isinstance(row[k], (int, float)) or not math.isfinite(row[k]):
            errors.append(f"line {i + 1}: {k} = {row[k]!r} is not a finite number")
    if errors:
        continue
    for k in ("val_accuracy", "test_accuracy"):
        if not 0 <= row[k] <= 1:
            errors.append(f"line {i + 1}: {k} = {row[k]} outside [0, 1]")
    if row["samples_per_s"] <= 0 or row["time_s"] <= 0:
        errors.append(f"line {i + 1}: samples_per_s {row['samples_per_s']}, time_s "
                      f"{row['time_s']} must be > 0")
    if row["compute_s"] < 0 or row["comm_s"] < 0:
        errors.append(f"line {i + 1}: negative compute_s or comm_s")
    # compute and communication are parts of the epoch's time (1 ms of slack for rounding)
    if row["compute_s"] + row["comm_s"] > row["time_s"] + 1e-3:
        errors.append(f"line {i + 1}: compute_s {row['compute_s']} + comm_s {row['comm_s']} > "
                      f"time_s {row['time_s']}")
if errors:
    print(f"{path}:", *errors, sep="\n  ", file=sys.stderr)
    sys.exit(1)
EOF

    rc=0
    "$CKPT_DIFF" "$OUT/checkpoint.bin" "$OUT/checkpoint.bin" --bitwise >"$TMP/self.out" 2>&1 || rc=$?
    if [ "$rc" -ne 0 ] || ! grep -qF "epoch 2, step 60," "$TMP/self.out"; then
        fail "checkpoint.bin should load and hold epoch 2, step 60 (ckpt_diff exit $rc):"
        sed 's/^/    /' "$TMP/self.out" >&2
    fi

    # config.yaml loads again; written anew it is the same file but for the two keys changed
    case_run reload "$DPTRAIN" train "$OUT/config.yaml" --set train.max_steps=1 --out "$TMP/other"
    if expect_exit reload 0; then
        if ! diff <(grep -vE '^ *(out_dir|max_steps):' "$OUT/config.yaml") \
                  <(grep -vE '^ *(out_dir|max_steps):' "$TMP/other/config.yaml") >"$TMP/cfg.diff"; then
            fail "config.yaml written from a re-loaded config.yaml differs beyond out_dir and max_steps:"
            sed 's/^/    /' "$TMP/cfg.diff" >&2
        fi
        count reload out '^ +1 +1 ' 1
    fi
fi

# ---- version, help, no arguments ---------------------------------------------------------

case_run version "$DPTRAIN" version
if expect_exit version 0; then
    count version out '^dptrain [0-9]+\.[0-9]+\.[0-9]+' 1
    for lib in MPI BLAS libyaml zlib; do
        count version out "^  $lib +[^ ]" 1
    done
fi
case_run version_np2 "${MPIRUN[@]}" -np 2 "$DPTRAIN" version
if expect_exit version_np2 0; then
    count version_np2 out '^dptrain [0-9]+\.[0-9]+\.[0-9]+' 1
fi

case_run help "$DPTRAIN" --help
if expect_exit help 0; then
    count help out '^usage:' 1
    count help out '^ +dptrain train +CONFIG' 1
fi

case_run no_args "$DPTRAIN"
if expect_exit no_args 2; then
    count no_args err '^usage:' 1
fi

finish
