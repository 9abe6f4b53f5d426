#!/usr/bin/python3
"""Draws the scaling report of scripts/scaling_report.sh (matplotlib, Debian's
python3-matplotlib): OUT/busbw.png, bus bandwidth against message size for each layout (intra
= one machine, inter = across machines, with and without the 1 Gbit/s link), and
OUT/efficiency.png, weak-scaling efficiency of `bench train` against ranks. Also prints the
intra/inter table of bus bandwidth at a few sizes, in Markdown, for the README.
Usage: scripts/plot_scaling.py OUT"""
import csv
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def busbw(r):
    """GB/s from the row's time (the text table rounds busbw to 0.01)."""
    R = int(r["machines"]) * int(r["ranks_per_machine"])
    return int(r["size"]) / (float(r["time_us"]) * 1e3) * 2 * (R - 1) / R


def main():
    out = sys.argv[1]
    rows = list(csv.DictReader(open(os.path.join(out, "allreduce.csv"))))
    world = [r for r in rows if r["table"] == "world" and int(r["machines"]) * int(r["ranks_per_machine"]) > 1]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for label in sorted({r["label"] for r in world}):
        pts = sorted((int(r["size"]), busbw(r)) for r in world if r["label"] == label)
        m = label.split("x")[0]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o",
                linestyle="-" if m == "1" else "--",
                label=f"{label} ({'intra' if m == '1' else 'inter'})")
    if any(r["rate"] == "1gbit" for r in world):
        ax.axhline(0.125, color="gray", linewidth=0.8, linestyle=":")
        ax.text(min(int(r["size"]) for r in world), 0.13, "1 Gbit/s link", fontsize=8, color="gray")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("message size (bytes)")
    ax.set_ylabel("bus bandwidth (GB/s)")
    ax.set_title("dptrain bench allreduce, emulated machines on one 2-core box")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    fig.savefig(os.path.join(out, "busbw.png"), dpi=110)

    train_path = os.path.join(out, "train.csv")
    if os.path.exists(train_path):
        trows = list(csv.DictReader(open(train_path)))
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for label in sorted({r["label"] for r in trows}):
            pts = sorted((int(r["ranks"]), 100 * float(r["efficiency"])) for r in trows if r["label"] == label)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
        ax.set_xlabel("ranks")
        ax.set_ylabel("weak-scaling efficiency (%)")
        ax.set_ylim(0, 110)
        ax.set_title("dptrain bench train --scaling weak, emulated machines on one 2-core box")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(out, "efficiency.png"), dpi=110)

    sizes = sorted({int(r["size"]) for r in world})
    pick = [s for s in sizes if s in (1 << 20, 8 << 20, 32 << 20, 64 << 20)] or sizes[-3:]
    print("| layout | " + " | ".join(f"busbw @ {s >> 20} MiB" if s >= 1 << 20 else f"@ {s} B" for s in pick) + " |")
    print("| --- |" + " --- |" * len(pick))
    for label in sorted({r["label"] for r in world}):
        vals = {int(r["size"]): busbw(r) for r in world if r["label"] == label}
        print(f"| {label} | " + " | ".join(f"{vals.get(s, float('nan')):.3f} GB/s" for s in pick) + " |")


if __name__ == "__main__":
    main()
