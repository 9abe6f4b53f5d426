/* The backend parity self-test: every op of the backend table run on a reference backend and a
 * device backend with the same random inputs and compared with a tolerance whose size is argued
 * beside it, then the real training step (src/train.h) for 100 steps on run.device cpu and on the
 * device (docs/design.md, "Style"); and the coverage report that walks the op list of
 * src/backend.h and names any op no check covers. The CUDA backend is only trustworthy
 * as far as this test reaches; it runs wherever a GPU is visible. */
#include "selftest.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "data.h"
#include "ops.h"
#include "rng.h"
#include "train.h"
#ifdef DPT_HAVE_CUDA
#include "cuda_backend.h"
#endif

/* Every input is drawn from the counter-based RNG under this seed (stream DPT_RNG_SYNTH_X); the
 * counter runs on across buffers, so no two share values and every run draws the same. */
#define ST_SEED 0x5e1f7e57ULL

/* Unit roundoff of FP32 (2^-24) and of FP64 (2^-53). */
#define ST_U32 5.9604644775390625e-08
#define ST_U64 1.1102230246251565e-16

/* Element-wise ops (bias + activation, activation backward, the loss and its gradient, the
 * optimizer updates): both backends evaluate the same per-element function of ops.h, so they
 * differ only where the math library or the compiler does. CUDA's expf, tanhf, erff and logf are
 * within 2 ulp (CUDA C++ Programming Guide, "Mathematical Functions"), glibc's within 1-2, and
 * nvcc contracts a*b+c into one FMA where gcc for x86-64 does not: a few ulp (u = 6e-8) of the
 * largest value of the tensor. 1e-5 (about 170 u) leaves room for the longest chains (GELU',
 * Adam) and still catches any wrong formula, index, mask or missing row, whose errors are O(1). */
#define ST_TOL_ELEMENTWISE 1e-5

/* Copies (gather, zero) and one correctly rounded multiply (scale) are exact on IEEE hardware;
 * label outputs and argmax counts are integers from identical inputs. */
#define ST_TOL_EXACT 0.0

/* Training end to end: after 100 steps the per-op differences (1e-7 relative and below) have
 * been fed back through forward, backward and the update 100 times; 1e-4 relative on the loss
 * allows that growth by three orders and is still far below what one wrong op does (a missing
 * row or dropout mask moves it by 30-40 %). With TF32 GEMMs every product already carries up to
 * 2^-10 relative error, so the same argument gives 1e-2 (tests/cuda_emu's cuBLAS rounds to
 * TF32 as the tensor cores do, so CI exercises this bound too). */
#define ST_TOL_TRAIN 1e-4
#define ST_TOL_TRAIN_TF32 1e-2
/* BF16 on both sides (the CPU backend rounds its GEMM operands as the GPU does): the backends'
 * weights differ by the FP32 differences above, and where such a difference straddles a bf16
 * rounding boundary the two sides read operands 2^-8 apart instead of TF32's 2^-10, so the same
 * argument with four times TF32's per-product error gives 4e-2; still an order below what a
 * wrong op does. */
#define ST_TOL_TRAIN_BF16 4e-2

/* A sum of K terms (GEMM, bias_grad): Higham (Accuracy and Stability of Numerical Algorithms,
 * 2nd ed., Thm 3.5) bounds either backend's error by gamma_K * sum_k |a_ik b_kj| ~ K u in any
 * order; with independently rounded terms it grows as sqrt(K) u (Higham & Mary, SIAM J. Sci.
 * Comput. 41(5), 2019), which is the case for these random inputs and every blocking a BLAS
 * picks. So the scale of a reduction is its largest sum of |terms| (plus |beta c|), and the
 * tolerance 2 (sqrt(K) + 2) u: two backends, sqrt(K) for the sum, two roundings for alpha and
 * beta. For K = 29 that is 8.8e-7 (OpenBLAS against exact sums measures 1.1e-7): a GEMM that
 * reads one element from the wrong place is off by O(1/K) of the scale and fails. */
static double st_tol_sum(int k) { return 2.0 * (sqrt((double)(k > 1 ? k : 1)) + 2.0) * ST_U32; }

/* TF32 (cublasSetMathMode CUBLAS_TF32_TENSOR_OP_MATH) rounds A and B to 10 mantissa bits: each
 * input is off by at most 2^-10 relative even if the hardware truncates (2^-11 when it rounds to
 * nearest), so each product by at most 2 * 2^-10 + 2^-20 < 2^-9 of |a b|, in any order of the
 * sum; the FP32 accumulation comes on top. A rigorous bound, not a guess. */
#define ST_TOL_TF32_INPUTS 1.953125e-03

/* Rows of mismatches printed under a failed check. */
#define ST_SHOW_MISMATCHES 5

typedef struct {
    dpt_backend *ref, *dev;
    dpt_precision prec; /* the GEMMs' (ref is started in BF16 too when dev is: its twin) */
    FILE *out;
    int verbose;
    int checks, failed;
    uint64_t counter;  /* next RNG counter */
} st_run;

typedef enum { ST_F32, ST_F64, ST_I32 } st_kind;

static double st_get(const void *p, st_kind kind, size_t i)
{
    switch (kind) {
    case ST_F32: return (double)((const float *)p)[i];
    case ST_F64: return ((const double *)p)[i];
    default: return (double)((const int32_t *)p)[i];
    }
}

/* Host memory of the test itself: a few MB; without it nothing sensible can be done. */
static void *st_xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "selftest: out of host memory (%zu bytes)\n", bytes);
        abort();
    }
    return p;
}

static const char *st_precision_name(dpt_precision p)
{
    return p == DPT_PREC_BF16 ? "BF16" : p == DPT_PREC_TF32 ? "TF32" : "FP32";
}

/* The fixed-width line of one check. scale: what the difference is measured against; tol: the
 * tolerance relative to scale. */
static void st_line(st_run *st, int ok, const char *op, const char *shape, double scale,
                    double abs_diff, double rel_diff, double tol)
{
    if (!st->out || (ok && !st->verbose))
        return;
    fprintf(st->out, "%-6s  %-32s %-18s scale %9.3e  abs %9.3e  rel %9.3e  tol %9.3e\n",
            ok ? "OK" : "NOT OK", op, shape, scale, abs_diff, rel_diff, tol);
}

/* A check that could not run (a backend allocation failed): counted as failed. */
static void st_setup_failed(st_run *st, const char *op, const char *what)
{
    st->checks++;
    st->failed++;
    if (st->out)
        fprintf(st->out, "NOT OK  %-32s %s\n", op, what);
}

/* Compares n values of dev against ref. Passes when every |dev - ref| <= tol * scale, where
 * scale is given, or max|ref| when scale < 0 (at least FLT_MIN in either case: a tensor of zeros
 * then allows only differences of denormal size, a GPU that flushes them). A NaN on one side
 * only fails; NaN on both sides at the same place (untouched padding) is equal. cols > 0 prints
 * mismatch positions as (row, col). Returns 1 when it passed. */
static int st_compare(st_run *st, const char *op, const char *shape, const void *ref,
                      const void *dev, st_kind kind, size_t n, size_t cols, double scale,
                      double tol)
{
    if (scale < 0.0) {
        scale = 0.0;
        for (size_t i = 0; i < n; i++) {
            double r = fabs(st_get(ref, kind, i));
            if (isfinite(r) && r > scale)
                scale = r;
        }
    }
    if (scale < FLT_MIN)
        scale = FLT_MIN;
    double allowed = tol * scale, max_abs = 0.0;
    size_t bad[ST_SHOW_MISMATCHES], n_bad = 0;
    for (size_t i = 0; i < n; i++) {
        double r = st_get(ref, kind, i), d = st_get(dev, kind, i);
        double diff;
        if (isnan(r) || isnan(d))
            diff = isnan(r) && isnan(d) ? 0.0 : INFINITY;
        else if (r == d) /* equal infinities too */
            diff = 0.0;
        else
            diff = fabs(d - r);
        if (diff > max_abs)
            max_abs = diff;
        if (diff > allowed) {
            if (n_bad < ST_SHOW_MISMATCHES)
                bad[n_bad] = i;
            n_bad++;
        }
    }
    int ok = n_bad == 0;
    st->checks++;
    st->failed += !ok;
    st_line(st, ok, op, shape, scale, max_abs, max_abs / scale, tol);
    if (!ok && st->out) {
        fprintf(st->out, "        %zu of %zu values differ by more than %.3e; the first:\n", n_bad,
                n, allowed);
        for (size_t j = 0; j < n_bad && j < ST_SHOW_MISMATCHES; j++) {
            size_t i = bad[j];
            char at[48];
            if (cols > 0)
                snprintf(at, sizeof at, "(%zu, %zu)", i / cols, i % cols);
            else
                snprintf(at, sizeof at, "[%zu]", i);
            double r = st_get(ref, kind, i), d = st_get(dev, kind, i);
            fprintf(st->out, "        %-14s ref % .8e  dev % .8e  diff %.3e\n", at, r, d,
                    fabs(d - r));
        }
    }
    return ok;
}

/* ---- inputs, and buffers on both backends ---- */

static void st_fill_normal(st_run *st, float *h, size_t n, float std)
{
    for (size_t i = 0; i < n; i++)
        h[i] = std * dpt_rng_normal(ST_SEED, DPT_RNG_SYNTH_X, st->counter++);
}

static void st_fill_uniform(st_run *st, float *h, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++)
        h[i] = lo + (hi - lo) * dpt_rng_uniform(ST_SEED, DPT_RNG_SYNTH_X, st->counter++);
}

static void st_fill_nan(float *h, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h[i] = NAN;
}

/* One buffer on each backend holding the same bytes: r on ref, d on dev. */
typedef struct {
    void *r, *d;
    size_t bytes;
} st_buf;

/* Allocates on both backends and uploads host (when not NULL). 0, or -1 when an allocation
 * failed (reported as a failed check of op). */
static int st_buf_init(st_run *st, st_buf *b, const void *host, size_t bytes, const char *op)
{
    b->bytes = bytes;
    b->r = st->ref->alloc(st->ref, bytes);
    b->d = st->dev->alloc(st->dev, bytes);
    if (!b->r || !b->d) {
        if (b->r)
            st->ref->free(st->ref, b->r);
        if (b->d)
            st->dev->free(st->dev, b->d);
        b->r = b->d = NULL;
        char what[96];
        snprintf(what, sizeof what, "could not allocate %zu bytes on both backends", bytes);
        st_setup_failed(st, op, what);
        return -1;
    }
    if (host) {
        st->ref->upload(st->ref, b->r, host, bytes);
        st->dev->upload(st->dev, b->d, host, bytes);
    }
    return 0;
}

static void st_buf_free(st_run *st, st_buf *b)
{
    if (b->r)
        st->ref->free(st->ref, b->r);
    if (b->d)
        st->dev->free(st->dev, b->d);
    b->r = b->d = NULL;
}

/* Downloads both copies (after everything queued on either backend). */
static void st_buf_fetch(st_run *st, const st_buf *b, void *ref_host, void *dev_host)
{
    st->ref->sync(st->ref);
    st->dev->sync(st->dev);
    st->ref->download(st->ref, ref_host, b->r, b->bytes);
    st->dev->download(st->dev, dev_host, b->d, b->bytes);
}

/* Fetches a float buffer of n values and compares it. */
static void st_check_buf(st_run *st, const char *op, const char *shape, const st_buf *b,
                         size_t n, size_t cols, double scale, double tol)
{
    float *hr = st_xmalloc(b->bytes), *hd = st_xmalloc(b->bytes);
    st_buf_fetch(st, b, hr, hd);
    st_compare(st, op, shape, hr, hd, ST_F32, n, cols, scale, tol);
    free(hr);
    free(hd);
}

static const char *st_act_name(dpt_activation act)
{
    switch (act) {
    case DPT_ACT_RELU: return "relu";
    case DPT_ACT_TANH: return "tanh";
    case DPT_ACT_SIGMOID: return "sigmoid";
    case DPT_ACT_GELU: return "gelu";
    default: return "identity";
    }
}

/* ---- the ops ---- */

/* C(m,n) = alpha op(A) op(B) + beta C with every leading dimension `pad` larger than needed.
 * Padding holds NaN, so a backend that reads it (a wrong lda, ldb, ldc or transpose) produces NaN
 * and one that writes into C's padding changes NaN: both fail. With beta = 0 all of C starts as
 * NaN, since BLAS does not read C then (cuBLAS documents the same). */
static void st_gemm(st_run *st, int ta, int tb, int m, int n, int k, int pad, float alpha,
                    float beta)
{
    char op[64], shape[48];
    snprintf(op, sizeof op, "gemm %c%c alpha=%g beta=%g", ta ? 'T' : 'N', tb ? 'T' : 'N',
             (double)alpha, (double)beta);
    snprintf(shape, sizeof shape, "%dx%dx%d ld+%d", m, n, k, pad);
    /* stored A is (m,k), or (k,m) when transposed; stored B is (k,n), or (n,k) */
    int a_rows = ta ? k : m, a_cols = ta ? m : k;
    int b_rows = tb ? n : k, b_cols = tb ? k : n;
    int lda = a_cols + pad, ldb = b_cols + pad, ldc = n + pad;
    size_t na = (size_t)a_rows * lda, nb = (size_t)b_rows * ldb, nc = (size_t)m * ldc;
    float *a = st_xmalloc(na * sizeof(float)), *b = st_xmalloc(nb * sizeof(float));
    float *c = st_xmalloc(nc * sizeof(float));
    st_fill_nan(a, na);
    st_fill_nan(b, nb);
    st_fill_nan(c, nc);
    for (int i = 0; i < a_rows; i++)
        st_fill_normal(st, a + (size_t)i * lda, (size_t)a_cols, 1.0f);
    for (int i = 0; i < b_rows; i++)
        st_fill_normal(st, b + (size_t)i * ldb, (size_t)b_cols, 1.0f);
    if (beta != 0.0f)
        for (int i = 0; i < m; i++)
            st_fill_normal(st, c + (size_t)i * ldc, (size_t)n, 1.0f);

    /* scale: max over C of |alpha| sum_k |op(A)_ik op(B)_kj| + |beta c_ij|, in double */
    double scale = 0.0;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int l = 0; l < k; l++) {
                float av = ta ? a[(size_t)l * lda + i] : a[(size_t)i * lda + l];
                float bv = tb ? b[(size_t)j * ldb + l] : b[(size_t)l * ldb + j];
                if (st->prec == DPT_PREC_BF16) { /* both backends sum the rounded products */
                    av = dpt_op_round_bf16(av);
                    bv = dpt_op_round_bf16(bv);
                }
                s += fabs((double)av * bv);
            }
            s = fabs((double)alpha) * s;
            if (beta != 0.0f)
                s += fabs((double)beta * c[(size_t)i * ldc + j]);
            if (s > scale)
                scale = s;
        }
    /* BF16: both backends round the operands identically (and their products are exact in
     * FP32), so only the order of the FP32 sums differs: the FP32 tolerance */
    double tol = st_tol_sum(k) + (st->prec == DPT_PREC_TF32 ? ST_TOL_TF32_INPUTS : 0.0);

    st_buf ba = {0}, bb = {0}, bc = {0};
    if (st_buf_init(st, &ba, a, na * sizeof(float), op) == 0 &&
        st_buf_init(st, &bb, b, nb * sizeof(float), op) == 0 &&
        st_buf_init(st, &bc, c, nc * sizeof(float), op) == 0) {
        st->ref->gemm(st->ref, ta, tb, m, n, k, alpha, ba.r, lda, bb.r, ldb, beta, bc.r, ldc);
        st->dev->gemm(st->dev, ta, tb, m, n, k, alpha, ba.d, lda, bb.d, ldb, beta, bc.d, ldc);
        /* the whole of C including its padding, which must still be NaN */
        st_check_buf(st, op, shape, &bc, nc, (size_t)ldc, scale, tol);
    }
    st_buf_free(st, &ba);
    st_buf_free(st, &bb);
    st_buf_free(st, &bc);
    free(a);
    free(b);
    free(c);
}

static void st_gemms(st_run *st)
{
    /* odd shapes, so no dimension is a multiple of any tile or vector width */
    for (int ta = 0; ta <= 1; ta++)
        for (int tb = 0; tb <= 1; tb++) {
            st_gemm(st, ta, tb, 37, 53, 29, 3, 1.0f, 0.0f);
            st_gemm(st, ta, tb, 37, 53, 29, 5, 0.75f, 0.5f); /* accumulating into C */
        }
    /* degenerate ones: one row and K = 1 (an outer product of vectors), one output column */
    st_gemm(st, 0, 0, 1, 301, 1, 1, 1.0f, 0.0f);
    st_gemm(st, 1, 1, 1, 301, 1, 2, 1.0f, 0.0f);
    st_gemm(st, 0, 1, 67, 1, 257, 0, 1.0f, 0.0f);
    /* the model's three products at a batch-like size: forward (N T), dW (T N), d_in (N N) */
    st_gemm(st, 0, 1, 96, 80, 130, 0, 1.0f, 0.0f);
    st_gemm(st, 1, 0, 80, 130, 96, 0, 1.0f, 0.0f);
    st_gemm(st, 0, 0, 96, 130, 80, 0, 1.0f, 0.0f);
}

/* xb(B,I) = x[idx], yb = y[idx], with repeated and out-of-order indices. */
/* gemm_epilogue: the product is gemm's (same tolerance, plus |bias| in the scale); DRELU's bias
 * gradient sums m such products over the rows: each is off by at most the product's tolerance
 * times its sum of |terms|, and the sum adds st_tol_sum(m) of the sum of those, so its scale is
 * the largest column sum of the products' sums of |terms| and its tolerance the two added (the
 * order of the sum differs from the CPU's: the bound holds in any order); the ReLU mask must
 * match exactly wherever the exact pre-activation is farther from 0 than the product's
 * tolerance (nearer, either bit is a correct rounding). The
 * device backend is checked only in the kinds it fuses (be->epilogues: cuBLASLt may refuse some
 * on a GPU); the CPU backend computes every kind. */
typedef struct {
    int epi, ta, tb, m, n, k, lda, ldb, ldc;
    float *a, *b, *c, *vec;
    uint8_t *mask;
    double *z;     /* exact op(A) op(B) (+ bias), (m, n), of the operands the backends read */
    double scale;  /* max sum of |terms| (+ |bias|) */
    double vscale; /* max over columns of the sum over rows of the sums of |terms| */
} st_epi;

static float st_epi_operand(const st_run *st, float x)
{
    return st->prec == DPT_PREC_BF16 ? dpt_op_round_bf16(x) : x;
}

static void st_epi_inputs(st_run *st, st_epi *e)
{
    int a_rows = e->ta ? e->k : e->m, a_cols = e->ta ? e->m : e->k;
    int b_rows = e->tb ? e->n : e->k, b_cols = e->tb ? e->k : e->n;
    e->lda = a_cols + 3;
    e->ldb = b_cols + 2;
    e->ldc = e->n + 1;
    size_t na = (size_t)a_rows * e->lda, nb = (size_t)b_rows * e->ldb;
    e->a = st_xmalloc(na * sizeof(float));
    e->b = st_xmalloc(nb * sizeof(float));
    e->c = st_xmalloc((size_t)e->m * e->ldc * sizeof(float));
    e->vec = st_xmalloc((size_t)(e->m > e->n ? e->m : e->n) * sizeof(float));
    e->mask = st_xmalloc(dpt_epi_mask_bytes(e->m, e->n));
    e->z = st_xmalloc((size_t)e->m * e->n * sizeof(double));
    st_fill_nan(e->a, na);
    st_fill_nan(e->b, nb);
    st_fill_nan(e->c, (size_t)e->m * e->ldc);
    for (int i = 0; i < a_rows; i++)
        st_fill_normal(st, e->a + (size_t)i * e->lda, (size_t)a_cols, 1.0f);
    for (int i = 0; i < b_rows; i++)
        st_fill_normal(st, e->b + (size_t)i * e->ldb, (size_t)b_cols, 1.0f);
    st_fill_normal(st, e->vec, (size_t)(e->m > e->n ? e->m : e->n), 1.0f);
    for (size_t i = 0; i < dpt_epi_mask_bytes(e->m, e->n); i++) /* DRELU's input */
        e->mask[i] = (uint8_t)(dpt_rng_normal(ST_SEED, DPT_RNG_SYNTH_X, st->counter++) * 64.0);
    int bias = e->epi == DPT_EPI_BIAS || e->epi == DPT_EPI_RELU_BIAS;
    e->scale = e->vscale = 0.0;
    double *col = calloc((size_t)e->n, sizeof(double));
    for (int i = 0; i < e->m && col; i++)
        for (int j = 0; j < e->n; j++) {
            double s = bias ? e->vec[j] : 0.0, abs_s = bias ? fabs(e->vec[j]) : 0.0;
            for (int l = 0; l < e->k; l++) {
                double t = (double)st_epi_operand(st, e->ta ? e->a[(size_t)l * e->lda + i]
                                                            : e->a[(size_t)i * e->lda + l]) *
                           st_epi_operand(st, e->tb ? e->b[(size_t)j * e->ldb + l]
                                                    : e->b[(size_t)l * e->ldb + j]);
                s += t;
                abs_s += fabs(t);
            }
            e->z[(size_t)i * e->n + j] = s;
            if (abs_s > e->scale)
                e->scale = abs_s;
            col[j] += abs_s;
            if (col[j] > e->vscale)
                e->vscale = col[j];
        }
    if (!col)
        abort(); /* a few KB of host memory */
    free(col);
}

/* The mask bits as 0/1 floats, NaN where the exact pre-activation is within `near` of 0. */
static float *st_epi_bits(const st_epi *e, const uint8_t *mask, double near)
{
    float *f = st_xmalloc((size_t)e->m * e->n * sizeof(float));
    for (int i = 0; i < e->m; i++)
        for (int j = 0; j < e->n; j++) {
            size_t bit = (size_t)i * dpt_epi_mask_ld(e->n) + (size_t)j;
            f[(size_t)i * e->n + j] = fabs(e->z[(size_t)i * e->n + j]) <= near
                                          ? NAN : (float)((mask[bit / 8] >> (bit % 8)) & 1u);
        }
    return f;
}

static void st_epilogue(st_run *st, int epi, const char *name, int ta, int tb, int m, int n, int k)
{
    if (!st->dev->host_memory && !(st->dev->epilogues & epi))
        return;
    st_epi e = {.epi = epi, .ta = ta, .tb = tb, .m = m, .n = n, .k = k};
    st_epi_inputs(st, &e);
    char op[64], shape[48];
    snprintf(op, sizeof op, "gemm_epilogue %s %c%c", name, ta ? 'T' : 'N', tb ? 'T' : 'N');
    snprintf(shape, sizeof shape, "%dx%dx%d", m, n, k);
    double tol = st_tol_sum(k) + (st->prec == DPT_PREC_TF32 ? ST_TOL_TF32_INPUTS : 0.0);
    size_t nc = (size_t)m * e.ldc, nmask = dpt_epi_mask_bytes(m, n), nv = (size_t)(m > n ? m : n);
    st_buf ba = {0}, bb = {0}, bc = {0}, bv = {0}, bm = {0};
    if (st_buf_init(st, &ba, e.a, (size_t)(ta ? k : m) * e.lda * sizeof(float), op) == 0 &&
        st_buf_init(st, &bb, e.b, (size_t)(tb ? n : k) * e.ldb * sizeof(float), op) == 0 &&
        st_buf_init(st, &bc, e.c, nc * sizeof(float), op) == 0 &&
        st_buf_init(st, &bv, e.vec, nv * sizeof(float), op) == 0 &&
        st_buf_init(st, &bm, e.mask, nmask, op) == 0) {
        st->ref->gemm_epilogue(st->ref, epi, ta, tb, m, n, k, ba.r, e.lda, bb.r, e.ldb, bc.r,
                               e.ldc, bv.r, bm.r);
        st->dev->gemm_epilogue(st->dev, epi, ta, tb, m, n, k, ba.d, e.lda, bb.d, e.ldb, bc.d,
                               e.ldc, bv.d, bm.d);
        st_check_buf(st, op, shape, &bc, nc, (size_t)e.ldc, e.scale, tol);
        if (epi == DPT_EPI_DRELU) {
            snprintf(op, sizeof op, "gemm_epilogue %s bias grad", name);
            st_check_buf(st, op, shape, &bv, (size_t)n, 0, e.vscale, tol + st_tol_sum(m));
        }
        if (epi == DPT_EPI_RELU_BIAS) {
            uint8_t *mr = st_xmalloc(nmask), *md = st_xmalloc(nmask);
            st_buf_fetch(st, &bm, mr, md);
            float *fr = st_epi_bits(&e, mr, tol * e.scale), *fd = st_epi_bits(&e, md, tol * e.scale);
            snprintf(op, sizeof op, "gemm_epilogue %s mask", name);
            st_compare(st, op, shape, fr, fd, ST_F32, (size_t)m * n, (size_t)n, 1.0, ST_TOL_EXACT);
            free(fr), free(fd), free(mr), free(md);
        }
    }
    st_buf_free(st, &ba), st_buf_free(st, &bb), st_buf_free(st, &bc);
    st_buf_free(st, &bv), st_buf_free(st, &bm);
    free(e.a), free(e.b), free(e.c), free(e.vec), free(e.mask), free(e.z);
}

/* The model's fused GEMMs at odd shapes: forward (N T) with the bias or bias + ReLU, the input
 * gradient (N N) through the ReLU mask with the bias gradient of the masked layer. */
static void st_epilogues(st_run *st)
{
    st_epilogue(st, DPT_EPI_BIAS, "bias", 0, 1, 37, 53, 29);
    st_epilogue(st, DPT_EPI_RELU_BIAS, "relu_bias", 0, 1, 37, 53, 29);
    st_epilogue(st, DPT_EPI_RELU_BIAS, "relu_bias", 0, 1, 7, 130, 64); /* two mask words */
    st_epilogue(st, DPT_EPI_DRELU, "drelu", 0, 0, 37, 53, 29);
    st_epilogue(st, DPT_EPI_DRELU, "drelu", 0, 0, 300, 29, 7); /* a long bias-gradient sum */
}

static void st_gather(st_run *st)
{
    const int N = 50, I = 13, B = 41;
    const char *op = "gather";
    char shape[48];
    snprintf(shape, sizeof shape, "%dx%d of %d", B, I, N);
    float *x = st_xmalloc((size_t)N * I * sizeof(float));
    int32_t *y = st_xmalloc((size_t)N * sizeof(int32_t));
    int64_t *idx = st_xmalloc((size_t)B * sizeof(int64_t));
    st_fill_normal(st, x, (size_t)N * I, 1.0f);
    for (int i = 0; i < N; i++)
        y[i] = (int32_t)dpt_rng_below(ST_SEED, DPT_RNG_SYNTH_X, st->counter++, 1000);
    for (int i = 0; i < B; i++)
        idx[i] = (int64_t)dpt_rng_below(ST_SEED, DPT_RNG_SYNTH_X, st->counter++, (uint64_t)N);
    idx[B - 1] = N - 1; /* the last sample, so a reader one row short shows */
    float *nanb = st_xmalloc((size_t)B * I * sizeof(float));
    st_fill_nan(nanb, (size_t)B * I);
    int32_t *minus = st_xmalloc((size_t)B * sizeof(int32_t));
    for (int i = 0; i < B; i++)
        minus[i] = -1;

    st_buf bx = {0}, by = {0}, bi = {0}, bxb = {0}, byb = {0};
    if (st_buf_init(st, &bx, x, (size_t)N * I * sizeof(float), op) == 0 &&
        st_buf_init(st, &by, y, (size_t)N * sizeof(int32_t), op) == 0 &&
        st_buf_init(st, &bi, idx, (size_t)B * sizeof(int64_t), op) == 0 &&
        st_buf_init(st, &bxb, nanb, (size_t)B * I * sizeof(float), op) == 0 &&
        st_buf_init(st, &byb, minus, (size_t)B * sizeof(int32_t), op) == 0) {
        st->ref->gather(st->ref, bx.r, by.r, bi.r, B, I, bxb.r, byb.r);
        st->dev->gather(st->dev, bx.d, by.d, bi.d, B, I, bxb.d, byb.d);
        st_check_buf(st, "gather x", shape, &bxb, (size_t)B * I, (size_t)I, -1.0, ST_TOL_EXACT);
        int32_t *yr = st_xmalloc(byb.bytes), *yd = st_xmalloc(byb.bytes);
        st_buf_fetch(st, &byb, yr, yd);
        st_compare(st, "gather y", shape, yr, yd, ST_I32, (size_t)B, 0, -1.0, ST_TOL_EXACT);
        free(yr);
        free(yd);
    }
    st_buf_free(st, &bx);
    st_buf_free(st, &by);
    st_buf_free(st, &bi);
    st_buf_free(st, &bxb);
    st_buf_free(st, &byb);
    free(x);
    free(y);
    free(idx);
    free(nanb);
    free(minus);
}

/* 33 x 70 = 2310 elements: 10 blocks of 256 threads, the last one partly idle. */
enum { ST_ACT_ROWS = 33, ST_ACT_COLS = 70 };

/* Dropout as in training, with a step and row offset that are not 0, so a backend that drops
 * either from the key draws another mask and fails. */
static dpt_dropout st_dropout(float p)
{
    dpt_dropout d;
    memset(&d, 0, sizeof d);
    d.p = p;
    d.seed = ST_SEED ^ 0x1234u;
    d.step = 7;
    d.row0 = 5;
    return d;
}

static void st_bias_act_forward(st_run *st, dpt_activation act, float p)
{
    const int R = ST_ACT_ROWS, C = ST_ACT_COLS, layer = 2;
    size_t n = (size_t)R * C;
    char op[64], shape[48];
    snprintf(shape, sizeof shape, "%dx%d", R, C);
    dpt_dropout drop = st_dropout(p);
    float *z = st_xmalloc(n * sizeof(float)), *a = st_xmalloc(n * sizeof(float));
    float *b = st_xmalloc((size_t)C * sizeof(float));
    st_fill_normal(st, z, n, 1.5f); /* wide enough to reach the flat parts of tanh and sigmoid */
    st_fill_normal(st, b, (size_t)C, 0.5f);
    st_fill_nan(a, n); /* output only: every element must be written */
    st_buf bz = {0}, ba = {0}, bb = {0};
    snprintf(op, sizeof op, "bias_act_forward %s%s", st_act_name(act), p > 0 ? " drop" : "");
    if (st_buf_init(st, &bz, z, n * sizeof(float), op) == 0 &&
        st_buf_init(st, &ba, a, n * sizeof(float), op) == 0 &&
        st_buf_init(st, &bb, b, (size_t)C * sizeof(float), op) == 0) {
        st->ref->bias_act_forward(st->ref, bz.r, ba.r, bb.r, R, C, act, p > 0 ? &drop : NULL,
                                  layer);
        st->dev->bias_act_forward(st->dev, bz.d, ba.d, bb.d, R, C, act, p > 0 ? &drop : NULL,
                                  layer);
        snprintf(op, sizeof op, "bias_act_forward %s%s z", st_act_name(act), p > 0 ? " drop" : "");
        /* z + b is one correctly rounded addition */
        st_check_buf(st, op, shape, &bz, n, (size_t)C, -1.0, ST_TOL_EXACT);
        snprintf(op, sizeof op, "bias_act_forward %s%s a", st_act_name(act), p > 0 ? " drop" : "");
        st_check_buf(st, op, shape, &ba, n, (size_t)C, -1.0, ST_TOL_ELEMENTWISE);
    }
    st_buf_free(st, &bz);
    st_buf_free(st, &ba);
    st_buf_free(st, &bb);
    free(z);
    free(a);
    free(b);
}

static void st_act_backward(st_run *st, dpt_activation act, float p)
{
    const int R = ST_ACT_ROWS, C = ST_ACT_COLS, layer = 1;
    size_t n = (size_t)R * C;
    char op[64], shape[48];
    snprintf(op, sizeof op, "act_backward %s%s", st_act_name(act), p > 0 ? " drop" : "");
    snprintf(shape, sizeof shape, "%dx%d", R, C);
    dpt_dropout drop = st_dropout(p);
    float *d = st_xmalloc(n * sizeof(float)), *z = st_xmalloc(n * sizeof(float));
    float *a = st_xmalloc(n * sizeof(float));
    st_fill_normal(st, d, n, 1.0f);
    st_fill_normal(st, z, n, 1.5f);
    /* a as the forward leaves it: act(z), times the dropout scale when dropping */
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) {
            size_t i = (size_t)r * C + c;
            a[i] = dpt_op_act(z[i], act);
            if (p > 0)
                a[i] *= dpt_op_dropout_scale(&drop, layer, r, c, C);
        }
    st_buf bd = {0}, bz = {0}, ba = {0};
    if (st_buf_init(st, &bd, d, n * sizeof(float), op) == 0 &&
        st_buf_init(st, &bz, z, n * sizeof(float), op) == 0 &&
        st_buf_init(st, &ba, a, n * sizeof(float), op) == 0) {
        st->ref->act_backward(st->ref, bd.r, bz.r, ba.r, R, C, act, p > 0 ? &drop : NULL, layer);
        st->dev->act_backward(st->dev, bd.d, bz.d, ba.d, R, C, act, p > 0 ? &drop : NULL, layer);
        st_check_buf(st, op, shape, &bd, n, (size_t)C, -1.0, ST_TOL_ELEMENTWISE);
    }
    st_buf_free(st, &bd);
    st_buf_free(st, &bz);
    st_buf_free(st, &ba);
    free(d);
    free(z);
    free(a);
}

/* db(O) = column sums of dz(B,O): a reduction of B terms. */
static void st_bias_grad(st_run *st, int R, int C)
{
    size_t n = (size_t)R * C;
    const char *op = "bias_grad";
    char shape[48];
    snprintf(shape, sizeof shape, "%dx%d", R, C);
    float *dz = st_xmalloc(n * sizeof(float)), *db = st_xmalloc((size_t)C * sizeof(float));
    st_fill_normal(st, dz, n, 1.0f);
    st_fill_nan(db, (size_t)C); /* overwritten, not accumulated into */
    double scale = 0.0;
    for (int c = 0; c < C; c++) {
        double s = 0.0;
        for (int r = 0; r < R; r++)
            s += fabs((double)dz[(size_t)r * C + c]);
        if (s > scale)
            scale = s;
    }
    st_buf bdz = {0}, bdb = {0};
    if (st_buf_init(st, &bdz, dz, n * sizeof(float), op) == 0 &&
        st_buf_init(st, &bdb, db, (size_t)C * sizeof(float), op) == 0) {
        st->ref->bias_grad(st->ref, bdz.r, R, C, bdb.r);
        st->dev->bias_grad(st->dev, bdz.d, R, C, bdb.d);
        st_check_buf(st, op, shape, &bdb, (size_t)C, 0, scale, st_tol_sum(R));
    }
    st_buf_free(st, &bdz);
    st_buf_free(st, &bdb);
    free(dz);
    free(db);
}

/* loss_stats, then accumulate: the step's statistics as the trainer keeps them on a device.
 * The sums are the loss op's (same tolerance), stored as float; rows and the flag slot exact;
 * then added twice to double sums that start at (1.25, 3.0), as two steps would be. */
static void st_loss_stats(st_run *st, const st_buf *bz, const st_buf *by, int R, int C,
                          dpt_loss loss, float gs, double scale, const char *shape)
{
    const double acc0[2] = {1.25, 3.0};
    st_buf bs = {0}, bd = {0}, ba = {0};
    if (st_buf_init(st, &bs, NULL, 4 * sizeof(float), "loss_stats") == 0 &&
        st_buf_init(st, &bd, NULL, (size_t)R * C * sizeof(float), "loss_stats") == 0 &&
        st_buf_init(st, &ba, acc0, sizeof acc0, "accumulate") == 0) {
        st->ref->loss_stats(st->ref, bz->r, by->r, R, C, loss, gs, bd.r, bs.r);
        st->dev->loss_stats(st->dev, bz->d, by->d, R, C, loss, gs, bd.d, bs.d);
        st_check_buf(st, "loss_stats", shape, &bs, 4, 0, scale + R, ST_TOL_ELEMENTWISE);
        st_check_buf(st, "loss_stats dlogits", shape, &bd, (size_t)R * C, (size_t)C, -1.0,
                     ST_TOL_ELEMENTWISE);
        for (int k = 0; k < 2; k++) {
            st->ref->accumulate(st->ref, ba.r, bs.r, 2);
            st->dev->accumulate(st->dev, ba.d, bs.d, 2);
        }
        double hr[2], hd[2];
        st_buf_fetch(st, &ba, hr, hd);
        st_compare(st, "accumulate", shape, hr, hd, ST_F64, 2, 0, 2.0 * (scale + R) + 3.0,
                   ST_TOL_ELEMENTWISE);
    }
    st_buf_free(st, &bs);
    st_buf_free(st, &bd);
    st_buf_free(st, &ba);
}

/* The loss with and without dlogits. 300 rows: three blocks of the loss kernel's 128 threads,
 * the last partly idle. Row 0 is a tie (all logits equal: argmax is the first), and the sums
 * start from non-zero values, since the op adds to them. */
static void st_loss(st_run *st, dpt_loss loss, int with_grad)
{
    const int R = 300, C = 10;
    size_t n = (size_t)R * C;
    const char *lname = loss == DPT_LOSS_SOFTMAX_CE ? "softmax_ce" : "mse";
    char op[64], shape[48];
    snprintf(shape, sizeof shape, "%dx%d", R, C);
    snprintf(op, sizeof op, "loss %s%s", lname, with_grad ? " +grad" : "");
    float *z = st_xmalloc(n * sizeof(float)), *dz = st_xmalloc(n * sizeof(float));
    int32_t *y = st_xmalloc((size_t)R * sizeof(int32_t));
    st_fill_normal(st, z, n, 2.0f);
    for (int c = 0; c < C; c++)
        z[c] = 0.5f;
    for (int r = 0; r < R; r++)
        y[r] = (int32_t)dpt_rng_below(ST_SEED, DPT_RNG_SYNTH_X, st->counter++, (uint64_t)C);
    st_fill_nan(dz, n);
    /* loss_sum scale: each row's loss is formed from values no larger than max|z| + log C
     * (the log-sum-exp) and |z_label| for CE, and is its own size for MSE (a mean of squares) */
    double scale = 0.0;
    for (int r = 0; r < R; r++) {
        const float *zr = z + (size_t)r * C;
        double mx = 0.0, sq = 0.0;
        for (int c = 0; c < C; c++) {
            if (fabs((double)zr[c]) > mx)
                mx = fabs((double)zr[c]);
            double e = (double)zr[c] - (c == y[r] ? 1.0 : 0.0);
            sq += e * e;
        }
        scale += loss == DPT_LOSS_SOFTMAX_CE ? mx + log((double)C) + fabs((double)zr[y[r]])
                                             : sq / C;
    }
    st_buf bz = {0}, by = {0}, bdz = {0};
    if (st_buf_init(st, &bz, z, n * sizeof(float), op) == 0 &&
        st_buf_init(st, &by, y, (size_t)R * sizeof(int32_t), op) == 0 &&
        st_buf_init(st, &bdz, dz, n * sizeof(float), op) == 0) {
        double sums_r[2] = {1.25, 3.0}, sums_d[2] = {1.25, 3.0}; /* loss_sum, correct */
        float gs = 1.0f / (float)R;
        st->ref->loss(st->ref, bz.r, by.r, R, C, loss, gs, with_grad ? bdz.r : NULL, &sums_r[0],
                      &sums_r[1]);
        st->dev->loss(st->dev, bz.d, by.d, R, C, loss, gs, with_grad ? bdz.d : NULL, &sums_d[0],
                      &sums_d[1]);
        char what[80];
        if (with_grad) {
            snprintf(what, sizeof what, "%s dlogits", op);
            st_check_buf(st, what, shape, &bdz, n, (size_t)C, -1.0, ST_TOL_ELEMENTWISE);
        }
        snprintf(what, sizeof what, "%s loss_sum", op);
        st_compare(st, what, shape, &sums_r[0], &sums_d[0], ST_F64, 1, 0, scale + 1.25,
                   ST_TOL_ELEMENTWISE);
        snprintf(what, sizeof what, "%s correct", op);
        st_compare(st, what, shape, &sums_r[1], &sums_d[1], ST_F64, 1, 0, -1.0, ST_TOL_EXACT);
        if (with_grad)
            st_loss_stats(st, &bz, &by, R, C, loss, gs, scale, shape);
    }
    st_buf_free(st, &bz);
    st_buf_free(st, &by);
    st_buf_free(st, &bdz);
    free(z);
    free(dz);
    free(y);
}

/* loss_targets_stats: loss_targets's sum (the same tolerance) stored as the step's statistics
 * ({sum, 0, rows, 0}: rows and the empty slots exact), and its dout. */
static void st_targets_stats(st_run *st, const st_buf *bz, const st_buf *br, const st_buf *bt,
                             int R, int T, dpt_loss loss, float delta, float gs,
                             double scale, const char *shape)
{
    st_buf bs = {0}, bd = {0};
    if (st_buf_init(st, &bs, NULL, 4 * sizeof(float), "loss_targets_stats") == 0 &&
        st_buf_init(st, &bd, NULL, (size_t)R * T * sizeof(float), "loss_targets_stats") == 0) {
        st->ref->loss_targets_stats(st->ref, bz->r, br->r, bt->r, R, T, loss, delta, gs, bd.r,
                                    bs.r);
        st->dev->loss_targets_stats(st->dev, bz->d, br->d, bt->d, R, T, loss, delta, gs, bd.d,
                                    bs.d);
        st_check_buf(st, "loss_targets_stats", shape, &bs, 4, 0, scale + R, ST_TOL_ELEMENTWISE);
        st_check_buf(st, "loss_targets_stats dout", shape, &bd, (size_t)R * T, (size_t)T, -1.0,
                     ST_TOL_ELEMENTWISE);
    }
    st_buf_free(st, &bs);
    st_buf_free(st, &bd);
}

/* The regression loss with and without dout: 300 rows of 3 targets, each row's targets picked
 * by index from a table of 500 rows (as a split's labels index its target table), errors both
 * within and beyond Huber's delta (1, the default, and another). */
static void st_loss_targets(st_run *st, dpt_loss loss, float delta, int with_grad)
{
    const int R = 300, T = 3, N = 500;
    size_t n = (size_t)R * T;
    char op[64], shape[48];
    snprintf(shape, sizeof shape, "%dx%d", R, T);
    snprintf(op, sizeof op, "loss_targets %s%s", loss == DPT_LOSS_HUBER ? "huber" : "mse",
             with_grad ? " +grad" : "");
    if (delta != 1.0f)
        snprintf(op + strlen(op), sizeof op - strlen(op), " delta %g", (double)delta);
    float *z = st_xmalloc(n * sizeof(float)), *dz = st_xmalloc(n * sizeof(float));
    float *t = st_xmalloc((size_t)N * T * sizeof(float));
    int32_t *row = st_xmalloc((size_t)R * sizeof(int32_t));
    st_fill_normal(st, z, n, 2.0f);
    st_fill_normal(st, t, (size_t)N * T, 1.0f);
    for (int r = 0; r < R; r++)
        row[r] = (int32_t)dpt_rng_below(ST_SEED, DPT_RNG_SYNTH_X, st->counter++, (uint64_t)N);
    st_fill_nan(dz, n);
    double scale = 0.0; /* each row's loss is its own size: a mean of non-negative terms */
    for (int r = 0; r < R; r++)
        scale += (double)dpt_op_regress_row(z + (size_t)r * T, t + (size_t)row[r] * T, T, loss,
                                            delta, 1.0f, NULL);
    st_buf bz = {0}, br = {0}, bt = {0}, bdz = {0};
    if (st_buf_init(st, &bz, z, n * sizeof(float), op) == 0 &&
        st_buf_init(st, &br, row, (size_t)R * sizeof(int32_t), op) == 0 &&
        st_buf_init(st, &bt, t, (size_t)N * T * sizeof(float), op) == 0 &&
        st_buf_init(st, &bdz, dz, n * sizeof(float), op) == 0) {
        double sum_r = 1.25, sum_d = 1.25; /* the op adds to the sum */
        float gs = 1.0f / (float)R;
        st->ref->loss_targets(st->ref, bz.r, br.r, bt.r, R, T, loss, delta, gs,
                              with_grad ? bdz.r : NULL, &sum_r);
        st->dev->loss_targets(st->dev, bz.d, br.d, bt.d, R, T, loss, delta, gs,
                              with_grad ? bdz.d : NULL, &sum_d);
        char what[80];
        if (with_grad) {
            snprintf(what, sizeof what, "%s dout", op);
            st_check_buf(st, what, shape, &bdz, n, (size_t)T, -1.0, ST_TOL_ELEMENTWISE);
        }
        snprintf(what, sizeof what, "%s loss_sum", op);
        st_compare(st, what, shape, &sum_r, &sum_d, ST_F64, 1, 0, scale + 1.25,
                   ST_TOL_ELEMENTWISE);
        if (with_grad) /* the training step's form: the sum left in backend memory */
            st_targets_stats(st, &bz, &br, &bt, R, T, loss, delta, gs, scale, shape);
    }
    st_buf_free(st, &bz);
    st_buf_free(st, &br);
    st_buf_free(st, &bt);
    st_buf_free(st, &bdz);
    free(z);
    free(dz);
    free(t);
    free(row);
}

/* Sum of squares in double: every term x*x is exact in double (24 + 24 bits < 53), and for
 * non-negative terms any order of summation errs by at most (n - 1) u64 of the sum (Higham,
 * op. cit., section 4.2), so two backends differ by at most 2 (n - 1) u64 of it. */
static void st_sum_squares(st_run *st, size_t n)
{
    const char *op = "sum_squares";
    char shape[48];
    snprintf(shape, sizeof shape, "%zu", n);
    float *x = st_xmalloc(n * sizeof(float));
    st_fill_normal(st, x, n, 1.0f);
    st_buf bx = {0};
    if (st_buf_init(st, &bx, x, n * sizeof(float), op) == 0) {
        double r = st->ref->sum_squares(st->ref, bx.r, n);
        double d = st->dev->sum_squares(st->dev, bx.d, n);
        double tol = 2.0 * (double)(n > 1 ? n - 1 : 0) * ST_U64;
        st_compare(st, op, shape, &r, &d, ST_F64, 1, 0, -1.0, tol);
    }
    st_buf_free(st, &bx);
    free(x);
}

/* clip_grad_norm above and below the limit (norm of n normal values: about sqrt(n)): the
 * factor is formed from the norm, whose sums differ in order between backends (as
 * sum_squares), then one product per element. */
static void st_clip(st_run *st, size_t n, double max_norm)
{
    char shape[64];
    snprintf(shape, sizeof shape, "%zu max_norm %g", n, max_norm);
    float *x = st_xmalloc(n * sizeof(float));
    st_fill_normal(st, x, n, 1.0f);
    st_buf bx = {0};
    if (st_buf_init(st, &bx, x, n * sizeof(float), "clip_grad_norm") == 0) {
        st->ref->clip_grad_norm(st->ref, bx.r, n, max_norm);
        st->dev->clip_grad_norm(st->dev, bx.d, n, max_norm);
        st_check_buf(st, "clip_grad_norm", shape, &bx, n, 0, -1.0, ST_TOL_ELEMENTWISE);
    }
    st_buf_free(st, &bx);
    free(x);
}

/* zero a range inside a buffer (bytes, not floats), then scale the whole buffer. */
static void st_zero_scale(st_run *st)
{
    const size_t n = 100003; /* more than 65535 * 256 would take 67 MB: not needed to cover a grid */
    const size_t off = 3, len = 1001;
    char shape[48];
    snprintf(shape, sizeof shape, "%zu", n);
    float *x = st_xmalloc(n * sizeof(float));
    st_fill_normal(st, x, n, 1.0f);
    st_buf bx = {0};
    if (st_buf_init(st, &bx, x, n * sizeof(float), "zero") == 0) {
        st->ref->zero(st->ref, (float *)bx.r + off, len * sizeof(float));
        st->dev->zero(st->dev, (float *)bx.d + off, len * sizeof(float));
        char zshape[48];
        snprintf(zshape, sizeof zshape, "%zu of %zu", len, n);
        st_check_buf(st, "zero", zshape, &bx, n, 0, -1.0, ST_TOL_EXACT);
        st->ref->scale(st->ref, bx.r, n, -0.37f);
        st->dev->scale(st->dev, bx.d, n, -0.37f);
        st_check_buf(st, "scale", shape, &bx, n, 0, -1.0, ST_TOL_EXACT);
    }
    st_buf_free(st, &bx);
    free(x);
}

/* One optimizer step over n = 10007 parameters (40 blocks, the last partly idle), from state
 * that is not zero, so a backend that ignores it fails: adam_step (with decoupled) when adam,
 * else sgd_step (with momentum, nesterov). Checks p, the state m, and v for Adam. */
static void st_optim(st_run *st, const char *name, float momentum, int nesterov, float wd,
                     int adam, int decoupled)
{
    const size_t n = 10007;
    char shape[48], op[64];
    snprintf(shape, sizeof shape, "%zu", n);
    float *p = st_xmalloc(n * sizeof(float)), *g = st_xmalloc(n * sizeof(float));
    float *m = st_xmalloc(n * sizeof(float)), *v = st_xmalloc(n * sizeof(float));
    st_fill_normal(st, p, n, 1.0f);
    st_fill_normal(st, g, n, 0.1f);
    st_fill_normal(st, m, n, 0.05f);
    st_fill_uniform(st, v, n, 1e-4f, 1e-2f); /* second moments are positive */
    st_buf bp = {0}, bg = {0}, bm = {0}, bv = {0};
    if (st_buf_init(st, &bp, p, n * sizeof(float), name) == 0 &&
        st_buf_init(st, &bg, g, n * sizeof(float), name) == 0 &&
        st_buf_init(st, &bm, m, n * sizeof(float), name) == 0 &&
        st_buf_init(st, &bv, v, n * sizeof(float), name) == 0) {
        if (adam) {
            /* step 3: bias corrections 1 - beta^3 */
            float b1 = 0.9f, b2 = 0.999f;
            float bc1 = (float)(1.0 - pow(b1, 3.0)), bc2 = (float)(1.0 - pow(b2, 3.0));
            st->ref->adam_step(st->ref, bp.r, bg.r, bm.r, bv.r, n, 1e-3f, b1, b2, 1e-8f, wd,
                               decoupled, bc1, bc2);
            st->dev->adam_step(st->dev, bp.d, bg.d, bm.d, bv.d, n, 1e-3f, b1, b2, 1e-8f, wd,
                               decoupled, bc1, bc2);
        } else {
            st->ref->sgd_step(st->ref, bp.r, bg.r, bm.r, n, 0.05f, momentum, nesterov, wd);
            st->dev->sgd_step(st->dev, bp.d, bg.d, bm.d, n, 0.05f, momentum, nesterov, wd);
        }
        snprintf(op, sizeof op, "%s p", name);
        st_check_buf(st, op, shape, &bp, n, 0, -1.0, ST_TOL_ELEMENTWISE);
        snprintf(op, sizeof op, "%s m", name);
        st_check_buf(st, op, shape, &bm, n, 0, -1.0, ST_TOL_ELEMENTWISE);
        if (adam) {
            snprintf(op, sizeof op, "%s v", name);
            st_check_buf(st, op, shape, &bv, n, 0, -1.0, ST_TOL_ELEMENTWISE);
        }
    }
    st_buf_free(st, &bp);
    st_buf_free(st, &bg);
    st_buf_free(st, &bm);
    st_buf_free(st, &bv);
    free(p);
    free(g);
    free(m);
    free(v);
}

/* ---- the staged-batch path ---- */

/* One staged copy as the trainer makes it: release the slot, queue the copy from pinned memory,
 * make compute wait for it, and wait on the host before the pinned buffer may be refilled. */
static void st_stage(dpt_backend *be, void *dst, void *pinned, const float *x, size_t bytes)
{
    const int slot = 1;
    memcpy(pinned, x, bytes);
    be->release_slot(be, slot);
    be->upload_async(be, dst, pinned, bytes, slot);
    be->wait_slot(be, slot);
    be->host_wait_slot(be, slot);
    memset(pinned, 0, bytes); /* refilled: must not reach the copy any more */
}

/* alloc_pinned, upload_async, the slot ops and free_pinned: the copy must arrive whole (exact). */
static void st_staging(st_run *st)
{
    const char *op = "upload_async (staged)";
    const size_t n = 4099, bytes = n * sizeof(float);
    char shape[48];
    snprintf(shape, sizeof shape, "%zu", n);
    float *x = st_xmalloc(bytes);
    st_fill_normal(st, x, n, 1.0f);
    void *pr = st->ref->alloc_pinned(st->ref, bytes), *pd = st->dev->alloc_pinned(st->dev, bytes);
    st_buf b = {0};
    if (!pr || !pd) {
        st_setup_failed(st, op, "could not allocate pinned memory on both backends");
    } else if (st_buf_init(st, &b, NULL, bytes, op) == 0) {
        st_stage(st->ref, b.r, pr, x, bytes);
        st_stage(st->dev, b.d, pd, x, bytes);
        st_check_buf(st, op, shape, &b, n, 0, -1.0, ST_TOL_EXACT);
    }
    st_buf_free(st, &b);
    if (pr)
        st->ref->free_pinned(st->ref, pr);
    if (pd)
        st->dev->free_pinned(st->dev, pd);
    free(x);
}

/* ---- coverage: which check compares each op of the table ---- */

/* Indexed by DPT_BACKEND_OP_*: the parity check that covers the op. An op added to
 * DPT_BACKEND_OPS (src/backend.h) without a row here is NULL and named by the report. */
static const char *const st_op_checks[DPT_BACKEND_N_OPS] = {
    [DPT_BACKEND_OP_alloc] = "every check (its buffers)",
    [DPT_BACKEND_OP_free] = "every check (its buffers)",
    [DPT_BACKEND_OP_upload] = "every check (its inputs)",
    [DPT_BACKEND_OP_download] = "every check (its outputs)",
    [DPT_BACKEND_OP_sync] = "every check (before its outputs)",
    [DPT_BACKEND_OP_zero] = "zero",
    [DPT_BACKEND_OP_gemm] = "gemm",
    [DPT_BACKEND_OP_gemm_epilogue] = "gemm_epilogue",
    [DPT_BACKEND_OP_gather] = "gather",
    [DPT_BACKEND_OP_bias_act_forward] = "bias_act_forward",
    [DPT_BACKEND_OP_act_backward] = "act_backward",
    [DPT_BACKEND_OP_bias_grad] = "bias_grad",
    [DPT_BACKEND_OP_loss] = "loss",
    [DPT_BACKEND_OP_loss_targets] = "loss_targets",
    [DPT_BACKEND_OP_loss_stats] = "loss_stats",
    [DPT_BACKEND_OP_loss_targets_stats] = "loss_targets_stats",
    [DPT_BACKEND_OP_accumulate] = "accumulate",
    [DPT_BACKEND_OP_sum_squares] = "sum_squares",
    [DPT_BACKEND_OP_scale] = "scale",
    [DPT_BACKEND_OP_clip_grad_norm] = "clip_grad_norm",
    [DPT_BACKEND_OP_sgd_step] = "sgd_step",
    [DPT_BACKEND_OP_adam_step] = "adam_step",
    [DPT_BACKEND_OP_alloc_pinned] = "upload_async (staged)",
    [DPT_BACKEND_OP_free_pinned] = "upload_async (staged)",
    [DPT_BACKEND_OP_upload_async] = "upload_async (staged)",
    [DPT_BACKEND_OP_wait_slot] = "upload_async (staged)",
    [DPT_BACKEND_OP_release_slot] = "upload_async (staged)",
    [DPT_BACKEND_OP_host_wait_slot] = "upload_async (staged)",
    [DPT_BACKEND_OP_mem_info] = "none: no result to compare (integration_gpu_alloc uses it)",
    [DPT_BACKEND_OP_destroy] = "train (dpt_trainer_free destroys its backend)",
};

const char *const *dpt_selftest_op_checks(void) { return st_op_checks; }

int dpt_selftest_uncovered(const char *const checks[], FILE *out)
{
    int missing = 0;
    for (int op = 0; op < DPT_BACKEND_N_OPS; op++) {
        if (checks[op])
            continue;
        missing++;
        if (out)
            fprintf(out, "UNCOVERED  op %s of the backend table has no parity check\n",
                    dpt_backend_op_name(op));
    }
    if (out && missing == 0)
        fprintf(out, "# coverage: every op of the backend table (%d) has a parity check\n",
                (int)DPT_BACKEND_N_OPS);
    return missing;
}

/* ---- end to end: the real training step on two devices ---- */

enum { ST_TRAIN_N = 256, ST_TRAIN_B = 32, ST_TRAIN_STEPS = 100 };

/* A small MLP on a synthetic data set, one rank, constant learning rate, with the parts of the
 * step that each backend does on its own: dropout (the mask both must agree on), momentum, weight
 * decay and clipping (sum_squares and scale inside the step). */
static void st_training_config(dpt_config *cfg, dpt_device_kind device, dpt_precision prec)
{
    dpt_config_defaults(cfg);
    cfg->run.seed = 20240601;
    cfg->run.device = device;
    cfg->run.threads = 1;
    cfg->data.format = DPT_FORMAT_SYNTHETIC;
    cfg->data.synthetic_train = ST_TRAIN_N;
    cfg->data.synthetic_test = 0;
    cfg->data.validation_fraction = 0.0;
    /* the CUDA backend then runs the staged path (pinned memory, copy stream) as well */
    cfg->data.device_resident = DPT_RESIDENT_OFF;
    const int widths[4] = {32, 64, 64, 4};
    cfg->model.n_layers = 3;
    memset(cfg->model.widths, 0, sizeof cfg->model.widths);
    memcpy(cfg->model.widths, widths, sizeof widths);
    cfg->model.activation = DPT_ACT_GELU;
    cfg->model.dropout = 0.1;
    cfg->model.loss = DPT_LOSS_SOFTMAX_CE;
    cfg->train.batch_size = ST_TRAIN_B;
    cfg->train.optimizer = DPT_OPT_SGD;
    cfg->train.lr = 0.05;
    cfg->train.momentum = 0.9;
    cfg->train.weight_decay = 1e-4;
    cfg->train.clip_grad_norm = 1.0;
    cfg->train.precision = prec;
}

/* Trains ST_TRAIN_STEPS steps through dpt_trainer_init / dpt_trainer_step and returns the mean
 * loss over the training rows (dpt_trainer_evaluate), or NAN with err set. */
static double st_train_on(dpt_comm *self, const dpt_config *cfg, const dpt_dataset *rows,
                          dpt_error *err)
{
    dpt_trainer *t = NULL;
    if (dpt_trainer_init(&t, cfg, self, err) != DPT_OK)
        return NAN;
    const int64_t spe = ST_TRAIN_N / ST_TRAIN_B;
    double loss = NAN, accuracy = NAN;
    int rc = DPT_STEP_OK;
    for (int64_t s = 0; s < ST_TRAIN_STEPS && rc == DPT_STEP_OK; s++)
        rc = dpt_trainer_step(t, (int)(s / spe), s % spe, s, cfg->train.lr);
    if (rc == DPT_STEP_OK)
        dpt_trainer_evaluate(t, rows, &loss, &accuracy);
    else
        dpt_error_set(err, DPT_ERUNTIME, "the loss diverged on run.device %s",
                      cfg->run.device == DPT_DEVICE_CPU ? "cpu" : "cuda");
    dpt_trainer_free(t);
    return loss;
}

int dpt_selftest_training(dpt_comm *self, dpt_device_kind dev, dpt_precision prec, FILE *out,
                          int verbose, int *n_checks)
{
    const char *op = "train: loss after 100 steps";
    const char *shape = "32-64-64-4 B=32";
    st_run st;
    memset(&st, 0, sizeof st);
    st.out = out;
    st.verbose = verbose;
    dpt_config cref, cdev;
    /* the CPU reference in BF16 too when the device trains in BF16 (the CPU has no TF32) */
    st_training_config(&cref, DPT_DEVICE_CPU,
                       prec == DPT_PREC_BF16 ? DPT_PREC_BF16 : DPT_PREC_FP32);
    st_training_config(&cdev, dev, prec);
    /* the training rows, loaded as the trainers load them, to evaluate both on */
    dpt_data rows;
    dpt_error err = {0};
    dpt_data_spec spec = dpt_data_spec_from_config(&cref);
    double loss_r = NAN, loss_d = NAN;
    if (dpt_data_load(&spec, 0, 1, NULL, NULL, &rows, &err) == DPT_OK) {
        loss_r = st_train_on(self, &cref, &rows.train, &err);
        if (!isnan(loss_r))
            loss_d = st_train_on(self, &cdev, &rows.train, &err);
        dpt_data_free(&rows);
    }
    if (isnan(loss_r) || isnan(loss_d)) {
        st_setup_failed(&st, op, err.msg);
    } else {
        double tol = prec == DPT_PREC_BF16   ? ST_TOL_TRAIN_BF16
                     : prec == DPT_PREC_TF32 ? ST_TOL_TRAIN_TF32
                                             : ST_TOL_TRAIN;
        int ok = st_compare(&st, op, shape, &loss_r, &loss_d, ST_F64, 1, 0, -1.0, tol);
        if (out && (verbose || !ok))
            fprintf(out, "        loss over all %d rows after %d steps of dpt_trainer_step: "
                         "cpu %.9f, %s %.9f\n", ST_TRAIN_N, ST_TRAIN_STEPS, loss_r,
                    dev == DPT_DEVICE_CPU ? "cpu" : "cuda", loss_d);
    }
    if (n_checks)
        *n_checks = st.checks;
    return st.failed;
}

/* ---- entry points ---- */

int dpt_selftest_run(dpt_backend *ref, dpt_backend *dev, dpt_precision prec, FILE *out, int verbose,
                     int *n_checks)
{
    st_run st;
    memset(&st, 0, sizeof st);
    st.ref = ref;
    st.dev = dev;
    st.prec = prec;
    st.out = out;
    st.verbose = verbose;
    if (out && verbose) {
        fprintf(out, "# parity: %s (reference) vs %s (%s GEMMs), seed %#llx\n", ref->name,
                dev->name, st_precision_name(prec), (unsigned long long)ST_SEED);
        fprintf(out, "# a check passes when every |dev - ref| <= tol * scale; scale = max|ref| "
                     "for element-wise ops,\n# the largest sum of |terms| for reductions; "
                     "rel = max|dev - ref| / scale\n");
    }

    st_gemms(&st);
    st_epilogues(&st);
    st_gather(&st);
    static const dpt_activation acts[] = {DPT_ACT_RELU, DPT_ACT_TANH, DPT_ACT_SIGMOID,
                                          DPT_ACT_GELU, DPT_ACT_IDENTITY};
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++)
        for (int d = 0; d <= 1; d++)
            st_bias_act_forward(&st, acts[i], d ? 0.3f : 0.0f);
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++)
        for (int d = 0; d <= 1; d++)
            st_act_backward(&st, acts[i], d ? 0.3f : 0.0f);
    st_bias_grad(&st, 300, 45);
    st_bias_grad(&st, 7, 301); /* two blocks of columns */
    for (int g = 1; g >= 0; g--) {
        st_loss(&st, DPT_LOSS_SOFTMAX_CE, g);
        st_loss(&st, DPT_LOSS_MSE, g);
        st_loss_targets(&st, DPT_LOSS_MSE, 1.0f, g);
        st_loss_targets(&st, DPT_LOSS_HUBER, 1.0f, g);
        st_loss_targets(&st, DPT_LOSS_HUBER, 0.4f, g);
    }
    st_sum_squares(&st, 1);
    st_sum_squares(&st, 1000);
    st_sum_squares(&st, 100003); /* beyond 128 blocks x 256 threads: the grid strides */
    st_zero_scale(&st);
    st_clip(&st, 100003, 100.0); /* the norm is about 316: clipped */
    st_clip(&st, 1000, 100.0);   /* about 32: left as it is */
    st_optim(&st, "sgd_step plain", 0.0f, 0, 0.0f, 0, 0);
    st_optim(&st, "sgd_step momentum", 0.9f, 0, 0.0f, 0, 0);
    st_optim(&st, "sgd_step nesterov wd", 0.9f, 1, 1e-2f, 0, 0);
    st_optim(&st, "adam_step wd", 0.0f, 0, 1e-2f, 1, 0);
    st_optim(&st, "adam_step adamw", 0.0f, 0, 1e-2f, 1, 1);
    st_staging(&st);

    if (out && verbose)
        fprintf(out, "# parity %s vs %s: %d checks, %d failed\n", ref->name, dev->name,
                st.checks, st.failed);
    if (n_checks)
        *n_checks = st.checks;
    return st.failed;
}

int dpt_selftest_backends(dpt_backend *ref, dpt_backend *dev, FILE *out, int verbose)
{
    return dpt_selftest_run(ref, dev, 0, out, verbose, NULL);
}

#ifdef DPT_HAVE_CUDA
/* The CUDA part of `dptrain selftest` on rank 0: FP32 first (must match the CPU closely), then
 * TF32 GEMMs, which training uses with train.precision: tf32 (on GPUs before Ampere the TF32
 * mode is full FP32 anyway), then BF16 against the CPU backend's BF16 twin. */
static int st_main_cuda(FILE *out, dpt_comm *self)
{
    int checks = 0, failed = 0;
    static const dpt_precision precs[] = {DPT_PREC_FP32, DPT_PREC_TF32, DPT_PREC_BF16};
    for (size_t p = 0; p < sizeof precs / sizeof precs[0]; p++) {
        dpt_precision prec = precs[p];
        dpt_backend cpu, gpu;
        dpt_error err = {0};
        if (dpt_cpu_backend_init_precision(&cpu, 1, prec) != 0) {
            fprintf(out, "selftest: the CPU backend did not start (out of memory)\n");
            return 1;
        }
        if (dpt_cuda_backend_init(&gpu, self->device, prec, &err) != DPT_OK) {
            fprintf(out, "selftest: the CUDA backend did not start: %s\n", err.msg);
            cpu.destroy(&cpu);
            return 1;
        }
        char why[160];
        (void)dpt_cuda_epilogues(&gpu, 0, why, sizeof why); /* checks what cuBLASLt accepts */
        fprintf(out, "# %s GEMM epilogues: %s\n", st_precision_name(prec), why);
        int n = 0;
        failed += dpt_selftest_run(&cpu, &gpu, prec, out, 1, &n);
        checks += n;
        gpu.destroy(&gpu);
        cpu.destroy(&cpu);
        failed += dpt_selftest_training(self, DPT_DEVICE_CUDA, prec, out, 1, &n);
        checks += n;
    }
    fprintf(out, "selftest: %d checks, %d failed\n", checks, failed);
    return failed ? 1 : 0;
}
#endif

/* Rank 0's part: the coverage report, then the checks when there is a device to check. */
static int st_main(FILE *out, dpt_comm *self)
{
    dpt_selftest_uncovered(st_op_checks, out);
#ifdef DPT_HAVE_CUDA
    if (self && dpt_cuda_device_count() > 0)
        return st_main_cuda(out, self);
#else
    (void)self;
    fprintf(out, "# built without CUDA (DPT_HAVE_CUDA unset)\n");
#endif
    fprintf(out, "selftest: no CUDA device visible: nothing to test (skipped)\n");
    return 77;
}

int dpt_selftest_main(FILE *out, dpt_comm *comm)
{
    dpt_comm self;
    int split = 0;
#ifdef DPT_HAVE_CUDA
    if (comm) { /* collective: every rank, whatever it sees, so none is left waiting */
        dpt_comm_split(comm, comm->rank, &self);
        split = 1;
    }
#endif
    int rc = comm && comm->rank != 0 ? 0 : st_main(out, split ? &self : NULL);
    if (split)
        dpt_comm_free(&self);
    return rc;
}
