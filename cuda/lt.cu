/* train.gemm_epilogue: the table's gemm_epilogue through cuBLASLt, so that the bias, the ReLU
 * and their gradients ride in the GEMM's epilogue instead of separate kernels (one launch where
 * there were two), and the start-up probe that decides, once, which epilogues this GPU and
 * precision get; where cuBLASLt refuses, the model keeps the separate kernels. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cublasLt.h>

#include "kernels.h"

/* No workspace: cuBLASLt then picks among the algorithms that need none (no split-k, which
 * these GEMMs, k <= 2048 with m and n in the hundreds or more, hardly need), and the fused path
 * allocates nothing beside the ReLU masks (the device's memory budget and the allocation-failure
 * tests see the same cudaMalloc calls as without it). Descriptors and algorithms are cached per
 * problem, only the bias and mask pointers set per call (creating them and a heuristic query
 * cost microseconds of host time per GEMM otherwise). */
enum { LT_WORKSPACE = 0, LT_PLANS = 64 };

/* d16: D (and C) in bf16 with an fp32 bias (BF16, RELU_AUX_BIAS into an activation's bf16
 * copy); else D is fp32 */
struct lt_key {
    int epi, ta, tb, m, n, k, lda, ldb, ldc, align, aux, d16;
};

/* One call's descriptors, in cuBLASLt's column-major terms. */
struct lt_call {
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, d;
};

/* A problem's descriptors and the heuristic's algorithm for them. */
struct lt_plan {
    lt_key key;
    lt_call call;
    cublasLtMatmulAlgo_t algo;
};

struct dpt_cuda_lt {
    cublasLtHandle_t h;
    lt_plan plans[LT_PLANS];
    int n_plans;
};

static cublasLtEpilogue_t lt_epilogue(int epi)
{
    switch (epi) {
    case DPT_EPI_BIAS: return CUBLASLT_EPILOGUE_BIAS;
    case DPT_EPI_RELU_BIAS: return CUBLASLT_EPILOGUE_RELU_AUX_BIAS;
    default: return CUBLASLT_EPILOGUE_DRELU_BGRAD;
    }
}

static struct dpt_cuda_lt *lt_of(dpt_cuda_ctx *ctx)
{
    if (!ctx->lt) {
        struct dpt_cuda_lt *lt = (struct dpt_cuda_lt *)calloc(1, sizeof *lt);
        if (!lt)
            dpt_fatal(__FILE__, __LINE__, "lt_of", "out of host memory for cuBLASLt's state");
        DPT_CUBLAS_CHECK(cublasLtCreate(&lt->h));
        ctx->lt = lt;
    }
    return ctx->lt;
}

static void lt_release(lt_call *c);

void dpt_cuda_lt_free(dpt_cuda_ctx *ctx)
{
    if (!ctx->lt)
        return;
    for (int i = 0; i < ctx->lt->n_plans; i++)
        lt_release(&ctx->lt->plans[i].call);
    DPT_CUBLAS_CHECK(cublasLtDestroy(ctx->lt->h));
    free(ctx->lt);
    ctx->lt = NULL;
}

static void lt_release(lt_call *c)
{
    if (c->op)
        DPT_CUBLAS_CHECK(cublasLtMatmulDescDestroy(c->op));
    if (c->a)
        DPT_CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(c->a));
    if (c->b)
        DPT_CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(c->b));
    if (c->d)
        DPT_CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(c->d));
    memset(c, 0, sizeof *c);
}

/* The descriptors of the row-major c(m,n) = op(A) op(B) as cuda_gemm maps it (backend.cu):
 * cuBLASLt's A is our B, its B our A, m and n swapped, so the bias of our columns is the bias
 * of its rows (BIAS: "length must match matrix D rows"), DRELU_BGRAD's bias gradient (the sums
 * of its D's rows) the column sums of our c, and the mask's leading dimension our row length
 * rounded to 128 bits. A bf16 D (key->d16) keeps the fp32 bias by naming its type
 * (CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE; by default the bias has D's type), and C, which beta = 0
 * never reads, has D's layout, as the type table pairs them.
 * Any status but success leaves *c released. */
static cublasStatus_t lt_describe(dpt_cuda_ctx *ctx, lt_call *c, const lt_key *key,
                                  const void *vec, const void *mask)
{
    memset(c, 0, sizeof *c);
    const int ta = key->ta, tb = key->tb, m = key->m, n = key->n, k = key->k;
    const int32_t bias_type = CUDA_R_32F;
    const int bf16 = ctx->precision == DPT_PREC_BF16;
    cublasComputeType_t compute = ctx->precision == DPT_PREC_TF32 ? CUBLAS_COMPUTE_32F_FAST_TF32
                                                                   : CUBLAS_COMPUTE_32F;
    cudaDataType in_type = bf16 ? CUDA_R_16BF : CUDA_R_32F;
    cublasOperation_t op_a = tb ? CUBLAS_OP_T : CUBLAS_OP_N, op_b = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasLtEpilogue_t e = lt_epilogue(key->epi);
    int64_t aux_ld = (int64_t)dpt_epi_mask_ld(n);
    cublasStatus_t s = cublasLtMatmulDescCreate(&c->op, compute, CUDA_R_32F);
#define LT_SET(attr, value)                                                                 \
    if (s == CUBLAS_STATUS_SUCCESS)                                                         \
    s = cublasLtMatmulDescSetAttribute(c->op, attr, &(value), sizeof(value))
    LT_SET(CUBLASLT_MATMUL_DESC_TRANSA, op_a);
    LT_SET(CUBLASLT_MATMUL_DESC_TRANSB, op_b);
    LT_SET(CUBLASLT_MATMUL_DESC_EPILOGUE, e);
    LT_SET(CUBLASLT_MATMUL_DESC_BIAS_POINTER, vec);
    if (key->d16)
        LT_SET(CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, bias_type);
    if (mask) {
        LT_SET(CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, mask);
        LT_SET(CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, aux_ld);
    }
#undef LT_SET
    /* lda, ldb: the operands' as given to cuBLASLt (a bf16 copy's, dpt_cuda_bf16_operand) */
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatrixLayoutCreate(&c->a, in_type, tb ? k : n, tb ? n : k, key->ldb);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatrixLayoutCreate(&c->b, in_type, ta ? m : k, ta ? k : m, key->lda);
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasLtMatrixLayoutCreate(&c->d, key->d16 ? CUDA_R_16BF : CUDA_R_32F, n, m,
                                       key->ldc);
    if (s != CUBLAS_STATUS_SUCCESS)
        lt_release(c);
    return s;
}

/* The heuristic's first algorithm for the call, and 1; 0 when cuBLASLt has none. */
static int lt_algo(struct dpt_cuda_lt *lt, const lt_call *c, cublasLtMatmulAlgo_t *algo)
{
    cublasLtMatmulPreference_t pref = NULL;
    uint64_t ws = LT_WORKSPACE;
    DPT_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    DPT_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    cublasLtMatmulHeuristicResult_t r;
    memset(&r, 0, sizeof r);
    int got = 0;
    cublasStatus_t s = cublasLtMatmulAlgoGetHeuristic(lt->h, c->op, c->a, c->b, c->d, c->d, pref,
                                                      1, &r, &got);
    DPT_CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(pref));
    if (s != CUBLAS_STATUS_SUCCESS || got < 1 || r.state != CUBLAS_STATUS_SUCCESS)
        return 0;
    *algo = r.algo;
    return 1;
}

/* The plan of the problem key, with this call's bias and mask pointers: cached (by problem and
 * pointer alignment, which the heuristic reads from the pointers), or built into *tmp when the
 * cache is full (the caller releases tmp->call then). NULL when cuBLASLt has no algorithm. */
static lt_plan *lt_plan_of(dpt_cuda_ctx *ctx, const lt_key *key, const void *vec,
                           const void *mask, lt_plan *tmp)
{
    struct dpt_cuda_lt *lt = lt_of(ctx);
    for (int i = 0; i < lt->n_plans; i++) {
        lt_plan *p = &lt->plans[i];
        if (memcmp(&p->key, key, sizeof *key))
            continue;
        DPT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(
            p->call.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &vec, sizeof vec));
        if (mask)
            DPT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(
                p->call.op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &mask, sizeof mask));
        return p;
    }
    lt_plan *p = lt->n_plans < LT_PLANS ? &lt->plans[lt->n_plans] : tmp;
    DPT_CUBLAS_CHECK(lt_describe(ctx, &p->call, key, vec, mask));
    if (!lt_algo(lt, &p->call, &p->algo)) {
        lt_release(&p->call);
        return NULL;
    }
    p->key = *key;
    if (p != tmp)
        lt->n_plans++;
    return p;
}

static int lt_alignment(const void *a, const void *b, const void *c, const void *vec,
                        const void *mask)
{
    return (int)(((uintptr_t)a | (uintptr_t)b | (uintptr_t)c | (uintptr_t)vec |
                  (uintptr_t)mask) & 15u);
}

/* Where a ReLU output that later GEMMs read only as their operand goes in BF16 when the probe
 * accepted a bf16 D: into its bf16 copy (dpt_cuda_bf16_act_target's buffer and validity, packed:
 * ldc = n), which those GEMMs read as they read the bias+activation kernel's; its fp32 c is
 * then not written at all (nothing reads it: the backward takes the ReLU from the mask). NULL:
 * c is written in fp32 (no copy: a capture that would need memory, DPT_TEST_BF16_ACT_PER_GEMM). */
static __nv_bfloat16 *lt_d16(dpt_cuda_ctx *ctx, int epi, int m, int n, const float *c, int ldc)
{
    if (epi != (DPT_EPI_RELU_BIAS | DPT_EPI_OPERAND_ONLY) || !ctx->lt_d16 || ldc != n)
        return NULL;
    return dpt_cuda_bf16_act_target(ctx, c, (size_t)m * n);
}

/* DPT_TEST_BF16_ACT_POISON=1: the fp32 c that a bf16 D leaves unwritten is filled with NaN
 * behind the GEMM, so that a reader the analysis missed changes the results (the tests compare
 * them bitwise with the hook on and off). */
static void lt_poison(dpt_cuda_ctx *ctx, float *c, int m, int n)
{
    static const char *poison = getenv("DPT_TEST_BF16_ACT_POISON");
    if (poison && poison[0] == '1')
        DPT_CUDA_CHECK(cudaMemsetAsync(c, 0xff, (size_t)m * n * sizeof(float), ctx->stream));
}

void dpt_cuda_gemm_epilogue(dpt_backend *be, int epi, int trans_a, int trans_b, int m, int n,
                            int k, const float *a, int lda, const float *b, int ldb, float *c,
                            int ldc, float *vec, void *mask)
{
    dpt_cuda_ctx *ctx = dpt_cuda_ctx_of(be);
    if (m <= 0 || n <= 0)
        return;
    struct dpt_cuda_lt *lt = lt_of(ctx);
    const void *a_in = a, *b_in = b;
    if (ctx->precision == DPT_PREC_BF16 && k > 0) {
        a_in = dpt_cuda_bf16_operand(ctx, a, trans_a ? k : m, trans_a ? m : k, lda, 0, &lda);
        b_in = dpt_cuda_bf16_operand(ctx, b, trans_b ? n : k, trans_b ? k : n, ldb, 1, &ldb);
    }
    __nv_bfloat16 *d16 = lt_d16(ctx, epi, m, n, c, ldc); /* marks the copy written */
    epi &= ~DPT_EPI_OPERAND_ONLY;
    if (!d16)
        dpt_cuda_bf16_act_touched(ctx, c, ((size_t)(m - 1) * ldc + n) * sizeof(float));
    void *d = d16 ? (void *)d16 : (void *)c;
    lt_key key = {epi, trans_a, trans_b, m, n, k, lda, ldb, ldc,
                  lt_alignment(a_in, b_in, d, vec, mask), mask != NULL, d16 != NULL};
    lt_plan tmp;
    memset(&tmp, 0, sizeof tmp);
    const lt_plan *plan = lt_plan_of(ctx, &key, vec, mask, &tmp);
    if (!plan) {
        char msg[256];
        snprintf(msg, sizeof msg, "cuBLASLt has no algorithm for epilogue %d of a %dx%dx%d GEMM "
                 "(transposes %d%d) that the start-up probe did not cover: run with "
                 "train.gemm_epilogue: off", epi, m, n, k, trans_a, trans_b);
        dpt_fatal(__FILE__, __LINE__, "cublasLtMatmulAlgoGetHeuristic", msg);
    }
    const float one = 1.0f, zero = 0.0f;
    dpt_cuda_count(DPT_CUDA_COUNT_LAUNCH, 0); /* one cuBLASLt call, counted as cuda_gemm's */
    const lt_call *call = &plan->call;
    DPT_CUBLAS_CHECK(cublasLtMatmul(lt->h, call->op, &one, b_in, call->a, a_in, call->b, &zero, d,
                                    call->d, d, call->d, &plan->algo, NULL, LT_WORKSPACE,
                                    ctx->stream));
    if (plan == &tmp)
        lt_release(&tmp.call);
    if (d16)
        lt_poison(ctx, c, m, n);
}

/* Whether cuBLASLt has an algorithm for epilogue epi at odd shapes (no dimension a multiple of
 * a tile, a leading dimension of no whole 16 bytes) in this precision, with a bf16 D and an
 * fp32 bias where d16. The heuristic reads only the pointers' values (alignment), never the
 * memory. */
static int lt_probe(dpt_cuda_ctx *ctx, int epi, int d16)
{
    struct dpt_cuda_lt *lt = lt_of(ctx);
    /* pointer values only, 256-byte aligned as cudaMalloc's (cublasLt.h: the heuristic "depends
     * on its value to determine expected pointer alignment") */
    const char *base = (const char *)(uintptr_t)0x100000;
    const int m = 37, n = 53, k = 29;
    int tb = epi != DPT_EPI_DRELU; /* forward: in W^T; the input gradient: dz W */
    int lda = k + 3, ldb = tb ? k : n;
    const void *vec = base + 1024;
    const void *mask = epi == DPT_EPI_BIAS ? NULL : base + 2048;
    lt_key key = {epi, 0, tb, m, n, k, lda, ldb, n, 0, mask != NULL, d16};
    lt_call call;
    if (lt_describe(ctx, &call, &key, vec, mask) != CUBLAS_STATUS_SUCCESS)
        return 0;
    cublasLtMatmulAlgo_t algo;
    int ok = lt_algo(lt, &call, &algo);
    lt_release(&call);
    return ok;
}

int dpt_cuda_epilogues(dpt_backend *be, int mode, char *why, size_t n)
{
    dpt_cuda_ctx *ctx = dpt_cuda_ctx_of(be);
    be->epilogues = 0;
    ctx->lt_d16 = 0;
    if (mode == 2) {
        snprintf(why, n, "off (train.gemm_epilogue)");
        return 0;
    }
    int bias = lt_probe(ctx, DPT_EPI_BIAS, 0);
    int relu = lt_probe(ctx, DPT_EPI_RELU_BIAS, 0) && lt_probe(ctx, DPT_EPI_DRELU, 0);
    /* BF16: the ReLU output straight into its bf16 copy, probed on its own (the bias stays fp32,
     * a type cublasLt.h does not list for a bf16 D); refused, it is written in fp32 as before */
    int bf16 = relu && ctx->precision == DPT_PREC_BF16;
    ctx->lt_d16 = bf16 && lt_probe(ctx, DPT_EPI_RELU_BIAS, 1);
    be->epilogues = (bias ? DPT_EPI_BIAS : 0) | (relu ? DPT_EPI_RELU_BIAS | DPT_EPI_DRELU : 0);
    const int all = DPT_EPI_BIAS | DPT_EPI_RELU_BIAS | DPT_EPI_DRELU;
    snprintf(why, n, "%s%s%s%s", be->epilogues == all
                                     ? "cuBLASLt (bias; ReLU, its mask and bias gradient)"
                                 : be->epilogues ? "cuBLASLt, partly; cuBLASLt refused:"
                                                 : "off: cuBLASLt refused",
             bias ? "" : " bias", relu ? "" : " ReLU with its mask and bias gradient",
             be->epilogues == all ? "" : " (our kernels instead)");
    size_t used = strlen(why);
    if (bf16 && used < n)
        snprintf(why + used, n - used, "%s", ctx->lt_d16 ? "; ReLU outputs in bf16 only"
                 : "; ReLU outputs fp32: cuBLASLt refused a bf16 D with an fp32 bias");
    return mode == 1 && be->epilogues != all ? -1 : 0;
}
