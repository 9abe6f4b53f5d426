/* Tests of src/optim.c and the optimizer updates of src/ops.h: SGD (momentum, Nesterov, L2),
 * Adam (L2) and AdamW (decoupled) for three steps against reference values computed in double
 * from PyTorch's documented algorithms, clipping by the global norm as
 * torch.nn.utils.clip_grad_norm_, and the learning-rate schedules of dpt_optim_lr. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "backend.h"
#include "ops.h"
#include "optim.h"

/* ---- the reference ------------------------------------------------------------------------
 * Four parameters p0 and the gradients of three steps G (fixed numbers: the updates are checked,
 * not a loss). The expected values were computed in double (Python floats) by following the
 * algorithm boxes of PyTorch's documentation line by line:
 *   torch.optim.SGD (dampening 0):  g += wd p; buf = g at t = 1, else momentum buf + g;
 *                                   g = nesterov ? g + momentum buf : buf;  p -= lr g
 *   torch.optim.Adam:               g += wd p; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 *                                   p -= lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
 *   torch.optim.AdamW:              p -= lr wd p; then Adam's update with g unchanged
 * with lr 0.1, momentum 0.9, wd 0.01 for SGD and lr 0.01, betas (0.9, 0.999), eps 1e-8 for Adam
 * (wd 0.01 as L2, 0 and 0.1 decoupled), and once eps 1e-3, large enough against sqrt(v_hat)
 * (0.02 .. 0.6 here) that where eps enters (outside the square root) shows. */
static const float p0[4] = {0.5f, -1.25f, 2.0f, 0.75f};
static const float G[3][4] = {{0.1f, -0.2f, 0.3f, -0.05f},
                              {0.4f, 0.1f, -0.6f, 0.02f},
                              {-0.3f, 0.25f, 0.15f, -0.08f}};

static const double sgd_plain_p[4] = {0.47999999999999998, -1.2649999999999999,
                                      2.0149999999999997, 0.76100000000000001};
static const double sgd_mom_p[4] = {0.42417538949999994, -1.23285947875, 2.0065435680000001,
                                    0.76352910424999998};
static const double sgd_mom_buf[4] = {0.1538511050000001, 0.14463228749999996,
                                      -0.093115679999999951, -0.082083542499999995};
static const double sgd_nest_p[4] = {0.41043976198049997, -1.2459458492462498,
                                     2.0149519365120003, 0.77090444015074999};
static const double sgd_nest_buf[4] = {0.15331677905000002, 0.14489723287499995,
                                       -0.093111244799999993, -0.082039553425000009};
static const double adam_l2_p[4] = {0.47918983200144227, -1.2394333102259543, 1.994150011389821,
                                    0.76749219638637034};
static const double adam_l2_m[4] = {0.015427115472277084, 0.014434857123351097,
                                    -0.0092957187117910581, -0.0081969355723792246};
static const double adam_l2_v[4] = {0.00026191948140386924, 0.00010920178307463152,
                                    0.00046725195727944177, 7.8031324954352908e-06};
static const double adam_p[4] = {0.47938915337896526, -1.2407281284004676, 1.9950279421225849,
                                 0.77024781868375936};
static const double adam_m[4] = {0.014100000000000001, 0.017799999999999993,
                                 -0.014699999999999994, -0.010249999999999999};
static const double adam_v[4] = {0.00025982001000000025, 0.00011241004000000011,
                                 0.00047196009000000035, 9.2946025000000094e-06};
static const double adamw_p[4] = {0.47791948664156875, -1.2370045305196964, 1.9890502690867251,
                                  0.76797662188018589};
static const double adam_eps_p[4] = {0.47952436668996473, -1.2407771985043592,
                                     1.9950500278731023, 0.76984348396569258};
/* AdamW's m and v equal Adam's without weight decay (decay does not enter the gradient). */
/* Adam with wd 0.1 as L2 instead of decoupled: only to show the two differ (see below). */
static const double adam_l2_wd01_p[4] = {0.47755785114206317, -1.2298778920005549,
                                         1.9859882352173437, 0.72466615360903064};

/* Parameters: float32 values of |p| <= 2 (ulp 2.4e-7) take three rounded subtractions (<= half an
 * ulp each) and updates computed in float to a few ulps of their size (<= 0.1); Adam's float
 * (1 - 0.999f) is 1.3e-5 off 0.001 while its bias correction is from the double beta2, which
 * makes its step 6.4e-6 relatively smaller (6e-8 absolute at lr 0.01). All together < 1e-6;
 * 2e-6 leaves room. The variants differ from each other by >= 4e-4 (checked below). */
#define P_ATOL 2e-6
/* Momentum buffers and Adam's m: a few float roundings (2^-24 each) per step, and the float
 * hyperparameters (0.9f is 2.6e-8 off, 1 - 0.9f 2.4e-7 off): relative error < 1e-6. */
#define M_RTOL 2e-6
/* Adam's v: the float 1 - 0.999f = 9.99987e-4 is 1.29e-5 relatively off 0.001 (dptrain computes
 * it in float from the float beta2), so v is too; 3e-5 covers it. Any real mistake (a missing
 * (1-b2), g instead of g^2, no L2 term) is off by 10% or far more. */
#define V_RTOL 3e-5

/* Asserts |got - want| <= atol + rtol |want| elementwise; prints the largest difference. */
static void expect_close(const float *got, const double *want, int n, double atol, double rtol,
                         const char *what)
{
    double max_diff = 0.0;
    int bad = 0;
    for (int i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (d > max_diff) max_diff = d;
        if (d > atol + rtol * fabs(want[i]) && ++bad <= 4)
            cr_log_error("%s[%d]: got %.9g, want %.9g (|diff| %.3g)", what, i, got[i], want[i], d);
    }
    cr_log_info("%s: largest |diff| %.3g", what, max_diff);
    cr_expect_eq(bad, 0, "%s: %d of %d values off (largest |diff| %.3g, atol %.3g, rtol %.3g)",
                 what, bad, n, max_diff, atol, rtol);
}

static double max_abs_diff(const double *a, const double *b, int n)
{
    double m = 0.0;
    for (int i = 0; i < n; i++) m = fmax(m, fabs(a[i] - b[i]));
    return m;
}

/* The comparisons can fail: the variants' reference values are far apart against P_ATOL, so an
 * update that took another variant's path (no Nesterov term, L2 for decoupled, ...) is caught. */
Test(reference, variants_differ_beyond_tolerance)
{
    const double *pairs[][2] = {{sgd_plain_p, sgd_mom_p}, {sgd_mom_p, sgd_nest_p},
                                {adam_p, adamw_p}, {adamw_p, adam_l2_wd01_p},
                                {adam_p, adam_l2_p}, {adam_p, adam_eps_p}};
    for (size_t k = 0; k < sizeof pairs / sizeof pairs[0]; k++) {
        double d = max_abs_diff(pairs[k][0], pairs[k][1], 4);
        cr_log_info("pair %zu: reference parameters differ by up to %.3g", k, d);
        cr_expect_gt(d, 100 * P_ATOL, "pair %zu: %.3g", k, d);
    }
}

/* ---- dpt_op_sgd / dpt_op_adam, element by element ------------------------------------------ */

static void run_op_sgd(float lr, float momentum, int nesterov, float wd, float p[4], float m[4])
{
    memcpy(p, p0, sizeof p0);
    memset(m, 0, 4 * sizeof(float));
    for (int t = 0; t < 3; t++)
        for (int i = 0; i < 4; i++)
            dpt_op_sgd(&p[i], G[t][i], &m[i], lr, momentum, nesterov, wd);
}

Test(op_sgd, plain)
{
    float p[4], m[4];
    run_op_sgd(0.1f, 0.0f, 0, 0.0f, p, m);
    expect_close(p, sgd_plain_p, 4, P_ATOL, 0.0, "sgd p");
    for (int i = 0; i < 4; i++)
        cr_expect_eq(m[i], 0.0f, "momentum 0 must not touch the buffer");
}

Test(op_sgd, momentum_and_weight_decay)
{
    float p[4], m[4];
    run_op_sgd(0.1f, 0.9f, 0, 0.01f, p, m);
    expect_close(p, sgd_mom_p, 4, P_ATOL, 0.0, "sgd momentum p");
    expect_close(m, sgd_mom_buf, 4, 0.0, M_RTOL, "sgd momentum buf");
}

Test(op_sgd, nesterov)
{
    float p[4], m[4];
    run_op_sgd(0.1f, 0.9f, 1, 0.01f, p, m);
    expect_close(p, sgd_nest_p, 4, P_ATOL, 0.0, "sgd nesterov p");
    expect_close(m, sgd_nest_buf, 4, 0.0, M_RTOL, "sgd nesterov buf");
}

static void run_op_adam(float wd, int decoupled, float eps, float p[4], float m[4], float v[4])
{
    memcpy(p, p0, sizeof p0);
    memset(m, 0, 4 * sizeof(float));
    memset(v, 0, 4 * sizeof(float));
    for (int t = 1; t <= 3; t++) {
        float bc1 = (float)(1.0 - pow(0.9, t)), bc2 = (float)(1.0 - pow(0.999, t));
        for (int i = 0; i < 4; i++)
            dpt_op_adam(&p[i], G[t - 1][i], &m[i], &v[i], 0.01f, 0.9f, 0.999f, eps, wd,
                        decoupled, bc1, bc2);
    }
}

Test(op_adam, no_weight_decay)
{
    float p[4], m[4], v[4];
    run_op_adam(0.0f, 0, 1e-8f, p, m, v);
    expect_close(p, adam_p, 4, P_ATOL, 0.0, "adam p");
    expect_close(m, adam_m, 4, 0.0, M_RTOL, "adam m");
    expect_close(v, adam_v, 4, 0.0, V_RTOL, "adam v");
}

Test(op_adam, l2_weight_decay)
{
    float p[4], m[4], v[4];
    run_op_adam(0.01f, 0, 1e-8f, p, m, v);
    expect_close(p, adam_l2_p, 4, P_ATOL, 0.0, "adam L2 p");
    expect_close(m, adam_l2_m, 4, 0.0, M_RTOL, "adam L2 m");
    expect_close(v, adam_l2_v, 4, 0.0, V_RTOL, "adam L2 v");
}

Test(op_adam, adamw_decoupled)
{
    float p[4], m[4], v[4];
    run_op_adam(0.1f, 1, 1e-8f, p, m, v);
    expect_close(p, adamw_p, 4, P_ATOL, 0.0, "adamw p");
    expect_close(m, adam_m, 4, 0.0, M_RTOL, "adamw m");
    expect_close(v, adam_v, 4, 0.0, V_RTOL, "adamw v");
}

/* eps is added to sqrt(v_hat), not inside the root (which would move p[3] by another 3e-3) */
Test(op_adam, eps_outside_square_root)
{
    float p[4], m[4], v[4];
    run_op_adam(0.0f, 0, 1e-3f, p, m, v);
    expect_close(p, adam_eps_p, 4, P_ATOL, 0.0, "adam eps 1e-3 p");
    expect_close(m, adam_m, 4, 0.0, M_RTOL, "adam eps 1e-3 m");
    expect_close(v, adam_v, 4, 0.0, V_RTOL, "adam eps 1e-3 v");
}

/* ---- dpt_optim_step on the CPU backend ----------------------------------------------------- */

typedef struct {
    dpt_backend be;
    dpt_config cfg;
    dpt_optim o;
    float *p, *g;   /* (4) backend memory */
} opt_fixture;

static void opt_init(opt_fixture *f, dpt_optimizer kind)
{
    memset(f, 0, sizeof *f);
    cr_assert_eq(dpt_cpu_backend_init(&f->be, 1), 0);
    dpt_config_defaults(&f->cfg);
    f->cfg.train.optimizer = kind;
    f->cfg.train.clip_grad_norm = 0.0;
    f->p = f->be.alloc(&f->be, 4 * sizeof(float));
    f->g = f->be.alloc(&f->be, 4 * sizeof(float));
    cr_assert(f->p && f->g);
    memcpy(f->p, p0, sizeof p0);
}

static void opt_start(opt_fixture *f)
{
    dpt_error err = {0};
    const dpt_optim_params params = dpt_optim_params_from_config(&f->cfg);
    cr_assert_eq(dpt_optim_init(&f->o, &params, &f->be, 4, &err), DPT_OK, "%s", err.msg);
    for (int i = 0; i < f->o.n_state * 4; i++)
        cr_assert_eq(f->o.state[i], 0.0f, "optimizer state must start at 0");
}

/* Three steps (step = 0, 1, 2) with the gradients G at learning rate lr. */
static void opt_run(opt_fixture *f, double lr)
{
    for (int t = 0; t < 3; t++) {
        memcpy(f->g, G[t], sizeof G[t]);
        double norm = dpt_optim_step(&f->o, f->p, f->g, t, lr);
        cr_expect_eq(norm, -1.0, "clipping is off: no norm computed");
    }
}

static void opt_free(opt_fixture *f)
{
    dpt_optim_free(&f->o);
    f->be.free(&f->be, f->p);
    f->be.free(&f->be, f->g);
    f->be.destroy(&f->be);
}

Test(optim_step, sgd_momentum_nesterov_weight_decay)
{
    for (int nesterov = 0; nesterov <= 1; nesterov++) {
        opt_fixture f;
        opt_init(&f, DPT_OPT_SGD);
        f.cfg.train.momentum = 0.9;
        f.cfg.train.nesterov = nesterov;
        f.cfg.train.weight_decay = 0.01;
        opt_start(&f);
        cr_expect_eq(f.o.n_state, 1);
        opt_run(&f, 0.1);
        expect_close(f.p, nesterov ? sgd_nest_p : sgd_mom_p, 4, P_ATOL, 0.0, "optim sgd p");
        expect_close(f.o.state, nesterov ? sgd_nest_buf : sgd_mom_buf, 4, 0.0, M_RTOL,
                     "optim sgd buf");
        opt_free(&f);
    }
}

Test(optim_step, sgd_plain)
{
    opt_fixture f;
    opt_init(&f, DPT_OPT_SGD);
    f.cfg.train.momentum = 0.0;
    f.cfg.train.weight_decay = 0.0;
    opt_start(&f);
    opt_run(&f, 0.1);
    expect_close(f.p, sgd_plain_p, 4, P_ATOL, 0.0, "optim sgd plain p");
    opt_free(&f);
}

static void adam_case(dpt_optimizer kind, double wd, const double *want_p, const double *want_m,
                      const double *want_v, const char *what)
{
    opt_fixture f;
    opt_init(&f, kind);
    f.cfg.train.beta1 = 0.9;
    f.cfg.train.beta2 = 0.999;
    f.cfg.train.eps = 1e-8;
    f.cfg.train.weight_decay = wd;
    opt_start(&f);
    cr_expect_eq(f.o.n_state, 2);
    opt_run(&f, 0.01);
    expect_close(f.p, want_p, 4, P_ATOL, 0.0, what);
    expect_close(f.o.state, want_m, 4, 0.0, M_RTOL, "m");      /* state copy 0: m */
    expect_close(f.o.state + 4, want_v, 4, 0.0, V_RTOL, "v");  /* state copy 1: v */
    opt_free(&f);
}

Test(optim_step, adam) { adam_case(DPT_OPT_ADAM, 0.0, adam_p, adam_m, adam_v, "optim adam p"); }
Test(optim_step, adam_l2)
{
    adam_case(DPT_OPT_ADAM, 0.01, adam_l2_p, adam_l2_m, adam_l2_v, "optim adam L2 p");
}
Test(optim_step, adamw)
{
    adam_case(DPT_OPT_ADAMW, 0.1, adamw_p, adam_m, adam_v, "optim adamw p");
}

/* ---- clipping ------------------------------------------------------------------------------
 * torch.nn.utils.clip_grad_norm_: total_norm = ||g||_2 over all gradients, clip_coef =
 * max_norm / (total_norm + 1e-6), gradients multiplied by min(clip_coef, 1); returns total_norm.
 * Checked through plain SGD with lr 1 (p -= g), so the parameters see the clipped gradients. */

/* g = (3, -4, 0, 12) * s has norm 13 s. */
static void clip_case(double s, double max_norm, const char *what)
{
    opt_fixture f;
    opt_init(&f, DPT_OPT_SGD);
    f.cfg.train.momentum = 0.0;
    f.cfg.train.clip_grad_norm = max_norm;
    opt_start(&f);
    const double g[4] = {3 * s, -4 * s, 0, 12 * s};
    for (int i = 0; i < 4; i++) f.g[i] = (float)g[i];
    double norm = dpt_optim_step(&f.o, f.p, f.g, 0, 1.0);
    /* the norm is summed in double from the float gradients: relative error ~1e-7 from the
     * float rounding of g (s is not a power of 2 in every case); 1e-6 leaves room */
    cr_expect_leq(fabs(norm - 13 * s), 1e-6 * 13 * s, "%s: norm %.9g, want %.9g", what, norm,
                  13 * s);
    double coef = fmin(max_norm / (13 * s + 1e-6), 1.0);
    double want_g[4], want_p[4];
    for (int i = 0; i < 4; i++) {
        want_g[i] = g[i] * coef;
        want_p[i] = p0[i] - want_g[i];
    }
    /* clipped gradient: float products of float inputs, ~3 roundings of 2^-24: rtol 1e-6 */
    expect_close(f.g, want_g, 4, 0.0, 1e-6, what);
    /* parameters: one float subtraction at |p| <= 2 plus the gradient's error: P_ATOL (for the
     * tiny gradients this only checks that p moved the right way; the gradients above are what
     * tell the clipping factors apart) */
    expect_close(f.p, want_p, 4, P_ATOL, 0.0, what);
    opt_free(&f);
}

Test(clip, above_max_scales_to_max_norm) { clip_case(1.0, 6.5, "clip norm 13 to 6.5"); }
/* At a norm of 1.3e-5 the + 1e-6 in the denominator is visible: the factor is
 * 6.5e-6 / 1.4e-5 = 0.464, not 0.5 (a difference 7% of the gradient, far beyond the 1e-6
 * relative tolerance), so this case checks the epsilon term itself. */
Test(clip, epsilon_in_denominator) { clip_case(1e-6, 6.5e-6, "clip norm 1.3e-5 to 6.5e-6"); }

Test(clip, below_max_leaves_gradients_alone)
{
    opt_fixture f;
    opt_init(&f, DPT_OPT_SGD);
    f.cfg.train.momentum = 0.0;
    f.cfg.train.clip_grad_norm = 20.0;
    opt_start(&f);
    const float g[4] = {3, -4, 0, 12};
    memcpy(f.g, g, sizeof g);
    double norm = dpt_optim_step(&f.o, f.p, f.g, 0, 1.0);
    cr_expect_eq(norm, 13.0, "integers: the norm is exact (got %.17g)", norm);
    cr_expect_eq(memcmp(f.g, g, sizeof g), 0, "gradients below max_norm must not change");
    opt_free(&f);
}

/* ---- learning-rate schedules -------------------------------------------------------------- */

/* Both sides are double from the same few operations (cos and pow within 1 ulp): 1e-12
 * relative. Any wrong formula is off by far more (the neighbouring values differ by > 1e-3). */
#define LR_RTOL 1e-12

typedef struct {
    int64_t step;
    double lr;
} lr_point;

static void expect_lr(const dpt_config *cfg, int64_t spe, const lr_point *pts, int n,
                      const char *what)
{
    double max_rel = 0.0;
    const dpt_optim_params params = dpt_optim_params_from_config(cfg);
    for (int i = 0; i < n; i++) {
        double got = dpt_optim_lr(&params, pts[i].step, spe);
        double rel = fabs(got - pts[i].lr) / fmax(fabs(pts[i].lr), 1e-300);
        if (pts[i].lr == 0.0) rel = fabs(got);
        if (rel > max_rel) max_rel = rel;
        cr_expect_leq(rel, LR_RTOL, "%s: step %lld: lr %.17g, want %.17g", what,
                      (long long)pts[i].step, got, pts[i].lr);
    }
    cr_log_info("%s: %d steps, largest relative difference %.3g", what, n, max_rel);
}

static void lr_config(dpt_config *cfg, dpt_schedule s, double lr, int epochs, int warmup)
{
    dpt_config_defaults(cfg);
    cfg->train.schedule = s;
    cfg->train.lr = lr;
    cfg->train.epochs = epochs;
    cfg->train.warmup_epochs = warmup;
    cfg->train.max_steps = 0;
}

Test(lr, constant)
{
    dpt_config cfg;
    lr_config(&cfg, DPT_SCHED_CONSTANT, 0.05, 10, 0);
    const lr_point pts[] = {{0, 0.05}, {1, 0.05}, {500, 0.05}, {999, 0.05}, {5000, 0.05}};
    expect_lr(&cfg, 100, pts, 5, "constant");
}

/* torch.optim.lr_scheduler.StepLR: lr = base * gamma^floor(epoch / step_size), here per epoch
 * of steps_per_epoch steps: 0.1 * 0.5^floor(floor(step / 5) / 3). */
Test(lr, step)
{
    dpt_config cfg;
    lr_config(&cfg, DPT_SCHED_STEP, 0.1, 10, 0);
    cfg.train.step_epochs = 3;
    cfg.train.step_gamma = 0.5;
    const lr_point pts[] = {{0, 0.1},    {14, 0.1},    {15, 0.05},   {29, 0.05},
                            {30, 0.025}, {44, 0.025},  {45, 0.0125}, {49, 0.0125}};
    expect_lr(&cfg, 5, pts, 8, "step");
}

/* torch.optim.lr_scheduler.CosineAnnealingLR per step with T_max = epochs * steps_per_epoch:
 * min + (base - min) (1 + cos(pi t / T_max)) / 2, held at min from T_max on. 4 epochs of 10
 * steps, base 0.1, min 0.001. */
Test(lr, cosine_with_min_lr)
{
    dpt_config cfg;
    lr_config(&cfg, DPT_SCHED_COSINE, 0.1, 4, 0);
    cfg.train.min_lr = 0.001;
    const lr_point pts[] = {
        {0, 0.1},
        {10, 0.001 + 0.099 * 0.5 * (1.0 + 0.70710678118654752)},  /* cos(pi/4) */
        {20, 0.0505},
        {30, 0.001 + 0.099 * 0.5 * (1.0 - 0.70710678118654752)},  /* cos(3pi/4) */
        {39, 0.0011525919802101658},  /* 0.001 + 0.0495 (1 + cos(39 pi / 40)) */
        {40, 0.001},
        {100, 0.001},
    };
    expect_lr(&cfg, 10, pts, 7, "cosine");
}

/* Linear warmup: lr * (step + 1) / W for step < W = warmup_epochs * steps_per_epoch, then the
 * schedule; the cosine's horizon starts after warmup: t = (step - W) / (total - W). */
Test(lr, warmup_then_cosine)
{
    dpt_config cfg;
    lr_config(&cfg, DPT_SCHED_COSINE, 0.1, 5, 1);
    cfg.train.min_lr = 0.0;
    const lr_point pts[] = {
        {0, 0.01}, {4, 0.05}, {9, 0.1},
        {10, 0.1},                     /* t = 0 */
        {30, 0.05},                    /* t = 20/40 */
        {49, 0.00015413331334360181},  /* 0.05 (1 + cos(39 pi / 40)) */
        {50, 0.0},
    };
    expect_lr(&cfg, 10, pts, 7, "warmup + cosine");
}

Test(lr, warmup_then_constant)
{
    dpt_config cfg;
    lr_config(&cfg, DPT_SCHED_CONSTANT, 0.2, 5, 2);
    const lr_point pts[] = {{0, 0.01}, {1, 0.02}, {19, 0.2}, {20, 0.2}, {49, 0.2}};
    expect_lr(&cfg, 10, pts, 5, "warmup + constant");
}

/* The step schedule counts epochs from the start of the run, warmup included. */
Test(lr, warmup_then_step)
{
    dpt_config cfg;
    lr_config(&cfg, DPT_SCHED_STEP, 0.1, 6, 1);
    cfg.train.step_epochs = 2;
    cfg.train.step_gamma = 0.1;
    const lr_point pts[] = {{0, 0.01}, {9, 0.1}, {10, 0.1}, {19, 0.1}, {20, 0.01},
                            {39, 0.01}, {40, 0.001}};
    expect_lr(&cfg, 10, pts, 7, "warmup + step");
}

/* train.max_steps below epochs * steps_per_epoch shortens the cosine's horizon to max_steps;
 * above it, it changes nothing. */
Test(lr, max_steps_shortens_cosine)
{
    dpt_config cfg;
    lr_config(&cfg, DPT_SCHED_COSINE, 0.1, 5, 0);
    cfg.train.min_lr = 0.0;
    cfg.train.max_steps = 20;
    const lr_point short_pts[] = {
        {0, 0.1}, {10, 0.05},
        {19, 0.00061558297024311712},  /* 0.05 (1 + cos(19 pi / 20)) */
        {20, 0.0}};
    expect_lr(&cfg, 10, short_pts, 4, "cosine, max_steps 20 of 50");

    cfg.train.max_steps = 1000;
    const lr_point full_pts[] = {{10, 0.090450849718747381}, /* 0.05 (1 + cos(pi/5)) */
                                 {25, 0.05}};
    expect_lr(&cfg, 10, full_pts, 2, "cosine, max_steps 1000 > 50");

    /* with warmup: horizon from the end of warmup (10) to max_steps (30) */
    cfg.train.warmup_epochs = 1;
    cfg.train.max_steps = 30;
    const lr_point warm_pts[] = {{5, 0.06}, {10, 0.1}, {20, 0.05}, {30, 0.0}};
    expect_lr(&cfg, 10, warm_pts, 4, "warmup + cosine, max_steps 30");
}
