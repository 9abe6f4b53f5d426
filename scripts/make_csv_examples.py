#!/usr/bin/env python3
"""Writes example CSV data sets in the layout people bring (a header of names, the label last,
string class names, a quoted free-text column), for configs/csv_classes.yaml and the tests.

  make_csv_examples.py tabular OUT_DIR [--rows N] [--seed S]
      OUT_DIR/train.csv and OUT_DIR/test.csv: id, three measurements, a quoted note and a species
      label (setosa / versicolor / virginica) given by a fixed rule of the measurements.
  make_csv_examples.py fashion OUT_DIR [--idx DIR]
      Fashion-MNIST rewritten as OUT_DIR/train.csv.gz and test.csv.gz: columns pixel0..pixel783
      (each byte / 255 as dptrain scales IDX) then label with the class names (T-shirt/top,
      Trouser, ...), from the IDX files in DIR; configs/fashion_mnist_csv.yaml trains on it.
  make_csv_examples.py fashion-idx OUT_DIR [--rows N] [--idx DIR]
      The first N training rows and the first max(N / 10, 1) test rows of Fashion-MNIST as
      uncompressed IDX files (OUT_DIR/train-images-idx3-ubyte, ...): a small problem that keeps
      the real data, for scripts/bench_fashion_search.sh and scripts/compare_optuna.py.
  make_csv_examples.py regression OUT_DIR [--rows N] [--seed S] [--noise F]
      A regression teacher for configs/regression.yaml: OUT_DIR/train.csv and test.csv with id,
      eight features x1..x8 ~ N(0, 1), and two targets, price and demand, from a fixed random
      MLP (8 -> 16 tanh -> 2, its weights drawn from --seed 0's own generator, the same for every
      --seed) shifted and scaled to units of their own (price ~ 100 +- 20, demand ~ 5 +- 0.5),
      plus Gaussian noise of F (default 0.02) times each target's scale. The best possible R^2
      is about 1 - F^2 / var(teacher output) (~0.999 at the default).
Only the standard library is used."""
import argparse
import gzip
import math
import os
import random
import struct

FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
           "Bag", "Ankle boot"]


def tabular(out, rows, seed):
    rng = random.Random(seed)
    for name, n in (("train.csv", rows), ("test.csv", max(rows // 4, 1))):
        with open(os.path.join(out, name), "w", newline="") as f:
            f.write("id,sepal,petal,width,note,species\r\n")
            for i in range(n):
                s, p, w = rng.gauss(5, 1), rng.gauss(3, 1.5), rng.gauss(1, 0.5)
                kind = "setosa" if p < 2.5 else "versicolor" if p + w < 5 else "virginica"
                note = rng.choice(['plain', '"quoted", with comma', 'two\nlines', ''])
                note = '"' + note.replace('"', '""') + '"'
                f.write("%d,%.4f,%.4f,%.4f,%s,%s\r\n" % (i, s, p, w, note, kind))


def regression(out, rows, seed, noise):
    teacher = random.Random(12345)  # the teacher is fixed; --seed draws only the rows
    w1 = [[teacher.gauss(0, 1 / 8 ** 0.5) for _ in range(8)] for _ in range(16)]
    w2 = [[teacher.gauss(0, 1 / 16 ** 0.5) for _ in range(16)] for _ in range(2)]
    scale, shift = (20.0, 0.5), (100.0, 5.0)
    rng = random.Random(seed)
    for name, n in (("train.csv", rows), ("test.csv", max(rows // 4, 1))):
        with open(os.path.join(out, name), "w", newline="") as f:
            f.write("id," + ",".join("x%d" % (k + 1) for k in range(8)) + ",price,demand\n")
            for i in range(n):
                x = [rng.gauss(0, 1) for _ in range(8)]
                h = [math.tanh(sum(w * v for w, v in zip(row, x))) for row in w1]
                o = [sum(w * v for w, v in zip(row, h)) for row in w2]
                t = [shift[k] + scale[k] * (o[k] + rng.gauss(0, noise)) for k in range(2)]
                f.write("%d,%s,%.6f,%.6f\n" % (i, ",".join("%.6f" % v for v in x), t[0], t[1]))


def read_idx(path):
    with gzip.open(path) as f:
        data = f.read()
    magic, count = struct.unpack(">II", data[:8])
    if magic == 0x803:
        r, c = struct.unpack(">II", data[8:16])
        return [data[16 + k * r * c:16 + (k + 1) * r * c] for k in range(count)]
    return list(data[8:8 + count])


def fashion(out, idx):
    # each byte as dptrain's IDX reader scales it, (float)b / 255.0f, printed with 9 significant
    # digits so that it reads back to the same float: training on the CSV then matches the IDX
    # files' training bit for bit (docs/interface.md, CSV files)
    text = ["%.9g" % struct.unpack("f", struct.pack("f", b / 255.0))[0] for b in range(256)]
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = read_idx(os.path.join(idx, prefix + "-images-idx3-ubyte.gz"))
        labels = read_idx(os.path.join(idx, prefix + "-labels-idx1-ubyte.gz"))
        with gzip.open(os.path.join(out, split + ".csv.gz"), "wt", compresslevel=3) as f:
            f.write(",".join("pixel%d" % k for k in range(784)) + ",label\n")
            for img, lab in zip(images, labels):
                f.write(",".join(text[b] for b in img) + "," + FASHION[lab] + "\n")


def fashion_idx(out, idx, rows):
    for prefix, n in (("train", rows), ("t10k", max(rows // 10, 1))):
        for kind, dims in (("images-idx3", 3), ("labels-idx1", 1)):
            with gzip.open(os.path.join(idx, "%s-%s-ubyte.gz" % (prefix, kind))) as f:
                head = f.read(4 + 4 * dims)
                shape = struct.unpack(">%dI" % dims, head[4:])
                if n > shape[0]:
                    raise SystemExit("fashion-idx: --rows %d: the file has only %d" % (n, shape[0]))
                row = 1
                for d in shape[1:]:
                    row *= d
                body = f.read(n * row)
            with open(os.path.join(out, "%s-%s-ubyte" % (prefix, kind)), "wb") as f:
                f.write(head[:4] + struct.pack(">%dI" % dims, n, *shape[1:]) + body)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("kind", choices=["tabular", "fashion", "fashion-idx", "regression"])
    ap.add_argument("out")
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--idx", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--noise", type=float, default=0.02)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    if a.kind == "tabular":
        tabular(a.out, a.rows, a.seed)
    elif a.kind == "regression":
        regression(a.out, a.rows, a.seed, a.noise)
    elif a.kind == "fashion-idx":
        fashion_idx(a.out, a.idx, a.rows)
    else:
        fashion(a.out, a.idx)


if __name__ == "__main__":
    main()
