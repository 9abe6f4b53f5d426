/* Benchmark of the Bayesian optimization in src/gp.c on the built-in objectives (not a Criterion
 * test): for each seed, 5 uniform random points, then one proposal at a time up to the budget;
 * prints the median and quartiles of the simple regret (best found minus the known minimum) at
 * 10, 20, 30, 50 and 100 evaluations and the median time of a proposal at 50 observations
 * (with restarts the model then often holds fewer: conv=0 times a model of all 50).
 *   bench_gp [SEEDS=10] [BUDGET=50] [hyper=map|slice] [restarts=R] [burn=B] [samples=S]
 *            [cand=C] [local=L] [warp=0|1|2 (none, log, auto)]
 *            [init=N (design points before the first proposal)]
 *            [conv=K] [convr=R] [polish=P] [rdesign=D] (restarts, see gp.h; conv=0: off)
 *            [obj=branin|hartmann6|both|classifier] [trace=FILE (one line per evaluation:
 *            objective, seed, evaluation, value, point)]
 * obj=classifier instead times the feasibility classifier's fit (dpt_gpc_fit) in 6-D on 25 to
 * 200 Sobol points, those with u0 > 0.7 and u1 < 0.5 diverged, and prints its lengthscales.
 * Run it with OPENBLAS_NUM_THREADS=1 for the one-core timing. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gp.h"
#include "objective.h"
#include "rng.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* quantile q of v (n) by linear interpolation between order statistics; sorts v */
static double quantile(double *v, int n, double q)
{
    qsort(v, n, sizeof *v, cmp_double);
    double p = q * (n - 1);
    int i = (int)p;
    return i + 1 < n ? v[i] + (p - i) * (v[i + 1] - v[i]) : v[n - 1];
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static void run(dpt_objective_kind kind, const dpt_bo_opts *o, int seeds, int budget,
                FILE *trace)
{
    static const int marks[] = {10, 20, 30, 50, 100};
    int dim = dpt_objective_dim(kind), n_init = 5;
    double fmin = dpt_objective_min(kind);
    double *X = malloc(sizeof(double) * budget * dim), *y = malloc(sizeof(double) * budget);
    double *regret = malloc(sizeof(double) * seeds * budget); /* (seeds, budget) best so far */
    double *t50 = malloc(sizeof(double) * seeds), *tall = malloc(sizeof(double) * seeds);
    int nt50 = 0;
    double t0 = now_s();
    for (int s = 0; s < seeds; s++) {
        uint64_t seed = 1000 + (uint64_t)s;
        double best = 1e300, tsum = 0.0;
        for (int t = 0; t < budget; t++) {
            double *x = X + (size_t)t * dim;
            if (t < n_init) {
                for (int d = 0; d < dim; d++)
                    x[d] = dpt_rng_uniform(seed, DPT_RNG_SEARCH, (uint64_t)(t * dim + d));
            } else {
                double a = now_s();
                dpt_bo_propose(o, dim, X, y, t, NULL, 0, seed * 1000003 + (uint64_t)t, x);
                double b = now_s() - a;
                tsum += b;
                if (t == 50) t50[nt50++] = b;
            }
            y[t] = dpt_objective_eval(kind, x);
            if (trace) {
                fprintf(trace, "%s %d %d %.17g", dpt_objective_name(kind), (int)seed, t, y[t]);
                for (int d = 0; d < dim; d++) fprintf(trace, " %.17g", x[d]);
                fprintf(trace, "\n");
            }
            if (y[t] < best) best = y[t];
            regret[(size_t)s * budget + t] = best - fmin;
        }
        tall[s] = tsum / (budget - n_init);
    }
    printf("# %s: %d seeds, budget %d, %.1f s total\n", dpt_objective_name(kind), seeds, budget,
           now_s() - t0);
    printf("#  evals      median         q25         q75   within_0.01\n");
    double *v = malloc(sizeof(double) * seeds);
    for (size_t k = 0; k < sizeof marks / sizeof *marks; k++) {
        int e = marks[k];
        if (e > budget) break;
        int within = 0;
        for (int s = 0; s < seeds; s++) {
            v[s] = regret[(size_t)s * budget + e - 1];
            within += v[s] <= 0.01;
        }
        double med = quantile(v, seeds, 0.5), q25 = quantile(v, seeds, 0.25),
               q75 = quantile(v, seeds, 0.75);
        printf("  %6d  %10.3e  %10.3e  %10.3e   %3d/%d\n", e, med, q25, q75, within, seeds);
    }
    if (nt50 > 0)
        printf("# median time per proposal at 50 observations: %.1f ms (mean over run %.1f ms)\n",
               1e3 * quantile(t50, nt50, 0.5), 1e3 * quantile(tall, seeds, 0.5));
    free(v);
    free(X);
    free(y);
    free(regret);
    free(t50);
    free(tall);
}

static void time_classifier(void)
{
    enum { D = 6, NMAX = 200 };
    static double ok[NMAX * D], bad[NMAX * D];
    printf("# feasibility classifier, 6-D, diverged where u0 > 0.7 and u1 < 0.5\n"
           "#   n  diverged  fit_ms  lengthscales (u0 u1 decide)  latent_var  mean\n");
    for (int n = 25; n <= NMAX; n *= 2) {
        int nok = 0, nbad = 0;
        for (int i = 0; i < n; i++) {
            double u[D];
            dpt_gp_sobol(D, (uint64_t)i, 1, 3, u);
            memcpy(u[0] > 0.7 && u[1] < 0.5 ? bad + D * nbad++ : ok + D * nok++, u, sizeof u);
        }
        double th[DPT_GPC_NTHETA(D)];
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        dpt_gpc_t *g = dpt_gpc_fit(D, ok, nok, bad, nbad, th);
        clock_gettime(CLOCK_MONOTONIC, &b);
        printf("%5d %9d %7.1f ", n, nbad, (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) * 1e-6);
        for (int d = 0; d < D; d++) printf(" %.2f", exp(th[d]));
        printf("  %10.2f %5.2f%s\n", exp(th[D]), th[D + 1], g ? "" : "  (fit failed)");
        dpt_gpc_free(g);
    }
}

int main(int argc, char **argv)
{
    dpt_bo_opts o;
    dpt_bo_opts_default(&o);
    int seeds = argc > 1 ? atoi(argv[1]) : 10, budget = argc > 2 ? atoi(argv[2]) : 50;
    const char *obj = "both";
    FILE *trace = NULL;
    for (int i = 3; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq) {
            fprintf(stderr, "bench_gp: expected key=value, got %s\n", argv[i]);
            return 2;
        }
        *eq = 0;
        const char *k = argv[i], *v = eq + 1;
        if (!strcmp(k, "hyper")) o.hyper = strcmp(v, "slice") ? DPT_BO_HYPER_MAP : DPT_BO_HYPER_SLICE;
        else if (!strcmp(k, "restarts")) o.restarts = atoi(v);
        else if (!strcmp(k, "burn")) o.burn_in = atoi(v);
        else if (!strcmp(k, "samples")) o.samples = atoi(v);
        else if (!strcmp(k, "cand")) o.candidates = atoi(v);
        else if (!strcmp(k, "local")) o.local_starts = atoi(v);
        else if (!strcmp(k, "warp")) o.warp = (dpt_bo_warp)atoi(v);
        else if (!strcmp(k, "init")) o.n_initial = atoi(v);
        else if (!strcmp(k, "conv")) o.converged_count = atoi(v);
        else if (!strcmp(k, "convr")) o.converged_radius = atof(v);
        else if (!strcmp(k, "polish")) o.polish_max = atoi(v);
        else if (!strcmp(k, "rdesign")) o.restart_design = atoi(v);
        else if (!strcmp(k, "obj")) obj = v;
        else if (!strcmp(k, "trace")) {
            if (trace) fclose(trace);
            if (!(trace = fopen(v, "w"))) {
                fprintf(stderr, "bench_gp: cannot write %s\n", v);
                return 2;
            }
        }
        else {
            fprintf(stderr, "bench_gp: unknown key %s\n", k);
            return 2;
        }
    }
    if (seeds < 1 || budget < 6) {
        fprintf(stderr, "usage: bench_gp [SEEDS] [BUDGET>5] [key=value]...\n");
        return 2;
    }
    printf("# bench_gp: hyper %s restarts %d burn_in %d samples %d candidates %d local %d "
           "warp %d n_initial %d\n# restarts: converged_count %d converged_radius %g "
           "polish_max %d restart_design %d\n",
           o.hyper == DPT_BO_HYPER_SLICE ? "slice" : "map", o.restarts, o.burn_in, o.samples,
           o.candidates, o.local_starts, (int)o.warp, o.n_initial, o.converged_count,
           o.converged_radius, o.polish_max, o.restart_design);
    if (!strcmp(obj, "classifier")) {
        time_classifier();
        return 0;
    }
    if (strcmp(obj, "hartmann6")) run(DPT_OBJECTIVE_BRANIN, &o, seeds, budget, trace);
    if (strcmp(obj, "branin")) run(DPT_OBJECTIVE_HARTMANN6, &o, seeds, budget, trace);
    if (trace) fclose(trace);
    return 0;
}
