/* Optimizer kernels of the CUDA backend: one fused grid-stride kernel per optimizer over the
 * whole flat parameter buffer, calling the shared updates of src/ops.h, and the sum of squares
 * for gradient clipping as fixed-shape block reductions without atomics, so it is reproducible. */
#include <math.h>
#include <stdint.h>

#include "kernels.h"

/* The step's scalars {lr, bc1, bc2} into device memory, where the update kernels read them, and
 * the step (when step >= 0), where captured dropout kernels read it: a CUDA Graph replays the
 * step with whatever this wrote before its launch. */
static __global__ void step_scalars_kernel(float *__restrict__ sc, float lr, float bc1, float bc2,
                                           uint64_t *__restrict__ step_dev, int64_t step)
{
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        sc[0] = lr;
        sc[1] = bc1;
        sc[2] = bc2;
        if (step >= 0)
            *step_dev = (uint64_t)step;
    }
}

void dpt_cuda_step_scalars(dpt_backend *be, float lr, float bc1, float bc2, int64_t step)
{
    dpt_cuda_ctx *ctx = dpt_cuda_ctx_of(be);
    DPT_LAUNCH(step_scalars_kernel, 1u, 1u, ctx->stream, ctx->scalars, lr, bc1, bc2,
               ctx->step_dev, step);
    DPT_CUDA_CHECK_LAUNCH();
}

/* Outside a capture an update sets its own scalars; a captured one reads those the trainer sets
 * before each launch (dpt_cuda_step_scalars). */
static void own_scalars(dpt_backend *be, float lr, float bc1, float bc2)
{
    if (!dpt_cuda_ctx_of(be)->capturing)
        dpt_cuda_step_scalars(be, lr, bc1, bc2, -1);
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
    dpt_cuda_bf16_weights_updated(ctx, p, n);
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
    dpt_cuda_bf16_weights_updated(ctx, p, n);
}

/* Stage 1: thread t of T = blocks * THREADS sums x[t], x[t + T], ... in double (coalesced);
 * the block's sum goes to partial[blockIdx.x]. */
static __global__ void sum_squares_partial_kernel(const float *__restrict__ x, size_t n,
                                                  double *__restrict__ partial)
{
    DPT_SHARED(double, lane_sum, DPT_CUDA_THREADS);
    const int t = (int)threadIdx.x;
    size_t total = (size_t)gridDim.x * blockDim.x;
    double s = 0.0;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + t; i < n; i += total)
        s += (double)x[i] * x[i];
    s = dpt_cuda_tree_sum(lane_sum, s, t, DPT_CUDA_THREADS, 1, t);
    if (t == 0)
        partial[blockIdx.x] = s;
}

/* Stage 2, one block of SS_BLOCKS threads: the sum of the stage-1 partials into *result. */
static __global__ void sum_squares_final_kernel(const double *__restrict__ partial, int blocks,
                                                double *__restrict__ result)
{
    DPT_SHARED(double, lane_sum, DPT_CUDA_SS_BLOCKS);
    const int t = (int)threadIdx.x;
    double s = dpt_cuda_tree_sum(lane_sum, t < blocks ? partial[t] : 0.0, t, DPT_CUDA_SS_BLOCKS,
                                 1, t);
    if (t == 0)
        *result = s;
}

/* The shape of the reduction depends only on n, so the same n gives the same bits every run;
 * only the order of the additions differs from the CPU's single loop. n == 0 runs stage 2
 * alone, which writes 0. */
void dpt_cuda_sum_squares_async(dpt_backend *be, const float *x, size_t n)
{
    dpt_cuda_ctx *ctx = dpt_cuda_ctx_of(be);
    size_t want = (n + DPT_CUDA_THREADS - 1) / DPT_CUDA_THREADS;
    int blocks = want < DPT_CUDA_SS_BLOCKS ? (int)want : DPT_CUDA_SS_BLOCKS;
    if (blocks > 0) {
        DPT_LAUNCH(sum_squares_partial_kernel, (unsigned)blocks, DPT_CUDA_THREADS, ctx->stream,
                   x, n, ctx->ss_partial);
        DPT_CUDA_CHECK_LAUNCH();
    }
    DPT_LAUNCH(sum_squares_final_kernel, 1u, (unsigned)DPT_CUDA_SS_BLOCKS, ctx->stream,
               ctx->ss_partial, blocks, ctx->ss_block);
    DPT_CUDA_CHECK_LAUNCH();
}

const double *dpt_cuda_sum_squares_result(dpt_backend *be)
{
    return dpt_cuda_ctx_of(be)->ss_block;
}

double dpt_cuda_sum_squares(dpt_backend *be, const float *x, size_t n)
{
    dpt_cuda_ctx *ctx = dpt_cuda_ctx_of(be);
    if (n == 0)
        return 0.0;
    dpt_cuda_sum_squares_async(be, x, n);
    DPT_CUDA_COPY(ctx->ss_host, dpt_cuda_sum_squares_result(be), sizeof(double),
                  cudaMemcpyDeviceToHost, ctx->stream);
    DPT_CUDA_SYNC(cudaStreamSynchronize(ctx->stream));
    return ctx->ss_host[0];
}

/* One thread: the clipping factor from the sum of squares (dpt_cuda_sum_squares_result, the
 * value dpt_cuda_sum_squares would read, so the factor has the bits the host's would). */
static __global__ void clip_scale_kernel(const double *__restrict__ sum, double max_norm,
                                         float *__restrict__ scale)
{
    if (blockIdx.x != 0 || threadIdx.x != 0)
        return;
    *scale = dpt_op_clip_scale(sqrt(*sum), max_norm);
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
    dpt_cuda_sum_squares_async(be, g, n);
    DPT_LAUNCH(clip_scale_kernel, 1u, 1u, ctx->stream, dpt_cuda_sum_squares_result(be), max_norm,
               ctx->clip_scale);
    DPT_CUDA_CHECK_LAUNCH();
    DPT_LAUNCH(scale_by_kernel, dpt_cuda_blocks(n), DPT_CUDA_THREADS, ctx->stream, g, n,
               ctx->clip_scale);
    DPT_CUDA_CHECK_LAUNCH();
    return NAN;
}
