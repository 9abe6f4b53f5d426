#!/usr/bin/python3
"""Draws best-so-far objective against wall-clock time (each trial's end_s, seconds from the
search's start) from one or more OUT/trials.jsonl of `dptrain search`, one line each on one
figure: sync against async, ei against ei_per_second. Needs matplotlib (Debian's
python3-matplotlib, `scripts/setup.sh --with-compare`); says so and exits 2 without it.
Usage: scripts/plot_search.py [--minimum M] [--title T] -o OUT.png TRIALS.jsonl[=LABEL] ...
  --minimum M   plot regret, best - M, on a log scale (Branin: 0.397887; Hartmann6: -3.32237)"""
import argparse
import json
import sys


def best_so_far(path):
    """(end_s, best objective so far) at each trial that improved it, in the order trials ended.
    Only outcomes count: ok and stopped_early with a finite objective; infra_failed, diverged
    and failed trials (and a lost trial's null end_s) do not."""
    recs = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                recs.append(json.loads(line))
            except json.JSONDecodeError as e:
                sys.exit(f"plot_search: {path}:{n}: not JSON ({e})")
    points, best = [], float("inf")
    for r in sorted((r for r in recs if r.get("end_s") is not None), key=lambda r: r["end_s"]):
        obj = r.get("objective")
        if r.get("status") in ("ok", "stopped_early") and obj is not None and obj < best:
            best = obj
            points.append((r["end_s"], best))
    return points, max((r["end_s"] for r in recs if r.get("end_s") is not None), default=0.0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", help="TRIALS.jsonl or TRIALS.jsonl=LABEL")
    ap.add_argument("-o", "--out", required=True, help="the PNG to write")
    ap.add_argument("--minimum", type=float, help="known minimum: plot regret on a log scale")
    ap.add_argument("--title", default="best so far against wall-clock time")
    args = ap.parse_args()
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("plot_search: matplotlib is not installed: apt-get install python3-matplotlib "
              "(or scripts/setup.sh --with-compare)", file=sys.stderr)
        sys.exit(2)
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=80)
    for run in args.runs:
        path, _, label = run.partition("=")
        try:
            points, last = best_so_far(path)
        except OSError as e:
            sys.exit(f"plot_search: cannot read {path}: {e.strerror}")
        if not points:
            print(f"plot_search: {path}: no trial with a result: not drawn", file=sys.stderr)
            continue
        xs = [t for t, _ in points] + [last]
        ys = [b for _, b in points] + [points[-1][1]]
        if args.minimum is not None:
            ys = [max(y - args.minimum, 1e-12) for y in ys]
        ax.step(xs, ys, where="post", label=label or path)
    if args.minimum is not None:
        ax.set_yscale("log")
        ax.set_ylabel(f"best so far - {args.minimum:g} (regret)")
    else:
        ax.set_ylabel("best objective so far")
    ax.set_xlabel("wall-clock seconds from the search's start (end_s)")
    ax.set_title(args.title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out)
    print(f"plot_search: wrote {args.out}")


if __name__ == "__main__":
    main()
