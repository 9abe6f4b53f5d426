/* Tests of src/model.c on the CPU backend: backward against central finite differences for every
 * activation and loss (with and without dropout), the dropout mask's statistics and its
 * dependence on the global row only (so N ranks equal one rank), the flat parameter layout, and
 * the initialization (He / Xavier spread, determinism in the seed). */
#include <criterion/criterion.h>

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "model.h"
#include "rng.h"

/* A model, its batch and a dlogits buffer, all in CPU backend (= host) memory. */
typedef struct {
    dpt_backend be;
    dpt_config cfg;
    dpt_model m;
    int rows;        /* B */
    float *x;        /* (B, widths[0]) */
    int32_t *y;      /* (B) */
    float *dlogits;  /* (B, widths[L]) */
} fixture;

static void fixture_init(fixture *f, const int *widths, int n_widths, dpt_activation act,
                         dpt_loss loss, int rows, uint64_t seed)
{
    memset(f, 0, sizeof *f);
    cr_assert_eq(dpt_cpu_backend_init(&f->be, 1), 0);
    dpt_config_defaults(&f->cfg);
    f->cfg.run.seed = seed;
    f->cfg.model.n_layers = n_widths - 1;
    for (int l = 0; l < n_widths; l++)
        f->cfg.model.widths[l] = widths[l];
    f->cfg.model.activation = act;
    f->cfg.model.loss = loss;
    dpt_error err = {0};
    const dpt_model_spec spec = dpt_model_spec_from_config(&f->cfg);
    cr_assert_eq(dpt_model_init(&f->m, &spec, &f->be, rows, &err), DPT_OK, "%s", err.msg);
    f->rows = rows;
    int in = widths[0], out = widths[n_widths - 1];
    f->x = calloc((size_t)rows * in, sizeof(float));
    f->y = calloc((size_t)rows, sizeof(int32_t));
    f->dlogits = calloc((size_t)rows * out, sizeof(float));
    cr_assert(f->x && f->y && f->dlogits);
    /* Inputs N(0,1), labels cycling through the classes, and biases N(0, 0.3^2): init leaves the
     * biases at 0, and a gradient check of biases that all sit at 0 would still pass if the
     * forward ignored them. */
    for (size_t i = 0; i < (size_t)rows * in; i++)
        f->x[i] = dpt_rng_normal(seed + 1000, DPT_RNG_SYNTH_X, i);
    for (int r = 0; r < rows; r++)
        f->y[r] = (r * 7 + 1) % out;
    for (int l = 0; l < f->m.n_layers; l++)
        for (int o = 0; o < f->m.widths[l + 1]; o++)
            f->m.params[f->m.b_off[l] + o] =
                0.3f * dpt_rng_normal(seed + 2000, DPT_RNG_SYNTH_TEACHER, (uint64_t)l * 4096 + o);
}

static void fixture_free(fixture *f)
{
    dpt_model_free(&f->m);
    f->be.destroy(&f->be);
    free(f->x);
    free(f->y);
    free(f->dlogits);
}

/* Mean loss over the batch: forward, then be->loss without dlogits. */
static double mean_loss(fixture *f, const dpt_dropout *drop)
{
    const float *logits = dpt_model_forward(&f->m, f->x, f->rows, drop);
    double loss_sum = 0.0, correct = 0.0;
    f->be.loss(&f->be, logits, f->y, f->rows, f->m.widths[f->m.n_layers], f->m.loss, 0.0f, NULL,
               &loss_sum, &correct);
    return loss_sum / f->rows;
}

/* Analytic gradient of mean_loss into f->m.grads: grad_scale = 1/rows, as a mean over the batch. */
static void backward(fixture *f, const dpt_dropout *drop)
{
    const float *logits = dpt_model_forward(&f->m, f->x, f->rows, drop);
    double loss_sum = 0.0, correct = 0.0;
    f->be.loss(&f->be, logits, f->y, f->rows, f->m.widths[f->m.n_layers], f->m.loss,
               1.0f / (float)f->rows, f->dlogits, &loss_sum, &correct);
    dpt_model_backward(&f->m, f->x, f->dlogits, f->rows, drop, NULL, NULL);
}

/* Signs of every hidden pre-activation of the last forward, packed one per byte. */
static void hidden_signs(const fixture *f, unsigned char *out)
{
    size_t k = 0;
    for (int l = 0; l < f->m.n_layers - 1; l++)
        for (size_t i = 0; i < (size_t)f->rows * f->m.widths[l + 1]; i++)
            out[k++] = f->m.z[l][i] > 0.0f;
}

static size_t hidden_count(const fixture *f)
{
    size_t n = 0;
    for (int l = 0; l < f->m.n_layers - 1; l++)
        n += (size_t)f->rows * f->m.widths[l + 1];
    return n;
}

/* The finite difference. The forward is float32, so the loss carries roundoff of a few float
 * ulps: eps_L ~ 8 * FLT_EPSILON * |L| ~ 1e-6 * |L| (dot products of <= 9 terms per unit, a few
 * layers, the log-sum-exp), and a central difference D(h) = (L(p+h) - L(p-h)) / 2h carries
 * eps_L / h of it. D(h) also has a truncation error h^2/6 * L'''(p), and L''' reaches ~100 here
 * (deep gelu + mse with dropout: weights times 1/(1-p) per layer): ~1.5e-3 at h = 1e-2, as large
 * as the roundoff at h = 1e-3, so no single h keeps both small. Richardson's extrapolation
 * (4 D(h/2) - D(h)) / 3 cancels the h^2 term, leaving O(h^4 L^(5)) ~ 1e-7 at h = 2e-2, at the
 * price of ~(4 * 2 + 1) / 3 = 3x the roundoff of D(h): 3 * 1e-6 |L| / 2e-2 = 1.5e-4 |L|. */
#define FD_H 2e-2
/* |fd - analytic| <= FD_ATOL * max(1, |L|) + FD_RTOL * |analytic|: FD_ATOL is the roundoff bound
 * above (the measured differences are ~10x below it: the four losses' roundoff is mostly common
 * and cancels); FD_RTOL covers the float32 backward itself (a few ulps per op, ~1e-6) with a wide
 * margin. A wrong gradient is off by O(|g|) (a missing factor, a transposed index, a wrong
 * activation derivative or dropout scale); every layer's gradients are required to exceed
 * 3 * FD_ATOL * max(1, |L|), so a layer whose gradient came back zero or halved fails. */
#define FD_ATOL 1.5e-4
#define FD_RTOL 1e-3

typedef struct {
    size_t checked, skipped_kinks, mismatches;
    double loss, max_err, max_err_over_tol, max_abs_grad;
} fd_report;

/* The loss with parameter k set to value (restored afterwards); with relu (s0 != NULL), sets
 * *kink when any hidden pre-activation's sign differs from s0 (recorded at the unperturbed p). */
static double loss_at(fixture *f, const dpt_dropout *drop, size_t k, float value,
                      const unsigned char *s0, unsigned char *s1, size_t nh, int *kink)
{
    float p = f->m.params[k];
    f->m.params[k] = value;
    double l = mean_loss(f, drop);
    if (s0) {
        hidden_signs(f, s1);
        *kink |= memcmp(s0, s1, nh) != 0;
    }
    f->m.params[k] = p;
    return l;
}

/* Central difference of parameter k with step h; the step actually taken (p +- h rounded to
 * float) is measured in double. */
static double central(fixture *f, const dpt_dropout *drop, size_t k, double h,
                      const unsigned char *s0, unsigned char *s1, size_t nh, int *kink)
{
    float p = f->m.params[k];
    float pp = (float)(p + h), pm = (float)(p - h);
    double lp = loss_at(f, drop, k, pp, s0, s1, nh, kink);
    double lm = loss_at(f, drop, k, pm, s0, s1, nh, kink);
    return (lp - lm) / ((double)pp - (double)pm);
}

/* Compares every parameter's analytic gradient (or a random subset of about max_check for
 * larger models) with the extrapolated central difference, under drop (NULL = no dropout).
 * For relu, a parameter whose perturbation flips the sign of any hidden pre-activation (crosses
 * the kink at 0, where the loss is not differentiable and the quotient is meaningless) is
 * skipped; the rest see a loss that is smooth over [p-h, p+h]. */
static fd_report check_gradients(fixture *f, const dpt_dropout *drop, size_t max_check,
                                 const char *what)
{
    dpt_model *m = &f->m;
    size_t n = m->n_params;
    backward(f, drop);
    float *g = malloc(n * sizeof(float));
    cr_assert(g);
    memcpy(g, m->grads, n * sizeof(float));

    int relu = m->act == DPT_ACT_RELU;
    size_t nh = hidden_count(f);
    unsigned char *s0 = malloc(nh + 1), *s1 = malloc(nh + 1);
    cr_assert(s0 && s1);
    fd_report r = {0};
    r.loss = mean_loss(f, drop);
    hidden_signs(f, s0);
    double atol = FD_ATOL * fmax(1.0, fabs(r.loss));

    size_t stride = n <= max_check ? 1 : n / max_check;
    for (size_t k0 = 0; k0 < n; k0 += stride) {
        /* stride > 1: a random parameter in [k0, k0 + stride), so every region is visited */
        size_t k = stride == 1 ? k0 : k0 + dpt_rng_below(99, DPT_RNG_SEARCH, k0, stride);
        if (k >= n)
            break;
        int kink = 0;
        double d1 = central(f, drop, k, FD_H, relu ? s0 : NULL, s1, nh, &kink);
        double d2 = central(f, drop, k, FD_H / 2, relu ? s0 : NULL, s1, nh, &kink);
        if (kink) {
            r.skipped_kinks++;
            continue;
        }
        double fd = (4.0 * d2 - d1) / 3.0;
        double an = g[k];
        double e = fabs(fd - an), tol = atol + FD_RTOL * fabs(an);
        r.checked++;
        if (e > r.max_err) r.max_err = e;
        if (e / tol > r.max_err_over_tol) r.max_err_over_tol = e / tol;
        if (fabs(an) > r.max_abs_grad) r.max_abs_grad = fabs(an);
        if (e > tol && ++r.mismatches <= 5)
            cr_log_error("%s: param %zu: analytic %.6g, finite difference %.6g, |diff| %.3g > "
                         "tol %.3g", what, k, an, fd, e, tol);
    }
    cr_log_info("%s: loss %.4g, %zu params checked, %zu skipped (relu kink), largest |diff| %.3g "
                "(%.2f of its tolerance), largest |grad| %.3g",
                what, r.loss, r.checked, r.skipped_kinks, r.max_err, r.max_err_over_tol,
                r.max_abs_grad);
    free(g);
    free(s0);
    free(s1);

    cr_expect_eq(r.mismatches, 0, "%s: %zu of %zu gradients differ from finite differences "
                 "(largest |diff| %.3g)", what, r.mismatches, r.checked, r.max_err);
    /* Not vacuous: most parameters are checked (few cross a kink). */
    cr_expect_geq(r.checked, (r.checked + r.skipped_kinks) * 8 / 10,
                  "%s: only %zu of %zu parameters checked (the rest crossed a relu kink)", what,
                  r.checked, r.checked + r.skipped_kinks);
    return r;
}

/* Each layer's weights and bias hold gradients above 3 * atol (atol: the comparison's tolerance
 * for a zero analytic value), so a layer whose gradient came back zero or halved would have
 * failed the comparison: the check above cannot pass vacuously for any layer. */
static void expect_every_layer_testable(const fixture *f, double loss, const char *what)
{
    const dpt_model *m = &f->m;
    double atol = FD_ATOL * fmax(1.0, fabs(loss));
    for (int l = 0; l < m->n_layers; l++) {
        double gw = 0.0, gb = 0.0;
        size_t nw = (size_t)m->widths[l + 1] * m->widths[l];
        for (size_t i = 0; i < nw; i++) gw = fmax(gw, fabs(m->grads[m->w_off[l] + i]));
        for (int o = 0; o < m->widths[l + 1]; o++) gb = fmax(gb, fabs(m->grads[m->b_off[l] + o]));
        cr_expect_gt(gw, 3 * atol, "%s: layer %d weight gradients too small to test (max %.3g)",
                     what, l, gw);
        cr_expect_gt(gb, 3 * atol, "%s: layer %d bias gradients too small to test (max %.3g)",
                     what, l, gb);
    }
}

static void run_fd(const int *widths, int n_widths, dpt_activation act, dpt_loss loss, int rows,
                   const dpt_dropout *drop)
{
    char what[128];
    snprintf(what, sizeof what, "%s + %s, %d layers%s", dpt_activation_name(act),
             dpt_loss_name(loss), n_widths - 1, drop ? ", dropout" : "");
    fixture f;
    fixture_init(&f, widths, n_widths, act, loss, rows, 42);
    fd_report r = check_gradients(&f, drop, 4000, what);
    backward(&f, drop);
    expect_every_layer_testable(&f, r.loss, what);
    fixture_free(&f);
}

static const int small[] = {5, 7, 6, 3};        /* 3 weight layers, 111 parameters */
static const int deep[] = {6, 9, 8, 7, 4};      /* 4 weight layers, 254 parameters */

#define FD_SMALL(act_, loss_, ACT, LOSS)                                                         \
    Test(gradients, act_##_##loss_)                                                              \
    {                                                                                            \
        run_fd(small, 4, ACT, LOSS, 4, NULL);                                                    \
    }

FD_SMALL(relu, ce, DPT_ACT_RELU, DPT_LOSS_SOFTMAX_CE)
FD_SMALL(relu, mse, DPT_ACT_RELU, DPT_LOSS_MSE)
FD_SMALL(tanh, ce, DPT_ACT_TANH, DPT_LOSS_SOFTMAX_CE)
FD_SMALL(tanh, mse, DPT_ACT_TANH, DPT_LOSS_MSE)
FD_SMALL(sigmoid, ce, DPT_ACT_SIGMOID, DPT_LOSS_SOFTMAX_CE)
FD_SMALL(sigmoid, mse, DPT_ACT_SIGMOID, DPT_LOSS_MSE)
FD_SMALL(gelu, ce, DPT_ACT_GELU, DPT_LOSS_SOFTMAX_CE)
FD_SMALL(gelu, mse, DPT_ACT_GELU, DPT_LOSS_MSE)

Test(gradients, deep_every_activation)
{
    dpt_activation acts[] = {DPT_ACT_RELU, DPT_ACT_TANH, DPT_ACT_SIGMOID, DPT_ACT_GELU};
    for (int a = 0; a < 4; a++) {
        run_fd(deep, 5, acts[a], DPT_LOSS_SOFTMAX_CE, 5, NULL);
        run_fd(deep, 5, acts[a], DPT_LOSS_MSE, 5, NULL);
    }
}

/* With (p, seed, step, row0) fixed the mask is a fixed function of (row, unit, layer), so the
 * loss is an ordinary function of the parameters and the same check holds through dropout. */
Test(gradients, with_dropout)
{
    dpt_dropout drop = {.p = 0.3f, .seed = 17, .step = 5, .row0 = 0};
    dpt_activation acts[] = {DPT_ACT_RELU, DPT_ACT_TANH, DPT_ACT_SIGMOID, DPT_ACT_GELU};
    for (int a = 0; a < 4; a++) {
        run_fd(small, 4, acts[a], DPT_LOSS_SOFTMAX_CE, 4, &drop);
        run_fd(deep, 5, acts[a], DPT_LOSS_MSE, 5, &drop);
    }
}

/* A larger model checked on a random subset of its parameters (the stride path). */
Test(gradients, random_subset_of_larger_model)
{
    static const int w[] = {20, 32, 24, 10};
    fixture f;
    fixture_init(&f, w, 4, DPT_ACT_TANH, DPT_LOSS_SOFTMAX_CE, 8, 3);
    fd_report r = check_gradients(&f, NULL, 300, "tanh + ce, 20-32-24-10, random subset");
    cr_expect_geq(r.checked, 300, "subset too small: %zu", r.checked);
    fixture_free(&f);
}

/* Dropout on the hidden activations: about p of them are zeroed and the others are act(z)
 * times exactly the float 1/(1-p); the logits (last layer) are never dropped. */
Test(dropout, fraction_and_scale)
{
    static const int w[] = {8, 256, 256, 3};
    const int rows = 64;
    fixture f;
    /* tanh: act(z) is never exactly 0 here, so a 0 in a can only be a dropped unit */
    fixture_init(&f, w, 4, DPT_ACT_TANH, DPT_LOSS_SOFTMAX_CE, rows, 5);
    dpt_dropout drop = {.p = 0.3f, .seed = 11, .step = 2, .row0 = 0};
    dpt_model_forward(&f.m, f.x, rows, &drop);
    const float keep_scale = 1.0f / (1.0f - drop.p);
    size_t total = 0, dropped = 0, bad_scale = 0;
    double max_rel = 0.0;
    for (int l = 0; l < 2; l++) {
        size_t n = (size_t)rows * w[l + 1];
        for (size_t i = 0; i < n; i++) {
            float act = tanhf(f.m.z[l][i]), a = f.m.a[l][i];
            cr_assert_neq(act, 0.0f);
            total++;
            if (a == 0.0f) {
                dropped++;
                continue;
            }
            /* a = act * keep_scale rounded once: relative error <= 2^-24 against the product
             * in double; 2 * FLT_EPSILON (= 2^-22) leaves room for tanhf's own last bit. */
            double rel = fabs((double)a - (double)act * keep_scale) / fabs((double)act * keep_scale);
            if (rel > max_rel) max_rel = rel;
            if (rel > 2 * FLT_EPSILON && ++bad_scale <= 5)
                cr_log_error("layer %d unit %zu: a %.9g, act %.9g, ratio %.9g, want %.9g", l, i,
                             a, act, a / act, keep_scale);
        }
    }
    double frac = (double)dropped / (double)total;
    /* Each unit drops independently with probability p: the fraction of n = 32768 units has
     * standard deviation sqrt(p(1-p)/n) = 0.0025; 5 sigma = 0.0127 (false alarm ~6e-7). */
    double sigma = sqrt(0.3 * 0.7 / (double)total);
    cr_log_info("dropped %zu of %zu units (%.4f, p = 0.3, 5 sigma = %.4f); kept: largest relative "
                "deviation from act * 1/(1-p) %.3g", dropped, total, frac, 5 * sigma, max_rel);
    cr_expect_leq(fabs(frac - 0.3), 5 * sigma, "dropped fraction %.4f, expected 0.3 +- %.4f", frac,
                  5 * sigma);
    cr_expect_eq(bad_scale, 0, "%zu kept units not scaled by 1/(1-p) (largest rel %.3g)",
                 bad_scale, max_rel);

    /* The logits are not dropped: a = z for the last layer. */
    for (size_t i = 0; i < (size_t)rows * 3; i++)
        cr_expect_eq(f.m.a[2][i], f.m.z[2][i], "logit %zu changed by dropout", i);

    /* The mask depends on the layer and the step: the two hidden layers (same width) and the
     * next step draw different masks; each pair agrees on a unit with probability
     * 0.3^2 + 0.7^2 = 0.58, so disagreement ~0.42 of 16384 units; >= 0.3 is 19 sigma away. */
    size_t n = (size_t)rows * 256, diff_layer = 0, diff_step = 0;
    for (size_t i = 0; i < n; i++) {
        int r = (int)(i / 256), u = (int)(i % 256);
        dpt_dropout next = drop;
        next.step = 3;
        float s0 = dpt_op_dropout_scale(&drop, 0, r, u, 256);
        diff_layer += s0 != dpt_op_dropout_scale(&drop, 1, r, u, 256);
        diff_step += s0 != dpt_op_dropout_scale(&next, 0, r, u, 256);
        /* and the mask read back from the forward is dpt_op_dropout_scale's */
        cr_assert_eq(f.m.a[0][i] == 0.0f, s0 == 0.0f, "layer 0 unit %zu: mask differs", i);
    }
    cr_expect_gt(diff_layer, n * 3 / 10, "layers 0 and 1 share a mask (%zu of %zu differ)",
                 diff_layer, n);
    cr_expect_gt(diff_step, n * 3 / 10, "steps 2 and 3 share a mask (%zu of %zu differ)",
                 diff_step, n);

    /* p = 0 (and drop == NULL) leave the activations alone */
    dpt_dropout off = drop;
    off.p = 0.0f;
    dpt_model_forward(&f.m, f.x, rows, &off);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(f.m.a[0][i], tanhf(f.m.z[0][i]));
    fixture_free(&f);
}

/* The mask is keyed by the global row row0 + row: rows [2,4) forwarded alone with row0 = 2 (as
 * rank 1 of 2 would) equal rows 2..3 of the forward of [0,4) with row0 = 0 (one rank). */
Test(dropout, depends_on_global_row_only)
{
    static const int w[] = {6, 40, 30, 5};
    const int rows = 4, I = 6;
    fixture f;
    fixture_init(&f, w, 4, DPT_ACT_RELU, DPT_LOSS_SOFTMAX_CE, rows, 9);
    dpt_dropout one = {.p = 0.3f, .seed = 23, .step = 7, .row0 = 0};
    dpt_dropout half = one;
    half.row0 = 2;
    dpt_dropout wrong = one; /* rows [2,4) forwarded as if they were rows [0,2) */

    float full_a0[4 * 40], full_a1[4 * 30], full_logits[4 * 5];
    const float *lg = dpt_model_forward(&f.m, f.x, rows, &one);
    memcpy(full_logits, lg, sizeof full_logits);
    memcpy(full_a0, f.m.a[0], sizeof full_a0);
    memcpy(full_a1, f.m.a[1], sizeof full_a1);
    size_t zeros = 0;
    for (size_t i = 0; i < 4 * 40; i++) zeros += full_a0[i] == 0.0f;

    /* Same numbers, same order per row; OpenBLAS may still take another kernel for 2 rows than
     * for 4 and sum in another order: allow 1e-5 relative to the row's magnitude (about
     * K * 2^-24 for the K <= 40 terms of a dot product, with room). A wrong mask changes a value
     * by O(1) of its size. */
    const double rtol = 1e-5;
    lg = dpt_model_forward(&f.m, f.x + 2 * I, 2, &half);
    double max_rel = 0.0;
    const float *got[3] = {f.m.a[0], f.m.a[1], lg};
    const float *want[3] = {full_a0 + 2 * 40, full_a1 + 2 * 30, full_logits + 2 * 5};
    int width[3] = {40, 30, 5};
    for (int t = 0; t < 3; t++)
        for (int i = 0; i < 2 * width[t]; i++) {
            /* the row's magnitude: its largest value (a value near zero is a sum that cancelled,
             * whose rounding is that of its terms) */
            double row = 1e-3;
            for (int c = i / width[t] * width[t]; c < (i / width[t] + 1) * width[t]; c++)
                row = fmax(row, fabs(want[t][c]));
            double d = fabs((double)got[t][i] - want[t][i]);
            double rel = d / row;
            if (rel > max_rel) max_rel = rel;
            cr_expect_leq(rel, rtol, "layer %d value %d: rows [2,4) alone %.9g, in [0,4) %.9g",
                          t, i, got[t][i], want[t][i]);
            /* a dropped unit must be dropped in both */
            if (t < 2)
                cr_expect_eq(got[t][i] == 0.0f, want[t][i] == 0.0f);
        }
    cr_log_info("rows [2,4) with row0=2 vs rows 2..3 of [0,4): largest relative difference %.3g",
                max_rel);

    /* The check can fail: keyed by the local row (row0 = 0 for rows [2,4)) the masks differ. */
    lg = dpt_model_forward(&f.m, f.x + 2 * I, 2, &wrong);
    size_t mask_diff = 0;
    for (int i = 0; i < 2 * 40; i++)
        mask_diff += (f.m.z[0][i] > 0.0f) && ((f.m.a[0][i] == 0.0f) != (full_a0[80 + i] == 0.0f));
    cr_expect_gt(mask_diff, 0, "row0 makes no difference to the mask");
    cr_expect_gt(zeros, 0);
    fixture_free(&f);
}

/* Layout: per layer W (O, I) row-major, then b (O); n_params is their sum. Checked by the
 * offsets and by recomputing the forward in double from the flat buffer read in that layout. */
Test(layout, offsets_and_forward_in_double)
{
    fixture f;
    fixture_init(&f, small, 4, DPT_ACT_TANH, DPT_LOSS_SOFTMAX_CE, 4, 1);
    /* 5-7-6-3: W0 35 @0, b0 7 @35, W1 42 @42, b1 6 @84, W2 18 @90, b2 3 @108, total 111 */
    const size_t w_off[] = {0, 42, 90}, b_off[] = {35, 84, 108};
    for (int l = 0; l < 3; l++) {
        cr_expect_eq(f.m.w_off[l], w_off[l], "w_off[%d] = %zu", l, f.m.w_off[l]);
        cr_expect_eq(f.m.b_off[l], b_off[l], "b_off[%d] = %zu", l, f.m.b_off[l]);
    }
    cr_expect_eq(f.m.n_params, 111);

    /* A bigger shape by the formula */
    static const int w[] = {784, 512, 256, 10};
    dpt_backend be;
    dpt_cpu_backend_init(&be, 1);
    dpt_config cfg;
    dpt_config_defaults(&cfg);
    cfg.model.n_layers = 3;
    memcpy(cfg.model.widths, w, sizeof w);
    dpt_model m;
    dpt_error err = {0};
    const dpt_model_spec spec = dpt_model_spec_from_config(&cfg);
    cr_assert_eq(dpt_model_init(&m, &spec, &be, 2, &err), DPT_OK, "%s", err.msg);
    size_t off = 0;
    for (int l = 0; l < 3; l++) {
        cr_expect_eq(m.w_off[l], off);
        off += (size_t)w[l + 1] * w[l];
        cr_expect_eq(m.b_off[l], off);
        off += (size_t)w[l + 1];
    }
    cr_expect_eq(m.n_params, off);
    cr_expect_eq(m.n_params, 784 * 512 + 512 + 512 * 256 + 256 + 256 * 10 + 10);
    dpt_model_free(&m);

    /* y = x W^T + b with W[o][i] at w_off + o * I + i, in double */
    const float *lg = dpt_model_forward(&f.m, f.x, 4, NULL);
    double h[4][8], nh[4][8];
    for (int r = 0; r < 4; r++)
        for (int i = 0; i < 5; i++)
            h[r][i] = f.x[r * 5 + i];
    double max_rel = 0.0;
    for (int l = 0; l < 3; l++) {
        int I = small[l], O = small[l + 1];
        for (int r = 0; r < 4; r++)
            for (int o = 0; o < O; o++) {
                double z = f.m.params[f.m.b_off[l] + o];
                for (int i = 0; i < I; i++)
                    z += h[r][i] * f.m.params[f.m.w_off[l] + (size_t)o * I + i];
                nh[r][o] = l < 2 ? tanh(z) : z;
            }
        memcpy(h, nh, sizeof h);
    }
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 3; c++) {
            double rel = fabs(lg[r * 3 + c] - h[r][c]) / (fabs(h[r][c]) + 1e-3);
            if (rel > max_rel) max_rel = rel;
        }
    cr_log_info("float forward vs double forward from the documented layout: largest relative "
                "difference %.3g", max_rel);
    /* float32 through 3 layers of <= 7-term dot products and tanhf: ~10 roundings of 2^-24
     * each, ~1e-6; 1e-5 leaves room. Reading W transposed or b from the wrong place is O(1). */
    cr_expect_leq(max_rel, 1e-5, "forward does not match the documented layout (%.3g)", max_rel);
    fixture_free(&f);
}

/* Weights of one layer: mean and standard deviation of the n values. */
static void layer_stats(const dpt_model *m, int l, double *mean, double *sd)
{
    size_t n = (size_t)m->widths[l + 1] * m->widths[l];
    double s = 0.0, s2 = 0.0;
    for (size_t i = 0; i < n; i++) {
        double v = m->params[m->w_off[l] + i];
        s += v;
        s2 += v * v;
    }
    *mean = s / n;
    *sd = sqrt(s2 / n - *mean * *mean);
}

static void expect_init_spread(dpt_activation act, dpt_init init, int xavier)
{
    static const int w[] = {784, 512, 10};
    dpt_backend be;
    dpt_cpu_backend_init(&be, 1);
    dpt_config cfg;
    dpt_config_defaults(&cfg);
    cfg.model.n_layers = 2;
    memcpy(cfg.model.widths, w, sizeof w);
    cfg.model.activation = act;
    cfg.model.init = init;
    cfg.run.seed = 12345;
    dpt_model m;
    dpt_error err = {0};
    const dpt_model_spec spec = dpt_model_spec_from_config(&cfg);
    cr_assert_eq(dpt_model_init(&m, &spec, &be, 1, &err), DPT_OK, "%s", err.msg);
    for (int l = 0; l < 2; l++) {
        double n = (double)w[l + 1] * w[l];
        double want = xavier ? sqrt(2.0 / (w[l] + w[l + 1])) : sqrt(2.0 / w[l]);
        double mean, sd;
        layer_stats(&m, l, &mean, &sd);
        /* For n normal draws the sample standard deviation has relative standard error
         * 1/sqrt(2n) (0.0011 for the 512x784 layer, 0.0099 for 10x512) and the mean has standard
         * error sd/sqrt(n): both checked to 5 standard errors (false alarm ~6e-7). A wrong
         * formula (He vs Xavier: factor 1.29 on layer 0; fan_out for fan_in) is far outside. */
        double tol_sd = 5.0 / sqrt(2.0 * n), tol_mean = 5.0 * want / sqrt(n);
        cr_log_info("%s init layer %d (%dx%d): sd %.6f want %.6f (rel %.2e, tol %.2e), mean %.2e "
                    "(tol %.2e)", xavier ? "Xavier" : "He", l, w[l + 1], w[l], sd, want,
                    fabs(sd / want - 1.0), tol_sd, mean, tol_mean);
        cr_expect_leq(fabs(sd / want - 1.0), tol_sd, "layer %d: sd %.6f, expected %.6f", l, sd,
                      want);
        cr_expect_leq(fabs(mean), tol_mean, "layer %d: mean %.3g", l, mean);
        for (int o = 0; o < w[l + 1]; o++)
            cr_expect_eq(m.params[m.b_off[l] + o], 0.0f, "layer %d bias %d not 0", l, o);
    }
    dpt_model_free(&m);
}

Test(init, he_std_for_relu) { expect_init_spread(DPT_ACT_RELU, DPT_INIT_AUTO, 0); }
Test(init, he_std_for_gelu) { expect_init_spread(DPT_ACT_GELU, DPT_INIT_AUTO, 0); }
Test(init, xavier_std_for_tanh) { expect_init_spread(DPT_ACT_TANH, DPT_INIT_AUTO, 1); }
Test(init, explicit_he_and_xavier)
{
    expect_init_spread(DPT_ACT_SIGMOID, DPT_INIT_HE, 0);
    expect_init_spread(DPT_ACT_RELU, DPT_INIT_XAVIER, 1);
}

Test(init, same_seed_same_params_other_seed_other_params)
{
    static const int w[] = {30, 20, 10};
    fixture a, b, c;
    fixture_init(&a, w, 3, DPT_ACT_RELU, DPT_LOSS_SOFTMAX_CE, 1, 7);
    fixture_init(&b, w, 3, DPT_ACT_RELU, DPT_LOSS_SOFTMAX_CE, 1, 7);
    fixture_init(&c, w, 3, DPT_ACT_RELU, DPT_LOSS_SOFTMAX_CE, 1, 8);
    size_t n = a.m.n_params;
    cr_expect_eq(memcmp(a.m.params, b.m.params, n * sizeof(float)), 0, "same seed, other params");
    size_t same = 0, weights = 0;
    for (int l = 0; l < 2; l++)
        for (size_t i = 0; i < (size_t)w[l] * w[l + 1]; i++) {
            weights++;
            same += a.m.params[a.m.w_off[l] + i] == c.m.params[c.m.w_off[l] + i];
        }
    /* Independent normal draws in float coincide with probability ~0: allow a handful */
    cr_expect_leq(same, 2, "seeds 7 and 8 share %zu of %zu weights", same, weights);
    /* and re-initializing in place reproduces the weights */
    memset(a.m.params, 0, n * sizeof(float));
    const dpt_model_spec spec = dpt_model_spec_from_config(&a.cfg);
    dpt_model_init_params(&a.m, &spec);
    for (int l = 0; l < 2; l++)
        cr_expect_eq(memcmp(a.m.params + a.m.w_off[l], b.m.params + b.m.w_off[l],
                            (size_t)w[l] * w[l + 1] * sizeof(float)), 0);
    fixture_free(&a);
    fixture_free(&b);
    fixture_free(&c);
}

/* The hook's record: (layer, block) in call order. */
typedef struct {
    int n, layer[64], block[64];
} hook_log;

static void log_hook(int layer, int block, void *ctx)
{
    hook_log *h = ctx;
    cr_assert_lt(h->n, 64);
    h->layer[h->n] = layer;
    h->block[h->n++] = block;
}

/* A weight gradient handed out in blocks of output rows (what comm.bucket_mb does to a layer
 * larger than a bucket) has the same bits as in one piece, whichever kernel OpenBLAS picks for
 * the processor (its Haswell and Zen sgemm round a product of fewer rows differently, so the
 * CPU backend computes the layer whole: gemm_row_exact 0), and the hook sees every block of
 * every layer once, last layer first and, within a layer, the last rows first. */
Test(gradients, blocks_of_rows_same_bits_and_hook_order)
{
    const int widths[] = {13, 31, 17, 5};
    fixture f;
    fixture_init(&f, widths, 4, DPT_ACT_RELU, DPT_LOSS_SOFTMAX_CE, 24, 9);
    size_t n = f.m.n_params;
    backward(&f, NULL);
    float *whole = malloc(n * sizeof *whole);
    cr_assert(whole);
    memcpy(whole, f.m.grads, n * sizeof *whole);

    const int blocks[] = {4, 17, 1}; /* uneven rows; one row per block; whole */
    for (int l = 0; l < 3; l++)
        f.m.grad_blocks[l] = blocks[l];
    memset(f.m.grads, 0xff, n * sizeof(float)); /* NaN: a row left unwritten would show */
    const float *logits = dpt_model_forward(&f.m, f.x, f.rows, NULL);
    double loss_sum = 0.0, correct = 0.0;
    f.be.loss(&f.be, logits, f.y, f.rows, 5, f.m.loss, 1.0f / (float)f.rows, f.dlogits,
              &loss_sum, &correct);
    hook_log h = {0};
    dpt_model_backward(&f.m, f.x, f.dlogits, f.rows, NULL, log_hook, &h);
    cr_assert_eq(memcmp(whole, f.m.grads, n * sizeof(float)), 0,
                 "blocked weight gradients differ from the whole-layer ones");

    cr_assert_eq(h.n, 1 + 17 + 4);
    int k = 0;
    for (int l = 2; l >= 0; l--)
        for (int j = blocks[l] - 1; j >= 0; j--, k++) {
            cr_assert_eq(h.layer[k], l, "call %d: layer %d, expected %d", k, h.layer[k], l);
            cr_assert_eq(h.block[k], j, "call %d: block %d, expected %d", k, h.block[k], j);
        }
    int r0, r1, covered = 0;
    for (int j = 0; j < 4; j++) { /* the blocks tile the rows */
        dpt_model_grad_block(&f.m, 0, j, &r0, &r1);
        cr_assert_eq(r0, covered);
        cr_assert_gt(r1, r0);
        covered = r1;
    }
    cr_assert_eq(covered, 31);
    free(whole);
    fixture_free(&f);
}

/* model.huber_delta: the loss and gradient the CPU backend's loss_targets (the op training and
 * eval call) computes for errors within and beyond delta are Huber's, e^2 / 2 within delta and
 * delta (|e| - delta / 2) beyond (gradient e, or delta sign(e)), so the loss changes with delta
 * as the formula says; mse ignores delta; the config's delta reaches the model. */
Test(loss, huber_delta_follows_formula)
{
    enum { R = 4, T = 3 };
    const float e[R * T] = {-3.0f, -1.2f, -0.5f, -0.1f, 0.0f, 0.3f,
                            0.9f,  2.5f,  0.45f, -0.7f, 1.5f, 6.0f};
    float z[R * T], t[R * T], dz[R * T];
    int32_t row[R];
    for (int i = 0; i < R * T; i++) {
        t[i] = 0.25f * (float)i - 1.0f;
        z[i] = t[i] + e[i];
    }
    for (int r = 0; r < R; r++)
        row[r] = r;
    dpt_backend be;
    cr_assert_eq(dpt_cpu_backend_init(&be, 1), 0);
    const float deltas[] = {0.25f, 1.0f, 2.0f, 10.0f};
    double loss_at[4];
    for (int k = 0; k < 4; k++) {
        const double d = deltas[k], gs = 0.5;
        double want = 0.0, got = 0.0;
        be.loss_targets(&be, z, row, t, R, T, DPT_LOSS_HUBER, deltas[k], (float)gs, dz, &got);
        for (int i = 0; i < R * T; i++) {
            double err = (double)z[i] - t[i], a = fabs(err);
            want += (a <= d ? 0.5 * err * err : d * (a - 0.5 * d)) / T;
            double g = gs * (a <= d ? err : (err > 0 ? d : -d)) / T;
            cr_assert(fabs(dz[i] - g) <= 1e-6 * (fabs(g) + 1e-3), "delta %g element %d: grad %g, "
                      "want %g", d, i, (double)dz[i], g);
        }
        cr_assert(fabs(got - want) <= 1e-6 * want, "delta %g: loss %.9g, Huber's %.9g", d, got,
                  want);
        loss_at[k] = got;
    }
    /* a larger delta leaves more errors quadratic: the loss grows with delta here, and with
     * delta beyond every error it is half the squared error */
    cr_assert(loss_at[0] < loss_at[1] && loss_at[1] < loss_at[2] && loss_at[2] < loss_at[3]);
    double mse_a = 0.0, mse_b = 0.0;
    be.loss_targets(&be, z, row, t, R, T, DPT_LOSS_MSE, 0.25f, 1.0f, NULL, &mse_a);
    be.loss_targets(&be, z, row, t, R, T, DPT_LOSS_MSE, 2.0f, 1.0f, NULL, &mse_b);
    cr_assert_eq(mse_a, mse_b);
    cr_assert(fabs(loss_at[3] - 0.5 * mse_a) <= 1e-6 * mse_a);
    be.destroy(&be);

    dpt_config cfg;
    dpt_config_defaults(&cfg);
    cfg.model.huber_delta = 0.3;
    dpt_model_spec spec = dpt_model_spec_from_config(&cfg);
    cr_assert_eq(spec.huber_delta, 0.3);
}
