#!/usr/bin/env python3
"""The test error of each search's best trial: how much of a search's best validation error is
its configuration and how much is the luck of being the best of many noisy validation scores.

  best_on_test.py [--draws N] LABEL=SEED=OUT_DIR...

For each search output directory (dptrain search's OUT: trials.jsonl and trials/NNNN/), the trial
with the lowest objective (val_error; ok or stopped early) is taken, as the search's summary and
best.yaml take it, and its trials/NNNN/metrics.jsonl is read at the epoch where it was recorded
(a stopped trial's rung, a completed trial's last epoch: its curve's length): the validation and
test error there. The test rows are never seen by the search, so the test error of the chosen
trial does not have the selection's optimism that its validation error has (the minimum over
more trials is lower by chance alone). Per label the medians over seeds; with exactly two
labels, the second's median gap to the first in validation and in test error (points), per-seed
gaps paired by SEED (their median and how many are within 0.3 points), and a bootstrap over
seeds (N draws, default 4000, fixed seed) of the test gap of the medians (5th and 95th
percentiles). Standard library only."""
import json
import os
import random
import statistics
import sys


def chosen(out):
    """(validation error, test error, epoch, trial id) of the best trial of the search in OUT."""
    recs = []
    with open(os.path.join(out, "trials.jsonl")) as f:
        for line in f:
            if line.strip():
                recs.append(json.loads(line))
    ok = [r for r in recs if r.get("objective") is not None
          and r.get("status") in ("ok", "stopped_early")]
    if not ok:
        raise SystemExit("best_on_test: %s has no trial with an objective" % out)
    best = min(ok, key=lambda r: (r["objective"], r["trial"]))
    metrics = os.path.join(out, "trials", "%04d" % best["trial"], "metrics.jsonl")
    rows = {}
    with open(metrics) as f:
        for line in f:
            m = json.loads(line)
            if "epoch" in m and "test_accuracy" in m:
                rows[m["epoch"]] = m
    # the last epoch of the run recorded: its curve's (a fill from asha's screen trained again
    # from the start, so its epochs count the screen's too)
    epoch = len(best["curve"]) if best.get("curve") else best["epochs"]
    row = rows.get(epoch)
    if row is None:
        raise SystemExit("best_on_test: %s has no test_accuracy at epoch %d" % (metrics, epoch))
    return 1.0 - row["val_accuracy"], 1.0 - row["test_accuracy"], epoch, best["trial"]


def main(argv):
    draws = 4000
    if argv[:1] == ["--draws"]:
        draws, argv = int(argv[1]), argv[2:]
    if not argv:
        raise SystemExit(__doc__)
    by_label = {}
    print("# %-12s %5s %6s %6s %9s %9s" % ("label", "seed", "trial", "epoch", "val_err", "test_err"))
    for spec in argv:
        label, seed, out = spec.split("=", 2)
        v, t, e, trial = chosen(out)
        by_label.setdefault(label, {})[seed] = (v, t)
        print("  %-12s %5s %6d %6d %9.4f %9.4f" % (label, seed, trial, e, v, t))
    med = {}
    print("# medians over seeds")
    for label, runs in by_label.items():
        med[label] = (statistics.median(v for v, _ in runs.values()),
                      statistics.median(t for _, t in runs.values()))
        print("  %-12s %5s %6s %6s %9.4f %9.4f   (%d seeds)"
              % (label, "med", "", "", med[label][0], med[label][1], len(runs)))
    if len(by_label) != 2:
        return
    (la, a), (lb, b) = by_label.items()
    seeds = [s for s in a if s in b]
    print("# %s against %s, points (100 x error)" % (lb, la))
    print("  gap of the medians: validation %+.2f, test %+.2f"
          % (100 * (med[lb][0] - med[la][0]), 100 * (med[lb][1] - med[la][1])))
    if not seeds:
        return
    for k, name in ((0, "validation"), (1, "test")):
        gaps = [100 * (b[s][k] - a[s][k]) for s in seeds]
        print("  per seed, %s: median %+.2f, within 0.3: %d of %d"
              % (name, statistics.median(gaps), sum(g <= 0.3 for g in gaps), len(seeds)))
    for label, runs in ((la, a), (lb, b)):
        print("  validation minus test error of the chosen trial, %s: median %+.2f"
              % (label, 100 * statistics.median(v - t for v, t in runs.values())))
    rng = random.Random(1)
    boot = []
    for _ in range(draws):
        pick = [rng.choice(seeds) for _ in seeds]
        boot.append(100 * (statistics.median(b[s][1] for s in pick)
                           - statistics.median(a[s][1] for s in pick)))
    boot.sort()
    print("  bootstrap of the test gap of the medians (%d draws): 5%% %+.2f, 95%% %+.2f"
          % (draws, boot[int(0.05 * draws)], boot[int(0.95 * draws) - 1]))


if __name__ == "__main__":
    main(sys.argv[1:])
