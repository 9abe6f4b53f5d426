/* The CUDA backend's bf16 code. The GEMM (train.precision: bf16): both operands converted to
 * bfloat16 by a small kernel, then cublasGemmEx with bf16 A and B, an FP32 C and FP32
 * accumulation (CUBLAS_COMPUTE_32F); its CPU twin is cpu_gemm in src/cpu_backend.c
 * (dpt_op_round_bf16). And the flat conversions of bf16 gradients on the wire (comm.compress:
 * bf16 on the NCCL path), whose CPU twin is the MPI path's dpt_bf16_from_float (mpi/buckets.h). */
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

/* dst (rows, cols) packed = bf16(src (rows, cols), leading dimension ld), row-major, one thread
 * per element; __float2bfloat16 rounds to nearest even, as dpt_op_round_bf16 on the CPU. */
static __global__ void to_bf16_kernel(const float *__restrict__ src, int rows, int cols, int ld,
                                      __nv_bfloat16 *__restrict__ dst)
{
    size_t n = (size_t)rows * cols;
    DPT_FOR_THREAD(i, n) {
        size_t r = i / (size_t)cols, c = i % (size_t)cols;
        dst[i] = __float2bfloat16(src[r * (size_t)ld + c]);
    }
}

/* *buf with room for n elements: grown (cudaFree synchronizes the device, and growth happens
 * only while the GEMM shapes are first seen: the first step, the first evaluation) and never
 * shrunk. Once a step is captured (train.cuda_graph) the graph holds the old buffer's address, so
 * an evaluation's larger GEMM must not free it: it is retired, freed at teardown. */
static __nv_bfloat16 *scratch(dpt_cuda_ctx *ctx, __nv_bfloat16 **buf, size_t *cap, size_t n)
{
    if (n > *cap) {
        if (ctx->exec && *buf && ctx->n_bf16_retired < DPT_CUDA_BF16_RETIRED)
            ctx->bf16_retired[ctx->n_bf16_retired++] = *buf;
        else
            DPT_CUDA_CHECK(cudaFree(*buf));
        *buf = NULL;
        DPT_CUDA_CHECK(cudaMalloc((void **)buf, n * sizeof(__nv_bfloat16)));
        *cap = n;
    }
    return *buf;
}

/* The row-major operand (rows, cols; ld) as packed bf16 in *buf, queued on the stream. */
static const __nv_bfloat16 *convert(dpt_cuda_ctx *ctx, const float *src, int rows, int cols,
                                    int ld, __nv_bfloat16 **buf, size_t *cap)
{
    size_t n = (size_t)rows * cols;
    __nv_bfloat16 *dst = scratch(ctx, buf, cap, n);
    DPT_LAUNCH(to_bf16_kernel, dpt_cuda_blocks(n), DPT_CUDA_THREADS, ctx->stream, src, rows, cols,
               ld, dst);
    DPT_CUDA_CHECK_LAUNCH();
    return dst;
}

const __nv_bfloat16 *dpt_cuda_bf16_operand(dpt_cuda_ctx *ctx, const float *src, int rows, int cols,
                                           int ld, int second, int *ld16)
{
    /* the operand's last element: (rows - 1) * ld + cols - 1 floats past src; the copy is used
     * where it leaves the operand 16-byte aligned with a leading dimension of whole 16 bytes,
     * as the packed scratch is (cuBLASLt's heuristic picks by alignment; the probe saw those) */
    size_t span = (size_t)(rows - 1) * (size_t)ld + (size_t)cols;
    /* an activation's copy: only where it is the same packed operand the scratch would hold
     * (from its start, ld = cols), so cuBLAS sees the same shapes and alignment */
    for (int i = 0; i < ctx->n_act16; i++)
        if (ctx->act16[i].valid && ctx->act16[i].src == src && ld == cols &&
            (size_t)rows * cols <= ctx->act16[i].n16) {
            *ld16 = cols;
            return ctx->act16[i].buf;
        }
    if (ctx->w_valid && src >= ctx->w_src && src + span <= ctx->w_src + ctx->w_n &&
        (src - ctx->w_src) % 8 == 0 && ld % 8 == 0) {
        *ld16 = ld;
        return ctx->w16 + (src - ctx->w_src);
    }
    *ld16 = cols;
    return second ? convert(ctx, src, rows, cols, ld, &ctx->bf16_b, &ctx->bf16_cap_b)
                  : convert(ctx, src, rows, cols, ld, &ctx->bf16_a, &ctx->bf16_cap_a);
}

/* Once per step instead of once per GEMM that reads a weight matrix (the forward and the
 * input-gradient GEMMs: 2L - 1 conversions a step become one). The copy is allocated the first
 * time (the trainer's first step runs uncaptured); a capture that would need a new one leaves the
 * copy invalid, and the GEMMs convert as before. */
void dpt_cuda_bf16_weights_updated(dpt_cuda_ctx *ctx, const float *p, size_t n)
{
    /* DPT_TEST_BF16_PER_GEMM=1: no copy, every GEMM converts its operands (the tests compare
     * the two bitwise) */
    static const char *per_gemm = getenv("DPT_TEST_BF16_PER_GEMM");
    if (ctx->precision != DPT_PREC_BF16 || n == 0 || (per_gemm && per_gemm[0] == '1'))
        return;
    if (ctx->w_src != p || ctx->w_n != n) {
        ctx->w_valid = 0;
        if (ctx->capturing)
            return;
        if (n > ctx->w_n || !ctx->w16) {
            DPT_CUDA_CHECK(cudaFree(ctx->w16));
            ctx->w16 = NULL;
            if (cudaMalloc((void **)&ctx->w16, n * sizeof(__nv_bfloat16)) != cudaSuccess) {
                (void)cudaGetLastError(); /* no copy: the GEMMs convert their operands */
                ctx->w_src = NULL;
                ctx->w_n = 0;
                return;
            }
        }
        ctx->w_src = p;
        ctx->w_n = n;
    }
    dpt_cuda_to_bf16(ctx->w16, p, n, ctx->stream);
    ctx->w_valid = 1;
}

/* An activation's copy is written where a is (one per buffer, grown while the batch grows: the
 * first step, the first evaluation). Not while a step is being captured if that needs memory,
 * and an outgrown copy that a captured graph may hold is retired as the scratch is (none left:
 * no copy); DPT_TEST_BF16_ACT_PER_GEMM=1: never (the tests compare the two bitwise). */
__nv_bfloat16 *dpt_cuda_bf16_act_target(dpt_cuda_ctx *ctx, const float *a, size_t n)
{
    static const char *per_gemm = getenv("DPT_TEST_BF16_ACT_PER_GEMM");
    dpt_cuda_bf16_act_touched(ctx, a, n * sizeof(float));
    if (ctx->precision != DPT_PREC_BF16 || n == 0 || (per_gemm && per_gemm[0] == '1'))
        return NULL;
    int i = 0;
    while (i < ctx->n_act16 && ctx->act16[i].src != a)
        i++;
    if (i == ctx->n_act16) {
        if (i == DPT_CUDA_ACT16)
            return NULL;
        memset(&ctx->act16[i], 0, sizeof ctx->act16[i]);
        ctx->act16[i].src = a;
        ctx->n_act16++;
    }
    if (n > ctx->act16[i].cap) {
        if (ctx->capturing)
            return NULL;
        if (ctx->exec && ctx->act16[i].buf) {
            if (ctx->n_bf16_retired == DPT_CUDA_BF16_RETIRED)
                return NULL;
            ctx->bf16_retired[ctx->n_bf16_retired++] = ctx->act16[i].buf;
        } else {
            DPT_CUDA_CHECK(cudaFree(ctx->act16[i].buf));
        }
        ctx->act16[i].buf = NULL;
        ctx->act16[i].cap = 0;
        if (cudaMalloc((void **)&ctx->act16[i].buf, n * sizeof(__nv_bfloat16)) != cudaSuccess) {
            (void)cudaGetLastError(); /* no copy: the GEMMs convert a */
            ctx->act16[i].buf = NULL;
            return NULL;
        }
        ctx->act16[i].cap = n;
    }
    ctx->act16[i].n16 = n;
    ctx->act16[i].valid = 1;
    return ctx->act16[i].buf;
}

/* dst NULL: everything may have been written (a graph replayed). */
void dpt_cuda_bf16_act_touched(dpt_cuda_ctx *ctx, const void *dst, size_t bytes)
{
    const char *d = (const char *)dst;
    for (int i = 0; i < ctx->n_act16; i++) {
        const char *a = (const char *)ctx->act16[i].src;
        if (!d || (d < a + ctx->act16[i].n16 * sizeof(float) && a < d + (bytes ? bytes : 1)))
            ctx->act16[i].valid = 0;
    }
}

/* Called after the write is queued: the copy is refreshed behind it on the stream (a captured
 * graph's GEMMs read the copy whatever the host's flag says), or dropped when the memory goes. */
void dpt_cuda_bf16_weights_touched(dpt_cuda_ctx *ctx, const void *dst, size_t bytes, int freed)
{
    dpt_cuda_bf16_act_touched(ctx, dst, bytes);
    const char *d = (const char *)dst, *w = (const char *)ctx->w_src;
    if (!ctx->w_valid || !(d < w + ctx->w_n * sizeof(float) && w < d + (bytes ? bytes : 1)))
        return;
    if (freed)
        ctx->w_valid = 0;
    else
        dpt_cuda_to_bf16(ctx->w16, ctx->w_src, ctx->w_n, ctx->stream);
}

/* Row-major to column-major as cuda_gemm (backend.cu): B first, A second, m and n swapped; the
 * packed copies have leading dimension equal to their stored row length. */
void dpt_cuda_gemm_bf16(dpt_backend *be, int trans_a, int trans_b, int m, int n, int k,
                        float alpha, const float *a, int lda, const float *b, int ldb, float beta,
                        float *c, int ldc)
{
    dpt_cuda_ctx *ctx = dpt_cuda_ctx_of(be);
    if (m <= 0 || n <= 0)
        return;
    const __nv_bfloat16 *a16 = NULL, *b16 = NULL;
    int lda16 = lda, ldb16 = ldb;
    if (k > 0) {
        a16 = dpt_cuda_bf16_operand(ctx, a, trans_a ? k : m, trans_a ? m : k, lda, 0, &lda16);
        b16 = dpt_cuda_bf16_operand(ctx, b, trans_b ? n : k, trans_b ? k : n, ldb, 1, &ldb16);
    } else {
        /* nothing is read (k = 0 scales C by beta), but cuBLAS still checks the dimensions */
        lda16 = lda;
        ldb16 = ldb;
    }
    dpt_cuda_bf16_act_touched(ctx, c, ((size_t)(m - 1) * ldc + n) * sizeof(float));
    cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    dpt_cuda_count(DPT_CUDA_COUNT_LAUNCH, 0); /* one cuBLAS call, counted as cuda_gemm's */
    DPT_CUBLAS_CHECK(cublasGemmEx(ctx->cublas, op_b, op_a, n, m, k, &alpha, b16, CUDA_R_16BF,
                                  ldb16, a16, CUDA_R_16BF, lda16, &beta, c, CUDA_R_32F, ldc,
                                  CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

void dpt_cuda_gemm_free(dpt_cuda_ctx *ctx)
{
    DPT_CUDA_CHECK(cudaFree(ctx->bf16_a));
    DPT_CUDA_CHECK(cudaFree(ctx->bf16_b));
    ctx->bf16_a = ctx->bf16_b = NULL;
    ctx->bf16_cap_a = ctx->bf16_cap_b = 0;
    for (int i = 0; i < ctx->n_bf16_retired; i++)
        DPT_CUDA_CHECK(cudaFree(ctx->bf16_retired[i]));
    ctx->n_bf16_retired = 0;
    for (int i = 0; i < ctx->n_act16; i++)
        DPT_CUDA_CHECK(cudaFree(ctx->act16[i].buf));
    ctx->n_act16 = 0;
    DPT_CUDA_CHECK(cudaFree(ctx->w16));
    ctx->w16 = NULL;
    ctx->w_src = NULL;
    ctx->w_n = 0;
    ctx->w_valid = 0;
}

static __global__ void float_to_bf16_kernel(const float *__restrict__ src, size_t n,
                                            __nv_bfloat16 *__restrict__ dst)
{
    DPT_FOR_THREAD(i, n) dst[i] = __float2bfloat16(src[i]);
}

static __global__ void bf16_to_float_kernel(const __nv_bfloat16 *__restrict__ src, size_t n,
                                            float *__restrict__ dst)
{
    DPT_FOR_THREAD(i, n) dst[i] = __bfloat162float(src[i]);
}

void dpt_cuda_to_bf16(void *dst, const float *src, size_t n, void *stream)
{
    if (n == 0)
        return;
    DPT_LAUNCH(float_to_bf16_kernel, dpt_cuda_blocks(n), DPT_CUDA_THREADS, (cudaStream_t)stream,
               src, n, (__nv_bfloat16 *)dst);
    DPT_CUDA_CHECK_LAUNCH();
}

void dpt_cuda_from_bf16(float *dst, const void *src, size_t n, void *stream)
{
    if (n == 0)
        return;
    DPT_LAUNCH(bf16_to_float_kernel, dpt_cuda_blocks(n), DPT_CUDA_THREADS, (cudaStream_t)stream,
               (const __nv_bfloat16 *)src, n, dst);
    DPT_CUDA_CHECK_LAUNCH();
}
