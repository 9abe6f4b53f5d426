/* The fused loss of the CUDA backend: softmax cross-entropy or MSE against one-hot labels, its
 * gradient and the argmax hit, one thread per row (rows <= the batch, C is small), with the
 * per-row math of src/ops.h that the CPU backend uses too. Per-row results go to a scratch buffer that the host sums in double in
 * row order, as the CPU does, so the sums do not depend on scheduling. */
#include <math.h>
#include <stdint.h>

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

/* The per-row scratch holds at least `rows` rows (2 floats each); the old one may still be in
 * use, so the stream is drained before it is replaced. */
static void grow_scratch(dpt_cuda_ctx *ctx, int rows)
{
    if (rows <= ctx->loss_cap)
        return;
    DPT_CUDA_CHECK(cudaStreamSynchronize(ctx->stream));
    DPT_CUDA_CHECK(cudaFree(ctx->loss_dev));
    DPT_CUDA_CHECK(cudaFreeHost(ctx->loss_host));
    ctx->loss_dev = NULL;
    ctx->loss_host = NULL;
    ctx->loss_cap = 0;
    DPT_CUDA_CHECK(cudaMalloc((void **)&ctx->loss_dev, 2 * (size_t)rows * sizeof(float)));
    DPT_CUDA_CHECK(cudaMallocHost((void **)&ctx->loss_host, 2 * (size_t)rows * sizeof(float)));
    ctx->loss_cap = rows;
}

void dpt_cuda_loss(dpt_backend *be, const float *logits, const int32_t *y, int rows, int cols,
                   dpt_loss loss, float grad_scale, float *dlogits, double *loss_sum,
                   double *correct)
{
    dpt_cuda_ctx *ctx = dpt_cuda_ctx_of(be);
    if (rows <= 0 || cols <= 0)
        return;
    grow_scratch(ctx, rows);
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

/* row_loss(B): the regression loss of row i against its targets t[row[i]] (dpt_op_regress_row,
 * shared with the CPU backend). */
static __global__ void loss_targets_kernel(const float *__restrict__ out,
                                           const int32_t *__restrict__ row,
                                           const float *__restrict__ t, int rows, int cols,
                                           dpt_loss loss, float grad_scale,
                                           float *__restrict__ dout, float *__restrict__ row_loss)
{
    int i = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    if (i >= rows)
        return;
    row_loss[i] = dpt_op_regress_row(out + (size_t)i * cols, t + (size_t)row[i] * cols, cols,
                                     loss, grad_scale, dout ? dout + (size_t)i * cols : NULL);
}

void dpt_cuda_loss_targets(dpt_backend *be, const float *out, const int32_t *row, const float *t,
                           int rows, int cols, dpt_loss loss, float grad_scale, float *dout,
                           double *loss_sum)
{
    dpt_cuda_ctx *ctx = dpt_cuda_ctx_of(be);
    if (rows <= 0 || cols <= 0)
        return;
    grow_scratch(ctx, rows);
    unsigned threads = 128, blocks = (unsigned)((rows + threads - 1) / threads);
    DPT_LAUNCH(loss_targets_kernel, blocks, threads, ctx->stream, out, row, t, rows, cols, loss,
               grad_scale, dout, ctx->loss_dev);
    DPT_CUDA_CHECK_LAUNCH();
    DPT_CUDA_CHECK(cudaMemcpyAsync(ctx->loss_host, ctx->loss_dev, (size_t)rows * sizeof(float),
                                   cudaMemcpyDeviceToHost, ctx->stream));
    DPT_CUDA_CHECK(cudaStreamSynchronize(ctx->stream));
    double lsum = 0.0; /* in row order, as the CPU backend sums */
    for (int i = 0; i < rows; i++)
        lsum += (double)ctx->loss_host[i];
    *loss_sum += lsum;
}
