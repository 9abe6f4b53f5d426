/* The fused loss of the CUDA backend: softmax cross-entropy or MSE against one-hot labels, its
 * gradient and the argmax hit, one thread per row (rows <= the batch, C is small), following
 * cpu_loss line by line. Per-row results go to a scratch buffer that the host sums in double in
 * row order, as the CPU does, so the sums do not depend on scheduling. */
#include <math.h>
#include <stdint.h>

#include "kernels.h"

/* row_loss(B): the row's loss; row_hit(B): 1 when argmax(logits row) == label, else 0. A label
 * outside [0, C) (the data loader rejects those) gives a NaN loss, so the step counts as
 * diverged instead of reading out of bounds. */
static __global__ void loss_kernel(const float *__restrict__ logits, const int32_t *__restrict__ y,
                                   int rows, int cols, dpt_loss loss, float grad_scale,
                                   float *__restrict__ dlogits, float *__restrict__ row_loss,
                                   float *__restrict__ row_hit)
{
    int i = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    if (i >= rows)
        return;
    const float *z = logits + (size_t)i * cols;
    float *dz = dlogits ? dlogits + (size_t)i * cols : NULL;
    int label = y[i];
    int valid = label >= 0 && label < cols;
    int arg = 0;
    for (int j = 1; j < cols; j++)
        if (z[j] > z[arg])
            arg = j;
    row_hit[i] = arg == label ? 1.0f : 0.0f;
    if (loss == DPT_LOSS_SOFTMAX_CE) {
        /* log-sum-exp shifted by the max, so exp never overflows */
        float mx = z[arg], sum = 0.0f;
        for (int j = 0; j < cols; j++)
            sum += expf(z[j] - mx);
        float lse = mx + logf(sum);
        row_loss[i] = valid ? lse - z[label] : NAN;
        if (dz)
            for (int j = 0; j < cols; j++)
                dz[j] = grad_scale * (expf(z[j] - lse) - (j == label ? 1.0f : 0.0f));
    } else {
        /* MSE against the one-hot label, averaged over the C outputs */
        float s = 0.0f;
        for (int j = 0; j < cols; j++) {
            float e = z[j] - (j == label ? 1.0f : 0.0f);
            s += e * e;
            if (dz)
                dz[j] = grad_scale * 2.0f * e / (float)cols;
        }
        row_loss[i] = valid ? s / (float)cols : NAN;
    }
}

void dpt_cuda_loss(dpt_backend *be, const float *logits, const int32_t *y, int rows, int cols,
                   dpt_loss loss, float grad_scale, float *dlogits, double *loss_sum,
                   double *correct)
{
    dpt_cuda_ctx *ctx = dpt_cuda_ctx_of(be);
    if (rows <= 0 || cols <= 0)
        return;
    if (rows > ctx->loss_cap) { /* grow the scratch; the old one may still be in use */
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
