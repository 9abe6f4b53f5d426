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
Only the standard library is used."""
import argparse
import gzip
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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("kind", choices=["tabular", "fashion"])
    ap.add_argument("out")
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--idx", default="/usr/share/datasets/fashion-mnist")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    if a.kind == "tabular":
        tabular(a.out, a.rows, a.seed)
    else:
        fashion(a.out, a.idx)


if __name__ == "__main__":
    main()
