/* Per-element math shared by the CPU backend's loops and the CUDA backend's kernels, so the two
 * cannot drift: activations and their derivatives, the dropout mask, the optimizer updates.
 * Every function is static inline and marked DPT_HD (host + device under nvcc). */
#ifndef DPT_OPS_H
#define DPT_OPS_H

#include <math.h>
#include <stdint.h>

#include "rng.h"

/* The enums the backends and kernels take, here rather than in config.h so that a backend sees
 * these and not the configuration's schema (config.h includes this header for them). */
typedef enum { DPT_ACT_RELU, DPT_ACT_TANH, DPT_ACT_SIGMOID, DPT_ACT_GELU, DPT_ACT_IDENTITY } dpt_activation;
typedef enum { DPT_LOSS_SOFTMAX_CE, DPT_LOSS_MSE, DPT_LOSS_HUBER } dpt_loss;
/* train.precision: what the GEMMs read. FP32 as stored; TF32 rounds the operands to 10
 * mantissa bits (cuBLAS's TF32 tensor-op math; the CPU backend stays FP32); BF16 rounds them to
 * bfloat16 (7 mantissa bits) on both backends and accumulates in FP32. */
typedef enum { DPT_PREC_FP32, DPT_PREC_TF32, DPT_PREC_BF16 } dpt_precision;

/* x rounded to bfloat16 (the upper 16 bits of a float: 8-bit exponent, 7-bit mantissa),
 * round to nearest, ties to even, as the toolkit's __float2bfloat16 and the tensor cores'
 * input conversion; NaN stays NaN (quiet) and infinities pass through. The CPU backend's bf16
 * GEMM rounds its operands with this, so it computes on the values the GPU's GEMM reads. */
static inline DPT_HD float dpt_op_round_bf16(float x)
{
    union { float f; uint32_t u; } v;
    v.f = x;
    if ((v.u & 0x7f800000u) == 0x7f800000u) /* infinity passes; NaN stays a (quiet) NaN */
        v.u |= (v.u & 0x007fffffu) ? 0x00400000u : 0u;
    else
        v.u += 0x7fffu + ((v.u >> 16) & 1u);
    v.u &= 0xffff0000u;
    return v.f;
}

/* GELU is the exact erf form, as PyTorch's nn.GELU() default: x * Phi(x). */
static inline DPT_HD float dpt_op_act(float z, dpt_activation act)
{
    switch (act) {
    case DPT_ACT_RELU: return z > 0.0f ? z : 0.0f;
    case DPT_ACT_TANH: return tanhf(z);
    case DPT_ACT_SIGMOID: return 1.0f / (1.0f + expf(-z));
    case DPT_ACT_GELU: return 0.5f * z * (1.0f + erff(z * 0.70710678118654752f));
    default: return z;
    }
}

/* d act(z) / dz, given z and a = act(z) (whichever is cheaper is used). */
static inline DPT_HD float dpt_op_act_grad(float z, float a, dpt_activation act)
{
    switch (act) {
    case DPT_ACT_RELU: return z > 0.0f ? 1.0f : 0.0f;
    case DPT_ACT_TANH: return 1.0f - a * a;
    case DPT_ACT_SIGMOID: return a * (1.0f - a);
    case DPT_ACT_GELU: {
        float cdf = 0.5f * (1.0f + erff(z * 0.70710678118654752f));
        float pdf = 0.39894228040143268f * expf(-0.5f * z * z);
        return cdf + z * pdf;
    }
    default: return 1.0f;
    }
}

/* One row of the loss against the class label: returns the row's loss (softmax cross-entropy,
 * or MSE against the one-hot label averaged over the C outputs, as PyTorch's MSELoss averages
 * over all elements), sets *hit when the argmax equals the label, and writes dL/dz times
 * grad_scale into dz when dz is not NULL. A label outside [0, C) (the data loader rejects those)
 * gives a NaN loss, so the step counts as diverged instead of reading out of bounds. */
static inline DPT_HD float dpt_op_loss_row(const float *z, int label, int cols, dpt_loss loss,
                                           float grad_scale, float *dz, int *hit)
{
    int valid = label >= 0 && label < cols;
    int arg = 0;
    for (int j = 1; j < cols; j++)
        if (z[j] > z[arg])
            arg = j;
    *hit = arg == label;
    if (loss == DPT_LOSS_SOFTMAX_CE) {
        /* log-sum-exp shifted by the max, so exp never overflows */
        float mx = z[arg], sum = 0.0f;
        for (int j = 0; j < cols; j++)
            sum += expf(z[j] - mx);
        float lse = mx + logf(sum);
        if (dz)
            for (int j = 0; j < cols; j++)
                dz[j] = grad_scale * (expf(z[j] - lse) - (j == label ? 1.0f : 0.0f));
        return valid ? lse - z[label] : NAN;
    }
    float s = 0.0f;
    for (int j = 0; j < cols; j++) {
        float e = z[j] - (j == label ? 1.0f : 0.0f);
        s += e * e;
        if (dz)
            dz[j] = grad_scale * 2.0f * e / (float)cols;
    }
    return valid ? s / (float)cols : NAN;
}

/* One row of the regression loss against real targets t (cols): the mean over the cols outputs
 * of the squared error (mse, as PyTorch's MSELoss) or of the Huber loss with delta (huber, as
 * PyTorch's HuberLoss(delta=delta): e^2 / 2 within delta, delta (|e| - delta / 2) beyond; delta 1
 * computes the same floats as |e| - 1/2), so that a batch's loss is the mean over all elements;
 * writes dL/dz times grad_scale into dz when dz is not NULL. */
static inline DPT_HD float dpt_op_regress_row(const float *z, const float *t, int cols,
                                              dpt_loss loss, float delta, float grad_scale,
                                              float *dz)
{
    float s = 0.0f;
    for (int j = 0; j < cols; j++) {
        float e = z[j] - t[j], a = fabsf(e), g;
        if (loss == DPT_LOSS_HUBER) {
            s += a <= delta ? 0.5f * e * e : delta * (a - 0.5f * delta);
            g = a <= delta ? e : (e > 0.0f ? delta : -delta);
        } else {
            s += e * e;
            g = 2.0f * e;
        }
        if (dz)
            dz[j] = grad_scale * g / (float)cols;
    }
    return s / (float)cols;
}

/* Dropout: what one (step, layer, global sample, unit) draws is a pure function of those
 * numbers, so every rank and both backends draw the same mask, and N ranks equal one rank.
 * Returns the factor the activation is multiplied by: 0 (dropped) or 1/(1-p) (kept). */
typedef struct {
    float p;           /* drop probability; 0 = off */
    uint64_t seed;     /* run.seed */
    uint64_t step;     /* optimizer step */
    int64_t row0;      /* global index, within the global batch, of this rank's row 0 */
} dpt_dropout;

static inline DPT_HD float dpt_op_dropout_scale(const dpt_dropout *d, int layer, int64_t row,
                                                int unit, int width)
{
    uint64_t key = dpt_rng_mix(d->seed ^ dpt_rng_mix((d->step << 8) | (uint64_t)layer));
    uint64_t counter = (uint64_t)(d->row0 + row) * (uint64_t)width + (uint64_t)unit;
    float u = dpt_rng_uniform(key, DPT_RNG_DROPOUT, counter);
    return u < d->p ? 0.0f : 1.0f / (1.0f - d->p);
}

/* SGD with momentum as PyTorch's torch.optim.SGD (dampening 0): L2 weight decay enters the
 * gradient; Nesterov uses g + momentum * buf. */
static inline DPT_HD void dpt_op_sgd(float *p, float g, float *m, float lr, float momentum,
                                     int nesterov, float wd)
{
    g += wd * *p;
    if (momentum > 0.0f) {
        *m = momentum * *m + g;
        g = nesterov ? g + momentum * *m : *m;
    }
    *p -= lr * g;
}

/* Gradient clipping by the global norm as torch.nn.utils.clip_grad_norm_: the factor
 * max_norm / (norm + 1e-6) when the norm is above max_norm, else 1 (g * 1.0f == g exactly). */
static inline DPT_HD float dpt_op_clip_scale(double norm, double max_norm)
{
    return norm > max_norm ? (float)(max_norm / (norm + 1e-6)) : 1.0f;
}

/* Adam (Kingma & Ba 2015) with bias correction; decoupled = AdamW (Loshchilov & Hutter 2019),
 * where weight decay shrinks the parameter by lr * wd instead of entering the gradient.
 * bc1 = 1 - beta1^t, bc2 = 1 - beta2^t computed once per step by the caller. */
static inline DPT_HD void dpt_op_adam(float *p, float g, float *m, float *v, float lr,
                                      float beta1, float beta2, float eps, float wd,
                                      int decoupled, float bc1, float bc2)
{
    if (decoupled)
        *p -= lr * wd * *p;
    else
        g += wd * *p;
    *m = beta1 * *m + (1.0f - beta1) * g;
    *v = beta2 * *v + (1.0f - beta2) * g * g;
    float mhat = *m / bc1;
    float vhat = *v / bc2;
    *p -= lr * mhat / (sqrtf(vhat) + eps);
}

#endif
