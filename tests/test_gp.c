/* Tests of src/gp.c and src/objective.c: the GP posterior against small cases worked out here by
 * explicit 2x2 and 3x3 algebra, EI against numerical integration and its sd -> 0 limit, the
 * kernel's symmetry and positive definiteness, analytic gradients (log marginal likelihood,
 * posterior, EI) against central finite differences, the Sobol design, the objectives at their
 * known minima, the feasibility classifier (separable and noisy cases, its evidence's gradient)
 * and the proposal loop: in the cube, aware of pending points, kept out of a diverged region,
 * better on Branin than random search can plausibly be, polishing a converged minimum and
 * restarting after it. */
#include <criterion/criterion.h>

#include <lapacke.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "gp.h"
#include "objective.h"
#include "rng.h"

/* Matern 5/2 written out again here, not taken from gp.c: amp2 (1 + s + s^2/3) e^-s,
 * s = sqrt(5) r, r^2 = sum_d (a_d - b_d)^2 / ls_d^2. */
static double ref_kernel(int dim, const double *ls, double amp2, const double *a, const double *b)
{
    double r2 = 0.0;
    for (int d = 0; d < dim; d++) r2 += (a[d] - b[d]) * (a[d] - b[d]) / (ls[d] * ls[d]);
    double s = sqrt(5.0 * r2);
    return amp2 * (1.0 + s + s * s / 3.0) * exp(-s);
}

static void make_theta(int dim, const double *ls, double amp2, double noise, double mean,
                       double *theta)
{
    for (int d = 0; d < dim; d++) theta[d] = log(ls[d]);
    theta[DPT_GP_LOG_AMP2(dim)] = log(amp2);
    theta[DPT_GP_LOG_NOISE(dim)] = log(noise);
    theta[DPT_GP_MEAN(dim)] = mean;
}

/* ---- posterior against hand-computed cases ------------------------------------------------ */

Test(gp, posterior_two_points_1d)
{
    /* Two observations in 1-D; K = [[a, b], [b, a]] with a = amp2 + noise, b = k(x1, x2);
     * K^-1 = [[a, -b], [-b, a]] / (a^2 - b^2). */
    const double ls[1] = {0.5}, amp2 = 1.5, noise = 0.01, m = 0.2;
    const double X[2] = {0.1, 0.6}, y[2] = {1.0, -0.5}, xq[1] = {0.3};
    double theta[4];
    make_theta(1, ls, amp2, noise, m, theta);
    double a = amp2 + noise, b = ref_kernel(1, ls, amp2, &X[0], &X[1]);
    double det = a * a - b * b;
    double r0 = y[0] - m, r1 = y[1] - m;
    double al0 = (a * r0 - b * r1) / det, al1 = (-b * r0 + a * r1) / det;
    double k0 = ref_kernel(1, ls, amp2, xq, &X[0]), k1 = ref_kernel(1, ls, amp2, xq, &X[1]);
    double mean_ref = m + k0 * al0 + k1 * al1;
    double var_ref = amp2 - (a * k0 * k0 - 2.0 * b * k0 * k1 + a * k1 * k1) / det;
    /* log marginal likelihood: -1/2 r^T K^-1 r - 1/2 log det K - log 2pi (n = 2) */
    double lml_ref = -0.5 * (r0 * al0 + r1 * al1) - 0.5 * log(det) - log(2.0 * M_PI);

    dpt_gp_t *gp = dpt_gp_init(1, X, y, 2, theta);
    cr_assert_not_null(gp);
    double mean, var;
    dpt_gp_predict(gp, xq, &mean, &var, NULL, NULL);
    /* 1e-12: a 2x2 solve in double loses a few digits at most (cond(K) ~ 10 here) */
    cr_expect(fabs(mean - mean_ref) < 1e-12, "mean %.17g, expected %.17g", mean, mean_ref);
    cr_expect(fabs(var - var_ref) < 1e-12, "var %.17g, expected %.17g", var, var_ref);
    double lml = dpt_gp_log_marginal(1, X, y, 2, theta, NULL);
    cr_expect(fabs(lml - lml_ref) < 1e-12, "lml %.17g, expected %.17g", lml, lml_ref);
    /* at an observation with little noise the posterior nearly interpolates */
    dpt_gp_predict(gp, &X[0], &mean, &var, NULL, NULL);
    cr_expect(fabs(mean - y[0]) < 0.02 && var < 0.011, "mean %g var %g at x1", mean, var);
    dpt_gp_free(gp);
}

/* inverse of a 3x3 matrix by cofactors (adjugate / determinant) */
static void inv3(const double A[3][3], double B[3][3])
{
    double det = A[0][0] * (A[1][1] * A[2][2] - A[1][2] * A[2][1]) -
                 A[0][1] * (A[1][0] * A[2][2] - A[1][2] * A[2][0]) +
                 A[0][2] * (A[1][0] * A[2][1] - A[1][1] * A[2][0]);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            int r0 = (j + 1) % 3, r1 = (j + 2) % 3, c0 = (i + 1) % 3, c1 = (i + 2) % 3;
            B[i][j] = (A[r0][c0] * A[r1][c1] - A[r0][c1] * A[r1][c0]) / det;
        }
}

Test(gp, posterior_three_points_2d_ard)
{
    /* Three observations in 2-D with different lengthscales per dimension (ARD). */
    const double ls[2] = {0.3, 1.2}, amp2 = 0.8, noise = 1e-3, m = -0.4;
    const double X[6] = {0.1, 0.2, 0.7, 0.4, 0.35, 0.9}, y[3] = {0.5, -1.0, 0.25};
    const double xq[2] = {0.45, 0.5};
    double theta[5];
    make_theta(2, ls, amp2, noise, m, theta);
    double K[3][3], Ki[3][3], k[3], al[3], v[3];
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 3; j++)
            K[i][j] = ref_kernel(2, ls, amp2, X + 2 * i, X + 2 * j) + (i == j ? noise : 0.0);
        k[i] = ref_kernel(2, ls, amp2, xq, X + 2 * i);
    }
    inv3(K, Ki);
    double mean_ref = m, quad = 0.0;
    for (int i = 0; i < 3; i++) {
        al[i] = v[i] = 0.0;
        for (int j = 0; j < 3; j++) {
            al[i] += Ki[i][j] * (y[j] - m);
            v[i] += Ki[i][j] * k[j];
        }
        mean_ref += k[i] * al[i];
        quad += k[i] * v[i];
    }
    double var_ref = amp2 - quad;

    dpt_gp_t *gp = dpt_gp_init(2, X, y, 3, theta);
    cr_assert_not_null(gp);
    double mean, var, dm[2], dv[2];
    dpt_gp_predict(gp, xq, &mean, &var, dm, dv);
    /* 1e-10: cond(K) ~ 1e3 here, and the cofactor inverse is itself exact to ~1e-13 */
    cr_expect(fabs(mean - mean_ref) < 1e-10, "mean %.17g, expected %.17g", mean, mean_ref);
    cr_expect(fabs(var - var_ref) < 1e-10, "var %.17g, expected %.17g", var, var_ref);

    /* gradients of mean and variance w.r.t. x against central differences, h = 1e-6:
     * truncation ~h^2 * third derivative (~1e-11), rounding ~1e-16 / h (~1e-10) */
    for (int d = 0; d < 2; d++) {
        double xp[2] = {xq[0], xq[1]}, xm[2] = {xq[0], xq[1]}, mp, vp, mm, vm;
        xp[d] += 1e-6;
        xm[d] -= 1e-6;
        dpt_gp_predict(gp, xp, &mp, &vp, NULL, NULL);
        dpt_gp_predict(gp, xm, &mm, &vm, NULL, NULL);
        double fdm = (mp - mm) / 2e-6, fdv = (vp - vm) / 2e-6;
        cr_expect(fabs(dm[d] - fdm) < 1e-7 * fmax(1.0, fabs(fdm)), "dmean[%d] %g fd %g", d,
                  dm[d], fdm);
        cr_expect(fabs(dv[d] - fdv) < 1e-7 * fmax(1.0, fabs(fdv)), "dvar[%d] %g fd %g", d, dv[d],
                  fdv);
    }
    dpt_gp_free(gp);
}

/* ---- kernel ------------------------------------------------------------------------------- */

Test(gp, kernel_symmetric_positive_definite)
{
    enum { N = 12, D = 3 };
    const double ls[D] = {0.2, 0.5, 2.0};
    double theta[D + 3], X[N * D], K[N * N], Kc[N * N];
    make_theta(D, ls, 1.7, 1e-6, 0.0, theta);
    for (int i = 0; i < N * D; i++) X[i] = dpt_rng_uniform(11, DPT_RNG_SEARCH, (uint64_t)i);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) K[i + j * N] = dpt_gp_kernel(D, theta, X + i * D, X + j * D);
    for (int i = 0; i < N; i++) {
        /* k(x, x) = amp2, the kernel of the written-out formula, symmetric */
        cr_expect(fabs(K[i + i * N] - 1.7) < 1e-15, "k(x,x) = %.17g", K[i + i * N]);
        for (int j = 0; j < N; j++) {
            cr_expect(K[i + j * N] == K[j + i * N], "K not symmetric at (%d, %d)", i, j);
            double r = ref_kernel(D, ls, 1.7, X + i * D, X + j * D);
            cr_expect(fabs(K[i + j * N] - r) < 1e-14, "k %.17g ref %.17g", K[i + j * N], r);
        }
    }
    /* positive definite: the Cholesky of K (no noise added) succeeds with positive pivots */
    memcpy(Kc, K, sizeof K);
    cr_expect_eq(LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', N, Kc, N), 0, "K not positive definite");
    /* and the covariance decays with distance along each axis */
    double a[D] = {0.5, 0.5, 0.5}, b[D] = {0.5, 0.5, 0.5}, prev = 1.7;
    for (int s = 1; s <= 10; s++) {
        b[0] = 0.5 + 0.05 * s;
        double k = dpt_gp_kernel(D, theta, a, b);
        cr_expect(k < prev && k > 0.0, "not decreasing at step %d", s);
        prev = k;
    }
}

/* ---- marginal likelihood gradient ---------------------------------------------------------- */

Test(gp, log_marginal_gradient_matches_finite_differences)
{
    enum { N = 10, D = 3, T = D + 3 };
    double X[N * D], y[N], theta[T], g[T];
    for (int i = 0; i < N * D; i++) X[i] = dpt_rng_uniform(5, DPT_RNG_SEARCH, (uint64_t)i);
    for (int i = 0; i < N; i++)
        y[i] = sin(6.0 * X[i * D]) + X[i * D + 1] * X[i * D + 2] - 0.3;
    const double ls[D] = {0.4, 0.9, 0.25};
    make_theta(D, ls, 1.3, 0.02, 0.1, theta);
    double l0 = dpt_gp_log_marginal(D, X, y, N, theta, g);
    cr_assert(isfinite(l0));
    /* central differences with h = 1e-5 in log space: truncation ~h^2 (1e-10), rounding
     * ~1e-16 |lml| / h (1e-10); tolerance 1e-6 relative leaves a wide margin */
    for (int t = 0; t < T; t++) {
        double tp[T], tm[T];
        memcpy(tp, theta, sizeof tp);
        memcpy(tm, theta, sizeof tm);
        tp[t] += 1e-5;
        tm[t] -= 1e-5;
        double fd = (dpt_gp_log_marginal(D, X, y, N, tp, NULL) -
                     dpt_gp_log_marginal(D, X, y, N, tm, NULL)) / 2e-5;
        cr_expect(fabs(g[t] - fd) < 1e-6 * fmax(1.0, fabs(fd)), "theta[%d]: grad %.10g fd %.10g",
                  t, g[t], fd);
    }
}

/* ---- Expected Improvement ------------------------------------------------------------------ */

/* EI = E[max(best - f, 0)], f ~ N(mean, sd^2), by composite Simpson over mean +- 12 sd */
static double ei_by_quadrature(double mean, double sd, double best)
{
    const int n = 20000;
    double a = mean - 12.0 * sd, h = 24.0 * sd / n, s = 0.0;
    for (int i = 0; i <= n; i++) {
        double f = a + i * h, z = (f - mean) / sd;
        double v = fmax(best - f, 0.0) * exp(-0.5 * z * z) / (sd * sqrt(2.0 * M_PI));
        s += v * (i == 0 || i == n ? 1.0 : i % 2 ? 4.0 : 2.0);
    }
    return s * h / 3.0;
}

Test(gp, ei_closed_form)
{
    const double cases[][3] = {{0.3, 0.5, 0.1}, {-0.2, 0.1, 0.0}, {1.0, 2.0, 1.0},
                               {0.0, 0.05, 0.4}, {2.0, 0.3, 0.0}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        double mean = cases[c][0], sd = cases[c][1], best = cases[c][2], dm, ds;
        double ei = dpt_gp_ei(mean, sd, best, &dm, &ds);
        double q = ei_by_quadrature(mean, sd, best);
        /* Simpson with 20000 panels is exact to ~1e-12 away from the kink at f = best, which
         * costs O(h^2) ~ 1e-9 sd; 1e-8 covers both */
        cr_expect(fabs(ei - q) < 1e-8, "case %zu: ei %.15g quadrature %.15g", c, ei, q);
        /* the partial derivatives -Phi(z) and phi(z) against central differences */
        double fdm = (dpt_gp_ei(mean + 1e-6, sd, best, NULL, NULL) -
                      dpt_gp_ei(mean - 1e-6, sd, best, NULL, NULL)) / 2e-6;
        double fds = (dpt_gp_ei(mean, sd + 1e-6, best, NULL, NULL) -
                      dpt_gp_ei(mean, sd - 1e-6, best, NULL, NULL)) / 2e-6;
        cr_expect(fabs(dm - fdm) < 1e-7 && fabs(ds - fds) < 1e-7, "case %zu: d %g %g fd %g %g",
                  c, dm, ds, fdm, fds);
    }
    /* sd -> 0: EI -> max(best - mean, 0), continuously */
    cr_expect_eq(dpt_gp_ei(0.2, 0.0, 0.5, NULL, NULL), 0.3 + 0.0 * 0.5 - 0.0);
    cr_expect_eq(dpt_gp_ei(0.7, 0.0, 0.5, NULL, NULL), 0.0);
    cr_expect(fabs(dpt_gp_ei(0.2, 1e-9, 0.5, NULL, NULL) - 0.3) < 1e-15);
    cr_expect(dpt_gp_ei(0.7, 1e-9, 0.5, NULL, NULL) == 0.0);
    /* at mean = best EI is sd phi(0) for every sd, also tiny ones */
    for (double sd = 1.0; sd > 1e-12; sd /= 10.0)
        cr_expect(fabs(dpt_gp_ei(0.5, sd, 0.5, NULL, NULL) - sd * 0.3989422804014327) <
                      1e-15 * fmax(sd, 1e-300) + 1e-300,
                  "sd %g", sd);
    /* EI increases with sd and decreases with the mean */
    cr_expect(dpt_gp_ei(0.3, 0.6, 0.1, NULL, NULL) > dpt_gp_ei(0.3, 0.5, 0.1, NULL, NULL));
    cr_expect(dpt_gp_ei(0.4, 0.5, 0.1, NULL, NULL) < dpt_gp_ei(0.3, 0.5, 0.1, NULL, NULL));
}

/* log EI against log of the closed form where EI is still representable, and its partial
 * derivatives against central differences of itself */
Test(gp, log_ei_closed_form)
{
    const double sd = 0.7, best = 0.1;
    for (double z = -8.0; z <= 5.0; z += 0.25) {
        double mean = best - z * sd, dm, ds;
        double l = dpt_gp_log_ei(mean, sd, best, &dm, &ds);
        double ref = log(dpt_gp_ei(mean, sd, best, NULL, NULL));
        /* at z = -8 the closed form cancels two terms 60x larger than EI: ~1e-14 relative */
        cr_expect(fabs(l - ref) < 1e-10, "z %g: log_ei %.15g log(ei) %.15g", z, l, ref);
        double e = 1e-6;
        double fdm = (dpt_gp_log_ei(mean + e, sd, best, NULL, NULL) -
                      dpt_gp_log_ei(mean - e, sd, best, NULL, NULL)) / (2 * e);
        double fds = (dpt_gp_log_ei(mean, sd + e, best, NULL, NULL) -
                      dpt_gp_log_ei(mean, sd - e, best, NULL, NULL)) / (2 * e);
        /* central differences: O(e^2) times the third derivative, ~z^3 here: 1e-6 relative */
        cr_expect(fabs(dm - fdm) < 1e-6 * (1 + fabs(dm)) && fabs(ds - fds) < 1e-6 * (1 + fabs(ds)),
                  "z %g: d %g %g fd %g %g", z, dm, ds, fdm, fds);
    }
    /* sd -> 0: log max(best - mean, 0) */
    cr_expect(fabs(dpt_gp_log_ei(0.2, 0.0, 0.5, NULL, NULL) - log(0.3)) < 1e-15);
    cr_expect(isinf(dpt_gp_log_ei(0.7, 0.0, 0.5, NULL, NULL)));
}

/* Far below the incumbent EI underflows (with a zero gradient); LogEI follows the asymptotic
 * form log sd - z^2/2 - log(2 pi)/2 - 2 log|z| + log(1 - 3/z^2 + ...) with a finite, non-zero
 * gradient, and is continuous where its computation changes (z = -1, z = -30). */
Test(gp, log_ei_far_below_incumbent)
{
    const double sd = 0.5, best = 0.0;
    cr_expect(dpt_gp_ei(best + 40.0 * sd, sd, best, NULL, NULL) == 0.0);
    for (double z = -40.0; z >= -4000.0; z *= 10.0) {
        double mean = best - z * sd, dm, ds;
        double l = dpt_gp_log_ei(mean, sd, best, &dm, &ds);
        double asym = log(sd) - 0.5 * z * z - 0.5 * log(2.0 * M_PI) - 2.0 * log(fabs(z));
        /* the first correction is log(1 - 3/z^2) ~ -3/z^2; the next is 15/z^4 - (3/z^2)^2/2 */
        double corr = l - asym;
        /* plus the rounding of a value of size z^2/2 */
        double tol = 20.0 / (z * z * z * z) + 4e-16 * fabs(asym);
        cr_expect(isfinite(l) && fabs(corr + 3.0 / (z * z)) < tol,
                  "z %g: log_ei %.15g asymptotic %.15g", z, l, asym);
        /* d/dmean of the asymptotic form: (z + 2/z + O(z^-3)) / sd, pointing back up */
        cr_expect(isfinite(dm) && dm < 0.0 &&
                      fabs(dm - (z + 2.0 / z) / sd) < 20.0 / (fabs(z * z * z) * sd),
                  "z %g: dmean %.15g expected %.15g", z, dm, (z + 2.0 / z) / sd);
        cr_expect(isfinite(ds) && ds > 0.0, "z %g: dsd %g", z, ds);
    }
    /* at z = -40 the derivatives against central differences of LogEI itself */
    double mean = best + 40.0 * sd, e = 1e-5, dm, ds;
    dpt_gp_log_ei(mean, sd, best, &dm, &ds);
    double fdm = (dpt_gp_log_ei(mean + e, sd, best, NULL, NULL) -
                  dpt_gp_log_ei(mean - e, sd, best, NULL, NULL)) / (2 * e);
    double fds = (dpt_gp_log_ei(mean, sd + e, best, NULL, NULL) -
                  dpt_gp_log_ei(mean, sd - e, best, NULL, NULL)) / (2 * e);
    cr_expect(fabs(dm - fdm) < 1e-5 * fabs(dm) && fabs(ds - fds) < 1e-5 * fabs(ds),
              "d %g %g fd %g %g", dm, ds, fdm, fds);
    /* continuity where the computation switches: the jump is below the methods' error (1e-9) */
    const double edges[] = {-1.0, -30.0};
    for (int k = 0; k < 2; k++) {
        double a = dpt_gp_log_ei(best - (edges[k] + 1e-12) * sd, sd, best, NULL, NULL);
        double b = dpt_gp_log_ei(best - (edges[k] - 1e-12) * sd, sd, best, NULL, NULL);
        cr_expect(fabs(a - b) < 1e-8, "z %g: %.15g vs %.15g", edges[k], a, b);
    }
}

/* d log P(feasible) / dx against central differences at x */
static void expect_feasible_gradient(dpt_gpc_t *g, const double *x)
{
    double gr[2], e = 1e-6;
    dpt_gpc_log_feasible(g, x, gr);
    for (int d = 0; d < 2; d++) {
        double xp[2] = {x[0], x[1]}, xm[2] = {x[0], x[1]};
        xp[d] += e;
        xm[d] -= e;
        double fd = (dpt_gpc_log_feasible(g, xp, NULL) - dpt_gpc_log_feasible(g, xm, NULL)) / (2 * e);
        cr_expect(fabs(gr[d] - fd) < 1e-5 * (1 + fabs(fd)), "at (%g, %g) d%d: %g fd %g", x[0],
                  x[1], d, gr[d], fd);
    }
}

/* The feasibility classifier on a separable case: results on one side of u0 = 0.5 in 2-D,
 * divergences on the other. P(feasible) must be high deep on the good side, low deep on the
 * bad side, in between near the boundary, and its gradient must match central differences. */
Test(gp, feasibility_classifier_separable)
{
    enum { N = 24 };
    double ok[2 * N], bad[2 * N];
    int nok = 0, nbad = 0;
    for (int i = 0; i < N; i++) {
        double u[2];
        dpt_gp_sobol(2, (uint64_t)i, 1, 7, u);
        double *dst = u[0] < 0.5 ? ok + 2 * nok++ : bad + 2 * nbad++;
        dst[0] = u[0];
        dst[1] = u[1];
    }
    cr_assert(nok >= 8 && nbad >= 8, "design: %d ok, %d bad", nok, nbad);
    dpt_gpc_t *g = dpt_gpc_fit(2, ok, nok, bad, nbad, NULL);
    cr_assert(g != NULL);
    for (double v = 0.1; v < 1.0; v += 0.2) {
        double good[2] = {0.1, v}, poor[2] = {0.9, v}, mid[2] = {0.5, v};
        double pg = exp(dpt_gpc_log_feasible(g, good, NULL));
        double pb = exp(dpt_gpc_log_feasible(g, poor, NULL));
        double pm = exp(dpt_gpc_log_feasible(g, mid, NULL));
        cr_expect(pg > 0.8, "P(feasible) at (0.1, %g) = %g", v, pg);
        cr_expect(pb < 0.2, "P(feasible) at (0.9, %g) = %g", v, pb);
        cr_expect(pg > pm && pm > pb, "not monotone across the boundary at u1 = %g", v);
    }
    expect_feasible_gradient(g, (double[]){0.55, 0.4});
    expect_feasible_gradient(g, (double[]){0.2, 0.7});
    dpt_gpc_free(g);
}

/* A noisy, non-separable case: the divergent region is the corner u0 > 0.6, u1 < 0.4, and 15% of
 * the 80 labels (drawn with a fixed seed) are flipped, so no boundary separates them. The
 * classifier must not chase the flipped labels: on a 20 x 20 grid its decision (P > 1/2)
 * agrees with the true region at 85% of the points or more, P is low in the corner and high
 * opposite, and on average it says "feasible" at the good-side points whose label was flipped.
 * Also the Laplace evidence's gradient (Algorithm 5.1, which includes how the mode moves with
 * theta) against central differences. */
Test(gp, feasibility_classifier_noisy)
{
    enum { N = 80 };
    double X[2 * N], t[N], ok[2 * N], bad[2 * N];
    int nok = 0, nbad = 0;
    for (int i = 0; i < N; i++) {
        dpt_gp_sobol(2, (uint64_t)i, 1, 11, X + 2 * i);
        int in = X[2 * i] > 0.6 && X[2 * i + 1] < 0.4;
        int flip = dpt_rng_uniform(5, DPT_RNG_SEARCH, (uint64_t)i) < 0.15;
        t[i] = (in ^ flip) ? -1.0 : 1.0;
        double *dst = t[i] > 0 ? ok + 2 * nok++ : bad + 2 * nbad++;
        dst[0] = X[2 * i];
        dst[1] = X[2 * i + 1];
    }
    double th[DPT_GPC_NTHETA(2)];
    dpt_gpc_t *g = dpt_gpc_fit(2, ok, nok, bad, nbad, th);
    cr_assert(g != NULL);
    int agree = 0, nflip = 0;
    for (int i = 0; i < 20; i++)
        for (int j = 0; j < 20; j++) {
            double u[2] = {(i + 0.5) / 20, (j + 0.5) / 20};
            int in = u[0] > 0.6 && u[1] < 0.4;
            agree += (dpt_gpc_log_feasible(g, u, NULL) > log(0.5)) == !in;
        }
    double pflip = 0.0;
    for (int i = 0; i < N; i++)
        if (t[i] < 0 && !(X[2 * i] > 0.6 && X[2 * i + 1] < 0.4)) {
            pflip += exp(dpt_gpc_log_feasible(g, X + 2 * i, NULL));
            nflip++;
        }
    cr_assert(nflip >= 3, "only %d flipped labels on the good side", nflip);
    double pin = exp(dpt_gpc_log_feasible(g, (double[]){0.85, 0.15}, NULL));
    double pout = exp(dpt_gpc_log_feasible(g, (double[]){0.15, 0.85}, NULL));
    cr_expect(agree >= 340, "decision agrees with the true region at %d of 400 grid points", agree);
    cr_expect(pin < 0.3, "P(feasible) in the corner: %g", pin);
    cr_expect(pout > 0.7, "P(feasible) opposite: %g", pout);
    cr_expect(pflip / nflip > 0.5, "flipped labels chased: mean P %g over %d", pflip / nflip,
              nflip);
    expect_feasible_gradient(g, (double[]){0.62, 0.41});
    expect_feasible_gradient(g, (double[]){0.3, 0.3});

    double gr[DPT_GPC_NTHETA(2)], e = 1e-5;
    const double at[2][DPT_GPC_NTHETA(2)] = {{log(0.3), log(0.2), log(4.0), 0.0},
                                             {log(0.1), log(0.5), log(20.0), 1.3}};
    for (int c = 0; c < 2; c++) {
        double l = dpt_gpc_log_evidence(2, X, t, N, at[c], gr);
        cr_assert(isfinite(l));
        for (int p = 0; p < DPT_GPC_NTHETA(2); p++) {
            double tp[DPT_GPC_NTHETA(2)], tm[DPT_GPC_NTHETA(2)];
            memcpy(tp, at[c], sizeof tp);
            memcpy(tm, at[c], sizeof tm);
            tp[p] += e;
            tm[p] -= e;
            double fd = (dpt_gpc_log_evidence(2, X, t, N, tp, NULL) -
                         dpt_gpc_log_evidence(2, X, t, N, tm, NULL)) / (2 * e);
            cr_expect(fabs(gr[p] - fd) < 1e-4 * (1 + fabs(fd)), "theta %d case %d: %g fd %g", p,
                      c, gr[p], fd);
        }
    }
    dpt_gpc_free(g);
}

/* ---- Sobol and objectives ------------------------------------------------------------------ */

Test(gp, sobol_stratifies_each_axis)
{
    /* The first 2^k points of a Sobol sequence, digitally shifted or not, put exactly one point
     * in each of the 2^k equal intervals of every axis. */
    enum { D = 21, P = 256 };
    static double pts[P * D];
    for (uint64_t seed = 0; seed < 3; seed++) {
        dpt_gp_sobol(D, 0, P, seed, pts);
        for (int d = 0; d < D; d++) {
            int count[P] = {0};
            for (int p = 0; p < P; p++) {
                double v = pts[p * D + d];
                cr_assert(v > 0.0 && v < 1.0);
                count[(int)(v * P)]++;
            }
            for (int b = 0; b < P; b++)
                cr_expect_eq(count[b], 1, "seed %d dim %d interval %d: %d points", (int)seed, d,
                             b, count[b]);
        }
    }
    /* unshifted, point 1 is the centre in every dimension (m_1 = 1 for all) */
    dpt_gp_sobol(D, 1, 1, 0, pts);
    for (int d = 0; d < D; d++) cr_expect(fabs(pts[d] - 0.5) < 1e-9);
}

Test(objective, known_minima)
{
    const double pi = 3.14159265358979323846;
    const double bx[3][2] = {{-pi, 12.275}, {pi, 2.275}, {9.42478, 2.475}};
    for (int i = 0; i < 3; i++) {
        double u[2] = {(bx[i][0] + 5.0) / 15.0, bx[i][1] / 15.0};
        double f = dpt_objective_branin(u);
        /* the published minimizers have 4-6 digits, so f is the minimum to ~1e-6 */
        cr_expect(fabs(f - DPT_OBJECTIVE_BRANIN_MIN) < 1e-5, "branin minimum %d: %.10g", i, f);
    }
    const double hx[6] = {0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573};
    double f = dpt_objective_hartmann6(hx);
    cr_expect(fabs(f - DPT_OBJECTIVE_HARTMANN6_MIN) < 1e-5, "hartmann6 minimum: %.10g", f);
    double c[6] = {0.5, 0.5, 0.5, 0.5, 0.5, 0.5};
    cr_expect(dpt_objective_hartmann6(c) > DPT_OBJECTIVE_HARTMANN6_MIN + 0.1);
    dpt_objective_kind k;
    cr_expect_eq(dpt_objective_parse("hartmann6", &k), 0);
    cr_expect_eq(k, DPT_OBJECTIVE_HARTMANN6);
    cr_expect_eq(dpt_objective_dim(k), 6);
    cr_expect_eq(dpt_objective_parse("rosenbrock", &k), -1);
}

/* ---- proposals ------------------------------------------------------------------------------ */

static void random_points(int n, int dim, uint64_t seed, double *X)
{
    for (int i = 0; i < n * dim; i++) X[i] = dpt_rng_uniform(seed, DPT_RNG_SEARCH, (uint64_t)i);
}

Test(bo, proposal_stays_in_the_cube)
{
    enum { N = 12, D = 6 };
    double X[N * D], y[N], out[D];
    dpt_bo_opts o;
    dpt_bo_opts_default(&o);
    for (uint64_t seed = 1; seed <= 4; seed++) {
        random_points(N, D, seed, X);
        /* put the best points on faces and corners of the cube, where EI pulls outward */
        for (int d = 0; d < D; d++) X[d] = d % 2 ? 1.0 : 0.0;
        for (int d = 0; d < D; d++) X[D + d] = 1.0;
        for (int i = 0; i < N; i++) y[i] = dpt_objective_hartmann6(X + i * D);
        y[0] = -5.0;
        y[1] = -4.0;
        o.hyper = seed % 2 ? DPT_BO_HYPER_MAP : DPT_BO_HYPER_SLICE;
        cr_assert_eq(dpt_bo_propose(&o, D, X, y, N, NULL, 0, seed, out), 0);
        for (int d = 0; d < D; d++)
            cr_expect(out[d] >= 0.0 && out[d] <= 1.0, "seed %d: out[%d] = %g", (int)seed, d,
                      out[d]);
    }
}

Test(bo, pending_point_changes_the_proposal)
{
    enum { N = 10, D = 2 };
    double X[N * D], y[N], p1[D], p2[D], p1b[D];
    dpt_bo_opts o;
    dpt_bo_opts_default(&o);
    random_points(N, D, 3, X);
    for (int i = 0; i < N; i++) y[i] = dpt_objective_branin(X + i * D);
    const dpt_bo_pending modes[] = {DPT_BO_PENDING_BELIEVER, DPT_BO_PENDING_LIAR,
                                    DPT_BO_PENDING_SAMPLED};
    for (int pend = 0; pend < 3; pend++) {
        o.pending = modes[pend];
        cr_assert_eq(dpt_bo_propose(&o, D, X, y, N, NULL, 0, 42, p1), 0);
        cr_assert_eq(dpt_bo_propose(&o, D, X, y, N, NULL, 0, 42, p1b), 0);
        cr_assert_eq(dpt_bo_propose(&o, D, X, y, N, p1, 1, 42, p2), 0);
        /* deterministic for the same arguments */
        cr_expect(p1[0] == p1b[0] && p1[1] == p1b[1], "not reproducible");
        /* with p1 pending, its fantasized value leaves (almost) no improvement to expect at
         * p1, so the second proposal must move away from it, not just jitter: 0.01 of the cube */
        double dist = hypot(p2[0] - p1[0], p2[1] - p1[1]);
        cr_expect(dist > 0.01, "pending mode %d: second proposal %g away from the first", pend,
                  dist);
    }
}

/* EI per second on a hand-built history where the objective depends on x1 alone and a trial's
 * time grows 20-fold along x0 (log seconds 3 x0): EI is indifferent to x0, so plain EI proposes
 * wherever its candidates fall along it, while EI per second must go to the cheap edge and still
 * where the objective improves. */
Test(bo, ei_per_second_proposes_cheaper_points)
{
    enum { N = 12, D = 2, SEEDS = 6 };
    double X[N * D], y[N], log_s[N], out[D];
    dpt_bo_opts o;
    dpt_bo_opts_default(&o);
    double cost_ei = 0.0, cost_eps = 0.0;
    for (uint64_t seed = 1; seed <= SEEDS; seed++) {
        random_points(N, D, 100 + seed, X);
        for (int i = 0; i < N; i++) {
            y[i] = (X[i * D + 1] - 0.3) * (X[i * D + 1] - 0.3);
            log_s[i] = 3.0 * X[i * D];
        }
        cr_assert_eq(dpt_bo_propose(&o, D, X, y, N, NULL, 0, seed, out), 0);
        cost_ei += exp(3.0 * out[0]) / SEEDS;
        dpt_bo_side side = {NULL, 0, X, log_s, N, 0};
        cr_assert_eq(dpt_bo_propose_side(&o, D, X, y, N, &side, NULL, 0, seed, out), 0);
        cost_eps += exp(3.0 * out[0]) / SEEDS;
        /* cheap: the lowest fifth of x0 is at most 1.8x the cheapest time */
        cr_expect(out[0] < 0.2, "seed %d: EI per second proposed x0 = %g", (int)seed, out[0]);
        /* and still useful: near the objective's minimum line x1 = 0.3 */
        cr_expect(fabs(out[1] - 0.3) < 0.15, "seed %d: EI per second proposed x1 = %g",
                  (int)seed, out[1]);
    }
    /* over the seeds, at least 2x cheaper than plain EI's proposals (uniform x0 averages 6.4) */
    cr_expect(cost_eps < 0.5 * cost_ei, "mean time: EI per second %g, EI %g", cost_eps, cost_ei);
}

/* The fidelity input (asha's epochs, early_stopping.fidelity: gp): f(x, s) = s (x - 0.3)^2 +
 * (1 - s) (x - 0.8)^2, whose minimum moves from x = 0.8 at the lowest fidelity to 0.3 at the
 * highest. Most observations are at s = 0, a few at s = 0.5 and 1 (as a rung's values outnumber
 * the completed trials'). Every proposal must be at s = 1 exactly and near the full-fidelity
 * minimum, not the low-fidelity one that most rows point to. */
Test(bo, fidelity_input_proposes_at_full_fidelity)
{
    enum { D = 2 };
    double X[40 * D], y[40], out[D];
    int n = 0;
    const double xs0[] = {0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0};
    const double xs5[] = {0.2, 0.5, 0.8}, xs1[] = {0.0, 0.5, 0.7, 1.0};
    const struct { const double *x; int k; double s; } sets[] = {{xs0, 11, 0.0}, {xs5, 3, 0.5},
                                                                 {xs1, 4, 1.0}};
    for (int j = 0; j < 3; j++)
        for (int i = 0; i < sets[j].k; i++, n++) {
            double x = sets[j].x[i], s = sets[j].s;
            X[n * D] = x;
            X[n * D + 1] = s;
            y[n] = s * (x - 0.3) * (x - 0.3) + (1 - s) * (x - 0.8) * (x - 0.8);
        }
    dpt_bo_opts o;
    dpt_bo_opts_default(&o);
    dpt_bo_side side = {NULL, 0, NULL, NULL, 0, 1};
    const double pending[D] = {0.45, 1.0};
    for (uint64_t seed = 1; seed <= 4; seed++)
        for (int m = 0; m <= 1; m++) {
            cr_assert_eq(dpt_bo_propose_side(&o, D, X, y, n, &side, m ? pending : NULL, m, seed,
                                             out), 0);
            cr_expect(out[1] == 1.0, "seed %d: proposed at fidelity %g", (int)seed, out[1]);
            cr_expect(fabs(out[0] - 0.3) < 0.2, "seed %d, %d pending: proposed x = %g (the "
                      "low-fidelity minimum is 0.8)", (int)seed, m, out[0]);
        }
}

/* How far x lies inside the corner u0 > 0.6, u1 < 0.4 (0 outside) */
static double corner_depth(const double *x)
{
    return fmax(fmin(x[0] - 0.6, 0.4 - x[1]), 0.0);
}

/* The feasibility model where EI pulls into the region that diverges: the objective falls toward
 * the corner (1, 0), and of 30 random trials those in the corner u0 > 0.6, u1 < 0.4 diverged.
 * Plain EI on the results alone proposes deep in the corner. With the diverged points the
 * classifier's floor must keep the proposals out of it: the constrained minimum lies on the
 * corner's edge, so a proposal may sit on the edge (the classifier's contour runs between
 * results and divergences), but none deeper than 0.1 and none within 0.1 of a diverged point.
 * (log EI + log P alone goes deep: LogEI's gain toward the corner outweighs what log P takes
 * away; docs/search.md.) */
Test(bo, feasibility_keeps_proposals_out_of_the_diverged_corner)
{
    enum { N = 30, D = 2, SEEDS = 12 };
    double X[N * D], Xok[N * D], Xbad[N * D], y[N], out[D];
    dpt_bo_opts o;
    dpt_bo_opts_default(&o);
    int deep_plain = 0, used = 0;
    for (uint64_t seed = 1; seed <= SEEDS; seed++) {
        random_points(N, D, 200 + seed, X);
        int nok = 0, nbad = 0;
        for (int i = 0; i < N; i++) {
            const double *x = X + i * D;
            int bad = corner_depth(x) > 0.0;
            double *dst = bad ? Xbad + D * nbad++ : Xok + D * nok;
            dst[0] = x[0];
            dst[1] = x[1];
            if (!bad) y[nok++] = (1 - x[0]) * (1 - x[0]) + x[1] * x[1];
        }
        if (nbad < 2) continue; /* the corner got fewer than two of the random points */
        used++;
        cr_assert_eq(dpt_bo_propose(&o, D, Xok, y, nok, NULL, 0, seed, out), 0);
        deep_plain += corner_depth(out) > 0.2;
        cr_assert_eq(dpt_bo_propose_feasible(&o, D, Xok, y, nok, Xbad, nbad, NULL, 0, seed, out),
                     0);
        cr_expect(corner_depth(out) < 0.1, "seed %d (%d diverged): proposed (%g, %g)", (int)seed,
                  nbad, out[0], out[1]);
        for (int i = 0; i < nbad; i++)
            cr_expect(hypot(out[0] - Xbad[D * i], out[1] - Xbad[D * i + 1]) > 0.1,
                      "seed %d: proposed (%g, %g) next to the diverged (%g, %g)", (int)seed,
                      out[0], out[1], Xbad[D * i], Xbad[D * i + 1]);
    }
    cr_assert(used >= 10, "only %d usable seeds", used);
    cr_expect(deep_plain >= used / 2, "plain EI went deep into the corner for %d of %d seeds only",
              deep_plain, used);
}

/* A search polishing an incumbent on the edge of a region that diverges (the history of
 * `dptrain search configs/branin.yaml` with objective.diverge_corner, feasibility model, seed 100,
 * before trial 22, in the unit square: x1 > 5 and x2 < 5 diverge, u0 > 2/3 and u1 < 1/3). Its
 * last results walk down u1 at u0 = 1 toward the region, where Branin's third minimum lies, and
 * every polishing candidate around the incumbent (1, 0.337) is below the classifier's floor.
 * Dropping the floor then (log EI + log P alone) sent this proposal and the 19 after it into the
 * region; the whole space's candidates under the floor must keep it out. */
Test(bo, feasibility_floor_holds_when_the_polished_neighbourhood_is_below_it)
{
    static const double ok[][3] = {
        {0.435975, 0.940540, 115.408264}, {0.758119, 0.489680, 58.519103},
        {0.166191, 0.046977, 104.227978}, {0.164272, 0.018044, 114.384364},
        {0.887047, 0.751807, 97.667054},  {0.927487, 0.400350, 17.065307},
        {1.000000, 0.426875, 13.504252},  {1.000000, 0.398403, 10.782425},
        {1.000000, 0.381784, 9.362246},   {1.000000, 0.368993, 8.353827},
        {0.000000, 0.508024, 104.251243}, {1.000000, 0.365612, 8.099610},
        {1.000000, 0.357229, 7.491396},   {1.000000, 0.349857, 6.982687},
        {1.000000, 0.343202, 6.544481},   {1.000000, 0.337067, 6.158169},
        {0.971716, 0.365351, 8.772640}};
    static const double bad[][2] = {
        {1.000000, 0.292153}, {0.735553, 0.284197}, {1.000000, 0.331301}, {0.984713, 0.308783}};
    enum { NOK = sizeof ok / sizeof *ok, NBAD = sizeof bad / sizeof *bad, D = 2 };
    double X[NOK * D], y[NOK], Xbad[NBAD * D], out[D];
    for (int i = 0; i < NOK; i++) {
        X[i * D] = ok[i][0];
        X[i * D + 1] = ok[i][1];
        y[i] = ok[i][2];
    }
    for (int i = 0; i < NBAD; i++) {
        Xbad[i * D] = bad[i][0];
        Xbad[i * D + 1] = bad[i][1];
    }
    dpt_bo_opts o;
    dpt_bo_opts_default(&o);
    for (uint64_t seed = 1; seed <= 6; seed++) {
        cr_assert_eq(dpt_bo_propose_feasible(&o, D, X, y, NOK, Xbad, NBAD, NULL, 0, seed, out), 0);
        cr_expect(!(out[0] > 2.0 / 3.0 && out[1] < 1.0 / 3.0),
                  "seed %d: proposed (%g, %g), inside the region that diverges", (int)seed,
                  out[0], out[1]);
    }
}

Test(bo, branin_beats_random_search, .timeout = 60)
{
    /* 25 evaluations (5 uniform random, then 20 proposals) on Branin, for 3 seeds: every run
     * must come within BOUND of the minimum. The chance that pure random search does so is
     * computed below from the fraction p of the square where the regret is below BOUND:
     * 1 - (1 - p)^25. A test that random search passes would not show that the model works. */
    const double BOUND = 0.05;
    enum { BUDGET = 25, INIT = 5, G = 1000 };
    int hits = 0;
    for (int i = 0; i < G; i++)
        for (int j = 0; j < G; j++) {
            double u[2] = {(i + 0.5) / G, (j + 0.5) / G};
            hits += dpt_objective_branin(u) - DPT_OBJECTIVE_BRANIN_MIN < BOUND;
        }
    double p = (double)hits / ((double)G * G);
    double p_random = 1.0 - pow(1.0 - p, BUDGET);
    cr_assert(p_random < 0.1, "bound too loose: random search reaches it with probability %g",
              p_random);

    dpt_bo_opts o;
    dpt_bo_opts_default(&o);
    for (uint64_t seed = 1; seed <= 3; seed++) {
        double X[BUDGET * 2], y[BUDGET], best = INFINITY;
        for (int t = 0; t < BUDGET; t++) {
            if (t < INIT)
                for (int d = 0; d < 2; d++)
                    X[t * 2 + d] = dpt_rng_uniform(seed, DPT_RNG_SEARCH, (uint64_t)(t * 2 + d));
            else
                cr_assert_eq(dpt_bo_propose(&o, 2, X, y, t, NULL, 0, seed * 1000 + t, X + t * 2),
                             0);
            y[t] = dpt_objective_branin(X + t * 2);
            best = fmin(best, y[t]);
        }
        double regret = best - DPT_OBJECTIVE_BRANIN_MIN;
        cr_expect(regret < BOUND, "seed %d: regret %g after %d evaluations (random search: "
                  "P(regret < %g) = %.3g)", (int)seed, regret, BUDGET, BOUND, p_random);
    }
}

/* Hartmann6's global minimizer and a history around it: R uniform random points, then C points
 * at offsets of +-off in every coordinate (sign pattern k) from it, the centre among them. */
static const double H6_ARGMIN[6] = {0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573};

static void cluster_history(int R, int C, double off, uint64_t seed, double *X, double *y)
{
    random_points(R, 6, seed, X);
    for (int k = 0; k < C; k++)
        for (int d = 0; d < 6; d++)
            X[(R + k) * 6 + d] = H6_ARGMIN[d] + (k == 0 ? 0.0 : ((k + d) % 2 ? off : -off));
    for (int i = 0; i < R + C; i++) y[i] = dpt_objective_hartmann6(X + i * 6);
}

Test(bo, restarts_change_nothing_before_a_phase_converges)
{
    /* 3 and 12 random points in 6-D: no 4 of them within 0.049 of the best, so the proposal
     * must be the very one made without restarts (also below the 5 points of a restart's
     * design: that design begins later phases only). */
    enum { D = 6 };
    double X[12 * D], y[12], a[D], b[D];
    dpt_bo_opts o;
    dpt_bo_opts_default(&o);
    random_points(12, D, 9, X);
    for (int i = 0; i < 12; i++) y[i] = dpt_objective_hartmann6(X + i * D);
    for (int n = 3; n <= 12; n += 9) {
        o.converged_count = 4;
        cr_assert_eq(dpt_bo_propose(&o, D, X, y, n, NULL, 0, 11, a), 0);
        o.converged_count = 0;
        cr_assert_eq(dpt_bo_propose(&o, D, X, y, n, NULL, 0, 11, b), 0);
        for (int d = 0; d < D; d++)
            cr_expect(a[d] == b[d], "n %d: coordinate %d %g with restarts, %g without", n, d,
                      a[d], b[d]);
    }
}

Test(bo, converged_phase_polishes_near_its_best)
{
    /* 12 random points, then 4 within 0.02 sqrt(6) = 0.049 of the best (offsets 0.012 in each
     * coordinate: 0.029 away) but not within a tenth of that: the phase has converged and the
     * next proposal polishes, inside the box of half-width 0.049 around the best. Without
     * restarts the same history must send a proposal outside that box, or the check shows
     * nothing. */
    enum { R = 12, C = 4, N = R + C, D = 6 };
    double X[N * D], y[N], out[D];
    dpt_bo_opts o;
    dpt_bo_opts_default(&o);
    cr_assert_eq(o.converged_count, C);
    double box = o.converged_radius * sqrt((double)D);
    int outside_without = 0;
    for (uint64_t seed = 1; seed <= 3; seed++) {
        cluster_history(R, C, 0.012, seed, X, y);
        for (int restarts = 1; restarts >= 0; restarts--) {
            o.converged_count = restarts ? C : 0;
            cr_assert_eq(dpt_bo_propose(&o, D, X, y, N, NULL, 0, seed, out), 0);
            double far = 0.0; /* largest coordinate distance from the best */
            for (int d = 0; d < D; d++) far = fmax(far, fabs(out[d] - X[R * D + d]));
            if (restarts)
                cr_expect(far <= box + 1e-12, "seed %d: polishing proposal %g from the best, "
                          "box %g", (int)seed, far, box);
            else
                outside_without += far > box;
        }
    }
    cr_expect(outside_without > 0, "without restarts every proposal stayed in the box too");
}

Test(bo, new_phase_models_only_its_own_observations)
{
    /* Phase 1: 12 random points, then 4 within a tenth of the radius of the best (offsets
     * 0.001): converged and polished at once, so phase 2 begins; it has 6 random points, more
     * than the 5 of its design, so the GP proposes. Adding 3 to every phase-1 value keeps the
     * phases (the best of phase 1 stays where it is) and must not move the proposal at all;
     * without restarts it does. */
    enum { R = 12, C = 4, P2 = 6, N = R + C + P2, D = 6 };
    double X[N * D], y[N], y2[N], a[D], b[D];
    dpt_bo_opts o;
    dpt_bo_opts_default(&o);
    cr_assert(o.restart_design < P2);
    cluster_history(R, C, 0.001, 5, X, y);
    random_points(P2, D, 6, X + (R + C) * D);
    for (int i = R + C; i < N; i++) y[i] = dpt_objective_hartmann6(X + i * D);
    for (int i = 0; i < N; i++) y2[i] = y[i] + (i < R + C ? 3.0 : 0.0);
    for (int restarts = 1; restarts >= 0; restarts--) {
        o.converged_count = restarts ? C : 0;
        cr_assert_eq(dpt_bo_propose(&o, D, X, y, N, NULL, 0, 77, a), 0);
        cr_assert_eq(dpt_bo_propose(&o, D, X, y2, N, NULL, 0, 77, b), 0);
        double diff = 0.0;
        for (int d = 0; d < D; d++) diff = fmax(diff, fabs(a[d] - b[d]));
        if (restarts)
            cr_expect(diff == 0.0, "phase 1's values moved phase 2's proposal by %g", diff);
        else
            cr_expect(diff > 1e-6, "without restarts phase 1's values should matter (%g)", diff);
    }
}
