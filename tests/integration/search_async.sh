#!/usr/bin/env bash
# The search's schedules (search.schedule) on Branin with the duration model (objective.duration):
# async dispatch order (ids handed out in order, a group's trials one after another, records in
# the order trials finish, a group finishing and getting its next trial while rank 0 is still
# evaluating its own, and while it trains), sync rounds for comparison, and resume of an async
# search after SIGKILL.
# The checks read start_s / end_s of trials.jsonl; none compares a time with a fixed bound.
# Usage: search_async.sh DPTRAIN CKPT_DIFF
set -euo pipefail
source "$(dirname "$0")/lib.sh"
BRANIN=$CONFIGS/../../configs/branin.yaml
# random proposals (no GP time), seed 4: trial 4's duration draw is 2x trials 5 + 6 together
COMMON=(--set search.parallel=2 --set search.trials=8 --set search.algorithm=random
        --set objective.duration=0.3 --set run.seed=4)

# Checks OUT/trials.jsonl of a schedule. Args: OUT async|sync
check_schedule() {
    python3 - "$@" <<'EOF'
import json, sys
out, schedule = sys.argv[1], sys.argv[2]
recs = [json.loads(l) for l in open(f"{out}/trials.jsonl")]
ids = [r["trial"] for r in recs]
assert sorted(ids) == list(range(8)), f"trial ids {ids}"
eps = 0.002  # start_s and end_s are rounded to the millisecond
by_id = sorted(recs, key=lambda r: r["trial"])
for a, b in zip(by_id, by_id[1:]):  # ids are handed out in the order trials start
    assert a["start_s"] <= b["start_s"] + eps, f"trial {b['trial']} started before trial {a['trial']}"
for g in (0, 1):  # a group runs one trial at a time
    mine = sorted((r for r in recs if r["group"] == g), key=lambda r: r["start_s"])
    assert mine, f"group {g} ran nothing"
    for a, b in zip(mine, mine[1:]):
        assert b["start_s"] >= a["end_s"] - eps, f"group {g}: trial {b['trial']} overlaps {a['trial']}"
for r in recs:
    assert r["end_s"] >= r["start_s"] + r["time_s"] - eps, r
# one group's trial inside the other's: it finished and was recorded while the other ran on
nested = [(a["trial"], b["trial"]) for a in recs for b in recs
          if a["group"] != b["group"] and a["start_s"] + eps < b["start_s"] and b["end_s"] + eps < a["end_s"]]
if schedule == "async":
    ends = [r["end_s"] for r in recs]
    assert ends == sorted(ends), f"records not in the order trials finished: {ends}"
    assert any(recs[a]["group"] == 0 for a in [ids.index(x) for x, _ in nested]), \
        f"no trial of group 1 finished while group 0's ran: {[(r['trial'], r['group'], r['start_s'], r['end_s']) for r in recs]}"
else:  # rounds: both trials of a round start together, after the previous round ended
    for k in range(0, 8, 2):
        a, b = by_id[k], by_id[k + 1]
        assert abs(a["start_s"] - b["start_s"]) <= eps, f"round {k // 2}: starts {a['start_s']} {b['start_s']}"
        if k:
            prev = max(by_id[k - 1]["end_s"], by_id[k - 2]["end_s"])
            assert a["start_s"] >= prev - eps, f"round {k // 2} started before the last one ended"
    assert not nested, f"sync rounds overlap: {nested}"
print(f"{schedule}: {len(recs)} trials, schedule checks passed")
EOF
}

for schedule in async sync; do
    out=$TMP/$schedule
    if "${MPIRUN[@]}" -np 2 "$DPTRAIN" search "$BRANIN" --out "$out" "${COMMON[@]}" \
            --set search.schedule=$schedule >"$TMP/$schedule.log" 2>&1; then
        check_schedule "$out" $schedule || fail "$schedule: the schedule's checks failed"
        grep -q "^utilization: .*schedule $schedule" "$TMP/$schedule.log" ||
            fail "$schedule: the summary does not report utilization"
        grep -qE '^ +trial +status +branin +best +epochs +time +group +start' "$TMP/$schedule.log" ||
            fail "$schedule: the trial table has no group and start columns"
    else
        fail "$schedule search failed: $(tail -3 "$TMP/$schedule.log")"
    fi
done
# random proposals depend on (seed, id) only: both schedules tried the same points
python3 - "$TMP/async" "$TMP/sync" <<'EOF' || fail "async and sync proposed different random points"
import json, sys
a, b = ({r["trial"]: r["params"] for r in map(json.loads, open(f"{d}/trials.jsonl"))} for d in sys.argv[1:])
assert a == b
EOF

# --- rank 0 answers between its training steps: one-epoch trials of the small synthetic MLP
# (about 30 steps), rank 0's steps (group 0) paused 50 ms each, group 1's not, so that group 1
# finishes trials while rank 0 is inside an epoch. A group-1 trial's wait for rank 0 (record and
# next assignment, and the trial's start-up: end_s - start_s - time_s) must then be bounded by
# one of rank 0's steps, not by the rest of its epoch: every wait stays under a quarter of group
# 0's median trial time (polling only between epochs, a wait lasts until rank 0's trial ends: on
# average half of it).
steps=(search "$CONFIGS/search_small.yaml" --set search.parallel=2 --set search.algorithm=random
       --set search.trials=8 --set train.epochs=1 --set search.early_stopping.rule=none
       --out "$TMP/steps")
if "${MPIRUN[@]}" -np 1 env DPT_TEST_STEP_SLEEP_US=50000 "$DPTRAIN" "${steps[@]}" : \
        -np 1 "$DPTRAIN" "${steps[@]}" >"$TMP/steps.log" 2>&1; then
    python3 - "$TMP/steps/trials.jsonl" <<'EOF' || fail "a group waited for rank 0 longer than a few of its steps"
import json, statistics, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
t0 = statistics.median(r["time_s"] for r in recs if r["group"] == 0)
waits = [(r["trial"], round(r["end_s"] - r["start_s"] - r["time_s"], 3)) for r in recs if r["group"] == 1]
assert len(waits) >= 3 and all(w < t0 / 4 for _, w in waits), f"group 1's waits {waits}, group 0's trials {t0} s"
print(f"steps: group 1's waits {waits} s, group 0's median trial {t0} s")
EOF
else
    fail "the async training search failed: $(tail -3 "$TMP/steps.log")"
fi

# --- resume of an async search after SIGKILL of a rank
args=(search "$BRANIN" "${COMMON[@]}" --set search.trials=14 --set objective.duration=0.1)
out=$TMP/killed
if kill_search_after "$out" 4 2 "${args[@]}" && [ "$(wc -l <"$out/trials.jsonl")" -lt 14 ]; then
    cp "$out/trials.jsonl" "$TMP/before.jsonl"
    before=$(wc -l <"$TMP/before.jsonl")
    "${MPIRUN[@]}" -np 2 "$DPTRAIN" "${args[@]}" --out "$out" --resume >"$TMP/resume.log" 2>&1 ||
        fail "async resume failed: $(tail -3 "$TMP/resume.log")"
    grep -q "resume: $before trials recorded" "$TMP/resume.log" ||
        fail "async resume did not report the $before recorded trials"
    "${MPIRUN[@]}" -np 2 "$DPTRAIN" "${args[@]}" --out "$TMP/straight" >/dev/null 2>&1 ||
        fail "the uninterrupted async search failed"
    python3 - "$TMP/before.jsonl" "$out/trials.jsonl" "$TMP/straight/trials.jsonl" <<'EOF' ||
import json, sys
before, after, straight = ([json.loads(l) for l in open(p)] for p in sys.argv[1:])
assert after[:len(before)] == before, "the records from before the kill changed"
# the trials the kill cut are recorded infra_failed and run again (search_infra.sh checks them)
after = before + [r for r in after[len(before):] if r["status"] != "infra_failed"]
ids = [r["trial"] for r in after]
assert sorted(ids) == list(range(14)), f"trial ids after resume: {ids}"
# the search's clock goes on: the resumed trials start after the last recorded end
last = max(r["end_s"] for r in before)
assert all(r["start_s"] >= last - 0.002 for r in after[len(before):]), "the clock restarted"
# random proposals: each id tried the point the uninterrupted search tried
ref = {r["trial"]: r["params"] for r in straight}
assert all(r["params"] == ref[r["trial"]] for r in after), "a resumed trial tried another point"
print(f"async resume: {len(before)} trials before the kill, {len(after)} after")
EOF
        fail "the resumed async search is not the interrupted one completed"
else
    fail "could not kill the async search mid-way (it finished first or never started)"
fi

finish
