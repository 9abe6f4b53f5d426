/* The search's policy: proposals (random, grid, the GP's Expected Improvement, the config's own
 * values first when asked) and the stopping rules (median, asynchronous successive halving). */
#include "policy.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gp.h"
#include "rng.h"

int dpt_policy_budget(const dpt_config *cfg)
{
    int trials = cfg->search.trials;
    if (cfg->search.algorithm == DPT_SEARCH_GRID && dpt_space_grid_size(cfg) < trials)
        trials = (int)dpt_space_grid_size(cfg);
    return trials;
}

/* asha with early_stopping.fidelity: gp: the GP gets the epochs as one more input, the fidelity
 * s = log(e) / log(train.epochs) in [0, 1] (1 at the last epoch), and every trial's value at each
 * rung it passed as well as where it ended (multi-fidelity BO, as Hyperband-BO hybrids and
 * FABOLAS model the budget: the GP learns from the trials that went on how a rung's values
 * relate to final ones); proposals are made at s = 1 (gp.c). */
static int fidelity_input(const dpt_config *cfg)
{
    return cfg->search.stop_rule == DPT_STOP_ASHA && cfg->search.stop_fidelity == DPT_FIDELITY_GP;
}

static double fidelity_of(const dpt_config *cfg, int e)
{
    int E = cfg->train.epochs;
    return E > 1 && e < E ? log((double)(e > 1 ? e : 1)) / log((double)E) : 1.0;
}

/* The encoded values of v into row, and with a fidelity input s after them. */
static void put_row(const dpt_config *cfg, const dpt_space_value *v, int dim, double s,
                    double *row)
{
    dpt_space_encode(cfg, v, row);
    if (fidelity_input(cfg))
        row[dim] = s;
}

/* Rows a trial may give the GP: 1, or with a fidelity input 1 + the rungs below the last
 * epoch. */
static int rows_per_trial(const dpt_config *cfg)
{
    int r = 1;
    for (int e = 1; fidelity_input(cfg) && e < cfg->train.epochs; e++)
        r += dpt_policy_rung(cfg, e) >= 0;
    return r;
}

int dpt_policy_check(const dpt_config *cfg, dpt_error *err)
{
    const dpt_config *c = cfg;
    dpt_space_value base[DPT_SEARCH_MAX_PARAMS];
    char why[256];
    if (c->search.start_from_config && dpt_space_from_config(c, base, why, sizeof why) != 0)
        return dpt_error_set(err, DPT_EUSAGE, "search.start_from_config: %s", why);
    int dim = dpt_space_dim(c) + fidelity_input(c);
    if (c->search.algorithm == DPT_SEARCH_BAYES && dim > DPT_GP_MAX_DIM)
        return dpt_error_set(err, DPT_EUSAGE,
                             "search.space spans %d dimensions (a categorical counts one per "
                             "choice, early_stopping.fidelity: gp one more); the GP takes at "
                             "most %d: drop parameters or choices, or use algorithm random",
                             dim, DPT_GP_MAX_DIM);
    return DPT_OK;
}

/* ---- proposals ------------------------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b);

double dpt_policy_fidelity_gap(const dpt_config *cfg, const dpt_trial *hist, int n_hist, int e,
                               int *n_used)
{
    *n_used = 0;
    if (cfg->search.stop_rule != DPT_STOP_ASHA ||
        cfg->search.stop_fidelity != DPT_FIDELITY_MEDIAN_GAP || e < 1 || e > DPT_TRIAL_MAX_CURVE)
        return 0.0;
    double *gap = malloc((size_t)(n_hist + 1) * sizeof(double));
    if (!gap)
        return 0.0;
    int m = 0;
    for (int k = 0; k < n_hist; k++) {
        const dpt_trial *t = &hist[k];
        if (t->status == DPT_TRIAL_OK && dpt_trial_has_result(t) && t->epochs == cfg->train.epochs &&
            t->n_curve >= e && isfinite(t->curve[e - 1]))
            gap[m++] = t->objective - t->curve[e - 1];
    }
    double g = 0.0;
    if (m >= DPT_FIDELITY_GAP_MIN) {
        qsort(gap, (size_t)m, sizeof *gap, cmp_double);
        g = m % 2 ? gap[m / 2] : 0.5 * (gap[m / 2 - 1] + gap[m / 2]);
        *n_used = m;
    }
    free(gap);
    return g;
}

/* A trial's value as the GP reads it: its objective; under asha with early_stopping.fidelity:
 * median_gap, a trial stopped early at epoch e is corrected to the last epoch by the median gap
 * of the completed trials at e (above; raw, the default, adds nothing). */
static double gp_value(const dpt_config *cfg, const dpt_trial *hist, int n_hist, int k)
{
    int used;
    double v = hist[k].objective;
    if (hist[k].status == DPT_TRIAL_STOPPED_EARLY && cfg->search.stop_rule == DPT_STOP_ASHA)
        v += dpt_policy_fidelity_gap(cfg, hist, n_hist, hist[k].epochs, &used);
    return v;
}

/* A trial's best objective through epoch e (NaN epochs skipped; INFINITY if none). */
static double best_prefix(const double *curve, int e)
{
    double b = INFINITY;
    for (int k = 0; k < e; k++)
        if (isfinite(curve[k]) && curve[k] < b)
            b = curve[k];
    return b;
}

/* With a fidelity input, a trial's rows at the rungs it passed (its best objective through each
 * rung's epoch, below the epoch it ended at) into X (rows of dim + 1) and y from row n; returns
 * the new row count. */
static int rung_rows(const dpt_config *cfg, const dpt_trial *t, int dim, double *X, double *y,
                     int n)
{
    for (int e = 1; fidelity_input(cfg) && e < t->epochs && e <= t->n_curve; e++) {
        double v = best_prefix(t->curve, e);
        if (dpt_policy_rung(cfg, e) < 0 || !isfinite(v))
            continue;
        put_row(cfg, t->values, dim, fidelity_of(cfg, e), X + (size_t)n * (size_t)(dim + 1));
        y[n++] = v;
    }
    return n;
}

/* The observations the GP fits, encoded into X (rows of dim) and y; returns how many. Diverged
 * and failed trials: with search.feasibility: model they go to Xbad (*nbad of them), where a
 * classifier of P(feasible) learns them and the acquisition is log EI + log P(feasible)
 * (Spearmint's constraint model, Gelbart, Snoek & Adams 2014); with worst they enter y as the
 * worst objective seen, which the GP then models as a smooth cliff. */
static int observations(const dpt_config *cfg, const dpt_trial *hist, int n_hist, int dim,
                        double *X, double *y, double *Xbad, int *nbad)
{
    size_t stride = (size_t)(dim + fidelity_input(cfg));
    double worst = -INFINITY;
    for (int k = 0; k < n_hist; k++)
        if (dpt_trial_has_result(&hist[k]) && hist[k].objective > worst)
            worst = hist[k].objective;
    int n = 0, model = cfg->search.feasibility == DPT_FEASIBILITY_MODEL;
    *nbad = 0;
    for (int k = 0; k < n_hist; k++) {
        int bad = hist[k].status == DPT_TRIAL_DIVERGED || hist[k].status == DPT_TRIAL_FAILED;
        if (bad && model) {
            put_row(cfg, hist[k].values, dim, 1.0, Xbad + (size_t)(*nbad)++ * stride);
            continue;
        }
        double v = dpt_trial_has_result(&hist[k]) ? gp_value(cfg, hist, n_hist, k)
                   : bad && isfinite(worst)        ? worst
                                                   : NAN;
        if (!isfinite(v))
            continue;
        int result = dpt_trial_has_result(&hist[k]);
        if (result)
            n = rung_rows(cfg, &hist[k], dim, X, y, n);
        put_row(cfg, hist[k].values, dim, result ? fidelity_of(cfg, hist[k].epochs) : 1.0,
                X + (size_t)n * stride);
        y[n++] = v;
    }
    return n;
}

/* EI per second's observations of cost: the log wall seconds of each trial that ran to its end
 * (ok); a stopped-early trial's time scaled to all train.epochs (its time per epoch times
 * the epochs it would have trained), so that early stopping does not make a region look cheap.
 * Diverged and failed trials ended at an arbitrary point and say nothing of the cost. Into Xc
 * (rows of dim) and log_s; returns how many. */
static int cost_observations(const dpt_config *cfg, const dpt_trial *hist, int n_hist, int dim,
                             double *Xc, double *log_s)
{
    int n = 0;
    for (int k = 0; k < n_hist; k++) {
        const dpt_trial *r = &hist[k];
        double t = r->time_s;
        if (r->status == DPT_TRIAL_STOPPED_EARLY && r->epochs > 0)
            t *= (double)cfg->train.epochs / r->epochs;
        if ((r->status != DPT_TRIAL_OK && r->status != DPT_TRIAL_STOPPED_EARLY) || !(t > 0.0) ||
            !isfinite(t))
            continue;
        put_row(cfg, r->values, dim, 1.0, Xc + (size_t)n * (size_t)(dim + fidelity_input(cfg)));
        log_s[n++] = log(t);
    }
    return n;
}

/* Bayesian optimization: the GP's Expected Improvement over the history, the pending trials
 * fantasized; random until two observations exist. */
static void propose_bayes(const dpt_config *cfg, const dpt_trial *hist, int n_hist,
                          const dpt_space_value (*pending)[DPT_SEARCH_MAX_PARAMS], int n_pending,
                          int id, dpt_space_value *out)
{
    uint64_t seed = cfg->run.seed;
    int dim = dpt_space_dim(cfg), fid = fidelity_input(cfg), gdim = dim + fid;
    size_t rows = (size_t)n_hist * (size_t)rows_per_trial(cfg), row = (size_t)gdim;
    double *X = malloc((rows + (size_t)n_pending + 1) * row * sizeof(double));
    double *y = malloc((rows + 1) * sizeof(double));
    double *Xbad = malloc(((size_t)n_hist + 1) * row * sizeof(double));
    int per_second = cfg->search.acquisition == DPT_ACQUISITION_EI_PER_SECOND;
    double *Xc = per_second ? malloc(((size_t)n_hist + 1) * row * sizeof(double)) : NULL;
    double *log_s = per_second ? malloc(((size_t)n_hist + 1) * sizeof(double)) : NULL;
    double *P = X ? X + rows * row : NULL;
    int nbad = 0;
    if (!X || !y || !Xbad || (per_second && (!Xc || !log_s))) {
        free(X);
        free(y);
        free(Xbad);
        free(Xc);
        free(log_s);
        dpt_space_random(cfg, seed, (uint64_t)id, out);
        return;
    }
    int n = observations(cfg, hist, n_hist, dim, X, y, Xbad, &nbad);
    for (int m = 0; m < n_pending; m++) /* running trials: proposed for their last epoch */
        put_row(cfg, pending[m], dim, 1.0, P + (size_t)m * row);
    if (n < 2) {
        dpt_space_random(cfg, seed, (uint64_t)id, out);
    } else {
        /* the pending rows follow the observed ones in X; move them up to follow row n */
        memmove(X + (size_t)n * row, P, (size_t)n_pending * row * sizeof(double));
        dpt_bo_opts o;
        dpt_bo_opts_default(&o);
        /* the GP's matrices are at most a few hundred rows: threads only add overhead (the
         * trainer sets its own thread count when the next trial starts) */
        openblas_set_num_threads(1);
        double u[DPT_SEARCH_MAX_PARAMS * DPT_SEARCH_MAX_CHOICES + 1];
        uint64_t s = dpt_rng_u64(seed, DPT_RNG_SEARCH, (1ULL << 40) | (uint64_t)id);
        dpt_bo_side side = {Xbad, nbad, Xc, log_s, 0, fid};
        if (per_second)
            side.ncost = cost_observations(cfg, hist, n_hist, dim, Xc, log_s);
        dpt_bo_propose_side(&o, gdim, X, y, n, &side, X + (size_t)n * row, n_pending, s, u);
        dpt_space_decode(cfg, u, out);
    }
    free(X);
    free(y);
    free(Xbad);
    free(Xc);
    free(log_s);
}

void dpt_policy_propose(const dpt_config *cfg, const dpt_trial *hist, int n_hist,
                        const dpt_space_value (*pending)[DPT_SEARCH_MAX_PARAMS], int n_pending,
                        int id, dpt_space_value *out)
{
    if (cfg->search.algorithm == DPT_SEARCH_GRID) {
        dpt_space_grid_point(cfg, id, out);
        return;
    }
    if (id == 0 && cfg->search.start_from_config) {
        char why[256];
        if (dpt_space_from_config(cfg, out, why, sizeof why) == 0)  /* checked at the start */
            return;
    }
    if (cfg->search.algorithm == DPT_SEARCH_RANDOM || id < cfg->search.initial_random) {
        dpt_space_random(cfg, cfg->run.seed, (uint64_t)id, out);
        return;
    }
    propose_bayes(cfg, hist, n_hist, pending, n_pending, id, out);
}

/* ---- early stopping ------------------------------------------------------------------------ */

/* The median stopping rule (Golovin et al. 2017, "Google Vizier", section 3.2.2): after epoch e
 * (past the grace epochs), stop a trial whose best objective so far is worse than the median of
 * the best objectives the finished trials had reached by epoch e. It needs no model of learning
 * curves and no tuning beyond the grace period, and comparing best-so-far with best-so-far keeps
 * one noisy epoch from stopping a trial. */
static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The best objectives through epoch e of the history's trials that reached it, into v. */
static int reached(const dpt_trial *hist, int n_hist, int e, double *v)
{
    int m = 0;
    for (int k = 0; k < n_hist; k++)
        if (dpt_trial_has_result(&hist[k]) && hist[k].n_curve >= e)
            v[m++] = best_prefix(hist[k].curve, e);
    return m;
}

/* Asynchronous successive halving (Li et al. 2020, "A System for Massively Parallel
 * Hyperparameter Tuning"), as a stopping rule: rungs at grace * eta^k epochs (grace at least 1;
 * the last epoch is no rung, training ends there anyway). A trial reaching a rung is compared with
 * the trials known to have reached it (the history's records, curves at least that long): among
 * the m of them, itself counted, it continues when it is in the top max(1, floor(m / eta)), that
 * is when fewer than that many of the others are strictly better. The max(1, ...) lets the best
 * trial seen at a rung through: the first to arrive continues, a later one only if it beats all
 * before it until m reaches 2 eta (as Ray Tune's ASHA judges the few first arrivals against the
 * earlier values; until 2026-12-05 the first eta - 1 arrivals continued unjudged, which spent
 * epochs on whatever came first: docs/search.md). Its value at a rung is its best
 * objective through that epoch, as the median rule compares. Deciding on arrival, against the
 * records then known, never waits for a rung to fill: no group idles. */
int dpt_policy_rung(const dpt_config *cfg, int e)
{
    if (cfg->search.stop_rule != DPT_STOP_ASHA || e >= cfg->train.epochs)
        return -1;
    long r = cfg->search.stop_grace_epochs > 1 ? cfg->search.stop_grace_epochs : 1;
    for (int k = 0; r <= e; k++, r *= cfg->search.stop_eta)
        if (r == e)
            return k;
    return -1;
}

int dpt_policy_asha_continues(const double *rung, int n, double mine, int eta)
{
    int better = 0;
    for (int k = 0; k < n; k++)
        better += rung[k] < mine;
    int m = n + 1, top = m / eta > 1 ? m / eta : 1;
    return better < top;
}

double dpt_policy_rung_value(const dpt_trial *t, int e)
{
    return best_prefix(t->curve, e < t->n_curve ? e : t->n_curve);
}

int dpt_policy_asha_stop_seen(const dpt_config *cfg, const dpt_trial *hist, int n_hist,
                              const double *running, int n_running, const dpt_trial *run)
{
    int e = run->n_curve;
    if (dpt_policy_rung(cfg, e) < 0)
        return 0;
    double *v = malloc((size_t)(n_hist + n_running + 1) * sizeof(double));
    if (!v)
        return 0;
    int m = reached(hist, n_hist, e, v);
    for (int k = 0; k < n_running; k++)
        v[m++] = running[k];
    int stop = !dpt_policy_asha_continues(v, m, best_prefix(run->curve, e), cfg->search.stop_eta);
    free(v);
    return stop;
}

int dpt_policy_asha_promotable(const dpt_config *cfg, const dpt_trial *hist, int n_hist, int k,
                               const double *running, int n_running)
{
    const dpt_trial *t = &hist[k];
    int e = t->n_curve;
    if (t->status != DPT_TRIAL_STOPPED_EARLY || !dpt_trial_has_result(t) || e != t->epochs ||
        dpt_policy_rung(cfg, e) < 0)
        return 0;
    double *v = malloc((size_t)(n_hist + n_running + 1) * sizeof(double));
    if (!v)
        return 0;
    int m = 0;
    for (int j = 0; j < n_hist; j++)
        if (j != k && dpt_trial_has_result(&hist[j]) && hist[j].n_curve >= e)
            v[m++] = dpt_policy_rung_value(&hist[j], e);
    for (int j = 0; j < n_running; j++)
        v[m++] = running[j];
    int up = dpt_policy_asha_continues(v, m, dpt_policy_rung_value(t, e), cfg->search.stop_eta);
    free(v);
    return up;
}

int dpt_policy_should_stop(const dpt_config *cfg, const dpt_trial *hist, int n_hist,
                           const dpt_trial *run)
{
    int e = run->n_curve;
    if (e > DPT_TRIAL_MAX_CURVE)
        return 0;
    if (cfg->search.stop_rule == DPT_STOP_ASHA)
        return dpt_policy_asha_stop_seen(cfg, hist, n_hist, NULL, 0, run);
    if (cfg->search.stop_rule != DPT_STOP_MEDIAN || e <= cfg->search.stop_grace_epochs)
        return 0;
    double *v = malloc((size_t)(n_hist + 1) * sizeof(double));
    if (!v)
        return 0;
    int m = reached(hist, n_hist, e, v);
    int stop = 0;
    if (m >= cfg->search.stop_min_trials) {
        qsort(v, (size_t)m, sizeof *v, cmp_double);
        double median = m % 2 ? v[m / 2] : 0.5 * (v[m / 2 - 1] + v[m / 2]);
        stop = best_prefix(run->curve, e) > median;
    }
    free(v);
    return stop;
}
