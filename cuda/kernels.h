/* Private to cuda/: the CUDA backend's state and the table entries each .cu file provides
 * (backend.cu fills the table of src/backend.h with them). Every launch goes through
 * DPT_LAUNCH (launch.h), so the same sources also run on the host emulation in CI. */
#ifndef DPT_CUDA_KERNELS_H
#define DPT_CUDA_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_bf16.h>

#include "check.h"
#include "cuda_backend.h"
#include "launch.h"

/* Threads per block of every 1-D launch, and the cap on blocks of the grid-stride kernels
 * (65535: the limit of gridDim.y, kept for x as well so no launch depends on the device). */
enum { DPT_CUDA_THREADS = 256 };

/* sum_squares: up to SS_BLOCKS blocks of DPT_CUDA_THREADS threads each sum a strided slice and
 * reduce it over the block to one partial; one block of SS_BLOCKS threads reduces the partials.
 * Both powers of two (dpt_cuda_tree_sum). */
enum { DPT_CUDA_SS_BLOCKS = 128 };

#define DPT_CUDA_BF16_RETIRED 8
/* BF16: activations whose bf16 copy the bias+activation kernel writes (one per hidden layer) */
#define DPT_CUDA_ACT16 16

/* bias_grad: a block per BG_COLS columns, BG_LANES threads per column summing every
 * BG_LANES-th row (BG_COLS x BG_LANES = DPT_CUDA_THREADS; BG_LANES a power of two). */
enum { DPT_CUDA_BG_COLS = 32, DPT_CUDA_BG_LANES = 8 };

typedef struct {
    int device;
    cudaStream_t stream;    /* every op is queued here, in program order */
    cudaStream_t copy;      /* staged batches: host-to-device copies beside the compute */
    cudaEvent_t copied[2];  /* per slot: recorded on copy behind the slot's copies */
    cudaEvent_t freed[2];   /* per slot: recorded on stream after the slot's last reader */
    cublasHandle_t cublas;  /* bound to stream */
    /* loss: per-row loss and hit, (2, loss_cap) on the device and in pinned host memory */
    float *loss_dev, *loss_host;
    int loss_cap;
    float *stats_dev;       /* (2, stats_cap): the same for loss_stats (training steps) */
    int stats_cap;
    cudaGraph_t graph;      /* train.cuda_graph: the captured step, and it instantiated */
    cudaGraphExec_t exec;
    int capturing;          /* between dpt_cuda_graph_begin and _end */
    float *scalars;         /* (3) the update's {lr, bc1, bc2}, written by a kernel per step */
    uint64_t *step_dev;     /* (1) the step, dropout's key in a captured step, written with them */
    /* sum_squares: partials (the first SS_BLOCKS of SS_BLOCKS * THREADS are used), the result
     * in ss_block[0] (dpt_cuda_sum_squares_result), its pinned copy in ss_host[0] */
    double *ss_partial, *ss_block, *ss_host;
    /* train.precision; in BF16 the GEMM's operands, converted into bf16_a/bf16_b (packed,
     * grown to the largest GEMM seen: elements of capacity in bf16_cap_a/_b) */
    dpt_precision precision;
    __nv_bfloat16 *bf16_a, *bf16_b;
    size_t bf16_cap_a, bf16_cap_b;
    /* scratch outgrown while a captured graph may hold it: kept until teardown */
    __nv_bfloat16 *bf16_retired[DPT_CUDA_BF16_RETIRED];
    int n_bf16_retired;
    float *clip_scale;      /* (1) clip_grad_norm's factor, computed and used on the device */
    struct dpt_cuda_lt *lt; /* train.gemm_epilogue: cuBLASLt's handle, workspace, algorithms */
    int lt_d16; /* BF16: cuBLASLt writes fused ReLU outputs into their bf16 copy (cuda/lt.cu) */
    /* BF16: the parameters (w_src, w_n floats) converted once after each optimizer update into
     * w16 (same layout), which every GEMM operand inside them reads instead of converting its
     * own copy; valid only from such an update until the parameters are written otherwise */
    const float *w_src;
    size_t w_n;
    __nv_bfloat16 *w16;
    int w_valid;
    /* BF16: an activation a (n16 floats, packed rows) that the bias+activation kernel also wrote
     * rounded into buf (cap elements), read by the GEMMs in place of converting a; valid from
     * that write until a is written otherwise (dpt_cuda_bf16_act_touched) or a graph replays */
    struct {
        const float *src;
        size_t n16, cap;
        __nv_bfloat16 *buf;
        int valid;
    } act16[DPT_CUDA_ACT16];
    int n_act16;
} dpt_cuda_ctx;

static inline dpt_cuda_ctx *dpt_cuda_ctx_of(dpt_backend *be) { return (dpt_cuda_ctx *)be->ctx; }

/* Blocks for a grid-stride loop over n items (at least 1). */
/* Blocks for one thread per item. grid.x may reach 2^31 - 1 on every architecture built for
 * (sm_75+), so any buffer this trainer allocates is covered by one launch. */
static inline unsigned dpt_cuda_blocks(size_t n)
{
    size_t b = (n + DPT_CUDA_THREADS - 1) / DPT_CUDA_THREADS;
    return b < 1 ? 1u : (unsigned)b;
}

/* One thread per item, guarded: the launch must cover all n items (dpt_cuda_blocks). Not a
 * grid-stride loop on purpose: a grid one block too small then leaves items undone and the
 * parity tests against the CPU backend fail, instead of a loop quietly hiding the mistake. */
#define DPT_FOR_THREAD(i, n)                                                                \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i = (n))

/* The sum of v over `lanes` threads of the block (a power of two), added in a fixed tree order
 * (the same bits every run, no atomics) through the block's shared array s: the thread of lane
 * l stores at s[me], me = l * stride + the column it shares with lanes 0..lanes-1. Every thread
 * of the block must call it (it holds barriers); every lane gets the sum back. */
template <class Shared, class T>
static __device__ T dpt_cuda_tree_sum(Shared &s, T v, int lane, int lanes, int stride, int me)
{
    s[me] = v;
    __syncthreads();
    for (int half = lanes / 2; half > 0; half /= 2) {
        if (lane < half)
            s[me] += s[me + half * stride];
        __syncthreads();
    }
    return s[me - lane * stride];
}

/* elementwise.cu */
void dpt_cuda_gather(dpt_backend *be, const float *x, const int32_t *y, const int64_t *idx,
                     int rows, int cols, float *xb, int32_t *yb);
void dpt_cuda_bias_act_forward(dpt_backend *be, float *z, float *a, const float *b, int rows,
                               int cols, dpt_activation act, const dpt_dropout *drop, int layer);
void dpt_cuda_act_backward(dpt_backend *be, float *d, const float *z, const float *a, int rows,
                           int cols, dpt_activation act, const dpt_dropout *drop, int layer);
void dpt_cuda_bias_grad(dpt_backend *be, const float *dz, int rows, int cols, float *db);
void dpt_cuda_scale(dpt_backend *be, float *x, size_t n, float s);

/* gemm.cu: the BF16 GEMM (operands converted to bf16, cublasGemmEx with FP32 accumulation),
 * row-major arguments as the table's gemm; and the scratch it frees at tear-down. */
void dpt_cuda_gemm_bf16(dpt_backend *be, int trans_a, int trans_b, int m, int n, int k,
                        float alpha, const float *a, int lda, const float *b, int ldb, float beta,
                        float *c, int ldc);
void dpt_cuda_gemm_free(dpt_cuda_ctx *ctx);
/* The row-major operand (rows, cols; ld) as bf16: an activation's bf16 copy where the operand
 * is that activation, packed (*ld16 = cols), or inside the parameters' bf16 copy while it is
 * valid (*ld16 = ld), else converted on the stream into the first (second = 0) or second GEMM
 * operand's packed scratch (*ld16 = cols). */
const __nv_bfloat16 *dpt_cuda_bf16_operand(dpt_cuda_ctx *ctx, const float *src, int rows, int cols,
                                           int ld, int second, int *ld16);
/* BF16 only (no-ops otherwise): the optimizer has updated p(n), the parameters: their bf16 copy
 * is refreshed on the stream; and [dst, dst + bytes) was just written by something else (an
 * upload or a memset queued on the stream: the copy is refreshed behind it) or freed (the copy
 * is dropped). */
void dpt_cuda_bf16_weights_updated(dpt_cuda_ctx *ctx, const float *p, size_t n);
void dpt_cuda_bf16_weights_touched(dpt_cuda_ctx *ctx, const void *dst, size_t bytes, int freed);
/* BF16: where the bias+activation kernel writing a(n) should also write it rounded (NULL: it
 * need not; the GEMMs then convert a); and [dst, dst + bytes) written by anything else: a copy
 * overlapping it is no longer valid. */
__nv_bfloat16 *dpt_cuda_bf16_act_target(dpt_cuda_ctx *ctx, const float *a, size_t n);
void dpt_cuda_bf16_act_touched(dpt_cuda_ctx *ctx, const void *dst, size_t bytes);

/* lt.cu: the table's gemm_epilogue through cuBLASLt, and its handle freed at tear-down. */
void dpt_cuda_gemm_epilogue(dpt_backend *be, int epi, int trans_a, int trans_b, int m, int n,
                            int k, const float *a, int lda, const float *b, int ldb, float *c,
                            int ldc, float *vec, void *mask);
void dpt_cuda_lt_free(dpt_cuda_ctx *ctx);

/* loss.cu */
void dpt_cuda_loss(dpt_backend *be, const float *logits, const int32_t *y, int rows, int cols,
                   dpt_loss loss, float grad_scale, float *dlogits, double *loss_sum,
                   double *correct);
void dpt_cuda_loss_targets(dpt_backend *be, const float *out, const int32_t *row, const float *t,
                           int rows, int cols, dpt_loss loss, float delta, float grad_scale,
                           float *dout, double *loss_sum);
void dpt_cuda_loss_stats(dpt_backend *be, const float *logits, const int32_t *y, int rows,
                         int cols, dpt_loss loss, float grad_scale, float *dlogits, float *stats);
void dpt_cuda_loss_targets_stats(dpt_backend *be, const float *out, const int32_t *row,
                                 const float *t, int rows, int cols, dpt_loss loss,
                                 float delta, float grad_scale, float *dout, float *stats);
void dpt_cuda_accumulate(dpt_backend *be, double *acc, const float *x, int n);

/* optim.cu */
double dpt_cuda_sum_squares(dpt_backend *be, const float *x, size_t n);
double dpt_cuda_clip_grad_norm(dpt_backend *be, float *g, size_t n, double max_norm);
/* Queues the sum of squares of x(n) on the stream, into dpt_cuda_sum_squares_result (a device
 * double, valid once the stream reaches this point); dpt_cuda_sum_squares also waits and reads
 * it. */
void dpt_cuda_sum_squares_async(dpt_backend *be, const float *x, size_t n);
const double *dpt_cuda_sum_squares_result(dpt_backend *be);
void dpt_cuda_sgd_step(dpt_backend *be, float *p, const float *g, float *m, size_t n, float lr,
                       float momentum, int nesterov, float wd);
void dpt_cuda_adam_step(dpt_backend *be, float *p, const float *g, float *m, float *v, size_t n,
                        float lr, float beta1, float beta2, float eps, float wd, int decoupled,
                        float bc1, float bc2);

#endif
