/* The CPU backend: the reference every other backend is compared with. GEMMs go to OpenBLAS
 * through CBLAS (in bf16 precision on operands rounded to bfloat16 first, the CUDA backend's
 * bf16 GEMM's twin); every other op is a plain loop over the per-element math of ops.h. Memory
 * is host memory, so upload and download are copies. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"

static void *cpu_alloc(dpt_backend *be, size_t bytes)
{
    (void)be;
    /* 64-byte alignment: whole cache lines and AVX-512 loads */
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0)
        return NULL;
    memset(p, 0, bytes);
    return p;
}

static void cpu_free(dpt_backend *be, void *p)
{
    (void)be;
    free(p);
}

static void cpu_copy(dpt_backend *be, void *dst, const void *src, size_t bytes)
{
    (void)be;
    if (bytes)
        memcpy(dst, src, bytes);
}

static void cpu_zero(dpt_backend *be, void *p, size_t bytes)
{
    (void)be;
    memset(p, 0, bytes);
}

static void cpu_sync(dpt_backend *be) { (void)be; }

/* be->ctx: NULL in FP32 (and TF32, which the CPU computes in FP32); in BF16 the scratch the
 * GEMM rounds its operands into, grown to the largest GEMM seen. */
typedef struct {
    float *a, *b; /* packed bf16-rounded copies of A and B, (rows, cols) with ld = cols */
    size_t cap_a, cap_b;
} cpu_bf16_scratch;

/* Row-major (rows, cols) with leading dimension ld, rounded to bf16 into dst packed (ld = cols).
 * Grows *buf to fit; returns NULL when out of memory. */
static float *round_operand(const float *src, int rows, int cols, int ld, float **buf, size_t *cap)
{
    size_t n = (size_t)rows * (size_t)cols;
    if (n > *cap) {
        float *p = realloc(*buf, n * sizeof(float));
        if (!p)
            return NULL;
        *buf = p;
        *cap = n;
    }
    float *dst = *buf;
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++)
            dst[(size_t)i * cols + j] = dpt_op_round_bf16(src[(size_t)i * ld + j]);
    return dst;
}

static void cpu_gemm(dpt_backend *be, int trans_a, int trans_b, int m, int n, int k, float alpha,
                     const float *a, int lda, const float *b, int ldb, float beta, float *c,
                     int ldc)
{
    cpu_bf16_scratch *s = be->ctx;
    if (s && m > 0 && n > 0 && k > 0) {
        /* bf16: the products of the rounded operands are exact in FP32 (8 x 8 significant bits);
         * OpenBLAS then sums them in FP32, as the tensor cores accumulate (CUBLAS_COMPUTE_32F) */
        a = round_operand(a, trans_a ? k : m, trans_a ? m : k, lda, &s->a, &s->cap_a);
        b = round_operand(b, trans_b ? n : k, trans_b ? k : n, ldb, &s->b, &s->cap_b);
        if (!a || !b)
            dpt_fatal(__FILE__, __LINE__, "cpu_gemm", "out of host memory for the bf16 operands");
        lda = trans_a ? m : k;
        ldb = trans_b ? k : n;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

static void cpu_gather(dpt_backend *be, const float *x, const int32_t *y, const int64_t *idx,
                       int rows, int cols, float *xb, int32_t *yb)
{
    (void)be;
    for (int i = 0; i < rows; i++) {
        memcpy(xb + (size_t)i * cols, x + (size_t)idx[i] * cols, (size_t)cols * sizeof(float));
        yb[i] = y[idx[i]];
    }
}

/* Instantiates body once per activation with `act` a compile-time constant, so the switch in
 * the shared per-element function folds away and the loops vectorize. */
#define DPT_FOR_EACH_ACT(act, body)                                                         \
    switch (act) {                                                                          \
    case DPT_ACT_RELU: { const dpt_activation A_ = DPT_ACT_RELU; body; break; }             \
    case DPT_ACT_TANH: { const dpt_activation A_ = DPT_ACT_TANH; body; break; }             \
    case DPT_ACT_SIGMOID: { const dpt_activation A_ = DPT_ACT_SIGMOID; body; break; }       \
    case DPT_ACT_GELU: { const dpt_activation A_ = DPT_ACT_GELU; body; break; }             \
    default: { const dpt_activation A_ = DPT_ACT_IDENTITY; body; break; }                   \
    }

static void cpu_bias_act_forward(dpt_backend *be, float *z, float *a, const float *b, int rows,
                                 int cols, dpt_activation act, const dpt_dropout *drop, int layer)
{
    (void)be;
    int dropping = drop && drop->p > 0.0f;
    for (int i = 0; i < rows; i++) {
        float *restrict zr = z + (size_t)i * cols, *restrict ar = a + (size_t)i * cols;
        DPT_FOR_EACH_ACT(act, for (int j = 0; j < cols; j++) {
            zr[j] += b[j];
            ar[j] = dpt_op_act(zr[j], A_);
        })
        if (dropping)
            for (int j = 0; j < cols; j++)
                ar[j] *= dpt_op_dropout_scale(drop, layer, i, j, cols);
    }
}

static void cpu_act_backward(dpt_backend *be, float *d, const float *z, const float *a, int rows,
                             int cols, dpt_activation act, const dpt_dropout *drop, int layer)
{
    (void)be;
    int dropping = drop && drop->p > 0.0f;
    for (int i = 0; i < rows; i++) {
        float *restrict dr = d + (size_t)i * cols;
        const float *zr = z + (size_t)i * cols, *ar = a + (size_t)i * cols;
        if (dropping) {
            /* a holds the dropped-out activation; act'(z) needs the value before dropout */
            for (int j = 0; j < cols; j++) {
                float s = dpt_op_dropout_scale(drop, layer, i, j, cols);
                dr[j] *= s * dpt_op_act_grad(zr[j], dpt_op_act(zr[j], act), act);
            }
        } else {
            DPT_FOR_EACH_ACT(act, for (int j = 0; j < cols; j++)
                                      dr[j] *= dpt_op_act_grad(zr[j], ar[j], A_);)
        }
    }
}

static void cpu_bias_grad(dpt_backend *be, const float *dz, int rows, int cols, float *db)
{
    (void)be;
    memset(db, 0, (size_t)cols * sizeof(float));
    for (int i = 0; i < rows; i++) {
        const float *r = dz + (size_t)i * cols;
        for (int j = 0; j < cols; j++)
            db[j] += r[j];
    }
}

/* The twin of cuBLASLt's epilogues (cuda/lt.cu), for the parity checks: the CPU backend itself
 * never fuses (be->epilogues = 0), so its training runs today's separate ops. The bias is added
 * to the FP32 product before the activation, as cuBLASLt's epilogue does; DRELU's bias gradient
 * sums the masked product over the rows in order. */
static void cpu_gemm_epilogue(dpt_backend *be, int epi, int trans_a, int trans_b, int m, int n,
                              int k, const float *a, int lda, const float *b, int ldb, float *c,
                              int ldc, float *vec, void *mask)
{
    epi &= ~DPT_EPI_OPERAND_ONLY; /* c stays fp32 on the CPU */
    cpu_gemm(be, trans_a, trans_b, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, ldc);
    uint8_t *bits = mask;
    size_t mld = dpt_epi_mask_ld(n);
    if (epi == DPT_EPI_DRELU)
        memset(vec, 0, (size_t)n * sizeof(float));
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            float *x = &c[(size_t)i * ldc + j];
            size_t e = (size_t)i * mld + (size_t)j;
            if (epi == DPT_EPI_BIAS || epi == DPT_EPI_RELU_BIAS)
                *x += vec[j];
            if (epi == DPT_EPI_RELU_BIAS) {
                bits[e / 8] = (uint8_t)((bits[e / 8] & ~(1u << (e % 8))) | ((*x > 0.0f) << (e % 8)));
                *x = *x > 0.0f ? *x : 0.0f;
            } else if (epi == DPT_EPI_DRELU) {
                if (!(bits[e / 8] >> (e % 8) & 1u))
                    *x = 0.0f;
                vec[j] += *x;
            }
        }
}

static void cpu_loss(dpt_backend *be, const float *logits, const int32_t *y, int rows, int cols,
                     dpt_loss loss, float grad_scale, float *dlogits, double *loss_sum,
                     double *correct)
{
    (void)be;
    double lsum = 0.0, hits = 0.0;
    for (int i = 0; i < rows; i++) {
        int hit = 0;
        lsum += (double)dpt_op_loss_row(logits + (size_t)i * cols, y[i], cols, loss, grad_scale,
                                        dlogits ? dlogits + (size_t)i * cols : NULL, &hit);
        hits += hit;
    }
    *loss_sum += lsum;
    *correct += hits;
}

static void cpu_loss_targets(dpt_backend *be, const float *out, const int32_t *row,
                             const float *t, int rows, int cols, dpt_loss loss, float delta,
                             float grad_scale, float *dout, double *loss_sum)
{
    (void)be;
    double lsum = 0.0;
    for (int i = 0; i < rows; i++)
        lsum += (double)dpt_op_regress_row(out + (size_t)i * cols, t + (size_t)row[i] * cols,
                                           cols, loss, delta, grad_scale,
                                           dout ? dout + (size_t)i * cols : NULL);
    *loss_sum += lsum;
}

/* The sums of cpu_loss, stored as the trainer's statistics slots are. */
static void cpu_loss_stats(dpt_backend *be, const float *logits, const int32_t *y, int rows,
                           int cols, dpt_loss loss, float grad_scale, float *dlogits, float *stats)
{
    double lsum = 0.0, hits = 0.0;
    cpu_loss(be, logits, y, rows, cols, loss, grad_scale, dlogits, &lsum, &hits);
    stats[0] = (float)lsum;
    stats[1] = (float)hits;
    stats[2] = (float)rows;
    stats[3] = 0.0f;
}

/* The sum of cpu_loss_targets, stored as the trainer's statistics slots are. */
static void cpu_loss_targets_stats(dpt_backend *be, const float *out, const int32_t *row,
                                   const float *t, int rows, int cols, dpt_loss loss,
                                   float delta, float grad_scale, float *dout, float *stats)
{
    double lsum = 0.0;
    cpu_loss_targets(be, out, row, t, rows, cols, loss, delta, grad_scale, dout, &lsum);
    stats[0] = (float)lsum;
    stats[1] = 0.0f;
    stats[2] = (float)rows;
    stats[3] = 0.0f;
}

static void cpu_accumulate(dpt_backend *be, double *acc, const float *x, int n)
{
    (void)be;
    for (int i = 0; i < n; i++)
        acc[i] += (double)x[i];
}

static double cpu_sum_squares(dpt_backend *be, const float *x, size_t n)
{
    (void)be;
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)x[i] * x[i];
    return s;
}

static void cpu_scale(dpt_backend *be, float *x, size_t n, float s)
{
    (void)be;
    for (size_t i = 0; i < n; i++)
        x[i] *= s;
}

static double cpu_clip_grad_norm(dpt_backend *be, float *g, size_t n, double max_norm)
{
    double norm = sqrt(cpu_sum_squares(be, g, n));
    if (norm > max_norm)
        cpu_scale(be, g, n, dpt_op_clip_scale(norm, max_norm));
    return norm;
}

static void cpu_sgd_step(dpt_backend *be, float *restrict p, const float *restrict g,
                         float *restrict m, size_t n, float lr, float momentum, int nesterov,
                         float wd)
{
    (void)be;
    for (size_t i = 0; i < n; i++)
        dpt_op_sgd(&p[i], g[i], &m[i], lr, momentum, nesterov, wd);
}

static void cpu_adam_step(dpt_backend *be, float *restrict p, const float *restrict g,
                          float *restrict m, float *restrict v, size_t n, float lr, float beta1,
                          float beta2, float eps, float wd, int decoupled, float bc1, float bc2)
{
    (void)be;
    for (size_t i = 0; i < n; i++)
        dpt_op_adam(&p[i], g[i], &m[i], &v[i], lr, beta1, beta2, eps, wd, decoupled, bc1, bc2);
}

static void cpu_upload_async(dpt_backend *be, void *dst, const void *src, size_t bytes, int slot)
{
    (void)slot;
    cpu_copy(be, dst, src, bytes);
}

static void cpu_slot_noop(dpt_backend *be, int slot)
{
    (void)be;
    (void)slot;
}

static void cpu_destroy(dpt_backend *be)
{
    cpu_bf16_scratch *s = be->ctx;
    if (s) {
        free(s->a);
        free(s->b);
        free(s);
    }
    be->ctx = NULL;
}

static int cpu_mem_info(dpt_backend *be, size_t *free_bytes, size_t *total_bytes)
{
    (void)be;
    *free_bytes = *total_bytes = 0;
    return -1; /* host memory: nothing to plan against */
}

int dpt_cpu_backend_init(dpt_backend *be, int threads)
{
    memset(be, 0, sizeof *be);
    be->name = "cpu";
    be->host_memory = 1;
    be->alloc = cpu_alloc;
    be->free = cpu_free;
    be->upload = cpu_copy;
    be->download = cpu_copy;
    be->zero = cpu_zero;
    be->sync = cpu_sync;
    be->gemm = cpu_gemm;
    be->gather = cpu_gather;
    be->bias_act_forward = cpu_bias_act_forward;
    be->act_backward = cpu_act_backward;
    be->bias_grad = cpu_bias_grad;
    be->gemm_epilogue = cpu_gemm_epilogue;
    be->loss = cpu_loss;
    be->loss_targets = cpu_loss_targets;
    be->loss_stats = cpu_loss_stats;
    be->loss_targets_stats = cpu_loss_targets_stats;
    be->accumulate = cpu_accumulate;
    be->sum_squares = cpu_sum_squares;
    be->scale = cpu_scale;
    be->clip_grad_norm = cpu_clip_grad_norm;
    be->sgd_step = cpu_sgd_step;
    be->adam_step = cpu_adam_step;
    be->alloc_pinned = cpu_alloc;
    be->free_pinned = cpu_free;
    be->upload_async = cpu_upload_async;
    be->wait_slot = cpu_slot_noop;
    be->release_slot = cpu_slot_noop;
    be->host_wait_slot = cpu_slot_noop;
    be->mem_info = cpu_mem_info;
    be->destroy = cpu_destroy;
    dpt_backend_check_complete(be);
    openblas_set_num_threads(threads > 0 ? threads : 1);
    return 0;
}

int dpt_cpu_backend_init_precision(dpt_backend *be, int threads, dpt_precision precision)
{
    int rc = dpt_cpu_backend_init(be, threads);
    if (rc == 0 && precision == DPT_PREC_BF16) {
        be->ctx = calloc(1, sizeof(cpu_bf16_scratch));
        if (!be->ctx)
            return -1;
    }
    return rc;
}
