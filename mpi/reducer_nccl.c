/* The reducer's NCCL path: each bucket of the device buffer summed by ncclAllReduce on the
 * communication stream, queued behind the compute stream that produced it (mpi/nccl_comm.c),
 * and all of them waited for, with the watchdog, when backward is done. Built only with NCCL,
 * in its own small library beside the CUDA backend rather than inside it. */
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
} nccl_reducer;

static void nccl_start(void *impl, float *buf, int k, size_t off, size_t len)
{
    nccl_reducer *n = impl;
    (void)k;
    dpt_nccl_allreduce_start(&n->nccl, buf + off, len, n->stream);
}

static void nccl_wait(void *impl, float *buf)
{
    nccl_reducer *n = impl;
    (void)buf;
    dpt_nccl_allreduce_finish(&n->nccl, n->stream, n->timeout_s);
}

static void nccl_barrier(void *impl)
{
    DPT_MPI_CHECK(MPI_Barrier(((nccl_reducer *)impl)->world));
}

static void nccl_free(void *impl)
{
    nccl_reducer *n = impl;
    dpt_nccl_free(&n->nccl);
    free(n);
}

static const dpt_reducer_ops nccl_ops = {
    .name = "NCCL",
    .bucket_cap = nccl_bucket_cap,
    .start = nccl_start,
    .wait = nccl_wait,
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
    *ops = &nccl_ops;
    return n;
}
