/* The fused loss of the CUDA backend: softmax cross-entropy or MSE against one-hot labels, its
 * gradient and the argmax hit, one thread per row (rows <= the batch, C is small), with the
 * per-row math of src/ops.h that the CPU backend uses too. Per-row results go to a scratch buffer that the host sums in double in
 * row order, as the CPU does, so the sums do not depend on scheduling. */
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

/* Room for 2 x rows floats on the device and in pinned memory. The old buffers may still be in
 * use: the free synchronizes first. Failure ends the run (the loss has no error path) naming the
 * buffer, as the trainer names the batch buffers; cuda_alloc has printed the bytes and GPU. */
static void grow_loss_scratch(dpt_backend *be, int rows)
{
    dpt_cuda_ctx *ctx = dpt_cuda_ctx_of(be);
    const size_t bytes = 2 * (size_t)rows * sizeof(float);
    be->free(be, ctx->loss_dev);
    be->free_pinned(be, ctx->loss_host);
    ctx->loss_cap = 0;
    ctx->loss_dev = (float *)be->alloc(be, bytes);
    ctx->loss_host = (float *)be->alloc_pinned(be, bytes);
    if (!ctx->loss_dev || !ctx->loss_host) {
        char detail[200];
        snprintf(detail, sizeof detail,
                 "out of %s memory for the loss's per-row results (2 x %d rows of float, %zu "
                 "bytes)", ctx->loss_dev ? "pinned host" : "cuda", rows, bytes);
        dpt_fatal(__FILE__, __LINE__, "allocating the loss's scratch", detail);
    }
    ctx->loss_cap = rows;
}

void dpt_cuda_loss(dpt_backend *be, const float *logits, const int32_t *y, int rows, int cols,
                   dpt_loss loss, float grad_scale, float *dlogits, double *loss_sum,
                   double *correct)
{
    dpt_cuda_ctx *ctx = dpt_cuda_ctx_of(be);
    if (rows <= 0 || cols <= 0)
        return;
    if (rows > ctx->loss_cap) /* grow the scratch at first use and when a batch is larger */
        grow_loss_scratch(be, rows);
    /* one thread per row */
    unsigned threads = 128, blocks = (unsigned)((rows + threads - 1) / threads);
    float *row_loss = ctx->loss_dev, *row_hit = ctx->loss_dev + rows;
    DPT_LAUNCH(loss_kernel, blocks, threads, ctx->stream, logits, y, rows, cols, loss,
               grad_scale, dlogits, row_loss, row_hit);
    DPT_CUDA_CHECK_LAUNCH();
    DPT_CUDA_CHECK(cudaMemcpyAsync(ctx->loss_host, ctx->loss_dev, 2 * (size_t)rows * sizeof(float),
                                   cudaMemcpyDeviceToHost, ctx->stream));
    DPT_CUDA_CHECK(cudaStreamSynchronize(ctx->stream));
    double lsum = 0.0, hits = 0.0;
    for (int i = 0; i < rows; i++) {
        lsum += (double)ctx->loss_host[i];
        hits += (double)ctx->loss_host[rows + i];
    }
    *loss_sum += lsum;
    *correct += hits;
}
