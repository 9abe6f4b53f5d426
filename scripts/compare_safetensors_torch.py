#!/usr/bin/env python3
"""Checks `dptrain export` against PyTorch: loads the safetensors file into torch.nn.Linear
layers (the few lines a user needs, below in load_model), applies the preprocessing model.json
records, and compares the predicted classes and probabilities with `dptrain predict` on the same
input. Needs python3-torch (Debian's package; not needed by the build or CI).

  compare_safetensors_torch.py DPTRAIN RUN_DIR --idx IMAGES LABELS
  compare_safetensors_torch.py DPTRAIN RUN_DIR --csv FILE      (a header with the feature names)
Exits 1 when a predicted class differs or a probability differs by more than 1e-4 (float32
forward passes in two libraries: the sums run in another order, so only the last bits differ)."""
import argparse
import csv
import gzip
import json
import os
import struct
import subprocess
import sys
import tempfile

import torch


def load_model(path):
    """The user's side: the exported file as nn.Linear layers and dptrain's model.json."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    info = json.loads(header["__metadata__"]["dptrain.model_json"])
    widths = info["layers"]
    act = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid,
           "gelu": torch.nn.GELU, "identity": torch.nn.Identity}[info["activation"]]
    layers = []
    for l in range(len(widths) - 1):
        lin = torch.nn.Linear(widths[l], widths[l + 1])
        for name in ("weight", "bias"):
            t = header["layers.%d.%s" % (l, name)]
            a, b = t["data_offsets"]
            vals = torch.frombuffer(bytearray(data[a:b]), dtype=torch.float32)
            getattr(lin, name).data.copy_(vals.reshape(t["shape"]))
        layers += [lin] + ([act()] if l < len(widths) - 2 else [])
    return torch.nn.Sequential(*layers).eval(), info


def read_idx(path):
    with gzip.open(path) if path.endswith(".gz") else open(path, "rb") as f:
        data = f.read()
    magic, count = struct.unpack(">II", data[:8])
    if magic == 0x803:
        r, c = struct.unpack(">II", data[8:16])
        return torch.frombuffer(bytearray(data[16:16 + count * r * c]), dtype=torch.uint8) \
            .reshape(count, r * c).to(torch.float32)
    return list(data[8:8 + count])


def features(info, args):
    if args.idx:
        x = read_idx(args.idx[0])
        if info["scaling"] != "none":
            x = x / 255.0
    else:
        rows = list(csv.reader(open(args.csv, newline="")))
        cols = [rows[0].index(name) for name in info["feature_names"]]
        x = torch.tensor([[float(r[c]) for c in cols] for r in rows[1:] if r], dtype=torch.float64)
    if info["scaling"] == "standardize":
        x = (x.to(torch.float64) - torch.tensor(info["mean"], dtype=torch.float64)) / \
            torch.tensor(info["std"], dtype=torch.float64)
    return x.to(torch.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("dptrain")
    ap.add_argument("run_dir")
    ap.add_argument("--idx", nargs=2, metavar=("IMAGES", "LABELS"))
    ap.add_argument("--csv")
    args = ap.parse_args()
    if not args.idx and not args.csv:
        ap.error("give --idx IMAGES LABELS or --csv FILE")
    tmp = tempfile.mkdtemp()
    st, pred = os.path.join(tmp, "model.safetensors"), os.path.join(tmp, "pred.csv")
    subprocess.run([args.dptrain, "export", args.run_dir, "--format", "safetensors",
                    "--output", st], check=True)
    inp = ["--input", args.idx[0], "--labels", args.idx[1]] if args.idx else ["--input", args.csv]
    subprocess.run([args.dptrain, "predict", args.run_dir, *inp, "--output", pred], check=True)
    model, info = load_model(st)
    with torch.no_grad():
        probs = torch.softmax(model(features(info, args)), dim=1)
    rows = list(csv.reader(open(pred, newline="")))[1:]
    names = info.get("class_names") or [str(c) for c in range(info["layers"][-1])]
    theirs = [names[c] for c in probs.argmax(dim=1).tolist()]
    ours = [r[0] for r in rows]
    diff = (probs - torch.tensor([[float(v) for v in r[1:]] for r in rows])).abs().max().item()
    differ = sum(a != b for a, b in zip(ours, theirs))
    print("rows %d  classes differing %d  largest probability difference %.3g"
          % (len(rows), differ, diff))
    if args.idx:
        labels = read_idx(args.idx[1])
        acc = sum(names[l] == t for l, t in zip(labels, theirs)) / len(labels)
        print("PyTorch accuracy on the labels: %.4f" % acc)
    sys.exit(0 if differ == 0 and diff <= 1e-4 and len(rows) == len(theirs) else 1)


if __name__ == "__main__":
    main()
