/* The reducer's NCCL path: each bucket of the device buffer summed by ncclAllReduce on the
 * communication stream, queued behind the compute stream that produced it (mpi/nccl_comm.c),
 * and all of them waited for, with the watchdog, when backward is done (finish) or, for a step
 * with no host synchronization, only ordered before the optimizer (queue) and waited for at the
 * next read of the statistics (drain). Built only with NCCL,
 * in its own small library beside the CUDA backend rather than inside it. */
#include <stdlib.h>

#include "nccl_comm.h"
#include "reducer_impl.h"

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
    free(n);
}

static const dpt_reducer_ops nccl_ops = {
    .name = "NCCL",
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
    *ops = &nccl_ops;
    return n;
}
