/* The backend function table: everything the model and the optimizer do to numbers goes
 * through it, so the CPU backend (src/cpu_backend.c, the reference) and the CUDA backend (cuda/)
 * are interchangeable and can be compared op by op. All matrices are row-major; pointers
 * marked "backend memory" come from alloc(). Shapes: B rows of the batch on this rank,
 * I inputs, O outputs, C classes. */
#ifndef DPT_BACKEND_H
#define DPT_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "ops.h"

typedef struct dpt_backend dpt_backend;

struct dpt_backend {
    const char *name;   /* "cpu", "cuda" */
    int host_memory;    /* 1: backend memory is host memory (no copies needed) */
    void *ctx;          /* backend state */

    void *(*alloc)(dpt_backend *be, size_t bytes);           /* zeroed; NULL on failure */
    void (*free)(dpt_backend *be, void *p);
    void (*upload)(dpt_backend *be, void *dst, const void *src, size_t bytes);
    void (*download)(dpt_backend *be, void *dst, const void *src, size_t bytes);
    void (*zero)(dpt_backend *be, void *p, size_t bytes);
    void (*sync)(dpt_backend *be);                           /* wait for queued work */

    /* C(M,N) = alpha * op(A) op(B) + beta * C, row-major, op = transpose when trans_* != 0. */
    void (*gemm)(dpt_backend *be, int trans_a, int trans_b, int m, int n, int k, float alpha,
                 const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);

    /* xb(B,I) = x[idx[i]], yb(B) = y[idx[i]]: x (N,I), y (N) and idx (B) in backend memory. */
    void (*gather)(dpt_backend *be, const float *x, const int32_t *y, const int64_t *idx, int rows,
                   int cols, float *xb, int32_t *yb);

    /* z(B,O) += bias b(O) broadcast over rows; a(B,O) = act(z), then times the dropout scale
     * when drop != NULL and drop->p > 0. layer is the layer index (part of the dropout key). */
    void (*bias_act_forward)(dpt_backend *be, float *z, float *a, const float *b, int rows,
                             int cols, dpt_activation act, const dpt_dropout *drop, int layer);

    /* In place: d(B,O) holds dL/da on entry and dL/dz on return: d * dropout scale * act'(z). */
    void (*act_backward)(dpt_backend *be, float *d, const float *z, const float *a, int rows,
                         int cols, dpt_activation act, const dpt_dropout *drop, int layer);

    /* db(O) = sum over rows of dz(B,O) (overwrites). */
    void (*bias_grad)(dpt_backend *be, const float *dz, int rows, int cols, float *db);

    /* Loss of logits(B,C) against labels y(B). Adds the summed per-sample loss to *loss_sum and
     * the number of rows whose argmax equals the label to *correct (host pointers). When dlogits
     * is not NULL, writes dL/dlogits times grad_scale (1 / global batch rows for a mean). */
    void (*loss)(dpt_backend *be, const float *logits, const int32_t *y, int rows, int cols,
                 dpt_loss loss, float grad_scale, float *dlogits, double *loss_sum,
                 double *correct);

    double (*sum_squares)(dpt_backend *be, const float *x, size_t n);
    void (*scale)(dpt_backend *be, float *x, size_t n, float s);

    /* One optimizer step over the whole flat buffer (n parameters). m, v: state buffers. */
    void (*sgd_step)(dpt_backend *be, float *p, const float *g, float *m, size_t n, float lr,
                     float momentum, int nesterov, float wd);
    void (*adam_step)(dpt_backend *be, float *p, const float *g, float *m, float *v, size_t n,
                      float lr, float beta1, float beta2, float eps, float wd, int decoupled,
                      float bc1, float bc2);

    /* Batches staged through pinned host memory, for training sets larger than device memory:
     * double-buffered, transfer `slot` (0 or 1) runs on a copy stream while compute works on the
     * other slot's buffers. For the CPU backend these are plain copies. */
    void *(*alloc_pinned)(dpt_backend *be, size_t bytes);   /* NULL on failure */
    void (*free_pinned)(dpt_backend *be, void *p);
    /* Queues a copy of pinned src into dst, after the compute work released with release_slot. */
    void (*upload_async)(dpt_backend *be, void *dst, const void *src, size_t bytes, int slot);
    void (*wait_slot)(dpt_backend *be, int slot);      /* later compute waits for the copies */
    void (*release_slot)(dpt_backend *be, int slot);   /* compute queued so far is the last
                                                        * reader of slot's device buffers */
    void (*host_wait_slot)(dpt_backend *be, int slot); /* host: slot's copies have finished, its
                                                        * pinned buffers may be refilled */

    void (*destroy)(dpt_backend *be);
};

/* The CPU backend: OpenBLAS GEMMs with `threads` BLAS threads, plain loops otherwise. */
int dpt_cpu_backend_init(dpt_backend *be, int threads);

#endif
