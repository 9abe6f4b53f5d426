/* Optimizer kernels of the CUDA backend: one fused grid-stride kernel per optimizer over the
 * whole flat parameter buffer, calling the shared updates of src/ops.h, and the sum of squares
 * for gradient clipping as a fixed-shape reduction without atomics, so it is reproducible. */
#include <math.h>
#include <stdint.h>

#include "kernels.h"

/* The step's scalars {lr, bc1, bc2} into device memory, where the update kernels read them: a
 * CUDA Graph replays the update with whatever this wrote before its launch. */
static __global__ void step_scalars_kernel(float *__restrict__ sc, float lr, float bc1, float bc2)
{
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        sc[0] = lr;
        sc[1] = bc1;
        sc[2] = bc2;
    }
}

void dpt_cuda_step_scalars(dpt_backend *be, float lr, float bc1, float bc2)
{
    dpt_cuda_ctx *ctx = dpt_cuda_ctx_of(be);
    DPT_LAUNCH(step_scalars_kernel, 1u, 1u, ctx->stream, ctx->scalars, lr, bc1, bc2);
    DPT_CUDA_CHECK_LAUNCH();
}

/* Outside a capture an update sets its own scalars; a captured one reads those the trainer sets
 * before each launch (dpt_cuda_step_scalars). */
static void own_scalars(dpt_backend *be, float lr, float bc1, float bc2)
{
    if (!dpt_cuda_ctx_of(be)->capturing)
        dpt_cuda_step_scalars(be, lr, bc1, bc2);
}

static __global__ void sgd_kernel(float *__restrict__ p, const float *__restrict__ g,
                                  float *__restrict__ m, size_t n, const float *__restrict__ sc,
                                  float momentum, int nesterov, float wd)
{
    /* m: the momentum buffer (n), read and written only when momentum > 0; sc[0]: lr */
    DPT_FOR_THREAD(i, n) dpt_op_sgd(&p[i], g[i], &m[i], sc[0], momentum, nesterov, wd);
}

void dpt_cuda_sgd_step(dpt_backend *be, float *p, const float *g, float *m, size_t n, float lr,
                       float momentum, int nesterov, float wd)
{
    dpt_cuda_ctx *ctx = dpt_cuda_ctx_of(be);
    if (n == 0)
        return;
    own_scalars(be, lr, 1.0f, 1.0f);
    DPT_LAUNCH(sgd_kernel, dpt_cuda_blocks(n), DPT_CUDA_THREADS, ctx->stream, p, g, m, n,
               (const float *)ctx->scalars, momentum, nesterov, wd);
    DPT_CUDA_CHECK_LAUNCH();
}

static __global__ void adam_kernel(float *__restrict__ p, const float *__restrict__ g,
                                   float *__restrict__ m, float *__restrict__ v, size_t n,
                                   const float *__restrict__ sc, float beta1, float beta2,
                                   float eps, float wd, int decoupled)
{
    /* sc: {lr, bc1, bc2} */
    DPT_FOR_THREAD(i, n)
        dpt_op_adam(&p[i], g[i], &m[i], &v[i], sc[0], beta1, beta2, eps, wd, decoupled, sc[1],
                    sc[2]);
}

void dpt_cuda_adam_step(dpt_backend *be, float *p, const float *g, float *m, float *v, size_t n,
                        float lr, float beta1, float beta2, float eps, float wd, int decoupled,
                        float bc1, float bc2)
{
    dpt_cuda_ctx *ctx = dpt_cuda_ctx_of(be);
    if (n == 0)
        return;
    own_scalars(be, lr, bc1, bc2);
    DPT_LAUNCH(adam_kernel, dpt_cuda_blocks(n), DPT_CUDA_THREADS, ctx->stream, p, g, m, v, n,
               (const float *)ctx->scalars, beta1, beta2, eps, wd, decoupled);
    DPT_CUDA_CHECK_LAUNCH();
}

/* Stage 1: thread t of T = blocks * THREADS sums x[t], x[t + T], ... in double (coalesced). */
static __global__ void sum_squares_partial_kernel(const float *__restrict__ x, size_t n,
                                                  double *__restrict__ partial)
{
    size_t t = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    size_t total = (size_t)gridDim.x * blockDim.x;
    double s = 0.0;
    for (size_t i = t; i < n; i += total)
        s += (double)x[i] * x[i];
    partial[t] = s;
}

/* Stage 2: thread b sums the THREADS partials of stage-1 block b, in order. */
static __global__ void sum_squares_block_kernel(const double *__restrict__ partial, int blocks,
                                                double *__restrict__ block_sum)
{
    int b = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    if (b >= blocks)
        return;
    double s = 0.0;
    for (int j = 0; j < DPT_CUDA_THREADS; j++)
        s += partial[(size_t)b * DPT_CUDA_THREADS + j];
    block_sum[b] = s;
}

/* Queues the reduction of x(n) into ctx->ss_block; returns how many block sums it leaves there.
 * The shape of the reduction depends only on n, so the same n gives the same bits every run;
 * only the order of the additions differs from the CPU's single loop. */
static int sum_squares_blocks(dpt_cuda_ctx *ctx, const float *x, size_t n)
{
    size_t want = (n + DPT_CUDA_THREADS - 1) / DPT_CUDA_THREADS;
    int blocks = want < DPT_CUDA_SS_BLOCKS ? (int)want : DPT_CUDA_SS_BLOCKS;
    DPT_LAUNCH(sum_squares_partial_kernel, (unsigned)blocks, DPT_CUDA_THREADS, ctx->stream, x, n,
               ctx->ss_partial);
    DPT_CUDA_CHECK_LAUNCH();
    DPT_LAUNCH(sum_squares_block_kernel, 1u, (unsigned)DPT_CUDA_SS_BLOCKS, ctx->stream,
               ctx->ss_partial, blocks, ctx->ss_block);
    DPT_CUDA_CHECK_LAUNCH();
    return blocks;
}

double dpt_cuda_sum_squares(dpt_backend *be, const float *x, size_t n)
{
    dpt_cuda_ctx *ctx = dpt_cuda_ctx_of(be);
    if (n == 0)
        return 0.0;
    int blocks = sum_squares_blocks(ctx, x, n);
    DPT_CUDA_COPY(ctx->ss_host, ctx->ss_block, (size_t)blocks * sizeof(double),
                  cudaMemcpyDeviceToHost, ctx->stream);
    DPT_CUDA_SYNC(cudaStreamSynchronize(ctx->stream));
    double s = 0.0;
    for (int b = 0; b < blocks; b++)
        s += ctx->ss_host[b];
    return s;
}

/* One thread: the norm from the block sums, summed in the order dpt_cuda_sum_squares' host loop
 * sums them (so the factor has the bits the host's would), and the clipping factor. */
static __global__ void clip_scale_kernel(const double *__restrict__ block_sum, int blocks,
                                         double max_norm, float *__restrict__ scale)
{
    if (blockIdx.x != 0 || threadIdx.x != 0)
        return;
    double s = 0.0;
    for (int b = 0; b < blocks; b++)
        s += block_sum[b];
    *scale = dpt_op_clip_scale(sqrt(s), max_norm);
}

static __global__ void scale_by_kernel(float *__restrict__ g, size_t n,
                                       const float *__restrict__ scale)
{
    DPT_FOR_THREAD(i, n) g[i] *= *scale;
}

/* The norm never reaches the host: the factor is computed and applied on the device. */
double dpt_cuda_clip_grad_norm(dpt_backend *be, float *g, size_t n, double max_norm)
{
    dpt_cuda_ctx *ctx = dpt_cuda_ctx_of(be);
    if (n == 0)
        return 0.0;
    int blocks = sum_squares_blocks(ctx, g, n);
    DPT_LAUNCH(clip_scale_kernel, 1u, 1u, ctx->stream, ctx->ss_block, blocks, max_norm,
               ctx->clip_scale);
    DPT_CUDA_CHECK_LAUNCH();
    DPT_LAUNCH(scale_by_kernel, dpt_cuda_blocks(n), DPT_CUDA_THREADS, ctx->stream, g, n,
               ctx->clip_scale);
    DPT_CUDA_CHECK_LAUNCH();
    return NAN;
}
