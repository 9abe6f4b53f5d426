#!/usr/bin/env bash
# Infrastructure failures in a search: recorded (status infra_failed, with the reason), kept out
# of the model, run again with the same configuration up to search.max_retries, then failed.
# - an async search (2 groups) whose rank is SIGKILLed mid-trial: --resume records each trial that
#   was running (its hand-out in OUT/running.jsonl, no outcome) as infra_failed, runs it again with
#   the same id and values (attempt 1), and completes the search;
# - the same on one rank with search.max_retries=0: the lost trial is recorded failed;
# - an I/O error writing a trial's outputs (its directory is a file): infra_failed, run again,
#   failed after search.max_retries, and the search goes on;
# - a rank stopped (SIGSTOP) mid-trial in a training search: the watchdog ends the job, and
#   --resume records that trial infra_failed and runs it again.
# Which trials were running when the job died is read from the files, not assumed.
# Usage: search_infra.sh DPTRAIN CKPT_DIFF
set -euo pipefail
source "$(dirname "$0")/lib.sh"
BRANIN=$CONFIGS/../../configs/branin.yaml

# kills the search once OUT/running.jsonl has N hand-outs (lib.sh's kill_search_after)
export KILL_WATCH=running.jsonl

# check_retried BEFORE_DIR OUT TRIALS RETRIES: the trials lost with the job (handed out in
# BEFORE_DIR/running.jsonl, no outcome in BEFORE_DIR/trials.jsonl) are infra_failed in OUT and
# then ran again with their values (RETRIES > 0) or were recorded failed (RETRIES = 0); every id
# has one outcome.
check_retried() {
    python3 - "$@" <<'EOF'
import json, sys
before, out, trials, retries = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
load = lambda p: [json.loads(l) for l in open(p)]
done = {r["trial"] for r in load(f"{before}/trials.jsonl")}
lost = {r["trial"]: r for r in load(f"{before}/running.jsonl") if r["trial"] not in done}
assert lost, "no trial was running when the job died"
recs = load(f"{out}/trials.jsonl")
final = [r for r in recs if r["status"] != "infra_failed"]
assert sorted(r["trial"] for r in final) == list(range(trials)), [r["trial"] for r in final]
infra = [r for r in recs if r["status"] == "infra_failed"]
assert sorted(r["trial"] for r in infra) == sorted(lost), (infra, sorted(lost))
by_id = {r["trial"]: r for r in final}
for r in infra:
    assert "job ended while it ran" in r["message"] and r["end_s"] is None, r
    assert r["params"] == lost[r["trial"]]["params"], "the infra_failed record has other values"
    again = by_id[r["trial"]]
    assert again["params"] == r["params"], f"trial {r['trial']} ran again with other values"
    if retries > 0:
        assert again.get("attempt") == 1 and again["status"] == "ok", again
    else:
        assert again["status"] == "failed" and "infrastructure failed it 1 times" in again["message"], again
print(f"lost with the job: trials {sorted(lost)}; {len(final)} outcomes, {len(infra)} infra_failed")
EOF
}

# --- async, 2 groups: SIGKILL mid-trial, --resume retries the lost trials
args=(search "$BRANIN" --set search.parallel=2 --set search.trials=8 --set search.algorithm=random
      --set objective.duration=0.3 --set run.seed=4)
out=$TMP/killed
if kill_search_after "$out" 4 2 "${args[@]}"; then
    cp -r "$out" "$TMP/before"
    if "${MPIRUN[@]}" -np 2 "$DPTRAIN" "${args[@]}" --out "$out" --resume >"$TMP/resume.log" 2>&1; then
        grep -q "was running when the job ended: an infrastructure failure" "$TMP/resume.log" ||
            fail "resume did not report the lost trial"
        grep -q "^infrastructure failures" "$TMP/resume.log" && fail "resume counted old failures as this run's"
        check_retried "$TMP/before" "$out" 8 2 || fail "async: the lost trials were not retried as recorded"
    else
        fail "async resume failed: $(tail -3 "$TMP/resume.log")"
    fi
else
    fail "could not kill the async search mid-trial"
fi

# --- one rank, search.max_retries=0: the lost trial is recorded failed, the search completes
args=(search "$BRANIN" --set search.trials=5 --set search.algorithm=random
      --set objective.duration=0.3 --set run.seed=5 --set search.max_retries=0)
out=$TMP/noretry
if kill_search_after "$out" 3 1 "${args[@]}"; then
    cp -r "$out" "$TMP/before0"
    "${MPIRUN[@]}" -np 1 "$DPTRAIN" "${args[@]}" --out "$out" --resume >"$TMP/resume0.log" 2>&1 ||
        fail "resume with max_retries 0 failed: $(tail -3 "$TMP/resume0.log")"
    check_retried "$TMP/before0" "$out" 5 0 || fail "max_retries 0: the lost trial was not failed"
else
    fail "could not kill the one-rank search mid-trial"
fi

# --- an I/O error writing a trial's outputs: trial 2's directory is a file
out=$TMP/io
mkdir -p "$out/trials" && touch "$out/trials/0001"
if "$DPTRAIN" search "$CONFIGS/search_small.yaml" --out "$out" --set search.trials=3 \
        --set search.max_retries=1 >"$TMP/io.log" 2>&1; then
    python3 - "$out" <<'EOF' || fail "I/O error: not recorded as retried infrastructure failures"
import json, sys
recs = [json.loads(l) for l in open(f"{sys.argv[1]}/trials.jsonl")]
infra = [r for r in recs if r["status"] == "infra_failed"]
assert [r["trial"] for r in infra] == [1, 1], infra
assert [r.get("attempt", 0) for r in infra] == [0, 1], infra
assert all("not a directory" in r["message"] and r["params"] == infra[0]["params"] for r in infra)
final = {r["trial"]: r for r in recs if r["status"] != "infra_failed"}
assert sorted(final) == [0, 1, 2] and final[1]["status"] == "failed", final
assert "infrastructure failed it 2 times" in final[1]["message"], final[1]
assert final[0]["status"] in ("ok", "stopped_early") and final[2]["status"] in ("ok", "stopped_early")
print("I/O error: 2 infra_failed attempts, then failed; the search went on")
EOF
    grep -q "^infrastructure failures: 2" "$TMP/io.log" || fail "the summary does not count the infrastructure failures"
else
    fail "the search with an unwritable trial directory failed: $(tail -3 "$TMP/io.log")"
fi

# --- a stalled rank (SIGSTOP, a hung node) in a training search: the watchdog ends the job with
# MPI_Abort (run.comm_timeout_s); --resume records the trial it cut infra_failed and runs it
# again with the same values. 1 ms after every step and 100000 rows: epochs of seconds, so the
# stop lands in a step's gradient allreduce, which the watchdog watches (as in stall.sh). The
# resumed run trains 1 epoch of 2000 rows a trial (neither is searched), to keep the test short.
out=$TMP/stall
sargs=(search "$CONFIGS/search_small.yaml" --set search.trials=2 --set search.algorithm=random
       --set run.comm_timeout_s=3)
DPT_TEST_STEP_SLEEP_US=1000 "${MPIRUN[@]}" -x DPT_TEST_STEP_SLEEP_US -np 2 "$DPTRAIN" "${sargs[@]}" \
    --set data.synthetic_train=100000 --set train.epochs=1000 --out "$out" >"$TMP/stall.log" 2>&1 &
job=$!
for _ in $(seq 1 1200); do # trial 0's first checkpoint (up to 120 s): it is training
    [ -s "$out/trials/0000/checkpoint.bin" ] && break
    kill -0 "$job" 2>/dev/null || break
    sleep 0.1
done
sleep 0.5
victim=$(pgrep -f -n "dptrain search .*--out $out" || true)
if [ -n "$victim" ] && [ -s "$out/trials/0000/checkpoint.bin" ]; then
    kill -STOP "$victim"
    for _ in $(seq 1 300); do kill -0 "$job" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$job" 2>/dev/null && { fail "stall: the job did not end within 30 s"; kill -9 "$victim" "$job"; }
    kill -CONT "$victim" 2>/dev/null || true
    rc=0
    wait "$job" || rc=$?
    [ "$rc" != 0 ] || fail "stall: the job exited 0"
    grep -q "watchdog" "$TMP/stall.log" || fail "stall: the watchdog did not end the job: $(tail -3 "$TMP/stall.log")"
    if "${MPIRUN[@]}" -np 2 "$DPTRAIN" "${sargs[@]}" --set train.epochs=1 --out "$out" --resume \
            >"$TMP/stall_resume.log" 2>&1; then
        python3 - "$out" <<'EOF' || fail "stall: the cut trial was not recorded infra_failed and run again"
import json, sys
recs = [json.loads(l) for l in open(f"{sys.argv[1]}/trials.jsonl")]
assert [(r["trial"], r["status"]) for r in recs][:1] == [(0, "infra_failed")], recs
assert "job ended while it ran" in recs[0]["message"], recs[0]
final = {r["trial"]: r for r in recs[1:]}
assert sorted(final) == [0, 1] and all(r["status"] != "infra_failed" for r in recs[1:]), recs
assert final[0]["params"] == recs[0]["params"] and final[0].get("attempt") == 1, final[0]
print("stall: the watchdog ended the job; trial 0 recorded infra_failed, run again with its values")
EOF
    else
        fail "stall: resume failed: $(tail -3 "$TMP/stall_resume.log")"
    fi
else
    kill "$job" 2>/dev/null || true
    wait "$job" || true
    fail "stall: trial 0 never checkpointed or no rank to stop: $(tail -3 "$TMP/stall.log")"
fi

finish
