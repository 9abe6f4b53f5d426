#!/usr/bin/python3
"""Trains the MLP of a dptrain config in PyTorch, to compare accuracy and training throughput.

  scripts/compare_pytorch.py CONFIG.yaml [--mode accuracy|speed|both] [--threads 1,2]
      [--epochs N] [--bench-steps N] [--dptrain build/dptrain] [--np N] [--set KEY=VALUE ...]

Mirrors src/model.c (He/Xavier init, zero biases), src/optim.c (schedule, warmup, clipping),
src/ops.h (torch.optim.SGD/Adam/AdamW semantics), src/cpu_backend.c (losses) and src/data.c
(IDX files, scaling, validation split size, drop-last batches). The split and the shuffles use
torch's RNG, so runs match dptrain's statistically, not bit for bit.
"""
import argparse, gzip, json, math, os, subprocess, sys, tempfile, time

try:
    import numpy as np, torch, yaml
except ImportError as e:
    # A pyenv/venv python3 on PATH does not see Debian's python3-torch: retry with the system one.
    if os.path.exists("/usr/bin/python3") and not os.environ.get("COMPARE_PYTORCH_REEXEC"):
        os.environ["COMPARE_PYTORCH_REEXEC"] = "1"
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    sys.exit(f"compare_pytorch: error: {e} (install python3-torch python3-yaml python3-numpy)")
import torch.nn as nn
import torch.nn.functional as F


class Fail(Exception):
    pass


# The keys of src/config.c with their defaults: unknown keys are errors, as in dptrain.
FM = "/usr/share/datasets/fashion-mnist/"
DEFAULTS = {
    "run": dict(name="fashion_mnist", out_dir="runs/fashion_mnist", seed=1, device="auto",
                threads=0, progress="auto"),
    "data": dict(format="idx", train_images=FM + "train-images-idx3-ubyte.gz",
                 train_labels=FM + "train-labels-idx1-ubyte.gz",
                 test_images=FM + "t10k-images-idx3-ubyte.gz",
                 test_labels=FM + "t10k-labels-idx1-ubyte.gz", train_csv="", test_csv="",
                 csv_header=False, synthetic_train=60000, synthetic_test=10000,
                 synthetic_teacher_width=64, validation_fraction=0.1, shuffle=True,
                 sharding="replicated", scaling="unit"),
    "model": dict(layers=[784, 512, 512, 10], activation="relu", dropout=0.0,
                  loss="softmax_cross_entropy", init="auto"),
    "train": dict(epochs=10, batch_size=128, optimizer="sgd", lr=0.05, momentum=0.9,
                  nesterov=False, weight_decay=0.0, beta1=0.9, beta2=0.999, eps=1e-8,
                  schedule="constant", step_epochs=10, step_gamma=0.1, min_lr=0.0,
                  warmup_epochs=0, clip_grad_norm=0.0, precision="fp32", max_steps=0,
                  log_every=10),
}


def set_key(cfg, key, value, where):
    """Sets section.key (or model.layers[i]) with the type of its default."""
    index = None
    if key.endswith("]") and "[" in key:
        key, index = key[:-1].split("[", 1)
    sec, _, name = key.partition(".")
    if sec not in DEFAULTS or name not in DEFAULTS[sec]:
        raise Fail(f"{where}: unknown key '{key}'")
    default = DEFAULTS[sec][name]
    try:
        # YAML 1.1 (PyYAML) reads 1e-3 as a string; dptrain's libyaml scalars read it as a number
        if index is not None:
            cfg[sec][name][int(index)] = int(value)
            return
        if isinstance(default, list):
            value = [int(v) for v in value]
        elif not isinstance(default, (bool, str)):
            value = type(default)(value)
    except (TypeError, ValueError, IndexError):
        raise Fail(f"{where}: {key}: cannot use {value!r} here")
    cfg[sec][name] = value


def load_config(path, sets, epochs):
    cfg = {s: {k: (list(v) if isinstance(v, list) else v) for k, v in d.items()}
           for s, d in DEFAULTS.items()}
    try:
        with open(path) as f:
            doc = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as e:
        raise Fail(f"cannot read config: {e}")
    for sec, body in doc.items():
        if sec in ("search", "objective"):  # not used by a training run
            continue
        if not isinstance(body, dict):
            raise Fail(f"{path}: section '{sec}' is not a mapping")
        for k, v in body.items():
            set_key(cfg, f"{sec}.{k}", v, path)
    for s in sets:
        key, eq, val = s.partition("=")
        if not eq:
            raise Fail(f"--set {s}: expected KEY=VALUE")
        set_key(cfg, key, yaml.safe_load(val), f"--set {s}")
    if epochs:
        cfg["train"]["epochs"] = epochs
        # dptrain rejects warmup_epochs >= epochs; a short test run keeps what warmup it can
        if cfg["train"]["warmup_epochs"] >= epochs:
            cfg["train"]["warmup_epochs"] = epochs - 1
    if cfg["train"]["warmup_epochs"] and cfg["train"]["warmup_epochs"] >= cfg["train"]["epochs"]:
        raise Fail("train.warmup_epochs must be less than train.epochs")
    return cfg


def read_idx(path):
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise Fail(f"{path}: {e.strerror}")
    if raw[:2] == b"\x1f\x8b":  # gzipped or plain, as dptrain's zlib reader accepts both
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] or raw[1] or raw[2] != 0x08:
        raise Fail(f"{path}: not an IDX file of unsigned bytes")
    nd = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(nd)]
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * nd)
    if data.size != math.prod(dims):
        raise Fail(f"{path}: header says {dims}, file holds {data.size} values")
    return data.reshape(dims[0], -1) if nd > 1 else data


def load_xy(cfg, which):
    d = cfg["data"]
    x = read_idx(d[f"{which}_images"]).astype(np.float32)
    y = read_idx(d[f"{which}_labels"]).astype(np.int64)
    widths = cfg["model"]["layers"]
    if len(x) != len(y) or x.shape[1] != widths[0] or y.max() >= widths[-1]:
        raise Fail(f"{which} data: {x.shape} images, {y.shape} labels do not fit model.layers {widths}")
    if d["scaling"] == "unit":
        x /= 255.0
    return torch.from_numpy(x), torch.from_numpy(y)


def load_data(cfg, with_eval):
    """Train, validation and test sets as (x, y) tensors; validation/test None when absent."""
    x, y = load_xy(cfg, "train")
    n = len(x)
    n_val = min(n, int(math.floor(n * cfg["data"]["validation_fraction"] + 1e-9)))
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(cfg["run"]["seed"]))
    is_val = torch.zeros(n, dtype=torch.bool)
    is_val[perm[:n_val]] = True  # both parts keep file order, as in data.c
    train, val = (x[~is_val], y[~is_val]), (x[is_val], y[is_val]) if n_val else None
    if len(train[0]) < cfg["train"]["batch_size"]:  # batches drop the incomplete last one
        raise Fail(f"train.batch_size exceeds the {len(train[0])} training rows")
    test = load_xy(cfg, "test") if with_eval and cfg["data"]["test_images"] else None
    if cfg["data"]["scaling"] == "standardize":
        # statistics of the training split only, in double, std floored at 1e-6 (data.c)
        xd = train[0].double()
        mean, std = xd.mean(0), xd.std(0, unbiased=False).clamp(min=1e-6)
        fix = lambda s: s and (((s[0].double() - mean) / std).float(), s[1])
        train, val, test = fix(train), fix(val), fix(test)
    return train, val, test


ACTS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU,
        "identity": nn.Identity}


def build(cfg):
    m, t = cfg["model"], cfg["train"]
    torch.manual_seed(cfg["run"]["seed"])
    w = m["layers"]
    he = m["init"] == "he" or (m["init"] == "auto" and m["activation"] in ("relu", "gelu"))
    layers = []
    for i in range(len(w) - 1):
        lin = nn.Linear(w[i], w[i + 1])
        std = math.sqrt(2.0 / w[i]) if he else math.sqrt(2.0 / (w[i] + w[i + 1]))
        nn.init.normal_(lin.weight, 0.0, std)  # plain normal, not truncated, as model.c
        nn.init.zeros_(lin.bias)
        layers.append(lin)
        if i < len(w) - 2:  # activation and dropout on hidden layers only, none on the logits
            layers.append(ACTS[m["activation"]]())
            if m["dropout"] > 0:
                layers.append(nn.Dropout(m["dropout"]))
    model = nn.Sequential(*layers)
    p, kind = model.parameters(), t["optimizer"]
    if kind == "sgd":  # torch rejects nesterov without momentum; dptrain then ignores it
        opt = torch.optim.SGD(p, lr=t["lr"], momentum=t["momentum"], dampening=0,
                              nesterov=bool(t["nesterov"] and t["momentum"] > 0),
                              weight_decay=t["weight_decay"])
    else:
        cls = torch.optim.Adam if kind == "adam" else torch.optim.AdamW
        opt = cls(p, lr=t["lr"], betas=(t["beta1"], t["beta2"]), eps=t["eps"],
                  weight_decay=t["weight_decay"])
    return model, opt


def lr_at(t, step, spe):
    """dpt_optim_lr of src/optim.c."""
    warm = t["warmup_epochs"] * spe
    total = t["epochs"] * spe
    if 0 < t["max_steps"] < total:
        total = t["max_steps"]
    if step < warm:
        return t["lr"] * (step + 1) / warm
    if t["schedule"] == "step":
        return t["lr"] * t["step_gamma"] ** ((step // max(spe, 1)) // t["step_epochs"])
    if t["schedule"] == "cosine":
        span = total - warm
        frac = min((step - warm) / span, 1.0) if span > 0 else 1.0
        return t["min_lr"] + (t["lr"] - t["min_lr"]) * 0.5 * (1.0 + math.cos(math.pi * frac))
    return t["lr"]


def train_step(model, opt, cfg, x, y):
    logits = model(x)
    if cfg["model"]["loss"] == "mse":  # mean over all B*C elements against the one-hot label
        loss = F.mse_loss(logits, F.one_hot(y, logits.shape[1]).float())
    else:
        loss = F.cross_entropy(logits, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if cfg["train"]["clip_grad_norm"] > 0:
        nn.utils.clip_grad_norm_(model.parameters(), cfg["train"]["clip_grad_norm"])
    opt.step()
    return loss.item()


@torch.no_grad()
def accuracy(model, data):
    if data is None:
        return float("nan")
    model.eval()
    hits = sum((model(data[0][i:i + 2000]).argmax(1) == data[1][i:i + 2000]).sum().item()
               for i in range(0, len(data[0]), 2000))
    model.train()
    return hits / len(data[0])


def run_accuracy(cfg):
    # one OpenMP thread with OpenBLAS's own threads on every core (its default) is PyTorch's
    # fastest setting on a 2-core box; 2 OpenMP x 2 OpenBLAS threads oversubscribe it 4x
    torch.set_num_threads(1)
    train, val, test = load_data(cfg, True)
    model, opt = build(cfg)
    t, spe = cfg["train"], len(train[0]) // cfg["train"]["batch_size"]
    total = t["epochs"] * spe if not 0 < t["max_steps"] < t["epochs"] * spe else t["max_steps"]
    gen = torch.Generator().manual_seed(cfg["run"]["seed"] + 1)
    pct = lambda a: "-" if math.isnan(a) else f"{100 * a:.2f}%"
    print(f"{'epoch':>6} {'step':>8} {'lr':>9} {'train_loss':>10} {'val_acc':>8} {'test_acc':>8} {'time':>8}")
    step, test_acc = 0, float("nan")
    for epoch in range(t["epochs"]):
        if step >= total:
            break
        t0, losses = time.time(), []
        order = torch.randperm(len(train[0]), generator=gen) if cfg["data"]["shuffle"] \
            else torch.arange(len(train[0]))
        for s in range(spe):
            if step >= total:
                break
            lr = lr_at(t, step, spe)
            for g in opt.param_groups:
                g["lr"] = lr
            idx = order[s * t["batch_size"]:(s + 1) * t["batch_size"]]
            losses.append(train_step(model, opt, cfg, train[0][idx], train[1][idx]))
            if not math.isfinite(losses[-1]):
                raise Fail(f"PyTorch diverged at epoch {epoch + 1}, step {step}: loss {losses[-1]}")
            step += 1
        test_acc = accuracy(model, test)
        print(f"{epoch + 1:6d} {step:8d} {lr:9.3g} {sum(losses) / len(losses):10.4f} "
              f"{pct(accuracy(model, val)):>8} {pct(test_acc):>8} {time.time() - t0:7.1f}s", flush=True)
    print(f"PyTorch final test accuracy: {pct(test_acc)}")
    return test_acc


def speed_child(cfg, omp, bench_steps):
    """Runs in a fresh process whose OPENBLAS/OMP variables were set before torch loaded."""
    torch.set_num_threads(omp)
    (x, y), _, _ = load_data(cfg, False)
    model, opt = build(cfg)
    B, n = cfg["train"]["batch_size"], len(x)
    for i in range(20 + bench_steps):
        if i == 20:
            t0 = time.perf_counter()
        idx = torch.randint(n, (B,))  # gather rows by index, as a loader over a shuffle does
        train_step(model, opt, cfg, x[idx], y[idx])
    print(f"RESULT {bench_steps * B / (time.perf_counter() - t0):.1f}")


def torch_speed(args, omp, blas):
    env = dict(os.environ, OMP_NUM_THREADS=str(omp), OPENBLAS_NUM_THREADS=str(blas))
    cmd = [sys.executable, os.path.abspath(__file__)] + sys.argv[1:] + ["--child", str(omp)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    lines = [l for l in r.stdout.splitlines() if l.startswith("RESULT ")]
    if r.returncode != 0 or not lines:
        msg = r.stderr.strip().replace("compare_pytorch: error: ", "")
        raise Fail(f"PyTorch speed run (omp {omp}, blas {blas}): {msg}")
    return float(lines[-1].split()[1])


def dptrain_speed(args, threads):
    cmd = [args.dptrain, "bench", "train", args.config, "--steps", str(args.bench_steps),
           "--warmup", "20", "--set", f"run.threads={threads}"] + dptrain_sets(args)
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise Fail(f"{' '.join(cmd)} exited {r.returncode}:\n{r.stderr.strip()}")
    lines = r.stdout.splitlines()
    for i, line in enumerate(lines):
        cols = line.split()
        if cols[:3] == ["ranks", "batch", "samples/s"]:  # the row after it is ranks=1
            row = lines[i + 1].split() if i + 1 < len(lines) else []
            if row and row[0] == "1":
                return float(row[cols.index("samples/s")])
    raise Fail(f"no 'ranks=1' row in the output of {' '.join(cmd)}:\n{r.stdout}")


def dptrain_sets(args):
    sets = []
    for s in args.set:
        sets += ["--set", s]
    if args.epochs:
        sets += ["--set", f"train.epochs={args.cfg['train']['epochs']}",
                 "--set", f"train.warmup_epochs={args.cfg['train']['warmup_epochs']}"]
    return sets


def run_speed(args):
    # the plain settings use t cores for both pools; 1 OpenMP + 2 OpenBLAS threads is usually
    # torch's best two-core setting, since its elementwise ops and GEMMs then do not fight
    settings = [(f"threads={t} (omp {t}, blas {t})", t, t, t) for t in args.threads]
    settings.append(("omp 1 + blas 2 (dptrain threads=2)", 1, 2, 2))
    # This machine's speed drifts by 10-20% from one run to the next (a shared VM), so each
    # figure is the median of --repeat runs, with dptrain and PyTorch alternating.
    torch_runs = {label: [] for label, *_ in settings}
    dp_runs = {}
    for _ in range(args.repeat):
        for label, omp, blas, dt in settings:
            torch_runs[label].append(torch_speed(args, omp, blas))
            if args.dptrain and len(dp_runs.setdefault(dt, [])) <= _:
                dp_runs[dt].append(dptrain_speed(args, dt))
    med = lambda v: sorted(v)[len(v) // 2]
    dp = {dt: med(v) for dt, v in dp_runs.items()}
    rows = [(label, dp.get(dt), med(torch_runs[label])) for label, omp, blas, dt in settings]
    print(f"\n{'setting':<36} {'dptrain samples/s':>18} {'PyTorch samples/s':>18} {'ratio':>7}")
    for label, d, p in rows:
        dcol = f"{d:18.1f}" if d else f"{'-':>18}"
        ratio = f"{d / p:7.2f}" if d else f"{'-':>7}"
        print(f"{label:<36} {dcol} {p:18.1f} {ratio}")
    print("ratio = dptrain / PyTorch; warmup 20 steps, then %d steps of batch %d; median of %d runs"
          % (args.bench_steps, args.cfg["train"]["batch_size"], args.repeat))


def dptrain_accuracy(args):
    out = tempfile.mkdtemp(prefix="compare_pytorch_")
    cmd = [args.dptrain, "train", args.config, "--out", out] + dptrain_sets(args)
    if args.np > 1:
        cmd = ["mpirun", "--allow-run-as-root", "-np", str(args.np)] + cmd
    print(f"\n$ {' '.join(cmd)}", flush=True)
    if subprocess.run(cmd).returncode != 0:
        raise Fail(f"dptrain train failed (output in {out})")
    try:
        with open(os.path.join(out, "metrics.jsonl")) as f:
            last = json.loads(f.read().strip().splitlines()[-1])
        return last["test_accuracy"]
    except (OSError, IndexError, KeyError, ValueError) as e:
        raise Fail(f"cannot read test_accuracy from {out}/metrics.jsonl: {e}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("config")
    ap.add_argument("--mode", choices=["accuracy", "speed", "both"], default="both")
    ap.add_argument("--threads", default="1,2", help="comma-separated torch thread counts")
    ap.add_argument("--epochs", type=int, help="override train.epochs (also for dptrain)")
    ap.add_argument("--bench-steps", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=3, help="speed runs per setting (median)")
    ap.add_argument("--dptrain", help="path to the dptrain binary to compare with")
    ap.add_argument("--np", type=int, default=1, help="MPI ranks for the dptrain accuracy run")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)  # internal: one speed run
    args = ap.parse_args()
    try:
        args.threads = [int(t) for t in args.threads.split(",")]
        if min(args.threads) < 1 or args.bench_steps < 1 or args.np < 1 or (args.epochs or 1) < 1:
            raise ValueError
    except ValueError:
        ap.error("--threads, --bench-steps, --epochs and --np take positive integers")
    try:
        args.cfg = cfg = load_config(args.config, args.set, args.epochs)
        if args.child:
            return speed_child(cfg, args.child, args.bench_steps)
        if cfg["data"]["format"] != "idx":
            print(f"skipping: data.format is {cfg['data']['format']}; this comparison needs IDX files")
            return 0
        if args.dptrain and not os.access(args.dptrain, os.X_OK):
            raise Fail(f"--dptrain {args.dptrain}: not an executable file")
        m, t = cfg["model"], cfg["train"]
        print(f"# torch {torch.__version__} (python {sys.version.split()[0]}), "
              f"{os.cpu_count()} cores; speed threads {args.threads} + omp 1/blas 2; accuracy threads 2")
        print(f"# config {args.config}: model {'-'.join(map(str, m['layers']))} {m['activation']} "
              f"dropout {m['dropout']} {m['loss']}; {t['optimizer']} lr {t['lr']} "
              f"{t['schedule']} warmup {t['warmup_epochs']}; batch {t['batch_size']}, "
              f"{t['epochs']} epochs" + (f"; --set {' '.join(args.set)}" if args.set else ""))
        if args.mode in ("speed", "both"):
            run_speed(args)
        if args.mode in ("accuracy", "both"):
            print()
            ours = run_accuracy(cfg)
            if args.dptrain:
                theirs = dptrain_accuracy(args)
                print(f"\n{'test accuracy':<14} {'dptrain':>9} {'PyTorch':>9} {'diff (points)':>14}")
                print(f"{'':<14} {100 * theirs:8.2f}% {100 * ours:8.2f}% {100 * (theirs - ours):+14.2f}")
        return 0
    except Fail as e:
        print(f"compare_pytorch: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
