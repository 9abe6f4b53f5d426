#!/usr/bin/python3
"""Compares dptrain's Bayesian optimizer with random search and Optuna's TPE on Branin and
Hartmann6, the standard test functions of the Bayesian optimization literature.

dptrain runs as `dptrain search configs/{branin,hartmann6}.yaml` (the real search loop, its
trials.jsonl read back), with `search.algorithm: bayes` and `random`; Optuna (Debian's
python3-optuna) runs its default TPESampler on the same functions in the same coordinates. For
each method and function it prints the median and quartiles over seeds of the simple regret
(best value found minus the known minimum) after 10, 20, 30, 50 and 100 evaluations, and the
median time of a proposal (dptrain: rank 0's time to propose trial 51, i.e. with 50
observations; Optuna: the time of a trial, of which sampling is nearly all).

Usage: scripts/bench_search.py DPTRAIN [--seeds 20] [--budget 100] [--functions branin,hartmann6]
       [--methods bayes,random,tpe] [--csv FILE]
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MINIMA = {"branin": 0.39788735772973816, "hartmann6": -3.3223680114155147}
CHECKPOINTS = [10, 20, 30, 50, 100]


def branin(x1, x2):
    b, c, t = 5.1 / (4 * math.pi ** 2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1 * x1 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


def hartmann6(x):
    alpha = [1.0, 1.2, 3.0, 3.2]
    A = [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
         [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
    P = [[0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
         [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
         [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
         [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381]]
    return -sum(a * math.exp(-sum(A[i][j] * (x[j] - P[i][j]) ** 2 for j in range(6)))
                for i, a in enumerate(alpha))


def run_dptrain(dptrain, function, algorithm, seed, budget):
    """Values in trial order and rank 0's proposal times, from trials.jsonl."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [dptrain, "search", os.path.join(ROOT, "configs", function + ".yaml"),
               "--out", out, "--set", f"run.seed={seed}", "--set", f"search.trials={budget}",
               "--set", f"search.algorithm={algorithm}"]
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
        recs = [json.loads(line) for line in open(os.path.join(out, "trials.jsonl"))]
    recs.sort(key=lambda r: r["trial"])
    return [r["objective"] for r in recs], [r["propose_s"] for r in recs]


def run_tpe(function, seed, budget):
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if function == "branin":
        def objective(trial):
            return branin(trial.suggest_float("x1", -5, 10), trial.suggest_float("x2", 0, 15))
    else:
        def objective(trial):
            return hartmann6([trial.suggest_float(f"x{i + 1}", 0, 1) for i in range(6)])
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
    times = []

    def timed(trial):
        return objective(trial)

    t_last = [time.perf_counter()]

    def callback(study, trial):
        now = time.perf_counter()
        times.append(now - t_last[0])
        t_last[0] = now

    study.optimize(timed, n_trials=budget, callbacks=[callback])
    return [t.value for t in study.trials], times


def quartiles(v):
    q = statistics.quantiles(v, n=4, method="inclusive") if len(v) > 1 else [v[0]] * 3
    return q[0], statistics.median(v), q[2]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dptrain")
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--functions", default="branin,hartmann6")
    ap.add_argument("--methods", default="bayes,random,tpe")
    ap.add_argument("--csv", help="also write one row per (method, function, seed, evaluations)")
    args = ap.parse_args()
    checkpoints = [c for c in CHECKPOINTS if c <= args.budget]
    rows = []
    print(f"# simple regret (best found - known minimum), median [quartiles] over {args.seeds} "
          f"seeds; time per proposal at 50 observations (median)")
    head = f"{'function':<10} {'method':<14}" + "".join(f" {'@' + str(c):>26}" for c in checkpoints)
    print(head + f"{'s/proposal':>12}  {'within 0.01 @' + str(checkpoints[-1]):>16}")
    for function in args.functions.split(","):
        for method in args.methods.split(","):
            regrets = {c: [] for c in checkpoints}
            proposal_times = []
            t0 = time.time()
            for seed in range(1, args.seeds + 1):
                if method == "tpe":
                    values, times = run_tpe(function, seed, args.budget)
                else:
                    values, times = run_dptrain(args.dptrain, function, method, seed, args.budget)
                for c in checkpoints:
                    r = min(values[:c]) - MINIMA[function]
                    regrets[c].append(r)
                    rows.append((method, function, seed, c, r))
                if len(times) > 50:
                    proposal_times.append(times[50])
            name = {"bayes": "dptrain GP-EI", "random": "random", "tpe": "Optuna TPE"}[method]
            line = f"{function:<10} {name:<14}"
            for c in checkpoints:
                lo, med, hi = quartiles(regrets[c])
                line += " " + f"{f'{med:.2g} [{lo:.2g}, {hi:.2g}]':>26}"
            pt = statistics.median(proposal_times) if proposal_times else float("nan")
            within = sum(r < 0.01 for r in regrets[checkpoints[-1]])
            line += f"{pt:>12.4f}  {f'{within}/{args.seeds}':>16}"
            print(line, flush=True)
            print(f"#   ({name} on {function}: {time.time() - t0:.0f} s for {args.seeds} runs)",
                  file=sys.stderr)
    if args.csv:
        with open(args.csv, "w") as f:
            f.write("method,function,seed,evaluations,regret\n")
            for r in rows:
                f.write(",".join(map(str, r)) + "\n")


if __name__ == "__main__":
    main()
