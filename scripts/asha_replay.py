#!/usr/bin/env python3
"""Replays asha's stopping rule on full-fidelity searches (trials.jsonl of `dptrain search` with
`search.early_stopping.rule: none`): which trials the rule would have stopped at which rung, the
epochs that would have cost and the best objective it would have kept. An estimate of what the
rule alone does with the proposals held fixed (under asha the GP would see the stopped values and
propose differently), used in docs/search.md to choose grace and eta before measuring them.

  asha_replay.py [--grace G] [--eta E] [--rule best-first|eta-free] TRIALS.jsonl...

Trials reach a rung in the order of their clock there (start_s + its share of the trial's time:
epochs are taken as equally long), as rank 0 sees them under async. `best-first` is dptrain's
rule: a trial continues when fewer than max(1, floor(m / eta)) of the m - 1 trials before it at
the rung were strictly better; `eta-free` is the rule before 2026-12-05 (the first eta - 1
arrivals continued unjudged). Standard library only."""
import argparse
import json
import statistics


def rungs(grace, eta, epochs):
    """Rung epochs: max(1, grace) * eta^k below the last epoch (src/policy.c dpt_policy_rung)."""
    out, r = [], max(1, grace)
    while r < epochs:
        out.append(r)
        r *= eta
    return out


def continues(before, mine, eta, rule):
    """1 when a trial of value mine continues past a rung the trials of values before reached
    first (src/policy.c dpt_policy_asha_continues)."""
    m = len(before) + 1
    better = sum(v < mine for v in before)
    if rule == "eta-free":
        return m < eta or better < m // eta
    return better < max(1, m // eta)


def replay(recs, grace, eta, rule):
    """(epochs, best) the rule would have spent and kept, and (epochs, best) of the run itself."""
    full = [r for r in recs if r.get("status") == "ok" and r.get("curve")]
    epochs = max((len(r["curve"]) for r in full), default=0)
    rs = rungs(grace, eta, epochs)
    arrivals = []
    for r in full:
        if len(r["curve"]) < epochs:
            continue  # stopped by another rule: not a full-fidelity run
        share = (r["end_s"] - r["start_s"]) / epochs
        arrivals += [(r["start_s"] + share * e, e, r["trial"]) for e in rs]
    arrivals.sort()
    by_id = {r["trial"]: r for r in full}
    seen = {e: [] for e in rs}
    stopped = {}
    for _, e, tid in arrivals:
        if tid in stopped:
            continue
        v = min(by_id[tid]["curve"][:e])
        if not continues(seen[e], v, eta, rule):
            stopped[tid] = e
        seen[e].append(v)
    spent, best = 0, None
    for r in recs:
        if r.get("status") == "infra_failed":
            continue
        c = r.get("curve") or []
        if r["trial"] in by_id and len(c) == epochs:
            e = stopped.get(r["trial"], epochs)
            spent += e
            v = min(c[:e])
            best = v if best is None else min(best, v)
        else:
            spent += r.get("epochs", 0)  # diverged or failed: it ran what it ran
    run_best = min((r["objective"] for r in recs if r.get("objective") is not None), default=None)
    return spent, best, sum(r.get("epochs", 0) for r in recs
                            if r.get("status") != "infra_failed"), run_best


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--grace", type=int, default=1)
    ap.add_argument("--eta", type=int, default=3)
    ap.add_argument("--rule", choices=("best-first", "eta-free"), default="best-first")
    ap.add_argument("trials", nargs="+")
    a = ap.parse_args()
    if a.eta < 2:
        ap.error("--eta must be at least 2")
    print("# %-40s %8s %8s %9s %9s %7s" % ("run", "epochs", "replayed", "best", "replayed",
                                            "gap_pts"))
    ratios, gaps, bests, run_bests = [], [], [], []
    for path in a.trials:
        with open(path) as f:
            recs = [json.loads(l) for l in f if l.strip()]
        spent, best, total, run_best = replay(recs, a.grace, a.eta, a.rule)
        if best is None or run_best is None or total == 0:
            print("# %s: no full-fidelity trial to replay" % path)
            continue
        gap = 100.0 * (best - run_best)
        ratios.append(spent / total)
        gaps.append(gap)
        bests.append(best)
        run_bests.append(run_best)
        print("  %-40s %8d %8d %9.4f %9.4f %7.2f" % (path[-40:], total, spent, run_best, best,
                                                     gap))
    if ratios:
        print("# medians over %d runs: epochs %.2fx of the runs', best %.4f against %.4f (%+.2f "
              "points), per-run gap %.2f points" % (
                  len(ratios), statistics.median(ratios), statistics.median(bests),
                  statistics.median(run_bests),
                  100.0 * (statistics.median(bests) - statistics.median(run_bests)),
                  statistics.median(gaps)))


if __name__ == "__main__":
    main()
