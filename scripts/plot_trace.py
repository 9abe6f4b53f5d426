#!/usr/bin/python3
"""Draws one training step of a run.trace file (Chrome trace-event JSON) as a PNG timeline: for
every rank, the step's phases on one row and each bucket's allreduce on a row of its own, so that
an overlapped step shows the buckets running under backward and what stays exposed.

  scripts/plot_trace.py TRACE.json OUT.png [--step N]
  (default step: the traced step of median length, after the first two)

Needs matplotlib (Debian: python3-matplotlib; scripts/setup.sh --with-compare installs it)."""
import argparse
import collections
import json
import statistics
import sys

PHASE_COLORS = {"data": "#8c8c8c", "forward": "#4c72b0", "backward": "#55a868",
                "barrier wait": "#c44e52", "allreduce (exposed)": "#dd8452",
                "optimizer": "#8172b3"}
BUCKET_COLOR = "#ccb974"


def pick_step(spans, wanted):
    steps = {}
    for e in spans:
        if e["name"] == "step" and e["pid"] == 0:
            steps[e["args"]["step"]] = e["dur"]
    if not steps:
        sys.exit("plot_trace: no step spans of rank 0 in the trace (was run.trace_steps 0?)")
    if wanted is not None:
        if wanted not in steps:
            sys.exit(f"plot_trace: step {wanted} is not in the trace; traced: {sorted(steps)}")
        return wanted
    later = [s for s in sorted(steps) if s >= 2] or sorted(steps)
    med = statistics.median_low(steps[s] for s in later)
    return next(s for s in later if steps[s] == med)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trace")
    ap.add_argument("out")
    ap.add_argument("--step", type=int)
    a = ap.parse_args()
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("plot_trace: needs matplotlib (apt-get install python3-matplotlib)")
    with open(a.trace) as f:
        ev = json.load(f)["traceEvents"]
    names = {e["pid"]: e["args"]["name"] for e in ev if e.get("name") == "process_name"}
    spans = [e for e in ev if e.get("ph") == "X"]
    step = pick_step(spans, a.step)
    # the per-layer spans nest inside forward and backward on the same row: left out here
    mine = [e for e in spans if e.get("args", {}).get("step") == step and "layer" not in e["args"]]
    t0 = min(e["ts"] for e in mine)
    rows = collections.OrderedDict()  # (pid, tid) -> label
    for e in sorted(mine, key=lambda e: (e["pid"], e["tid"])):
        label = names.get(e["pid"], f"rank {e['pid']}")
        rows.setdefault((e["pid"], e["tid"]),
                        label if e["tid"] == 0 else f"  bucket {e['tid'] - 1} allreduce")
    keys = list(rows)
    fig, ax = plt.subplots(figsize=(11, 0.45 * len(keys) + 1.6))
    seen = set()
    for e in mine:
        if e["name"] == "step":
            continue
        y = len(keys) - 1 - keys.index((e["pid"], e["tid"]))
        color = BUCKET_COLOR if e["tid"] else PHASE_COLORS.get(e["name"], "#64b5cd")
        label = "bucket allreduce" if e["tid"] else e["name"]
        ax.barh(y, e["dur"] / 1e3, left=(e["ts"] - t0) / 1e3, height=0.7, color=color,
                edgecolor="black", linewidth=0.3, label=None if label in seen else label)
        seen.add(label)
    ax.set_yticks(range(len(keys)))
    ax.set_yticklabels([rows[k] for k in reversed(keys)], fontsize=8)
    ax.set_xlabel("ms from the step's start")
    step_ms = max(e["dur"] for e in mine if e["name"] == "step") / 1e3
    ax.set_title(f"step {step}: {step_ms:.1f} ms ({a.trace})", fontsize=9)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=4)
    fig.tight_layout()
    fig.savefig(a.out, dpi=90)
    print(f"plot_trace: step {step} ({step_ms:.1f} ms) of {len(names)} rank(s) -> {a.out}")


if __name__ == "__main__":
    main()
