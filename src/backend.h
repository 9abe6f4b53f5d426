/* The backend function table: everything the model and the optimizer do to numbers goes
 * through it, so the CPU backend (src/cpu_backend.c, the reference) and the CUDA backend (cuda/)
 * are interchangeable and can be compared op by op. All matrices are row-major; pointers
 * marked "backend memory" come from alloc(). Shapes: B rows of the batch on this rank,
 * I inputs, O outputs, C classes. */
#ifndef DPT_BACKEND_H
#define DPT_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"
#include "ops.h"

typedef struct dpt_backend dpt_backend;

/* train.gemm_epilogue: what gemm_epilogue adds to the product c(M,N) = op(A) op(B) (row-major,
 * alpha 1, beta 0). The ReLU mask has a bit per element of c: row i's bits start at bit
 * i * dpt_epi_mask_ld(N) (bit e is bit e % 8 of byte e / 8), set where the pre-activation > 0. */
typedef enum {
    DPT_EPI_BIAS = 1,      /* c += vec(N) broadcast over rows */
    DPT_EPI_RELU_BIAS = 2, /* c = relu(op(A) op(B) + vec(N)); the mask written */
    DPT_EPI_DRELU = 4,     /* c = op(A) op(B) where the mask's bit is set, else 0, and vec(N) =
                            * the column sums of that c (the bias gradient of the masked layer) */
    /* or'ed into RELU_BIAS by the caller: until c is written again it is read only as the whole
     * operand (from its start, ld = N) of later GEMMs, so a backend may keep it in its GEMM
     * operand precision only (the CUDA backend in bf16: no fp32 write, cuda/lt.cu) */
    DPT_EPI_OPERAND_ONLY = 8
} dpt_epilogue;

/* Bits per row of the ReLU mask for N columns: N rounded up to 128, cuBLASLt's rule for the
 * bit-mask's leading dimension (cublasLt.h, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD). */
static inline size_t dpt_epi_mask_ld(int n) { return ((size_t)(n > 0 ? n : 1) + 127) / 128 * 128; }
/* Bytes of the mask of a (rows, n) output. */
static inline size_t dpt_epi_mask_bytes(int rows, int n)
{
    return (size_t)(rows > 0 ? rows : 1) * dpt_epi_mask_ld(n) / 8;
}

/* What a device backend asked of its device since the process started (the CUDA backend counts
 * them where it makes the calls, so the emulated build shows what a GPU would be asked): kernel
 * launches (with cuBLAS calls and memsets), host synchronizations (stream, event and device
 * synchronizations, blocking copies, waits polled to completion) and host<->device copies. */
typedef struct {
    long long launches, syncs, copies, copy_bytes;
} dpt_device_counts;

/* `bench train`'s GPU-event timing (cuda/timing.cu): the points of a step where events are
 * recorded, on the compute stream (forward + backward, the optimizer) and on the communication
 * stream (each allreduce), and what the events measured, in milliseconds per step. comm is the
 * allreduces' device time, overlapped the part of it inside forward + backward, exposed the rest
 * (comm = overlapped + exposed). */
typedef enum {
    DPT_MARK_STEP,         /* compute stream: forward begins */
    DPT_MARK_BACKWARD_END, /* compute stream: backward's last kernel queued */
    DPT_MARK_OPTIM,        /* compute stream: the update begins (after the allreduces) */
    DPT_MARK_OPTIM_END,
    DPT_MARK_COMM,         /* communication stream: an allreduce begins (its gradients ready) */
    DPT_MARK_COMM_END
} dpt_mark_kind;
typedef struct {
    int steps; /* steps measured (0: none) */
    int graph; /* 1: the events were nodes of the CUDA Graph: its last replay measured */
    int comm;  /* 1: the allreduces were timed (the NCCL path) */
    int comm_untimed; /* allreduces of a step past those with events (not in comm) */
    double compute_ms, fwd_bwd_ms, optim_ms, comm_ms, overlapped_ms, exposed_ms;
} dpt_device_times;

/* The ops of the table, in one list: X(name, return type, (parameters)). It generates the
 * table's members, the completeness check below, the op names and `dptrain selftest`'s coverage
 * report, so an op added here is checked in every backend and named when no parity check
 * covers it (src/selftest.c). */
#define DPT_BACKEND_OPS(X)                                                                     \
    X(alloc, void *, (dpt_backend *be, size_t bytes)) /* zeroed; NULL on failure */            \
    X(free, void, (dpt_backend *be, void *p))                                                  \
    X(upload, void, (dpt_backend *be, void *dst, const void *src, size_t bytes))               \
    X(download, void, (dpt_backend *be, void *dst, const void *src, size_t bytes))             \
    X(zero, void, (dpt_backend *be, void *p, size_t bytes))                                    \
    X(sync, void, (dpt_backend *be)) /* wait for queued work */                                \
    /* C(M,N) = alpha * op(A) op(B) + beta * C, row-major, op = transpose when trans_* != 0. */ \
    X(gemm, void, (dpt_backend *be, int trans_a, int trans_b, int m, int n, int k, float alpha, \
                   const float *a, int lda, const float *b, int ldb, float beta, float *c,     \
                   int ldc))                                                                   \
    /* xb(B,I) = x[idx[i]], yb(B) = y[idx[i]]: x (N,I), y (N) and idx (B) in backend memory. */ \
    X(gather, void, (dpt_backend *be, const float *x, const int32_t *y, const int64_t *idx,    \
                     int rows, int cols, float *xb, int32_t *yb))                              \
    /* z(B,O) += bias b(O) broadcast over rows; a(B,O) = act(z), then times the dropout scale  \
     * when drop != NULL and drop->p > 0. layer is the layer index (part of the dropout key). */ \
    X(bias_act_forward, void, (dpt_backend *be, float *z, float *a, const float *b, int rows,  \
                               int cols, dpt_activation act, const dpt_dropout *drop,          \
                               int layer))                                                     \
    /* In place: d(B,O) holds dL/da on entry, dL/dz = d * dropout scale * act'(z) on return. */ \
    X(act_backward, void, (dpt_backend *be, float *d, const float *z, const float *a, int rows, \
                           int cols, dpt_activation act, const dpt_dropout *drop, int layer))  \
    /* db(O) = sum over rows of dz(B,O) (overwrites). */                                       \
    X(bias_grad, void, (dpt_backend *be, const float *dz, int rows, int cols, float *db))      \
    /* c(M,N) = op(A) op(B) with the epilogue epi (dpt_epilogue, one kind): vec is the bias    \
     * (BIAS, RELU_BIAS) or the bias gradient written (DRELU), mask the ReLU mask written       \
     * (RELU_BIAS) or read (DRELU); unused ones may be NULL. Used by the model only for the     \
     * kinds in be->epilogues (a device's fused GEMM); every backend computes all of them. */  \
    X(gemm_epilogue, void, (dpt_backend *be, int epi, int trans_a, int trans_b, int m, int n,  \
                            int k, const float *a, int lda, const float *b, int ldb, float *c, \
                            int ldc, float *vec, void *mask))                                  \
    /* Loss of logits(B,C) against labels y(B). Adds the summed per-sample loss to *loss_sum   \
     * and the number of rows whose argmax equals the label to *correct (host pointers). When  \
     * dlogits is not NULL, writes dL/dlogits times grad_scale (1 / global batch rows for a    \
     * mean). */                                                                               \
    X(loss, void, (dpt_backend *be, const float *logits, const int32_t *y, int rows, int cols, \
                   dpt_loss loss, float grad_scale, float *dlogits, double *loss_sum,          \
                   double *correct))                                                           \
    /* Regression: the loss of out(B,T) against real targets. Row i's targets are the T floats \
     * t[row[i] * T ...]: a regression split's int32 labels hold each row's index into its     \
     * target table t (N,T) (backend memory), so the batch source and the validation split     \
     * move targets as they move labels. Adds the summed per-row loss (dpt_op_regress_row) to  \
     * *loss_sum (host); dout as dlogits of loss; delta: huber's (model.huber_delta). */       \
    X(loss_targets, void, (dpt_backend *be, const float *out, const int32_t *row,             \
                           const float *t, int rows, int cols, dpt_loss loss, float delta,      \
                           float grad_scale, float *dout, double *loss_sum))                   \
    /* As loss, but the sums stay in backend memory, so the step needs no host               \
     * synchronization: stats(4) = {loss sum, hit count, rows, 0}, each sum formed in double in \
     * row order (as loss forms them) and stored as float. */                                   \
    X(loss_stats, void, (dpt_backend *be, const float *logits, const int32_t *y, int rows,     \
                         int cols, dpt_loss loss, float grad_scale, float *dlogits,            \
                         float *stats))                                                        \
    /* As loss_targets, with the sum left in backend memory as loss_stats leaves it: stats(4) = \
     * {loss sum, 0, rows, 0} (a regression has no hits), so a regression's step needs no host \
     * synchronization either. */                                                               \
    X(loss_targets_stats, void, (dpt_backend *be, const float *out, const int32_t *row,       \
                                 const float *t, int rows, int cols, dpt_loss loss,            \
                                 float delta, float grad_scale, float *dout, float *stats))                 \
    /* acc(n) += (double)x(n), both in backend memory: a step's statistics summed over steps    \
     * on the device, read by the host once per log interval. */                                \
    X(accumulate, void, (dpt_backend *be, double *acc, const float *x, int n))                 \
    X(sum_squares, double, (dpt_backend *be, const float *x, size_t n))                        \
    /* g(n) *= max_norm / (norm + 1e-6) when its L2 norm exceeds max_norm (as                  \
     * torch.nn.utils.clip_grad_norm_), decided where g lives; returns the norm where the host  \
     * has it for free (CPU), NaN where it stays on the device (CUDA: no synchronization). */   \
    X(clip_grad_norm, double, (dpt_backend *be, float *g, size_t n, double max_norm))          \
    X(scale, void, (dpt_backend *be, float *x, size_t n, float s))                             \
    /* One optimizer step over the whole flat buffer (n parameters). m, v: state buffers. */   \
    X(sgd_step, void, (dpt_backend *be, float *p, const float *g, float *m, size_t n, float lr, \
                       float momentum, int nesterov, float wd))                                \
    X(adam_step, void, (dpt_backend *be, float *p, const float *g, float *m, float *v,         \
                        size_t n, float lr, float beta1, float beta2, float eps, float wd,     \
                        int decoupled, float bc1, float bc2))                                  \
    /* Batches staged through pinned host memory, for training sets larger than device        \
     * memory: double-buffered, transfer `slot` (0 or 1) runs on a copy stream while compute   \
     * works on the other slot's buffers. For the CPU backend these are plain copies. */       \
    X(alloc_pinned, void *, (dpt_backend *be, size_t bytes)) /* NULL on failure */             \
    X(free_pinned, void, (dpt_backend *be, void *p))                                           \
    /* Queues a copy of pinned src into dst, after the compute work released with             \
     * release_slot. */                                                                        \
    X(upload_async, void, (dpt_backend *be, void *dst, const void *src, size_t bytes,          \
                           int slot))                                                          \
    X(wait_slot, void, (dpt_backend *be, int slot)) /* later compute waits for the copies */   \
    /* compute queued so far is the last reader of slot's device buffers */                    \
    X(release_slot, void, (dpt_backend *be, int slot))                                         \
    /* host: slot's copies have finished, its pinned buffers may be refilled */                \
    X(host_wait_slot, void, (dpt_backend *be, int slot))                                       \
    /* device memory free and in all (cudaMemGetInfo); -1 where backend memory is host memory */ \
    X(mem_info, int, (dpt_backend *be, size_t *free_bytes, size_t *total_bytes))               \
    X(destroy, void, (dpt_backend *be))

/* One constant per op, in list order: DPT_BACKEND_OP_gemm, ... */
typedef enum {
#define DPT_BACKEND_OP_ENUM(name, ret, params) DPT_BACKEND_OP_##name,
    DPT_BACKEND_OPS(DPT_BACKEND_OP_ENUM)
#undef DPT_BACKEND_OP_ENUM
    DPT_BACKEND_N_OPS
} dpt_backend_op;

struct dpt_backend {
    const char *name;   /* "cpu", "cuda" */
    int host_memory;    /* 1: backend memory is host memory (no copies needed) */
    void *ctx;          /* backend state */
    int epilogues;      /* DPT_EPI_* kinds the model fuses through gemm_epilogue; 0: none */
    int gemm_row_exact; /* 1: a row of gemm's product has the same bits whatever m (so a
                         * weight gradient may be computed in blocks of rows); 0: BLAS picks
                         * its kernels by shape (OpenBLAS's Haswell and Zen sgemm round a
                         * product of fewer rows differently), so backward computes it whole */
#define DPT_BACKEND_MEMBER(name, ret, params) ret(*name) params;
    DPT_BACKEND_OPS(DPT_BACKEND_MEMBER)
#undef DPT_BACKEND_MEMBER
};

/* The name of an op ("gemm"), or "?" out of range. */
static inline const char *dpt_backend_op_name(int op)
{
    static const char *const names[] = {
#define DPT_BACKEND_OP_NAME(name, ret, params) #name,
        DPT_BACKEND_OPS(DPT_BACKEND_OP_NAME)
#undef DPT_BACKEND_OP_NAME
    };
    return op >= 0 && op < DPT_BACKEND_N_OPS ? names[op] : "?";
}

/* The first op a filled table left NULL, or NULL when every op is set. */
static inline const char *dpt_backend_missing_op(const dpt_backend *be)
{
#define DPT_BACKEND_OP_SET(name, ret, params) \
    if (!be->name)                            \
        return #name;
    DPT_BACKEND_OPS(DPT_BACKEND_OP_SET)
#undef DPT_BACKEND_OP_SET
    return NULL;
}

/* Called by every backend's init after filling the table: a missing op is a defect of the
 * backend, not of the run, so it is fatal (dpt_fatal, src/error.h), naming the op. */
static inline void dpt_backend_check_complete(const dpt_backend *be)
{
    const char *missing = dpt_backend_missing_op(be);
    if (missing) {
        char msg[160];
        snprintf(msg, sizeof msg, "the %s backend leaves op %s unset", be->name, missing);
        dpt_fatal(__FILE__, __LINE__, "dpt_backend_check_complete(be)", msg);
    }
}

/* The CPU backend: OpenBLAS GEMMs with `threads` BLAS threads, plain loops otherwise. */
int dpt_cpu_backend_init(dpt_backend *be, int threads);
/* As dpt_cpu_backend_init, with the GEMMs in `precision`: DPT_PREC_BF16 rounds both operands
 * to bfloat16 before the FP32 GEMM (the CUDA backend's bf16 GEMM's twin); TF32 computes in
 * FP32 (the CPU has no TF32). -1 when out of memory. */
int dpt_cpu_backend_init_precision(dpt_backend *be, int threads, dpt_precision precision);

#endif
