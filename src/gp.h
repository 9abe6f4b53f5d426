/* Gaussian-process regression and Bayesian optimization for the hyperparameter search (Spearmint's
 * recipe: Snoek, Larochelle & Adams 2012): a Matern 5/2 ARD kernel with constant mean and noise,
 * hyperparameters fitted by maximum a posteriori or integrated by slice sampling, Expected
 * Improvement (maximized as its log) averaged over them and over sampled outcomes of the pending
 * trials, and a restart from fresh points once a minimum is found and polished (a stationary
 * kernel fitted around one minimum can be sure, wrongly, that no better one exists:
 * docs/search.md). Inputs live in the unit cube and the
 * caller maps its search space onto it; outputs are minimized.
 *
 * Shape letters: D input dimensions, N observations, M pending points, S hyperparameter samples.
 * A hyperparameter vector theta has D + 3 entries (DPT_GP_NTHETA): log lengthscales (D), log
 * signal variance, log noise variance, constant mean. */
#ifndef DPT_GP_H
#define DPT_GP_H

#include <stdint.h>

#define DPT_GP_MAX_DIM 21 /* Sobol direction numbers are tabulated for 21 dimensions */
#define DPT_GP_NTHETA(dim) ((dim) + 3)
#define DPT_GP_LOG_AMP2(dim) (dim)      /* index of log signal variance in theta */
#define DPT_GP_LOG_NOISE(dim) ((dim) + 1) /* index of log noise variance */
#define DPT_GP_MEAN(dim) ((dim) + 2)    /* index of the constant mean */

/* ---- the GP under one hyperparameter vector ---------------------------------------------- */

typedef struct dpt_gp dpt_gp_t; /* opaque: data, Cholesky factor, weights */

/* Matern 5/2 ARD covariance (Rasmussen & Williams 2006, eq. 4.17) between a and b (dim each),
 * without the noise: amp2 (1 + sqrt5 r + 5/3 r^2) exp(-sqrt5 r), r^2 = sum_d (a_d-b_d)^2/ls_d^2. */
double dpt_gp_kernel(int dim, const double *theta, const double *a, const double *b);

/* Conditions a GP on X (n, dim) row-major and y (n) under theta (dim + 3). Copies what it keeps.
 * Returns NULL when the covariance is not numerically positive definite or allocation fails. */
dpt_gp_t *dpt_gp_init(int dim, const double *X, const double *y, int n, const double *theta);
void dpt_gp_free(dpt_gp_t *gp);

/* Posterior of the latent function (without observation noise) at x (dim): mean and variance,
 * and, when dmean/dvar are not NULL, their gradients (dim each) w.r.t. x. Uses scratch memory
 * inside gp: one gp must not be used by two threads at once. */
void dpt_gp_predict(dpt_gp_t *gp, const double *x, double *mean, double *var, double *dmean,
                    double *dvar);

/* Log marginal likelihood log p(y | X, theta) (R&W eq. 5.8) and, when grad (dim + 3) is not
 * NULL, its gradient w.r.t. theta (R&W eq. 5.9). -INFINITY when the Cholesky fails. */
double dpt_gp_log_marginal(int dim, const double *X, const double *y, int n, const double *theta,
                           double *grad);

/* Log prior density of theta (up to a constant) inside the box [lo, hi] that dpt_gp_theta_box
 * gives, with its gradient when grad is not NULL; -INFINITY outside the box. Outputs are assumed
 * standardized and inputs in the unit cube. */
double dpt_gp_log_prior(int dim, const double *theta, double *grad);
void dpt_gp_theta_box(int dim, double *lo /* (dim + 3) */, double *hi /* (dim + 3) */);

/* Expected Improvement below best for a Gaussian N(mean, sd^2) (Jones, Schonlau & Welch 1998):
 * (best - mean) Phi(z) + sd phi(z), z = (best - mean) / sd; max(best - mean, 0) as sd -> 0.
 * dmean, dsd (may be NULL) receive its partial derivatives: -Phi(z) and phi(z). */
double dpt_gp_ei(double mean, double sd, double best, double *dmean, double *dsd);

/* log EI, computed stably far below the incumbent (Ament et al. 2023): finite, with a non-zero
 * gradient, where EI itself underflows to 0; -INFINITY only in the sd -> 0 limit with
 * mean >= best. dmean, dsd (may be NULL) receive its partial derivatives. The proposal maximizes
 * it (averaged over hyperparameter samples in EI's space, not log space). */
double dpt_gp_log_ei(double mean, double sd, double best, double *dmean, double *dsd);

/* The feasibility classifier: GP classification with a probit likelihood by Laplace's
 * approximation (R&W 2006, Algorithms 3.1, 3.2 and 5.1; see gp.c) of the labels + (the nok points
 * Xok, which gave a result) and - (the nbad points Xbad, which diverged or failed), rows of dim.
 * Its hyperparameters (DPT_GPC_NTHETA: dim log lengthscales, the log latent variance, the
 * latent's constant prior mean) are the
 * MAP estimate under the Laplace marginal likelihood, written to theta when not NULL. NULL on
 * bad arguments or when no fit succeeds. Deterministic. */
typedef struct dpt_gpc dpt_gpc_t;
#define DPT_GPC_NTHETA(dim) ((dim) + 2)
dpt_gpc_t *dpt_gpc_fit(int dim, const double *Xok, int nok, const double *Xbad, int nbad,
                       double *theta);
void dpt_gpc_free(dpt_gpc_t *g);

/* log P(feasible) at x (dim), Phi(mean / sqrt(1 + var)) of the latent's Laplace posterior; its
 * gradient w.r.t. x into grad (dim) when not NULL. Scratch memory inside g: one thread at once. */
double dpt_gpc_log_feasible(dpt_gpc_t *g, const double *x, double *grad);

/* The Laplace approximation of log p(t | X, theta) (R&W eq. 3.32) for labels t (n) of +-1 at X
 * (n, dim), theta (DPT_GPC_NTHETA), and its gradient (Algorithm 5.1) into grad when not NULL. */
double dpt_gpc_log_evidence(int dim, const double *X, const double *t, int n, const double *theta,
                            double *grad);

/* Points index .. index + count - 1 of a Sobol sequence (Joe & Kuo 2008 direction numbers) in
 * dim <= DPT_GP_MAX_DIM dimensions, randomized by a digital shift drawn from seed (seed 0: no
 * shift). out (count, dim), every coordinate in (0, 1). */
void dpt_gp_sobol(int dim, uint64_t index, int count, uint64_t seed, double *out);

/* ---- Bayesian optimization --------------------------------------------------------------- */

typedef enum {
    DPT_BO_HYPER_MAP = 0,  /* maximize log marginal likelihood + log prior, several restarts */
    DPT_BO_HYPER_SLICE = 1 /* slice-sample theta from the posterior, average EI over samples */
} dpt_bo_hyper;

typedef enum {
    DPT_BO_PENDING_BELIEVER = 0, /* kriging believer: a pending point "returns" its GP mean */
    DPT_BO_PENDING_LIAR = 1,     /* constant liar: a pending point returns the best y so far */
    DPT_BO_PENDING_SAMPLED = 2   /* Spearmint's: EI averaged over `fantasies` outcomes of the
                                  * pending points drawn jointly from the GP's predictive */
} dpt_bo_pending;

typedef enum {
    DPT_BO_WARP_NONE = 0, /* model standardized y */
    DPT_BO_WARP_LOG = 1,  /* model standardized log(y - min y + eps) (see gp.c) */
    DPT_BO_WARP_AUTO = 2  /* fit both, keep the one with the larger evidence for y */
} dpt_bo_warp;

typedef struct {
    dpt_bo_hyper hyper;
    dpt_bo_pending pending;
    int fantasies;        /* SAMPLED: outcomes drawn per hyperparameter sample (S x this <= 64) */
    int n_initial;        /* below this many observations, propose the next Sobol point */
    int restarts;         /* MAP: optimizer starts (the first from a fixed default) */
    int burn_in;          /* SLICE: sweeps discarded after starting from the MAP estimate */
    int samples;          /* SLICE: hyperparameter samples EI is averaged over (one per sweep) */
    int candidates;       /* Sobol candidates scored by EI before local optimization */
    int local_starts;     /* best candidates refined by L-BFGS on EI */
    dpt_bo_warp warp;     /* output transform */
    /* Restarts (TuRBO's, Eriksson et al. 2019, without its trust region; see find_phases in
     * gp.c): once converged_count observations of the current phase lie within
     * converged_radius sqrt(dim) of its best, up to polish_max proposals polish that best inside
     * a box of that half-width, then a new phase starts from restart_design uniform random
     * points and models its own observations only. converged_count 0: one phase, no polish. */
    int converged_count;     /* K */
    double converged_radius; /* per sqrt(dim): random points' distances grow like sqrt(dim) */
    int polish_max;          /* at most this many polishing proposals per phase */
    int restart_design;      /* uniform random points that begin a new phase */
} dpt_bo_opts;

void dpt_bo_opts_default(dpt_bo_opts *o);

/* Proposes the next point to evaluate, out (dim) in [0,1]^dim, given the finished trials X (n,
 * dim) in [0,1]^dim with values y (n) to minimize and the pending trials (m, dim) still running.
 * The same arguments and seed give the same point; callers pass a fresh seed per proposal.
 * Returns 0, or -1 on bad arguments or allocation failure (out then holds a Sobol point). */
int dpt_bo_propose(const dpt_bo_opts *o, int dim, const double *X, const double *y, int n,
                   const double *pending, int m, uint64_t seed, double *out);

/* The same, with nbad points Xbad (nbad, dim) where the objective could not be measured
 * (diverged or failed trials): they do not enter the objective's GP; a classifier of them
 * against X (dpt_gpc_fit) gives P(feasible), the acquisition is log EI + log P(feasible), and
 * no point (nor a restart's random design point) is proposed where P(feasible) is below what
 * the classifier says far from every trial (at most 0.9): see gp.c. nbad = 0 is dpt_bo_propose,
 * bit for bit. */
int dpt_bo_propose_feasible(const dpt_bo_opts *o, int dim, const double *X, const double *y,
                            int n, const double *Xbad, int nbad, const double *pending, int m,
                            uint64_t seed, double *out);

/* What a proposal may know besides the objective's observations. */
typedef struct {
    const double *Xbad;  /* (nbad, dim) diverged or failed: the feasibility classifier */
    int nbad;
    const double *Xcost; /* (ncost, dim) trials whose wall time is known ... */
    const double *log_s; /* (ncost) ... its log seconds: EI per second */
    int ncost;           /* below 2: plain EI */
    /* 1: the last of the dim inputs is a fidelity s in [0, 1] (asha's epochs, as in
     * multi-fidelity BO: the GP learns how values at low s relate to s = 1); every proposal has
     * s = 1, the incumbent is the best observation at s = 1 (any s while none is), and phases
     * (restarts) are off. Xbad, Xcost and pending rows carry an s too. */
    int fidelity;
} dpt_bo_side;

/* dpt_bo_propose_feasible, and with ncost >= 2 cost-aware (Spearmint's EI per second, Snoek,
 * Larochelle & Adams 2012, section 3.2): a second GP (MAP, standardized) on the log seconds of
 * the trials, and the acquisition log EI (+ log P(feasible)) - mu_t(x), mu_t its posterior mean
 * of log seconds: EI divided by the predicted (median) time. side may be NULL. */
int dpt_bo_propose_side(const dpt_bo_opts *o, int dim, const double *X, const double *y, int n,
                        const dpt_bo_side *side, const double *pending, int m, uint64_t seed,
                        double *out);

#endif
