/* Element-wise kernels of the CUDA backend: batch gather, bias + activation + dropout forward,
 * activation backward, bias gradient (a block reduction) and scaling. Each follows its loop in
 * src/cpu_backend.c and calls the same per-element function of src/ops.h, so the two backends
 * cannot drift. */
#include <string.h>

#include "kernels.h"

/* xb(B,I) = x[idx[r]], yb(B) = y[idx[r]]: one thread per element of xb; column 0 also moves
 * the label. */
static __global__ void gather_kernel(const float *__restrict__ x, const int32_t *__restrict__ y,
                                     const int64_t *__restrict__ idx, int rows, int cols,
                                     float *__restrict__ xb, int32_t *__restrict__ yb)
{
    size_t n = (size_t)rows * cols;
    DPT_FOR_THREAD(i, n) {
        size_t r = i / (size_t)cols, c = i % (size_t)cols;
        int64_t src = idx[r];
        xb[i] = x[(size_t)src * cols + c];
        if (c == 0)
            yb[r] = y[src];
    }
}

void dpt_cuda_gather(dpt_backend *be, const float *x, const int32_t *y, const int64_t *idx,
                     int rows, int cols, float *xb, int32_t *yb)
{
    size_t n = (size_t)rows * cols;
    if (rows <= 0 || cols <= 0)
        return;
    DPT_LAUNCH(gather_kernel, dpt_cuda_blocks(n), DPT_CUDA_THREADS, dpt_cuda_ctx_of(be)->stream,
               x, y, idx, rows, cols, xb, yb);
    DPT_CUDA_CHECK_LAUNCH();
}

/* z(B,O) += b; a = act(z), times the dropout scale when dropping (as cpu_bias_act_forward:
 * the activation first, then the product). step_dev: see dropout_arg. */
static __global__ void bias_act_forward_kernel(float *__restrict__ z, float *__restrict__ a,
                                               const float *__restrict__ b, int rows, int cols,
                                               dpt_activation act, int dropping,
                                               dpt_dropout drop, const uint64_t *step_dev,
                                               int layer, __nv_bfloat16 *__restrict__ a16)
{
    size_t n = (size_t)rows * cols;
    if (dropping && step_dev)
        drop.step = *step_dev;
    DPT_FOR_THREAD(i, n) {
        int r = (int)(i / (size_t)cols), c = (int)(i % (size_t)cols);
        float zi = z[i] + b[c];
        z[i] = zi;
        float ai = dpt_op_act(zi, act);
        if (dropping)
            ai *= dpt_op_dropout_scale(&drop, layer, r, c, cols);
        a[i] = ai;
        if (a16)
            a16[i] = __float2bfloat16(ai); /* as the GEMM's conversion of a would round it */
    }
}

/* Kernels take the dropout parameters by value (a pointer to host memory would not reach the
 * device): a zeroed struct with dropping = 0 when there is no dropout. The step, part of the
 * mask's key, changes every step: a kernel captured in a CUDA Graph reads it from device memory
 * (*step_dev, written with the update's scalars before each launch: dpt_cuda_step_scalars), so
 * that every replay draws that step's mask; outside a capture step_dev is NULL and the step is
 * the argument's, the same number either way. */
static dpt_dropout dropout_arg(dpt_backend *be, const dpt_dropout *drop, int *dropping,
                               const uint64_t **step_dev)
{
    dpt_dropout d;
    memset(&d, 0, sizeof d);
    *dropping = drop && drop->p > 0.0f;
    if (*dropping)
        d = *drop;
    dpt_cuda_ctx *ctx = dpt_cuda_ctx_of(be);
    *step_dev = *dropping && ctx->capturing ? ctx->step_dev : NULL;
    return d;
}

void dpt_cuda_bias_act_forward(dpt_backend *be, float *z, float *a, const float *b, int rows,
                               int cols, dpt_activation act, const dpt_dropout *drop, int layer)
{
    size_t n = (size_t)rows * cols;
    if (rows <= 0 || cols <= 0)
        return;
    int dropping;
    const uint64_t *step_dev;
    dpt_dropout d = dropout_arg(be, drop, &dropping, &step_dev);
    /* BF16, a hidden ReLU layer without dropout: a also written rounded, which the next layer's
     * forward GEMM and this layer's weight-gradient GEMM read instead of converting a */
    dpt_cuda_ctx *ctx = dpt_cuda_ctx_of(be);
    dpt_cuda_bf16_act_touched(ctx, z, n * sizeof(float));
    __nv_bfloat16 *a16 = act == DPT_ACT_RELU && !dropping ? dpt_cuda_bf16_act_target(ctx, a, n)
                                                          : NULL;
    if (!a16)
        dpt_cuda_bf16_act_touched(ctx, a, n * sizeof(float));
    DPT_LAUNCH(bias_act_forward_kernel, dpt_cuda_blocks(n), DPT_CUDA_THREADS, ctx->stream, z, a, b,
               rows, cols, act, dropping, d, step_dev, layer, a16);
    DPT_CUDA_CHECK_LAUNCH();
}

/* In place: d(B,O) = dL/da -> dL/dz. With dropout, a holds the dropped-out activation, so
 * act'(z) is computed from act(z) (as cpu_act_backward). */
static __global__ void act_backward_kernel(float *__restrict__ d, const float *__restrict__ z,
                                           const float *__restrict__ a, int rows, int cols,
                                           dpt_activation act, int dropping, dpt_dropout drop,
                                           const uint64_t *step_dev, int layer)
{
    size_t n = (size_t)rows * cols;
    if (dropping && step_dev)
        drop.step = *step_dev;
    DPT_FOR_THREAD(i, n) {
        float zi = z[i];
        if (dropping) {
            int r = (int)(i / (size_t)cols), c = (int)(i % (size_t)cols);
            float s = dpt_op_dropout_scale(&drop, layer, r, c, cols);
            d[i] *= s * dpt_op_act_grad(zi, dpt_op_act(zi, act), act);
        } else {
            d[i] *= dpt_op_act_grad(zi, a[i], act);
        }
    }
}

void dpt_cuda_act_backward(dpt_backend *be, float *d, const float *z, const float *a, int rows,
                           int cols, dpt_activation act, const dpt_dropout *drop, int layer)
{
    size_t n = (size_t)rows * cols;
    if (rows <= 0 || cols <= 0)
        return;
    int dropping;
    const uint64_t *step_dev;
    dpt_dropout dd = dropout_arg(be, drop, &dropping, &step_dev);
    DPT_LAUNCH(act_backward_kernel, dpt_cuda_blocks(n), DPT_CUDA_THREADS,
               dpt_cuda_ctx_of(be)->stream, d, z, a, rows, cols, act, dropping, dd, step_dev,
               layer);
    DPT_CUDA_CHECK_LAUNCH();
}

/* db(O) = column sums of dz(B,O), in a fixed order (no atomics: the same bits every run): a
 * block per DPT_CUDA_BG_COLS columns, whose BG_LANES rows of threads each sum every
 * BG_LANES-th row in order from their first (neighbouring threads read neighbouring columns,
 * so each row is one coalesced load), then a tree over the lanes in shared memory. Threads past
 * the last column add nothing but still reach every barrier. */
static __global__ void bias_grad_kernel(const float *__restrict__ dz, int rows, int cols,
                                        float *__restrict__ db)
{
    DPT_SHARED(float, lane_sum, DPT_CUDA_BG_COLS * DPT_CUDA_BG_LANES);
    const int c = (int)(blockIdx.x * DPT_CUDA_BG_COLS + threadIdx.x);
    const int lane = (int)threadIdx.y;
    float s = 0.0f;
    if (c < cols)
        for (int r = lane; r < rows; r += DPT_CUDA_BG_LANES)
            s += dz[(size_t)r * cols + c];
    s = dpt_cuda_tree_sum(lane_sum, s, lane, DPT_CUDA_BG_LANES, DPT_CUDA_BG_COLS,
                          lane * DPT_CUDA_BG_COLS + (int)threadIdx.x);
    if (lane == 0 && c < cols)
        db[c] = s;
}

void dpt_cuda_bias_grad(dpt_backend *be, const float *dz, int rows, int cols, float *db)
{
    if (cols <= 0)
        return;
    unsigned tiles = (unsigned)((cols + DPT_CUDA_BG_COLS - 1) / DPT_CUDA_BG_COLS);
    /* rows <= 0 still writes zeros, as the CPU's memset does */
    DPT_LAUNCH(bias_grad_kernel, tiles, dim3(DPT_CUDA_BG_COLS, DPT_CUDA_BG_LANES),
               dpt_cuda_ctx_of(be)->stream, dz, rows > 0 ? rows : 0, cols, db);
    DPT_CUDA_CHECK_LAUNCH();
}

static __global__ void scale_kernel(float *__restrict__ x, size_t n, float s)
{
    DPT_FOR_THREAD(i, n) x[i] *= s;
}

void dpt_cuda_scale(dpt_backend *be, float *x, size_t n, float s)
{
    if (n == 0)
        return;
    DPT_LAUNCH(scale_kernel, dpt_cuda_blocks(n), DPT_CUDA_THREADS, dpt_cuda_ctx_of(be)->stream,
               x, n, s);
    DPT_CUDA_CHECK_LAUNCH();
}
