/* The reducer's NCCL path: each bucket of the device buffer summed by ncclAllReduce on the
 * communication stream, queued behind the compute stream that produced it (mpi/nccl_comm.c),
 * and all of them waited for, with the watchdog, when backward is done (finish) or, for a step
 * with no host synchronization, only ordered before the optimizer (queue) and waited for at the
 * next read of the statistics (drain); with comm.compress bf16 the gradients travel as bfloat16
 * (the statistics stay FP32, as on the MPI path). Built only with NCCL, in its own small library
 * beside the CUDA backend rather than inside it. */
#include <stdlib.h>

#include "nccl_comm.h"
#include "reducer_impl.h"

/* The NCCL path's bucket size: comm.bucket_mb, but at most 1/NCCL_BUCKETS of the gradients and
 * not under NCCL_BUCKET_FLOOR_MB. With the plain 25 MB rule both MLPs of configs/ fit one bucket,
 * which can only start when backward ends, so the allreduce never overlaps it; about 4 buckets let
 * the first leave after the last layers' gradients while the first layer's weight gradient (the
 * largest GEMM of backward) is still computing. The floor keeps each ncclAllReduce above the size
 * where its fixed cost (launch and protocol latency, tens of us) outweighs its bandwidth time, so
 * a small model is not cut into many latency-bound calls. docs/interface.md states the rule. */
enum { NCCL_BUCKETS = 4 };
#define NCCL_BUCKET_FLOOR_MB 1.0

static double nccl_bucket_cap(double cap, double n)
{
    double floor = NCCL_BUCKET_FLOOR_MB * 1048576.0 / sizeof(float);
    double share = n / NCCL_BUCKETS;
    double c = share > floor ? share : floor;
    return c < cap ? c : cap;
}

typedef struct {
    dpt_nccl nccl;
    MPI_Comm world;       /* for the barrier */
    cudaStream_t stream;  /* the compute stream */
    double timeout_s;
    int bf16;             /* comm.compress bf16 */
    size_t n_stats;       /* FP32 statistics at the end of bucket 0 (never compressed) */
    void *half;           /* bf16: (n) device buffer the gradients travel in, same offsets */
    size_t half_n;
} nccl_reducer;

static void nccl_plan(void *impl, const size_t *off, const size_t *len, int n_buckets,
                      size_t n_stats, int overlap)
{
    nccl_reducer *n = impl;
    (void)overlap;
    n->n_stats = n_stats;
    size_t total = 0; /* bucket 0 is the end of the buffer: backward's order */
    for (int k = 0; k < n_buckets; k++)
        if (off[k] + len[k] > total)
            total = off[k] + len[k];
    if (!n->bf16 || total <= n->half_n)
        return;
    if (n->half)
        DPT_CHECK(cudaFree(n->half) == cudaSuccess, "cudaFree of the bf16 gradient buffer");
    n->half = NULL;
    n->half_n = 0;
    DPT_CHECK(cudaMalloc(&n->half, total * 2) == cudaSuccess,
              "out of device memory for the bf16 gradient buffer of comm.compress bf16");
    n->half_n = total;
}

static void nccl_start(void *impl, float *buf, int k, size_t off, size_t len)
{
    nccl_reducer *n = impl;
    if (!n->bf16) {
        dpt_nccl_allreduce_start(&n->nccl, buf + off, len, n->stream);
        return;
    }
    /* bucket 0 ends with the statistics (loss sum, hits, the stop flag): summed in FP32 */
    size_t stats = k == 0 ? n->n_stats : 0, grads = len - stats;
    DPT_CHECK(off + grads <= n->half_n, "a bucket past the planned bf16 gradient buffer");
    dpt_nccl_allreduce_start_bf16(&n->nccl, buf + off, (char *)n->half + off * 2, grads,
                                  n->stream);
    dpt_nccl_allreduce_start(&n->nccl, buf + off + grads, stats, n->stream);
}

static void nccl_wait(void *impl, float *buf)
{
    nccl_reducer *n = impl;
    (void)buf;
    dpt_nccl_allreduce_finish(&n->nccl, n->stream, n->timeout_s);
}

static void nccl_queue(void *impl, float *buf)
{
    nccl_reducer *n = impl;
    (void)buf;
    dpt_nccl_allreduce_queue(&n->nccl, n->stream);
}

static void nccl_drain(void *impl)
{
    nccl_reducer *n = impl;
    dpt_nccl_wait(&n->nccl, n->timeout_s);
}

static void nccl_replayed(void *impl)
{
    nccl_reducer *n = impl;
    dpt_nccl_replayed(&n->nccl, n->stream);
}

static void nccl_barrier(void *impl)
{
    DPT_MPI_CHECK(MPI_Barrier(((nccl_reducer *)impl)->world));
}

static void nccl_free(void *impl)
{
    nccl_reducer *n = impl;
    dpt_nccl_wait(&n->nccl, n->timeout_s); /* sums still queued: the communicator is in use */
    dpt_nccl_free(&n->nccl);
    if (n->half)
        DPT_CHECK(cudaFree(n->half) == cudaSuccess, "cudaFree of the bf16 gradient buffer");
    free(n);
}

static const dpt_reducer_ops nccl_ops = {
    .name = "NCCL",
    .bucket_cap = nccl_bucket_cap,
    .plan = nccl_plan,
    .start = nccl_start,
    .wait = nccl_wait,
    .queue = nccl_queue,
    .drain = nccl_drain,
    .replayed = nccl_replayed,
    .barrier = nccl_barrier,
    .free = nccl_free,
};

void *dpt_reducer_nccl_create(dpt_comm *c, const dpt_reducer_settings *s,
                              const dpt_reducer_ops **ops)
{
    nccl_reducer *n = calloc(1, sizeof *n);
    DPT_CHECK(n != NULL, "out of memory");
    dpt_nccl_init(&n->nccl, c, s->timeout_s);
    n->world = c->world;
    n->stream = (cudaStream_t)s->stream;
    n->timeout_s = s->timeout_s;
    n->bf16 = s->compress == DPT_COMPRESS_BF16;
    *ops = &nccl_ops;
    return n;
}
