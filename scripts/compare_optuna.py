#!/usr/bin/python3
"""Optuna's TPE sampler with its Hyperband pruner driving `dptrain train`, on the search of
configs/fashion_mnist_search_bench.yaml (its space, epochs, trial budget and data), 2 trials at
once as dptrain's 2 groups: the comparison for scripts/bench_fashion_search.sh (docs/search.md).
A comparison only: nothing in dptrain depends on it. Needs Debian's python3-optuna
(`scripts/setup.sh --with-compare`), hence /usr/bin/python3.

Each trial launches `dptrain train CONFIG --set KEY=VALUE...` (one rank, run.threads 1 from the
config) and streams its metrics.jsonl while it runs: every epoch's validation error is reported
to Optuna (trial.report), and when the pruner says so the process gets SIGTERM (dptrain stops
after the step it is in) and the trial is pruned. Each trial's record goes to
OUT/SEED/trials.jsonl in dptrain search's layout (status ok, stopped_early for pruned,
diverged, failed; epochs, time_s, start_s and end_s from the study's start, curve), so
scripts/search_summary.py and scripts/plot_search.py read it; the same table as the benchmark's
is printed at the end. A failed or diverged trial is returned to Optuna as NaN (Optuna records
it failed and its sampler skips it).

Usage: compare_optuna.py [--dptrain build/dptrain] [--seeds 1,2,3,4,5] [--keep DIR] [--smoke]
  --smoke: 2000 rows, 3 epochs, 4 trials, one seed unless --seeds says otherwise (for ctest)"""
import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import search_summary  # noqa: E402  (scripts/, beside this file)

CONFIG = os.path.join(ROOT, "configs", "fashion_mnist_search_bench.yaml")
TARGET = 0.12  # the benchmark's target, fixed before its runs (scripts/bench_fashion_search.sh)


def load_search(path):
    """The space, epochs, trials and initial_random of the config's search section."""
    import yaml
    with open(path) as f:
        cfg = yaml.safe_load(f)
    s = cfg["search"]
    return s["space"], int(cfg["train"]["epochs"]), int(s["trials"]), int(s["initial_random"])


def suggest(trial, space):
    params = {}
    for key, spec in space.items():
        kind = spec["type"]
        if kind in ("uniform", "log_uniform"):
            params[key] = trial.suggest_float(key, float(spec["low"]), float(spec["high"]),
                                              log=kind == "log_uniform")
        elif kind == "int":
            params[key] = trial.suggest_int(key, int(spec["low"]), int(spec["high"]),
                                            log=bool(spec.get("log", False)))
        elif kind == "categorical":
            params[key] = trial.suggest_categorical(key, spec["choices"])
        else:
            raise SystemExit("compare_optuna: %s: type %s not handled" % (key, kind))
    return params


class Metrics:
    """The complete lines appended to a metrics.jsonl since the last read."""

    def __init__(self, path):
        self.path, self.offset = path, 0

    def new(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1  # a line still being written waits for the next read
        self.offset += end
        return [json.loads(line) for line in data[:end].splitlines() if line.strip()]


class Study:
    """One seed's study: runs trials (2 threads at once) and journals their records."""

    def __init__(self, a, seed, out, sets):
        self.a, self.seed, self.out, self.sets = a, seed, out, sets
        self.lock = threading.Lock()
        self.t0 = time.monotonic()
        os.makedirs(os.path.join(out, "trials"), exist_ok=True)
        self.journal = open(os.path.join(out, "trials.jsonl"), "w")

    def record(self, rec):
        with self.lock:
            self.journal.write(json.dumps(rec) + "\n")
            self.journal.flush()

    def objective(self, trial, space):
        import optuna
        params = suggest(trial, space)
        tdir = os.path.join(self.out, "trials", "%04d" % trial.number)
        cmd = [self.a.dptrain, "train", CONFIG, "--out", tdir, "--set", "run.seed=%d" % self.seed]
        cmd += self.sets
        for k, v in params.items():
            cmd += ["--set", "%s=%s" % (k, v)]
        start = time.monotonic() - self.t0
        with open(tdir + ".log", "w") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        metrics, curve, pruned = Metrics(os.path.join(tdir, "metrics.jsonl")), [], False
        while not pruned:
            finished = proc.poll() is not None  # read after the poll: no line is missed
            for m in metrics.new():
                curve.append(1.0 - m["val_accuracy"])
                trial.report(curve[-1], m["epoch"])
                if trial.should_prune():
                    pruned = True
                    break
            if finished:
                break
            if not pruned:
                time.sleep(0.02)
        if pruned and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        rc = proc.wait()
        end = time.monotonic() - self.t0
        status = "stopped_early" if pruned else "ok" if rc == 0 and curve else \
            "diverged" if "diverged" in open(tdir + ".log").read() else "failed"
        ok = status in ("ok", "stopped_early")
        self.record({"trial": trial.number, "params": params,
                     "objective": curve[-1] if ok else None, "status": status,
                     "epochs": len(curve), "time_s": round(end - start, 3),
                     "group": None, "start_s": round(start, 3), "end_s": round(end, 3),
                     "curve": curve})
        if pruned:
            raise optuna.TrialPruned()
        return curve[-1] if status == "ok" else float("nan")


def run_seed(a, seed, out, sets, search):
    import optuna
    space, epochs, trials, initial = search
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=initial)
    pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs,
                                            reduction_factor=3)
    study = optuna.create_study(direction="minimize", sampler=sampler, pruner=pruner)
    runner = Study(a, seed, out, sets)
    study.optimize(lambda t: runner.objective(t, space), n_trials=trials, n_jobs=2,
                   catch=())
    runner.journal.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dptrain", default=os.path.join(ROOT, "build", "dptrain"))
    ap.add_argument("--seeds", default=None, help="comma-separated (default 1,2,3,4,5)")
    ap.add_argument("--keep", help="keep each seed's output in KEEP/optuna-SEED")
    ap.add_argument("--smoke", action="store_true", help="tiny: 2000 rows, 3 epochs, 4 trials")
    a = ap.parse_args()
    try:
        import optuna
    except ImportError:
        sys.exit("compare_optuna: optuna is not installed (scripts/setup.sh --with-compare)")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    a.dptrain = os.path.abspath(a.dptrain)
    seeds = [int(s) for s in (a.seeds or ("1" if a.smoke else "1,2,3,4,5")).split(",")]
    space, epochs, trials, initial = load_search(CONFIG)
    rows = 30000
    if a.smoke:
        rows, epochs, trials, initial = 2000, 3, 4, 2
    base = a.keep or tempfile.mkdtemp(prefix="compare_optuna.")
    data = os.path.join(base, "data")
    subprocess.run([sys.executable, os.path.join(HERE, "make_csv_examples.py"), "fashion-idx",
                    data, "--rows", str(rows)], check=True)
    sets = []
    for k, f in (("train_images", "train-images-idx3-ubyte"),
                 ("train_labels", "train-labels-idx1-ubyte"),
                 ("test_images", "t10k-images-idx3-ubyte"),
                 ("test_labels", "t10k-labels-idx1-ubyte")):
        sets += ["--set", "data.%s=%s" % (k, os.path.join(data, f))]
    sets += ["--set", "train.epochs=%d" % epochs, "--set", "run.progress=off"]
    print(search_summary.HEADER)
    rows_by_seed = []
    for seed in seeds:
        out = os.path.join(base, "optuna-%d" % seed)
        run_seed(a, seed, out, sets, (space, epochs, trials, initial))
        s = search_summary.summarize(os.path.join(out, "trials.jsonl"), TARGET, 2)
        rows_by_seed.append(s)
        print(search_summary.row("optuna-tpe-hb", seed, s), flush=True)
    print("# medians over seeds (target val_error <= %g)" % TARGET)
    print(search_summary.median_row("optuna-tpe-hb", rows_by_seed))
    if not a.keep:
        subprocess.run(["rm", "-rf", base], check=False)


if __name__ == "__main__":
    main()
