/* The fused loss of the CUDA backend: softmax cross-entropy or MSE against one-hot labels, its
 * gradient and the argmax hit, one thread per row (rows <= the batch, C is small), with the
 * per-row math of src/ops.h that the CPU backend uses too. Per-row results go to a scratch buffer
 * summed in double in row order, as the CPU does, so the sums do not depend on scheduling: by
 * the host (loss, for evaluation), or by one device thread into the step's statistics
 * (loss_stats, so a training step needs no host synchronization). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>

#include "kernels.h"

/* row_loss(B): the row's loss; row_hit(B): 1 when argmax(logits row) == label, else 0; the
 * math is dpt_op_loss_row of src/ops.h, shared with the CPU backend. */
static __global__ void loss_kernel(const float *__restrict__ logits, const int32_t *__restrict__ y,
                                   int rows, int cols, dpt_loss loss, float grad_scale,
                                   float *__restrict__ dlogits, float *__restrict__ row_loss,
                                   float *__restrict__ row_hit)
{
    int i = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    if (i >= rows)
        return;
    int hit = 0;
    row_loss[i] = dpt_op_loss_row(logits + (size_t)i * cols, y[i], cols, loss, grad_scale,
                                  dlogits ? dlogits + (size_t)i * cols : NULL, &hit);
    row_hit[i] = hit ? 1.0f : 0.0f;
}

/* Per-row loss and hit of logits(B, C) into a scratch (grown when B is larger than before):
 * row_loss = buf[0, B), row_hit = buf[B, 2B). *host: its pinned copy, or NULL for none. loss
 * and loss_stats keep one scratch each, so evaluation's larger chunks never move the training
 * step's (which a captured CUDA Graph holds the address of). Failure ends the run (the loss has
 * no error path) naming the buffer, as the trainer names the batch buffers; cuda_alloc has
 * printed the bytes and GPU. */
static void grow_rows(dpt_backend *be, const char *what, float **buf, float **host, int *cap,
                      int rows)
{
    if (rows <= *cap)
        return;
    dpt_cuda_ctx *ctx = dpt_cuda_ctx_of(be);
    DPT_CUDA_SYNC(cudaStreamSynchronize(ctx->stream)); /* the old buffers may still be in use */
    const size_t bytes = 2 * (size_t)rows * sizeof(float);
    be->free(be, *buf);
    *cap = 0;
    *buf = (float *)be->alloc(be, bytes);
    int pinned = 1;
    if (host) {
        be->free_pinned(be, *host);
        *host = (float *)be->alloc_pinned(be, bytes);
        pinned = *host != NULL;
    }
    if (!*buf || !pinned) {
        char detail[200];
        snprintf(detail, sizeof detail, "out of %s memory for %s (2 x %d rows of float, %zu bytes)",
                 *buf ? "pinned host" : "cuda", what, rows, bytes);
        dpt_fatal(__FILE__, __LINE__, "allocating the loss's scratch", detail);
    }
    *cap = rows;
}

static float *launch_rows(dpt_backend *be, const char *what, float **buf, float **host,
                          int *cap, const float *logits, const int32_t *y, int rows, int cols,
                          dpt_loss loss, float grad_scale, float *dlogits)
{
    grow_rows(be, what, buf, host, cap, rows);
    /* one thread per row */
    unsigned threads = 128, blocks = (unsigned)((rows + threads - 1) / threads);
    float *row_loss = *buf, *row_hit = *buf + rows;
    DPT_LAUNCH(loss_kernel, blocks, threads, dpt_cuda_ctx_of(be)->stream, logits, y, rows, cols,
               loss, grad_scale, dlogits, row_loss, row_hit);
    DPT_CUDA_CHECK_LAUNCH();
    return *buf;
}

void dpt_cuda_loss(dpt_backend *be, const float *logits, const int32_t *y, int rows, int cols,
                   dpt_loss loss, float grad_scale, float *dlogits, double *loss_sum,
                   double *correct)
{
    dpt_cuda_ctx *ctx = dpt_cuda_ctx_of(be);
    if (rows <= 0 || cols <= 0)
        return;
    float *per_row = launch_rows(be, "the loss's per-row results", &ctx->loss_dev, &ctx->loss_host,
                                 &ctx->loss_cap, logits, y, rows, cols, loss, grad_scale, dlogits);
    DPT_CUDA_COPY(ctx->loss_host, per_row, 2 * (size_t)rows * sizeof(float),
                  cudaMemcpyDeviceToHost, ctx->stream);
    DPT_CUDA_SYNC(cudaStreamSynchronize(ctx->stream));
    double lsum = 0.0, hits = 0.0;
    for (int i = 0; i < rows; i++) {
        lsum += (double)ctx->loss_host[i];
        hits += (double)ctx->loss_host[rows + i];
    }
    *loss_sum += lsum;
    *correct += hits;
}

/* row_loss(B): the regression loss of row i against its targets t[row[i]] (dpt_op_regress_row,
 * shared with the CPU backend). */
static __global__ void loss_targets_kernel(const float *__restrict__ out,
                                           const int32_t *__restrict__ row,
                                           const float *__restrict__ t, int rows, int cols,
                                           dpt_loss loss, float delta, float grad_scale,
                                           float *__restrict__ dout, float *__restrict__ row_loss)
{
    int i = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    if (i >= rows)
        return;
    row_loss[i] = dpt_op_regress_row(out + (size_t)i * cols, t + (size_t)row[i] * cols, cols,
                                     loss, delta, grad_scale,
                                     dout ? dout + (size_t)i * cols : NULL);
}

void dpt_cuda_loss_targets(dpt_backend *be, const float *out, const int32_t *row, const float *t,
                           int rows, int cols, dpt_loss loss, float delta, float grad_scale,
                           float *dout, double *loss_sum)
{
    dpt_cuda_ctx *ctx = dpt_cuda_ctx_of(be);
    if (rows <= 0 || cols <= 0)
        return;
    grow_rows(be, "the loss's per-row results", &ctx->loss_dev, &ctx->loss_host, &ctx->loss_cap,
              rows);
    unsigned threads = 128, blocks = (unsigned)((rows + threads - 1) / threads);
    DPT_LAUNCH(loss_targets_kernel, blocks, threads, ctx->stream, out, row, t, rows, cols, loss,
               delta, grad_scale, dout, ctx->loss_dev);
    DPT_CUDA_CHECK_LAUNCH();
    DPT_CUDA_COPY(ctx->loss_host, ctx->loss_dev, (size_t)rows * sizeof(float),
                  cudaMemcpyDeviceToHost, ctx->stream);
    DPT_CUDA_SYNC(cudaStreamSynchronize(ctx->stream));
    double lsum = 0.0; /* in row order, as the CPU backend sums */
    for (int i = 0; i < rows; i++)
        lsum += (double)ctx->loss_host[i];
    *loss_sum += lsum;
}

/* One thread: the sums of dpt_cuda_loss's host loop, in the same order and precision, written
 * as the step's statistics. */
static __global__ void loss_stats_kernel(const float *__restrict__ per_row, int rows,
                                         int with_hits, float *__restrict__ stats)
{
    if (blockIdx.x != 0 || threadIdx.x != 0)
        return;
    double lsum = 0.0, hits = 0.0;
    for (int i = 0; i < rows; i++) {
        lsum += (double)per_row[i];
        hits += with_hits ? (double)per_row[rows + i] : 0.0; /* a regression has none */
    }
    stats[0] = (float)lsum;
    stats[1] = (float)hits;
    stats[2] = (float)rows;
    stats[3] = 0.0f;
}

void dpt_cuda_loss_stats(dpt_backend *be, const float *logits, const int32_t *y, int rows,
                         int cols, dpt_loss loss, float grad_scale, float *dlogits, float *stats)
{
    dpt_cuda_ctx *ctx = dpt_cuda_ctx_of(be);
    if (rows <= 0 || cols <= 0)
        return;
    float *per_row = launch_rows(be, "the step statistics' per-row results", &ctx->stats_dev, NULL,
                                 &ctx->stats_cap, logits, y, rows, cols, loss, grad_scale,
                                 dlogits);
    DPT_LAUNCH(loss_stats_kernel, 1u, 1u, ctx->stream, per_row, rows, 1, stats);
    DPT_CUDA_CHECK_LAUNCH();
}

/* The regression's loss_stats: the per-row losses into the step's own scratch (grown by the
 * warm-up step, before any capture), summed by loss_stats_kernel. */
void dpt_cuda_loss_targets_stats(dpt_backend *be, const float *out, const int32_t *row,
                                 const float *t, int rows, int cols, dpt_loss loss,
                                 float delta, float grad_scale, float *dout, float *stats)
{
    dpt_cuda_ctx *ctx = dpt_cuda_ctx_of(be);
    if (rows <= 0 || cols <= 0)
        return;
    grow_rows(be, "the step statistics' per-row results", &ctx->stats_dev, NULL, &ctx->stats_cap,
              rows);
    unsigned threads = 128, blocks = (unsigned)((rows + threads - 1) / threads);
    DPT_LAUNCH(loss_targets_kernel, blocks, threads, ctx->stream, out, row, t, rows, cols, loss,
               delta, grad_scale, dout, ctx->stats_dev);
    DPT_CUDA_CHECK_LAUNCH();
    DPT_LAUNCH(loss_stats_kernel, 1u, 1u, ctx->stream, ctx->stats_dev, rows, 0, stats);
    DPT_CUDA_CHECK_LAUNCH();
}

static __global__ void accumulate_kernel(double *__restrict__ acc, const float *__restrict__ x,
                                         int n)
{
    int i = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    if (i < n)
        acc[i] += (double)x[i];
}

void dpt_cuda_accumulate(dpt_backend *be, double *acc, const float *x, int n)
{
    if (n <= 0)
        return;
    DPT_LAUNCH(accumulate_kernel, dpt_cuda_blocks((size_t)n), DPT_CUDA_THREADS,
               dpt_cuda_ctx_of(be)->stream, acc, x, n);
    DPT_CUDA_CHECK_LAUNCH();
}
