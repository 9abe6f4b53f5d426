#!/usr/bin/env python3
"""Summarizes searches from their trials.jsonl files (dptrain search's, or the ones
scripts/compare_optuna.py writes in the same layout) against a target objective fixed in advance,
for scripts/bench_fashion_search.sh and scripts/compare_optuna.py (numbers in docs/search.md).

  search_summary.py TARGET GROUPS LABEL=SEED=DIR/trials.jsonl...

Per run: the search clock (end_s) when a trial first recorded an objective <= TARGET ("-" if
none did), the best objective, the epochs trained by all trials, and utilization = the trials'
busy seconds (time_s) / (GROUPS x the clock at the last record); then per label the medians over
seeds (a run that never reached the target counts as later than any that did). The column
t_rp_sync replays the run's own trials (their time_s, in id order) in synchronous rounds of GROUPS,
each round as long as its slowest trial: when the target would have been reached had the same
trials run in sync rounds under the same load (for an async run, the schedule's effect with the
machine's load and the proposals held fixed). Standard library only, so that any python3 runs it."""
import json
import statistics
import sys

HEADER = "# %-14s %4s %7s %9s %9s %7s %7s %7s %9s" % (
    "method", "seed", "trials", "t_target", "best", "epochs", "wall_s", "util_%", "t_rp_sync")


def replay_sync(recs, target, groups):
    """The clock at the end of the first sync round (trials in id order, rounds of GROUPS, each
    as long as its slowest) holding a trial whose objective is <= target; None if none does."""
    ordered = sorted(recs, key=lambda r: r["trial"])
    clock = 0.0
    for k in range(0, len(ordered), groups):
        rnd = ordered[k:k + groups]
        clock += max(r.get("time_s") or 0.0 for r in rnd)
        if any(r.get("objective") is not None and r["objective"] <= target for r in rnd):
            return clock
    return None


def summarize(path, target, groups):
    """One run's row (a dict) from its trials.jsonl."""
    recs = []
    with open(path) as f:
        for line in f:
            if line.strip():
                recs.append(json.loads(line))
    recs = [r for r in recs if r.get("status") != "infra_failed"]
    if not recs:
        raise SystemExit("search_summary: %s holds no trial" % path)
    # asha with promote: a promoted trial's record (resumed_from its rung) comes after its
    # stopped one; trials and epochs count each trial once, by its last record (its epochs are
    # the trial's total); the times and values of every record count
    last = {}
    for r in recs:
        last[r["trial"]] = r
    hit = [r["end_s"] for r in recs
           if r.get("objective") is not None and r["objective"] <= target]
    vals = [r["objective"] for r in recs if r.get("objective") is not None]
    wall = max(r["end_s"] for r in recs if r.get("end_s") is not None)
    busy = sum(r.get("time_s") or 0.0 for r in recs)
    return {"trials": len(last), "t_target": min(hit) if hit else None,
            "best": min(vals) if vals else None,
            "epochs": sum(r.get("epochs", 0) for r in last.values()),
            "wall": wall, "util": 100.0 * busy / (groups * wall) if wall > 0 else 0.0,
            "t_rp_sync": replay_sync(list(last.values()), target, groups)}


def fmt(v, spec):
    return "-" if v is None else spec % v


def row(label, seed, s):
    return "  %-14s %4s %7d %9s %9s %7d %7.1f %7.1f %9s" % (
        label, seed, s["trials"], fmt(s["t_target"], "%.1f"), fmt(s["best"], "%.4f"),
        s["epochs"], s["wall"], s["util"], fmt(s["t_rp_sync"], "%.1f"))


def median_time(rows, key):
    """The median of a time over seeds, a miss (None) sorting after every hit."""
    times = sorted((s[key] for s in rows), key=lambda t: (t is None, t or 0.0))
    if len(times) % 2:
        return times[len(times) // 2]
    a, b = times[len(times) // 2 - 1], times[len(times) // 2]  # a miss if either missed
    return None if None in (a, b) else (a + b) / 2


def median_row(label, rows):
    """Medians over seeds; t_target sorts a miss (None) after every hit."""
    t = median_time(rows, "t_target")
    def med(k):
        vals = [s[k] for s in rows if s[k] is not None]
        return statistics.median(vals) if vals else None
    hits = sum(s["t_target"] is not None for s in rows)
    return "  %-14s %4s %7s %9s %9s %7.1f %7.1f %7.1f %9s   reached %d/%d" % (
        label, "med", "%g" % med("trials"), fmt(t, "%.1f"), fmt(med("best"), "%.4f"), med("epochs"),
        med("wall"), med("util"), fmt(median_time(rows, "t_rp_sync"), "%.1f"), hits, len(rows))


def main(argv):
    if len(argv) < 3:
        raise SystemExit(__doc__)
    target, groups = float(argv[0]), int(argv[1])
    by_label = {}
    print(HEADER)
    for spec in argv[2:]:
        label, seed, path = spec.split("=", 2)
        s = summarize(path, target, groups)
        by_label.setdefault(label, []).append(s)
        print(row(label, seed, s))
    print("# medians over seeds (target val_error <= %g)" % target)
    for label, rows in by_label.items():
        print(median_row(label, rows))


if __name__ == "__main__":
    main(sys.argv[1:])
